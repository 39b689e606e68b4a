"""`record.mode: activity`: keep only the stretches of input around activity.

Activity is speech (a transcript with text), a person (scene tag `person`, or a face among a
window's modalities) or one of `record.activity_tags`, on the stream it happened on; each
keeps `[t - pre_roll_s, t_end + post_roll_s]` of that stream's inputs.

The recorder writes as it goes, and the events that decide come seconds after their inputs
(whisper, the fused model). So encoded input messages wait here, in arrival order, until
`decide_after_s` + `pre_roll_s` of newer input has arrived (compact messages are a few kB a
second: the wait costs little memory), then go to the file or are dropped. H.264 is decided
a GOP at a time (a keyframe and the frames that follow, <= 2 s): a kept stretch starts at a
keyframe, so it decodes on its own, and its pre-roll is rounded back to that keyframe. Events
are always written (they are small, and the history wants them all).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from mmstream.config.record import RecordConfig
from mmstream.events import EmotionEvent, Event, FusedEvent, SceneEvent, TranscriptEvent
from mmstream.recording import format as fmt

# topic, log time (ns), message, whether a new file may start here (at a video keyframe, so
# every file decodes on its own; anywhere in a recording without video)
Released = tuple[fmt.Topic, int, bytes, bool]
NS = 1_000_000_000


def activity_span(event: Event, tags: set[str]) -> tuple[float, float] | None:
    """When `event` shows activity (capture seconds, start and end), or None."""
    if isinstance(event, TranscriptEvent):
        payload = event.payload
        if not payload.text.strip():
            return None
        return (min(payload.start, event.t_capture), max(payload.end, payload.start))
    labels: set[str] = set()
    face = False
    if isinstance(event, SceneEvent):
        labels = {tag.label for tag in event.payload.tags}
    elif isinstance(event, FusedEvent):
        labels = {tag.label for tag in event.payload.scene}
        face = "face" in event.payload.modalities or bool(event.payload.transcript.strip())
    elif isinstance(event, EmotionEvent):
        face = any(c.modality == "face" and c.present for c in event.payload.contributions)
    if face or labels & ({"person"} | tags):
        return (event.t_capture, event.t_capture)
    return None


@dataclass
class _Held:
    topic: fmt.Topic
    t_ns: int
    data: bytes
    gop: int  # the video GOP it belongs to (its keyframe's arrival number); -1: not video
    key: bool


@dataclass
class ActivityGate:
    """Writer thread only: `add` messages as they are encoded, `mark` activity as events come;
    both return the messages now decided to keep, in arrival order."""

    config: RecordConfig
    kept_bytes: int = 0
    dropped_bytes: int = 0
    _held: deque[_Held] = field(default_factory=deque)
    _spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    _gop: dict[str, int] = field(default_factory=dict)  # per video topic: its open GOP
    _gop_end: dict[int, int] = field(default_factory=dict)  # closed GOPs: next keyframe's time
    _gop_start: dict[int, int] = field(default_factory=dict)
    _arrivals: int = 0
    _video: bool = False
    _newest_ns: int = 0

    def mark(self, stream_id: str, start_s: float, end_s: float) -> list[Released]:
        cfg = self.config
        span = (fmt.to_ns(start_s - cfg.pre_roll_s), fmt.to_ns(end_s + cfg.post_roll_s))
        self._spans.setdefault(stream_id, []).append(span)
        return self._release()

    def add(self, topic: fmt.Topic, t_ns: int, data: bytes) -> list[Released]:
        self._arrivals += 1
        gop, key = -1, topic.kind != "video"
        if topic.kind == "video":
            self._video = True
            key = _is_keyframe(topic, data)
            # a frame with no GOP open (a resumed stream) opens one as a keyframe would
            if topic.name not in self._gop or key:
                previous = self._gop.get(topic.name)
                if previous is not None:
                    self._gop_end[previous] = t_ns
                self._gop[topic.name] = self._arrivals
                self._gop_start[self._arrivals] = t_ns
            gop = self._gop.get(topic.name, self._arrivals)
            self._gop_start.setdefault(gop, t_ns)
        self._held.append(_Held(topic, t_ns, data, gop, key))
        self._newest_ns = max(self._newest_ns, t_ns)
        return self._release()

    def flush(self) -> list[Released]:
        """The end: every held message decided with what is known."""
        return self._release(final=True)

    def _release(self, final: bool = False) -> list[Released]:
        # an event `decide_after_s` late still reaches back its pre-roll
        wait_s = self.config.decide_after_s + self.config.pre_roll_s
        horizon = self._newest_ns - round(wait_s * NS)
        out: list[Released] = []
        while self._held:
            held = self._held[0]
            span = self._span_of(held, final)
            if span is None or (not final and span[1] > horizon):
                break  # not decided yet: later messages wait too (arrival order)
            self._held.popleft()
            if self._active(held.topic.stream_id, *span):
                boundary = held.key if held.topic.kind == "video" else not self._video
                out.append((held.topic, held.t_ns, held.data, boundary))
                self.kept_bytes += len(held.data)
            else:
                self.dropped_bytes += len(held.data)
        self._forget(horizon)
        return out

    def _span_of(self, held: _Held, final: bool) -> tuple[int, int] | None:
        """The stretch deciding a message: its GOP's for video, its own time otherwise."""
        if held.gop < 0:
            return held.t_ns, held.t_ns
        end = self._gop_end.get(held.gop)
        if end is None:
            if not final:
                return None  # the GOP is still open
            end = self._newest_ns
        return self._gop_start[held.gop], end

    def _active(self, stream_id: str, start_ns: int, end_ns: int) -> bool:
        return any(lo <= end_ns and hi >= start_ns for lo, hi in self._spans.get(stream_id, ()))

    def _forget(self, horizon: int) -> None:
        """Drop spans and GOP bookkeeping nothing held can need any more."""
        oldest = self._held[0].t_ns if self._held else horizon
        for stream, spans in self._spans.items():
            self._spans[stream] = [s for s in spans if s[1] >= oldest - NS]
        live = {h.gop for h in self._held} | set(self._gop.values())
        for book in (self._gop_end, self._gop_start):
            for gop in [g for g in book if g not in live]:
                del book[gop]


def _is_keyframe(topic: fmt.Topic, data: bytes) -> bool:
    if topic.codec != "h264":
        return True  # every JPEG/PNG frame stands alone
    return fmt.video_decoder.decode(data).keyframe
