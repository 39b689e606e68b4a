"""How two runs' events differ: the report a user reads after upgrading a model.

Events are paired per stream and type by capture time (within a tolerance, in order), then
each pair is compared by what matters for its type: the transcript text, the set of scene
tags, the emotion label; smaller moves (scores, confidences) count as "scores only", and the
largest move of each score field is kept with both values (`ScoreMove`). Unpaired
events are listed per side, and paired events whose capture times moved are timing shifts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from mmstream.errors import SourceError
from mmstream.events import Event, decode, encode, event_type

SHIFT_EPSILON_S = 1e-6


@dataclass(frozen=True)
class Change:
    kind: str  # transcript, tags, emotion, status, scores
    stream_id: str
    event_type: str
    t: float
    before: str
    after: str


@dataclass(frozen=True)
class ScoreMove:
    """One number of a paired event that moved: `field` names it ('tags[person]', 'valence')."""

    event_type: str
    field: str
    stream_id: str
    t: float
    before: float
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before

    def as_dict(self) -> dict[str, Any]:
        return {**vars(self), "delta": round(self.delta, 6)}


@dataclass
class RunDiff:
    counts_a: Counter[str]
    counts_b: Counter[str]
    byte_identical: bool
    paired: int = 0
    same: int = 0
    changes: list[Change] = field(default_factory=list)
    shifts: list[float] = field(default_factory=list)
    only_a: list[Event] = field(default_factory=list)
    only_b: list[Event] = field(default_factory=list)
    largest_moves: dict[tuple[str, str], ScoreMove] = field(default_factory=dict)

    def score_moves(self) -> list[ScoreMove]:
        """The largest move of each (event type, score field), largest first."""
        return sorted(self.largest_moves.values(), key=lambda m: (-abs(m.delta), m.field))

    @property
    def identical(self) -> bool:
        """Same events with the same content at the same times (seq and t_publish aside)."""
        return not (self.changes or self.shifts or self.only_a or self.only_b)

    def by_kind(self) -> Counter[str]:
        return Counter(change.kind for change in self.changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical, "byte_identical": self.byte_identical,
            "events_a": dict(self.counts_a), "events_b": dict(self.counts_b),
            "paired": self.paired, "same": self.same, "changed": dict(self.by_kind()),
            "changes": [vars(c) for c in self.changes],
            "score_changes": [m.as_dict() for m in self.score_moves()],
            "shifted": len(self.shifts),
            "max_shift_s": max((abs(s) for s in self.shifts), default=0.0),
            "only_a": dict(Counter(event_type(e) for e in self.only_a)),
            "only_b": dict(Counter(event_type(e) for e in self.only_b)),
        }


def load_events(path: Path) -> list[Event]:
    """Events of a run: a JSONL file (one envelope a line) or the events inside a recording."""
    if path.suffix.lower() == ".mcap":
        from mmstream.recording.reader import RecordingReader

        with RecordingReader(path) as reader:
            return [_decode(m.data, f"{path} {m.topic.name}")
                    for m in reader.messages(kinds=("event",))]
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise SourceError(f"cannot read events from {path}: {exc.strerror}") from None
    return [_decode(line, f"{path} line {n}") for n, line in enumerate(lines, 1) if line.strip()]


def _decode(data: bytes, where: str) -> Event:
    try:
        return decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SourceError(f"{where}: not an mmstream event ({exc})") from None


def diff_runs(a: list[Event], b: list[Event], tolerance_s: float = 0.5) -> RunDiff:
    result = RunDiff(Counter(event_type(e) for e in a), Counter(event_type(e) for e in b),
                     [encode(e) for e in a] == [encode(e) for e in b])
    groups_a, groups_b = _group(a), _group(b)
    for key in sorted(set(groups_a) | set(groups_b)):
        for left, right in _pair(groups_a.get(key, []), groups_b.get(key, []), tolerance_s):
            if right is None:
                result.only_a.append(left)  # type: ignore[arg-type]
            elif left is None:
                result.only_b.append(right)
            else:
                _compare(left, right, result)
    return result


def _group(events: list[Event]) -> dict[tuple[str, str], list[Event]]:
    groups: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for event in events:
        groups[(event.stream_id, event_type(event))].append(event)
    for group in groups.values():
        group.sort(key=lambda e: (e.t_capture, e.seq))
    return groups


def _pair(left: list[Event], right: list[Event],
          tolerance_s: float) -> Iterator[tuple[Event | None, Event | None]]:
    """Walk both time-sorted lists; events within the tolerance pair up, in order."""
    i = j = 0
    while i < len(left) or j < len(right):
        if j == len(right):
            yield left[i], None
            i += 1
        elif i == len(left):
            yield None, right[j]
            j += 1
        elif abs(left[i].t_capture - right[j].t_capture) <= tolerance_s:
            yield left[i], right[j]
            i, j = i + 1, j + 1
        elif left[i].t_capture < right[j].t_capture:
            yield left[i], None
            i += 1
        else:
            yield None, right[j]
            j += 1


def _compare(a: Event, b: Event, result: RunDiff) -> None:
    result.paired += 1
    shift = b.t_capture - a.t_capture
    if abs(shift) > SHIFT_EPSILON_S:
        result.shifts.append(shift)
    if a.payload == b.payload:  # type: ignore[union-attr]
        result.same += 1
        return
    kinds = event_type(a)
    moves = [ScoreMove(kinds, name, a.stream_id, a.t_capture, x, y)
             for name, (x, y) in _numbers_that_moved(a.payload, b.payload).items()]  # type: ignore[union-attr]
    for move in moves:
        known = result.largest_moves.get((kinds, move.field))
        if known is None or abs(move.delta) > abs(known.delta):
            result.largest_moves[(kinds, move.field)] = move
    kind, before, after = _what_changed(kinds, a.payload, b.payload)  # type: ignore[union-attr]
    if kind == "scores" and moves:  # the event's largest move, with both values
        top = max(moves, key=lambda m: abs(m.delta))
        before, after = f"{top.field} {top.before:.4f}", f"{top.field} {top.after:.4f}"
    result.changes.append(Change(kind, a.stream_id, kinds, a.t_capture, before, after))


def _numbers(value: Any, path: str = "") -> Iterator[tuple[str, float]]:
    """Every number of a payload by a readable path; tags by their label ('tags[person]')."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield path, float(value)
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from _numbers(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            label = inner.get("label") if isinstance(inner, dict) else None
            if label is not None and "score" in inner:
                yield f"{path}[{label}]", float(inner["score"])
            else:
                yield from _numbers(inner, f"{path}[{index}]")


def _numbers_that_moved(a: Any, b: Any) -> dict[str, tuple[float, float]]:
    left = dict(_numbers(msgspec.to_builtins(a)))
    right = dict(_numbers(msgspec.to_builtins(b)))
    return {name: (left[name], right[name]) for name in sorted(left.keys() & right.keys())
            if left[name] != right[name]}


def _what_changed(kind: str, a: Any, b: Any) -> tuple[str, str, str]:
    """(change kind, before, after) in words a user can read."""
    if kind == "transcript" and a.text.strip() != b.text.strip():
        return "transcript", a.text.strip(), b.text.strip()
    if kind == "scene":
        tags_a, tags_b = _labels(a.tags), _labels(b.tags)
        if tags_a != tags_b:
            return "tags", ", ".join(sorted(tags_a)), ", ".join(sorted(tags_b))
    if kind == "emotion" and a.label != b.label:
        return "emotion", a.label, b.label
    if kind == "fused":
        if a.emotion != b.emotion:
            return "emotion", str(a.emotion), str(b.emotion)
        if _labels(a.scene) != _labels(b.scene):
            return "tags", ", ".join(sorted(_labels(a.scene))), ", ".join(sorted(_labels(b.scene)))
        if a.transcript.strip() != b.transcript.strip():
            return "transcript", a.transcript.strip(), b.transcript.strip()
    if kind == "status" and (a.state, a.message) != (b.state, b.message):
        return "status", f"{a.state}: {a.message}", f"{b.state}: {b.message}"
    return "scores", "", ""


def _labels(tags: Any) -> set[str]:
    return {tag.label for tag in tags}


def render(diff: RunDiff, name_a: str, name_b: str, *, examples: int = 5) -> list[str]:
    """The report as text lines."""
    lines = [f"{name_a}: {_counts(diff.counts_a)}", f"{name_b}: {_counts(diff.counts_b)}"]
    if diff.identical:
        lines.append("identical, byte for byte" if diff.byte_identical
                     else "identical events (only seq, device_id or t_publish differ)")
        return lines
    lines.append(f"paired {diff.paired} events: {diff.same} same, {len(diff.changes)} changed")
    labels = {"transcript": "transcripts changed", "tags": "tags changed",
              "emotion": "emotion changed", "status": "status changed",
              "scores": "scores only"}
    kinds = diff.by_kind()
    for kind, label in labels.items():
        if not kinds[kind]:
            continue
        lines.append(f"  {label}: {kinds[kind]}")
        if kind == "scores":
            lines.append("    largest change per score:")
            lines.extend(f"    {m.stream_id} {m.event_type} {m.field} @ {m.t:.2f}s: "
                         f"{m.before:.4f} -> {m.after:.4f} ({m.delta:+.4f})"
                         for m in diff.score_moves()[:examples])
            continue
        shown = [c for c in diff.changes if c.kind == kind][:examples]
        lines.extend(f"    {c.stream_id} {c.event_type} @ {c.t:.2f}s: {c.before!r} -> "
                     f"{c.after!r}" for c in shown)
    if diff.shifts:
        biggest = max(diff.shifts, key=abs)
        mean = sum(diff.shifts) / len(diff.shifts)
        lines.append(f"timing: {len(diff.shifts)} paired events moved (mean {mean:+.3f} s, "
                     f"largest {biggest:+.3f} s)")
    for name, events in ((name_a, diff.only_a), (name_b, diff.only_b)):
        if events:
            counts = _counts(Counter(event_type(e) for e in events))
            lines.append(f"only in {name}: {counts}")
    return lines


def _counts(counts: Counter[str]) -> str:
    total = sum(counts.values())
    detail = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    return f"{total} events" + (f" ({detail})" if detail else "")
