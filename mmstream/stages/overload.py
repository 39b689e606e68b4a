"""Overload policy: when analysis cannot keep up, analyse fewer frames instead of growing.

`OverloadStage` sits first in a live or paced pipeline and watches the channels after it
(through its `PipelineView`). Each check
(every `check_interval_s`) it looks at how full they are and whether they had to drop frames:

- overloaded (a queue above `high_watermark`, or new overflow drops): the frame stride doubles
  (analyse 1 in 2, 4, ... up to `max_stride` video frames per stream); the first time, a
  `status` event with state "degraded" goes to every video stream seen;
- keeping up (every queue below `low_watermark` for `recover_checks` checks in a row): the
  stride halves; back at 1, a `status` event with state "online" says it recovered.

Frames skipped by the stride are counted as `shed:VideoFrame` (the channels count their own
`overflow:VideoFrame`). Audio, transcripts and events are never shed here: they are lossless,
so if they back up the sources feel backpressure and the status event says so.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Literal

from mmstream.config.runtime import OverloadConfig
from mmstream.events import Status, StatusEvent
from mmstream.media import EndOfStream, is_wall_clock
from mmstream.runtime import metrics
from mmstream.runtime.channel import is_droppable
from mmstream.runtime.observer import ChannelState
from mmstream.runtime.stage import Item, Stage

log = logging.getLogger(__name__)

Transition = Literal["degraded", "online"]


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
        self._seen_overflow = 0
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
                return
        elif isinstance(item, EndOfStream):
            self._frame_count.pop(item.stream_id, None)
        await self.emit(item)

    def check(self) -> Transition | None:
        """One decision of the policy; returns the state it moved to, if it changed."""
        cfg = self.config
        pressure = self.pressure()
        overflow = sum(ch.dropped for ch in self.downstream())
        new_overflow, self._seen_overflow = overflow - self._seen_overflow, overflow
        transition: Transition | None = None
        if pressure >= cfg.high_watermark or new_overflow > 0:
            self._healthy_checks = 0
            self.stride = min(cfg.max_stride, self.stride * 2)
            if not self.degraded:
                self.degraded, transition = True, "degraded"
        elif pressure <= cfg.low_watermark:
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
            log.warning("overload: %s (analysing 1 in %d video frames, queues %.0f%% full)",
                        transition, self.stride, 100 * pressure)
        return transition

    def _status_events(self, transition: Transition, item: Item) -> list[StatusEvent]:
        t_capture = float(item.t_capture)
        # only a wall-clock capture time says how far behind now the analysis is
        lag = max(0.0, time.time() - t_capture) if is_wall_clock(t_capture) else 0.0
        if transition == "degraded":
            message = (f"analysis cannot keep up: analysing 1 in {self.stride} video frames; "
                       "audio is kept (never shed)")
        else:
            message = "analysis keeps up again: every video frame analysed"
        drops = self.link.pipeline.drops()
        details = {"frame_stride": self.stride, "queue_fill": round(self.pressure(), 3)}
        streams = list(self._frame_count) or [item.stream_id]
        return [StatusEvent(stream_id=stream, t_capture=t_capture,
                            payload=Status(state=transition, message=message, drops=drops,
                                           lag_s=round(lag, 3), details=details))
                for stream in streams]
