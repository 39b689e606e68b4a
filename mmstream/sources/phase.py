"""When a live camera is analysed: its own phase of a shared grid, so cameras do not tick together.

Cameras that start together and are analysed at the same rate would all hand over a frame at
the same instant, and their windows would wait for each other in face detection and the fused
model: the last of N waits for the N-1 before it (frame -> MQTT p50 grew by ~25 ms a camera on
the 2-core box). Each camera instead ticks at its own phase of a grid shared by the process:
the k-th camera at `frac(k * golden ratio)` of the interval, which spreads any number of
cameras nearly evenly without knowing how many will come (0, .62, .24, .85, .47, ... of the
interval). The first frame is taken at once; the next ones fall on the camera's grid.
"""

from __future__ import annotations

import itertools
import math
import threading
import time

GOLDEN_FRACTION = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618...
_EPOCH = time.monotonic()
TICK_TOLERANCE = 1e-6  # of an interval
_next_index = itertools.count()
_index_lock = threading.Lock()


def next_camera_phase() -> float:
    """The phase (a fraction of the interval, in [0, 1)) of the next camera to start."""
    with _index_lock:
        index = next(_next_index)
    return (index * GOLDEN_FRACTION) % 1.0


class AnalysisGrid:
    """Ticks `interval` apart at `phase` (a fraction of the interval) on the process's grid."""

    def __init__(self, interval: float, phase: float) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.interval = interval
        self.offset = _EPOCH + (phase % 1.0) * interval

    def at_or_after(self, t: float) -> float:
        """The first tick of this grid at or after `t` (monotonic seconds)."""
        # a tick computed by this grid lands a rounding error either side of the grid: it is
        # on it (without the tolerance, ceil moved such a tick to the next one)
        steps = math.ceil((t - self.offset) / self.interval - TICK_TOLERANCE)
        return self.offset + steps * self.interval

    def next_after(self, tick: float, now: float) -> float:
        """The tick after `tick`: at least half an interval later (the first frame was taken
        off the grid), and never in the past when analysis fell behind (`now`): a late camera
        skips ticks and keeps its phase rather than bunching up with the others."""
        return self.at_or_after(max(tick + self.interval / 2.0, now))
