"""Synthetic source: a moving test pattern and a sine tone, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np

from mmstream.config import SyntheticSourceConfig
from mmstream.media import AUDIO_RATE, AudioChunk, MediaItem, VideoFrame
from mmstream.runtime.stage import Source

CHUNK_S = 0.1


def test_pattern(width: int, height: int, index: int) -> np.ndarray:
    """Colour bars that scroll one step per frame, so consecutive frames differ."""
    bars = np.array([[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0],
                     [255, 0, 255], [255, 0, 0], [0, 0, 255], [0, 0, 0]], dtype=np.uint8)
    columns = (np.arange(width) * len(bars) // width + index) % len(bars)
    return np.broadcast_to(bars[columns], (height, width, 3)).copy()


class SyntheticSource(Source):
    kind = "synthetic"
    def __init__(self, config: SyntheticSourceConfig) -> None:
        super().__init__(config)

    def items(self) -> list[MediaItem]:
        """All items in capture-time order (video frames and 100 ms audio chunks)."""
        cfg = self.config
        items: list[MediaItem] = []
        n_frames = int(cfg.duration_s * cfg.fps)
        for index in range(n_frames):
            image = test_pattern(cfg.width, cfg.height, index)
            items.append(VideoFrame(cfg.id, round(index / cfg.fps, 6), image, index))
        n_chunks = round(cfg.duration_s / CHUNK_S)
        chunk = int(AUDIO_RATE * CHUNK_S)
        for index in range(n_chunks):
            t = np.arange(index * chunk, (index + 1) * chunk) / AUDIO_RATE
            tone = (0.2 * np.sin(2 * np.pi * cfg.tone_hz * t)).astype(np.float32)
            items.append(AudioChunk(cfg.id, round(index * CHUNK_S, 6), tone))
        items.sort(key=lambda item: item.t_capture)
        return items

    async def __aiter__(self) -> AsyncIterator[MediaItem]:  # type: ignore[override]
        started = time.monotonic()
        for item in self.items():
            if self.config.realtime:
                delay = started + item.t_capture - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            yield item
