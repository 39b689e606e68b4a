"""Any capture rate and channel count to the pipeline's 16 kHz mono float32, chunk by chunk.

soxr's streaming resampler keeps its filter state between calls, so cutting the stream into
callback-sized blocks changes nothing (no clicks at block edges, unlike per-block resampling).
"""

from __future__ import annotations

import numpy as np
import soxr

from mmstream.media import AUDIO_RATE


def downmix(block: np.ndarray) -> np.ndarray:
    """(frames, channels) or (frames,) of any numeric type -> mono float32 in [-1, 1]."""
    data = block
    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    data = data.astype(np.float32, copy=False)
    return data.mean(axis=1) if data.ndim == 2 else data


class MonoResampler:
    def __init__(self, in_rate: int, out_rate: int = AUDIO_RATE, quality: str = "HQ") -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = None if in_rate == out_rate else soxr.ResampleStream(
            in_rate, out_rate, 1, dtype="float32", quality=quality)

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        mono = downmix(block)
        if self._stream is None:
            return mono
        return self._stream.resample_chunk(mono, last=last)
