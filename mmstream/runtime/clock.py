"""Where `t_publish` comes from, by run mode.

Live and paced runs stamp wall-clock time. Fast replays stamp the event's own capture time,
so replaying the same input twice yields byte-identical events.
"""

from __future__ import annotations

import time
from typing import Protocol

from mmstream.config.runtime import RunMode


class Clock(Protocol):
    def publish_time(self, t_capture: float) -> float: ...


class WallClock:
    def publish_time(self, t_capture: float) -> float:
        return time.time()


class MediaClock:
    def publish_time(self, t_capture: float) -> float:
        return t_capture


def clock_for(mode: RunMode) -> Clock:
    return MediaClock() if mode == "fast" else WallClock()
