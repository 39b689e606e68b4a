"""The one query interface to the history: the CLI (`mmstream search`), the web History page
and its JSON API all ask a `History` for `Moment`s and never write SQL of their own, so a
second backend (PostgreSQL for the fleet) implements this and nothing else changes.

A moment is what people search for: a final transcript with the scene and emotion of the
windows it overlaps, or a stretch of windows without speech that carry the tag or emotion
asked for. Each says which recording covers it, and at what offsets, when one does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from mmstream.errors import MmstreamError

MomentKind = Literal["speech", "window"]
MOMENT_TYPES = ("transcript", "scene", "emotion", "fused")
MAX_LIMIT = 1000
TIME_FORMATS = ("a duration back from now (90s, 30m, 2h, 7d, 2w), 'today', or a date and time "
                "(2026-12-01, 2026-12-01T08:00, 2026-12-01 08:00:00+01:00)")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_WORD = re.compile(r"\w+", re.UNICODE)


class QueryError(MmstreamError):
    """A query that cannot be run as given: one line that says what to give instead."""

    exit_code = 2


def parse_when(text: str, option: str = "--since", now: float | None = None) -> float:
    """Epoch seconds for `2h` (that long ago), `today`, or an ISO date/time (local time
    unless it names a zone); anything else is a QueryError naming the accepted formats."""
    now = time.time() if now is None else now
    if (found := _DURATION.match(text)) is not None:
        return now - float(found.group(1)) * _UNITS[found.group(2).lower()]
    if text.strip().lower() == "today":
        return datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0,
                                                   microsecond=0).timestamp()
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise QueryError(f"{option} {text!r}: use {TIME_FORMATS}") from None


def search_words(text: str) -> list[str]:
    """The words of a search: letters and digits only, so quotes, `*`, `NEAR`, parentheses
    or `-` are searched as the words around them and never read as query syntax."""
    return _WORD.findall(text)


@dataclass(frozen=True)
class Query:
    text: str = ""
    streams: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()  # a fleet's store holds many devices
    tags: tuple[str, ...] = ()
    emotions: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None
    limit: int = 20

    def __post_init__(self) -> None:
        if self.text.strip() and not search_words(self.text):
            raise QueryError(f"nothing to search for in {self.text!r}: give words (letters "
                             "or digits)")
        unknown = [t for t in self.types if t not in MOMENT_TYPES]
        if unknown:
            raise QueryError(f"--type {unknown[0]!r}: use one of {', '.join(MOMENT_TYPES)}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise QueryError(f"--limit {self.limit}: use 1 to {MAX_LIMIT}")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise QueryError("--since is not before --until: nothing can match")

    @property
    def words(self) -> list[str]:
        return search_words(self.text)


@dataclass(frozen=True)
class Moment:
    kind: MomentKind
    t: float  # epoch seconds: where the moment starts
    t_end: float
    stream: str
    device: str = ""
    text: str = ""
    tags: tuple[str, ...] = ()
    emotion: str | None = None
    valence: float | None = None
    person: bool = False
    recording: str | None = None  # the file that covers it (a replayed input), if any
    offset_s: float | None = None  # where in `recording` it starts, and ends
    end_offset_s: float | None = None
    thumbnail: int | None = None  # a picture id (History.thumbnail)
    event_ids: tuple[int, ...] = field(default=(), repr=False)

    def line(self, with_date: bool = False) -> str:
        """`18:02:11 door — 'the package is at the door' — person · neutral`"""
        when = time.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S",
                             time.localtime(self.t))
        parts = [f"{when} {self.stream}"]
        if self.text:
            parts.append(f"'{self.text}'")
        seen = [*self.tags, *([self.emotion] if self.emotion else [])]
        if seen:
            parts.append(" · ".join(seen))
        if self.recording is not None and self.offset_s is not None:
            parts.append(f"{self.recording} @ {self.offset_s:.1f}s")
        return " — ".join(parts)

    def as_json(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["tags"], shown["event_ids"] = list(self.tags), list(self.event_ids)
        shown["time"] = datetime.fromtimestamp(self.t).astimezone().isoformat(
            timespec="seconds")
        return shown


@dataclass(frozen=True)
class Span:
    """A stretch of one stream's day: speech (its text), a tag, an emotion."""

    t: float
    t_end: float
    label: str


@dataclass
class StreamDay:
    stream: str
    speech: list[Span] = field(default_factory=list)
    tags: list[Span] = field(default_factory=list)
    emotions: list[Span] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"stream": self.stream,
                **{name: [asdict(s) for s in getattr(self, name)]
                   for name in ("speech", "tags", "emotions")}}


class History(Protocol):
    """What a history backend answers (SQLite on the device: search.py)."""

    def search(self, query: Query) -> list[Moment]: ...

    def timeline(self, start: float, end: float,
                 streams: Sequence[str] = ()) -> list[StreamDay]: ...

    def thumbnail(self, picture_id: int) -> bytes | None: ...

    def streams(self) -> list[str]: ...

    def close(self) -> None: ...
