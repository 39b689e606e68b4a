"""How late the pipeline is, per stream: capture -> now, on any source's clock.

Items carry their source's time: wall-clock seconds for devices, media seconds for a file or
recording played at its own pace or at `speed` times it. `SourceClocks` learns, per stream, the
offset from that time, scaled to wall seconds (`t_capture / rate`, the source's `clock_rate`),
to the wall clock at which the source handed items over (the smallest `wall - t / rate` seen:
an item that waited for a full channel is late, not early), so `age(stream, t)` is how long
ago, in wall time, the moment `t` was captured — at 0.5x, a window's 2 s of media took 4 s to
play and is not 2 s late for it. The overload governor and the inference stage
shed by it; the metrics publish the lag of each stream's latest analysed window.
"""

from __future__ import annotations

import time

RECENT_S = 5.0  # a stream's window lag counts this long: a camera that went quiet is not late


class SourceClocks:
    def __init__(self) -> None:
        self._offsets: dict[str, float] = {}
        self._rates: dict[str, float] = {}  # media seconds per wall second, per stream
        self._published: dict[str, tuple[float, float]] = {}  # stream -> (lag, when)

    def observe(self, stream_id: str, t_capture: float, wall: float | None = None,
                rate: float = 1.0) -> None:
        """A source handed over an item captured at `t_capture` (its own clock, which runs at
        `rate` media seconds per wall second)."""
        self._rates[stream_id] = rate
        offset = (time.time() if wall is None else wall) - t_capture / rate
        known = self._offsets.get(stream_id)
        if known is None or offset < known:
            self._offsets[stream_id] = offset

    def age(self, stream_id: str, t_capture: float) -> float | None:
        """Wall seconds since `t_capture` was captured; None for a stream not seen yet."""
        offset = self._offsets.get(stream_id)
        if offset is None:
            return None
        return time.time() - (t_capture / self._rates[stream_id] + offset)

    def published_window(self, stream_id: str, t_capture: float) -> None:
        """An analysed window of the stream (it ended at `t_capture`) reached the sinks."""
        age = self.age(stream_id, t_capture)
        if age is not None:
            self._published[stream_id] = (max(0.0, age), time.monotonic())

    def lags(self) -> dict[str, float]:
        """The lag of each stream's latest analysed window, for streams that had one lately."""
        now = time.monotonic()
        return {stream: round(lag, 3) for stream, (lag, at) in self._published.items()
                if now - at <= RECENT_S}
