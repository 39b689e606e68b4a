"""What the live view shows, kept while the daemon runs (and across its reloads).

Per stream: the newest analysed frame (a reference, never a copy or an encoding), the
transcript as it forms (a final replaces the partials of its utterance), emotion and valence
over the last minutes, and the last events. Everything is bounded, and a change is an append
plus a revision number: an unwatched daemon does nothing more per event. Viewers ask for what
changed after the revision they last saw (`changes_since`), so an update carries only news.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from mmstream.events import (
    EmotionEvent,
    Event,
    FusedEvent,
    SceneEvent,
    StatusEvent,
    TranscriptEvent,
    event_type,
)
from mmstream.media import AnalysedFrame

MAX_MOOD_POINTS = 3600  # a hard bound on the chart's history, whatever history_s says


class Limits(Protocol):
    """The bounds the web config sets (config/web.py WebConfig)."""

    history_s: float
    max_events: int
    max_transcripts: int


class Revised(Protocol):
    rev: int


@dataclass(slots=True)
class TranscriptLine:
    key: str  # pipeline generation + utterance: a reloaded pipeline numbers utterances anew
    start: float
    end: float
    text: str
    final: bool
    rev: int

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "start": self.start, "end": self.end, "text": self.text,
                "final": self.final}


@dataclass(slots=True)
class MoodPoint:
    t: float
    valence: float
    label: str
    rev: int

    def as_json(self) -> list[Any]:
        return [self.t, round(self.valence, 3), self.label]


@dataclass(slots=True)
class EventRow:
    t: float
    kind: str
    text: str
    seq: int
    rev: int

    def as_json(self) -> dict[str, Any]:
        return {"t": self.t, "type": self.kind, "text": self.text, "seq": self.seq}


@dataclass
class StreamState:
    stream_id: str
    frame: AnalysedFrame | None = None
    frame_no: int = 0  # counts the frames seen; a viewer asks for the picture by it
    transcripts: OrderedDict[str, TranscriptLine] = field(default_factory=OrderedDict)
    mood: deque[MoodPoint] = field(default_factory=lambda: deque(maxlen=MAX_MOOD_POINTS))
    events: deque[EventRow] = field(default_factory=deque)

    def frame_json(self) -> dict[str, Any] | None:
        frame = self.frame
        if frame is None:
            return None
        return {"no": self.frame_no, "t": frame.t_capture, "faces": len(frame.faces),
                "tags": [[label, round(score, 3)] for label, score in frame.tags],
                "emotion": frame.emotion,
                "valence": None if frame.valence is None else round(frame.valence, 3)}


class LiveState:
    """The streams' state and a revision counter that viewers wait on."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.revision = 0
        self.streams: dict[str, StreamState] = {}
        self._newer: asyncio.Future[None] | None = None  # exists only while someone waits

    # ---- changes (from the pipeline's sink, on the event loop) -----------------------------

    def stream(self, stream_id: str) -> StreamState:
        found = self.streams.get(stream_id)
        if found is None:
            found = self.streams[stream_id] = StreamState(stream_id)
            self._changed()
        return found

    def add_frame(self, frame: AnalysedFrame) -> None:
        state = self.stream(frame.stream_id)
        state.frame, state.frame_no = frame, state.frame_no + 1
        self._changed()

    def add_event(self, event: Event, generation: int = 0) -> None:
        state = self.stream(event.stream_id)
        rev = self._changed()
        state.events.append(EventRow(event.t_capture, event_type(event), describe(event),
                                     event.seq, rev))
        _trim(state.events, self.limits.max_events)
        if isinstance(event, TranscriptEvent):
            self._transcript(state, event, generation, rev)
        elif isinstance(event, EmotionEvent):
            emotion = event.payload
            state.mood.append(MoodPoint(event.t_capture, emotion.valence, emotion.label, rev))
            while state.mood and state.mood[0].t < event.t_capture - self.limits.history_s:
                state.mood.popleft()

    def _transcript(self, state: StreamState, event: TranscriptEvent, generation: int,
                    rev: int) -> None:
        said = event.payload
        key = f"{generation}.{said.utterance_id}"
        state.transcripts.pop(key, None)  # re-inserted last: the lines stay in revision order
        state.transcripts[key] = TranscriptLine(key, said.start, said.end, said.text,
                                                said.final, rev)
        while len(state.transcripts) > self.limits.max_transcripts:
            state.transcripts.popitem(last=False)

    def touch(self) -> None:
        """Something beside the streams changed (the run's phase): viewers wake up."""
        self._changed()

    def _changed(self) -> int:
        self.revision += 1
        newer, self._newer = self._newer, None
        if newer is not None and not newer.done():
            newer.set_result(None)
        return self.revision

    # ---- reading (viewers) -------------------------------------------------------------------

    async def wait_newer(self, revision: int, timeout_s: float) -> None:
        """Return once the state is newer than `revision`, or after `timeout_s`."""
        if self.revision > revision:
            return
        if self._newer is None:
            self._newer = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._newer), timeout_s)

    def changes_since(self, revision: int) -> dict[str, dict[str, Any]]:
        """Per stream, the transcript lines, mood points and events newer than `revision`
        (everything when 0). Streams with no news are left out; frames are the viewer's
        business (they are rate-limited per viewer)."""
        changes: dict[str, dict[str, Any]] = {}
        for stream_id, state in self.streams.items():
            news = {
                "transcripts": [line.as_json() for line in
                                _newer_than(state.transcripts.values(), revision)],
                "mood": [point.as_json() for point in _newer_than(state.mood, revision)],
                "events": [row.as_json() for row in _newer_than(state.events, revision)],
            }
            if revision == 0:
                changes[stream_id] = news
            elif any(news.values()):
                changes[stream_id] = {kind: items for kind, items in news.items() if items}
        return changes


def _newer_than(items: Iterable[Revised], revision: int) -> list[Any]:
    """The trailing items whose revision is above `revision` (items are in revision order)."""
    found = []
    for item in _reversed(items):
        if item.rev <= revision:
            break
        found.append(item)
    found.reverse()
    return found


def _reversed(items: Iterable[Revised]) -> Iterator[Revised]:
    return reversed(items)  # type: ignore[call-overload]  # deques and dict views reverse


def _trim(rows: deque[EventRow], limit: int) -> None:
    while len(rows) > limit:
        rows.popleft()


def describe(event: Event) -> str:
    """One line of what an event says, for the events table."""
    if isinstance(event, TranscriptEvent):
        kind = "final" if event.payload.final else "partial"
        return f"{kind}: {event.payload.text}"
    if isinstance(event, SceneEvent):
        return ", ".join(f"{tag.label} {tag.score:.2f}" for tag in event.payload.tags) or "—"
    if isinstance(event, EmotionEvent):
        return f"{event.payload.label} (valence {event.payload.valence:+.2f})"
    if isinstance(event, FusedEvent):
        fused = event.payload
        parts = [tag.label for tag in fused.scene] + ([fused.emotion] if fused.emotion else [])
        return " · ".join(parts) or "—"
    if isinstance(event, StatusEvent):
        status = event.payload
        return f"{status.state}: {status.message}" if status.message else status.state
    return ""
