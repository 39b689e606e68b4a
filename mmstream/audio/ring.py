"""A fixed-size ring the PortAudio callback writes into and the event loop reads from.

The callback runs on PortAudio's real-time thread: it must only copy and return. Writing
takes a short lock and never allocates; when the reader falls behind and the ring is full, the
newest samples are dropped and counted (the reader learns how many, so timestamps stay right).
"""

from __future__ import annotations

import threading

import numpy as np


class CaptureRing:
    def __init__(self, frames: int, channels: int, dtype: str = "float32") -> None:
        self._data = np.zeros((frames, channels), dtype=dtype)
        self._lock = threading.Lock()
        self._read = 0  # total frames read
        self._written = 0  # total frames written
        self._dropped_since_read = 0
        self.dropped_total = 0

    @property
    def capacity(self) -> int:
        return len(self._data)

    def write(self, block: np.ndarray) -> int:
        """Copy a (frames, channels) block in; returns how many frames did not fit."""
        with self._lock:
            free = self.capacity - (self._written - self._read)
            take = min(free, len(block))
            at = self._written % self.capacity
            first = min(take, self.capacity - at)
            self._data[at:at + first] = block[:first]
            self._data[:take - first] = block[first:take]
            self._written += take
            dropped = len(block) - take
            self._dropped_since_read += dropped
            self.dropped_total += dropped
            return dropped

    def read(self) -> tuple[np.ndarray, int]:
        """Everything written since the last read, and the frames dropped before its end."""
        with self._lock:
            count = self._written - self._read
            at = self._read % self.capacity
            first = min(count, self.capacity - at)
            out = np.concatenate([self._data[at:at + first], self._data[:count - first]])
            self._read += count
            dropped, self._dropped_since_read = self._dropped_since_read, 0
            return out, dropped

    def __len__(self) -> int:
        with self._lock:
            return self._written - self._read
