"""Thumbnails for a report: the frame each analysis window saw, shrunk to a small JPEG data
URI that lives inside the page.

A window's thumbnail is the latest frame at or before the window's end (what the window
analysed). Without windows (a recording made with --no-analysis), frames are sampled evenly.
At most `limit` thumbnails (evenly spread over the input) keep a report small.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import cv2
import msgspec

from mmstream.events import EmotionEvent, Event, FusedEvent, SceneEvent
from mmstream.web.frames import FrameRef

THUMBNAIL_WIDTH = 160
MAX_THUMBNAILS = 60
JPEG_QUALITY = 75

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Thumbnail:
    stream_id: str
    t: float
    data_uri: str
    width: int
    height: int


@dataclass
class PickedThumbnails:
    thumbnails: list[Thumbnail] = field(default_factory=list)
    frames_seen: int = 0
    first_t: float | None = None  # the frames' time span, for the report's duration
    last_t: float | None = None


def window_times(events: Iterable[Event]) -> dict[str, list[float]]:
    """Per stream, the end times of its analysis windows (fused events, else scene/emotion)."""
    fused: dict[str, set[float]] = {}
    other: dict[str, set[float]] = {}
    for event in events:
        if isinstance(event, FusedEvent):
            fused.setdefault(event.stream_id, set()).add(event.t_capture)
        elif isinstance(event, SceneEvent | EmotionEvent):
            other.setdefault(event.stream_id, set()).add(event.t_capture)
    return {stream: sorted(times) for stream, times in (fused or other).items()}


def pick_thumbnails(frames: Iterable[FrameRef], windows: Mapping[str, Sequence[float]],
                    limit: int = MAX_THUMBNAILS) -> PickedThumbnails:
    """One pass over `frames`; frames of a stream without windows of its own (a media file
    named differently from the events' stream) are matched against every window."""
    picked = PickedThumbnails()
    if limit <= 0:
        return picked
    targets = _spread_targets(windows, limit)
    every_window = sorted({t for times in targets.values() for t in times})
    pickers: dict[str, _WindowPicker] = {}
    even = _EvenSampler(limit) if not targets else None
    for frame in frames:
        picked.frames_seen += 1
        picked.first_t = frame.t if picked.first_t is None else min(picked.first_t, frame.t)
        picked.last_t = frame.t if picked.last_t is None else max(picked.last_t, frame.t)
        if even is not None:
            even.offer(frame)
            continue
        if frame.stream_id not in pickers:
            pickers[frame.stream_id] = _WindowPicker(targets.get(frame.stream_id, every_window))
        pickers[frame.stream_id].offer(frame)
    found = even.finish() if even is not None else [
        thumb for picker in pickers.values() for thumb in picker.finish()]
    picked.thumbnails = sample_evenly(sorted(found, key=lambda t: (t.t, t.stream_id)), limit)
    return picked


def sample_evenly(items: Sequence[T], limit: int) -> list[T]:
    """At most `limit` items, evenly spaced, first and last included."""
    if limit <= 0:
        return []
    if len(items) <= limit:
        return list(items)
    if limit == 1:
        return [items[0]]
    step = (len(items) - 1) / (limit - 1)
    return [items[round(n * step)] for n in range(limit)]


def make_thumbnail(frame: FrameRef, width: int = THUMBNAIL_WIDTH) -> Thumbnail | None:
    """None when the frame does not decode: a damaged image is left out, not fatal."""
    try:
        rgb = frame.decode()
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    height = max(1, round(rgb.shape[0] * width / rgb.shape[1]))
    small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        return None
    uri = "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")
    return Thumbnail(frame.stream_id, frame.t, uri, width, height)


def _spread_targets(windows: Mapping[str, Sequence[float]],
                    limit: int) -> dict[str, list[float]]:
    """At most `limit` window times over all streams, evenly spread in time."""
    flat = sorted((t, stream) for stream, times in windows.items() for t in times)
    targets: dict[str, list[float]] = {}
    for t, stream in sample_evenly(flat, limit):
        targets.setdefault(stream, []).append(t)
    return targets


class _WindowPicker:
    """For each window end (sorted), the latest frame at or before it (else the first after);
    frames arrive in time order, and a frame picked for two windows is shown once."""

    def __init__(self, times: Sequence[float]) -> None:
        self.times = times
        self.next = 0
        self.previous: FrameRef | None = None
        self.kept: dict[float, Thumbnail | None] = {}

    def offer(self, frame: FrameRef) -> None:
        while self.next < len(self.times) and self.times[self.next] < frame.t:
            self._keep(frame if self.previous is None else self.previous)
            self.next += 1
        self.previous = frame

    def finish(self) -> list[Thumbnail]:
        if self.previous is not None and self.next < len(self.times):
            self._keep(self.previous)  # windows after the last frame: that frame
        return [thumb for thumb in self.kept.values() if thumb is not None]

    def _keep(self, frame: FrameRef) -> None:
        if frame.t not in self.kept:
            self.kept[frame.t] = make_thumbnail(frame)


class _EvenSampler:
    """Evenly spaced frames from a stream of unknown length: keep every `stride`-th frame and
    double the stride (dropping every other kept one) whenever twice the limit is kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stride = 1
        self.seen = 0
        self.kept: list[Thumbnail | None] = []

    def offer(self, frame: FrameRef) -> None:
        if self.seen % self.stride == 0:
            self.kept.append(make_thumbnail(frame))
            if len(self.kept) >= 2 * self.limit:
                self.kept = self.kept[::2]
                self.stride *= 2
        self.seen += 1

    def finish(self) -> list[Thumbnail]:
        return sample_evenly([thumb for thumb in self.kept if thumb is not None], self.limit)
