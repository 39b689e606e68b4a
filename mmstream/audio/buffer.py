"""A growable window of one stream's samples, addressed by absolute sample index."""

from __future__ import annotations

import numpy as np


class SampleBuffer:
    """Keeps samples [start, end) of a stream; old samples are trimmed as speech moves on."""

    def __init__(self, start: int = 0) -> None:
        self.start = start
        self._data = np.zeros(0, dtype=np.float32)

    @property
    def end(self) -> int:
        return self.start + len(self._data)

    def append(self, samples: np.ndarray) -> None:
        self._data = np.concatenate([self._data, samples.astype(np.float32, copy=False)])

    def slice(self, begin: int, end: int) -> np.ndarray:
        """Samples [begin, end), clipped to what is held (a copy, safe to hand to a thread)."""
        a = max(begin, self.start) - self.start
        b = min(end, self.end) - self.start
        return self._data[a:max(a, b)].copy()

    def trim_before(self, index: int) -> None:
        """Forget samples before `index`."""
        drop = min(max(0, index - self.start), len(self._data))
        if drop:
            self._data = self._data[drop:]
            self.start += drop
