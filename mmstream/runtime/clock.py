"""Where `t_publish` comes from.

Live pipelines stamp wall-clock time. Replays that run as fast as possible stamp the event's
own capture time, so replaying the same input twice yields byte-identical events.
"""

from __future__ import annotations

import time
from typing import Literal, Protocol

ClockMode = Literal["wall", "media"]


class Clock(Protocol):
    def publish_time(self, t_capture: float) -> float: ...


class WallClock:
    def publish_time(self, t_capture: float) -> float:
        return time.time()


class MediaClock:
    def publish_time(self, t_capture: float) -> float:
        return t_capture


def make_clock(mode: ClockMode) -> Clock:
    return WallClock() if mode == "wall" else MediaClock()
