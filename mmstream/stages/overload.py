"""Overload policy: when analysis cannot keep up, analyse fewer frames instead of falling behind.

`OverloadStage` sits first in a live or paced pipeline and watches what follows it (through
its `PipelineView`): how full the channels are, how late the latest analysed windows reached
the sinks (capture of the window's end -> delivery, per stream: runtime/lag.py), and whether
anything downstream had to drop (a full channel's frames, the inference stage's stale
windows). Each check (every `check_interval_s`):

- overloaded (a queue above `high_watermark`, new drops downstream, or a window later than
  `max_lag_s`): the frame stride doubles (analyse 1 in 2, 4, ... up to `max_stride` video
  frames per stream); the first time, a `status` event with state "degraded" goes to every
  video stream seen, with the lag per stream, the stride and the shed counts;
- keeping up (queues below `low_watermark` and windows within ¾ of `max_lag_s`, for
  `recover_checks` checks in a row): the stride halves; back at 1, an "online" status says so.

Frames skipped by the stride are counted as `shed:VideoFrame`; the backlog that could build
inside the analysis is bounded there (stages/infer.py sheds windows older than `max_lag_s`).
Audio, transcripts and events are never shed here: they are lossless, and the vision threads
run at a lower priority than speech (`vision_nice`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Literal

from mmstream.config.runtime import OverloadConfig
from mmstream.events import Status, StatusEvent
from mmstream.media import EndOfStream, FrameSkipped
from mmstream.runtime import metrics
from mmstream.runtime.channel import is_droppable
from mmstream.runtime.observer import ChannelState
from mmstream.runtime.stage import Item, Stage

log = logging.getLogger(__name__)

Transition = Literal["degraded", "online"]
# Windows this far within max_lag_s count as keeping up: a video window closes with the first
# frame at or after its end, up to one frame interval (0.5 s at 2 fps) late by design.
HEALTHY_LAG = 0.75


class OverloadStage(Stage):
    name = "overload"

    def __init__(self, config: OverloadConfig | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config or OverloadConfig()
        self.shed: Counter[str] = Counter()
        self.stride = 1
        self.degraded = False
        self.transitions: list[Transition] = []
        self._monotonic = monotonic
        self._next_check = 0.0
        self._seen_downstream_drops = 0
        self._healthy_checks = 0
        self._frame_count: dict[str, int] = {}

    def drops(self) -> Mapping[str, int]:
        return self.shed

    def downstream(self) -> list[ChannelState]:
        """The channels after this stage, whose fill says whether analysis keeps up."""
        return self.link.pipeline.channels(after=self.name)

    def pressure(self) -> float:
        return max((ch.depth / ch.capacity for ch in self.downstream()), default=0.0)

    async def process(self, item: Item) -> None:
        now = self._monotonic()
        if now >= self._next_check:
            self._next_check = now + self.config.check_interval_s
            transition = self.check()
            if transition is not None:
                for event in self._status_events(transition, item):
                    await self.emit(event)
        if is_droppable(item):
            stream = item.stream_id
            seen = self._frame_count.get(stream, 0)
            self._frame_count[stream] = seen + 1
            if seen % self.stride:
                self.shed[f"shed:{type(item).__name__}"] += 1
                await self.emit(FrameSkipped(stream, item.t_capture))  # the clock goes on
                return
        elif isinstance(item, EndOfStream):
            self._frame_count.pop(item.stream_id, None)
        await self.emit(item)

    def lag(self) -> float:
        """How late the latest analysed windows reached the sinks (the worst stream)."""
        return max(self.link.pipeline.lags().values(), default=0.0)

    def _new_downstream_drops(self) -> int:
        """Frames overflowing a channel, stale windows shed by the analysis: both mean the
        analysis is behind, wherever the backlog is (what a pause drops does not)."""
        total = sum(n for where, n in self.link.pipeline.drops().items()
                    if ":overflow:" in where or ":shed:stale" in where)
        new, self._seen_downstream_drops = total - self._seen_downstream_drops, total
        return new

    def check(self) -> Transition | None:
        """One decision of the policy; returns the state it moved to, if it changed."""
        cfg = self.config
        pressure, lag = self.pressure(), self.lag()
        new_drops = self._new_downstream_drops()
        transition: Transition | None = None
        if pressure >= cfg.high_watermark or new_drops > 0 or lag > cfg.max_lag_s:
            self._healthy_checks = 0
            self.stride = min(cfg.max_stride, self.stride * 2)
            if not self.degraded:
                self.degraded, transition = True, "degraded"
        elif pressure <= cfg.low_watermark and lag <= cfg.max_lag_s * HEALTHY_LAG:
            self._healthy_checks += 1
            if self._healthy_checks >= cfg.recover_checks:
                self._healthy_checks = 0
                self.stride = max(1, self.stride // 2)
                if self.stride == 1 and self.degraded:
                    self.degraded, transition = False, "online"
        else:
            self._healthy_checks = 0
        metrics.set_overload(self.degraded, self.stride)
        if transition is not None:
            self.transitions.append(transition)
            log.warning("overload: %s (analysing 1 in %d video frames, windows %.2f s late, "
                        "queues %.0f%% full)", transition, self.stride, lag, 100 * pressure)
        return transition

    def _status_events(self, transition: Transition, item: Item) -> list[StatusEvent]:
        view = self.link.pipeline
        lags = view.lags()
        if transition == "degraded":
            message = (f"analysis cannot keep up: analysing 1 in {self.stride} video frames, "
                       "stale windows shed; audio and transcripts are kept (never shed)")
        else:
            message = "analysis keeps up again: every video frame analysed"
        drops = view.drops()
        shed = {where: n for where, n in drops.items() if "shed" in where or "overflow" in where}
        details = {"frame_stride": self.stride, "queue_fill": round(self.pressure(), 3),
                   "lag_s": lags, "shed": shed, "max_lag_s": self.config.max_lag_s}
        streams = list(self._frame_count) or [item.stream_id]
        return [StatusEvent(stream_id=stream, t_capture=item.t_capture,
                            payload=Status(state=transition, message=message, drops=drops,
                                           lag_s=lags.get(stream, 0.0), details=details))
                for stream in streams]
