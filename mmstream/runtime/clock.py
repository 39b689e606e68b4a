"""Where `t_publish` comes from: the run policy's clock.

Live and paced runs stamp wall-clock time. Fast replays stamp the event's own capture time,
so replaying the same input twice yields byte-identical events.
"""

from __future__ import annotations

import time
from typing import Protocol

from mmstream.config.runtime import RunPolicy


class Clock(Protocol):
    def publish_time(self, t_capture: float) -> float: ...


class WallClock:
    def publish_time(self, t_capture: float) -> float:
        return time.time()


class MediaClock:
    def publish_time(self, t_capture: float) -> float:
        return t_capture


def clock_for(policy: RunPolicy) -> Clock:
    return MediaClock() if policy.clock == "media" else WallClock()
