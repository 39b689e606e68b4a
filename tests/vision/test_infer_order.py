"""Deterministic batching: where a window's events land in the output depends on the input only,
never on how fast the model answered (replays must be byte-identical, whatever the timing)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from mmstream.config import InferConfig
from mmstream.events import FusedEvent
from mmstream.media import AUDIO_RATE, AudioChunk, EndOfStream, Window
from mmstream.stages.infer import InferStage


def _inputs() -> list[Any]:
    """Two streams, windows interleaved with audio that passes through the stage."""
    items: list[Any] = []
    for index in range(5):
        for stream in ("a", "b"):
            t = float(index + 1)
            items.append(Window(stream_id=stream, t_capture=t, t_start=t - 1.0, index=index))
            items.append(AudioChunk(stream_id=stream, t_capture=t,
                                    samples=np.zeros(AUDIO_RATE // 10, dtype=np.float32)))
    items += [EndOfStream(stream_id="a", t_capture=5.0),
              EndOfStream(stream_id="b", t_capture=5.0)]
    return items


def _label(item: Any) -> str:
    if isinstance(item, FusedEvent):
        return f"fused {item.stream_id} {item.t_capture}"
    return f"{type(item).__name__} {item.stream_id} {getattr(item, 't_capture', '')}"


async def _order(stage: InferStage, pause_s: float) -> list[str]:
    out: list[str] = []
    for item in _inputs():
        out += [_label(x) async for x in stage.process(item)]
        await asyncio.sleep(pause_s)  # a slow source: every result is in before the next item
    out += [_label(x) async for x in stage.flush()]
    return out


@pytest.mark.slow
async def test_deterministic_event_order_does_not_depend_on_timing() -> None:
    stage = InferStage(InferConfig(max_batch=2, batching="deterministic"))
    await stage.open()
    try:
        fast = await _order(stage, 0.0)
        slow = await _order(stage, 0.05)
    finally:
        await stage.close()
    assert fast == slow
    fused = [line for line in fast if line.startswith("fused")]
    assert len(fused) == 10 and len(set(fused)) == 10
    # A stream's full batch is emitted right after the window that filled it ...
    assert fast.index("fused a 1.0") < fast.index("AudioChunk a 2.0")
    assert fast.index("fused a 2.0") < fast.index("AudioChunk a 2.0")
    # ... and the odd last window on its end of stream.
    assert fast.index("EndOfStream a 5.0") == fast.index("fused a 5.0") + 1
