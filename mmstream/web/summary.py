"""The summary at the top of a report: time span, counts, drops, models, health.

Times of a media-time run (a replay, t_capture = seconds into the file) are shown as they are;
a live run's epoch times are shown from its first event, with the UTC start beside them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mmstream.events import (
    EVENT_TYPES,
    EmotionEvent,
    Event,
    FusedEvent,
    SceneEvent,
    StatusEvent,
    TranscriptEvent,
    event_type,
)
from mmstream.media import is_wall_clock


@dataclass(frozen=True)
class TimeSpan:
    """What the report's time axis covers; `origin` is subtracted from every time shown."""

    first: float
    last: float
    origin: float

    @property
    def duration_s(self) -> float:
        return self.last - self.first

    @property
    def is_live(self) -> bool:
        return is_wall_clock(self.first)

    def relative(self, t: float) -> float:
        return t - self.origin

    def describe(self, t: float) -> str:
        """A time as shown: seconds on the axis, or UTC for a wall-clock time in a media run."""
        if is_wall_clock(t) and not self.is_live:
            return utc(t)
        return f"{self.relative(t):.1f} s"


@dataclass(frozen=True)
class StatusLine:
    when: str
    stream_id: str
    state: str
    message: str


@dataclass(frozen=True)
class ReportSummary:
    """What a report says about its input at a glance (also a row of the batch index)."""

    title: str
    source: str
    span: TimeSpan
    counts: dict[str, int]
    streams: list[str]
    devices: list[str]
    drops: dict[str, int]
    models: list[str]
    thumbnails: int = 0
    damage: str = ""
    statuses: list[StatusLine] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(self.counts.values())

    @property
    def start_utc(self) -> str:
        return utc(self.span.first) if self.span.is_live else ""


def time_span(events: Sequence[Event], frame_times: Iterable[float | None] = ()) -> TimeSpan:
    """The span of what was seen and heard; status events (which a media-time run may stamp
    with wall-clock time) only when there is nothing else."""
    times = [t for t in frame_times if t is not None]
    for event in events:
        if isinstance(event, TranscriptEvent):
            times += [event.payload.start, event.payload.end]
        if not isinstance(event, StatusEvent):
            times.append(event.t_capture)
    if not times:
        times = [event.t_capture for event in events] or [0.0]
    first, last = min(times), max(times)
    return TimeSpan(first, last, origin=first if is_wall_clock(first) else 0.0)


def summarize(events: Sequence[Event], span: TimeSpan, *, title: str, source: str,
              thumbnails: int = 0, damage: str = "") -> ReportSummary:
    counts = Counter(event_type(event) for event in events)
    return ReportSummary(
        title=title, source=source, span=span,
        counts={kind: counts[kind] for kind in EVENT_TYPES if counts[kind]},
        streams=sorted({event.stream_id for event in events}),
        devices=sorted({event.device_id for event in events if event.device_id}),
        drops=_drops(events), models=_models(events), thumbnails=thumbnails, damage=damage,
        statuses=[StatusLine(span.describe(e.t_capture), e.stream_id, e.payload.state,
                             e.payload.message)
                  for e in events if isinstance(e, StatusEvent)])


def _drops(events: Iterable[Event]) -> dict[str, int]:
    """Drop counters are cumulative per channel: the largest value each one reached."""
    drops: dict[str, int] = {}
    for event in events:
        if isinstance(event, StatusEvent):
            for channel, count in event.payload.drops.items():
                drops[channel] = max(drops.get(channel, 0), count)
    return dict(sorted(drops.items()))


def _models(events: Iterable[Event]) -> list[str]:
    return sorted({event.payload.model for event in events
                   if isinstance(event, SceneEvent | EmotionEvent | FusedEvent)
                   and event.payload.model})


def utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
