"""Deterministic batching: where a window's events land in the output depends on the input only,
never on how fast the model answered (replays must be byte-identical, whatever the timing).
Live: results go out when ready, and windows too old to matter are shed, not queued."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from mmstream.config import FAST, LIVE, InferConfig
from mmstream.events import Event, FusedEvent
from mmstream.media import AUDIO_RATE, AudioChunk, EndOfStream, VideoFrame, Window
from mmstream.runtime.harness import AloneView, StageHarness
from mmstream.runtime.pipeline import Pipeline
from mmstream.runtime.stage import Sink, Source
from mmstream.stages.infer import InferStage
from tests.conftest import async_wait_until


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
    async with StageHarness(stage) as harness:
        for item in _inputs():
            await harness.feed(item)
            await asyncio.sleep(pause_s)  # a slow source: every result is in before the next
    return [_label(x) for x in harness.emitted]


@pytest.mark.slow
async def test_deterministic_event_order_does_not_depend_on_timing() -> None:
    first = InferStage(InferConfig(max_batch=2), policy=FAST)
    fast = await _order(first, 0.0)
    slow = await _order(InferStage(InferConfig(max_batch=2), policy=FAST, model=first.model),
                        0.05)
    assert fast == slow
    fused = [line for line in fast if line.startswith("fused")]
    assert len(fused) == 10 and len(set(fused)) == 10
    # A stream's full batch is emitted right after the window that filled it ...
    assert fast.index("fused a 1.0") < fast.index("AudioChunk a 2.0")
    assert fast.index("fused a 2.0") < fast.index("AudioChunk a 2.0")
    # ... and the odd last window on its end of stream.
    assert fast.index("EndOfStream a 5.0") == fast.index("fused a 5.0") + 1


class OneWindowThenWait(Source):
    """A live camera between two windows: one window, then nothing until released."""

    name = "live"
    stream_id = "cam0"

    def __init__(self, release: asyncio.Event) -> None:
        self.release = release

    async def __aiter__(self) -> AsyncIterator[Any]:  # type: ignore[override]
        yield Window(stream_id="cam0", t_capture=2.0, t_start=0.0)
        await self.release.wait()


class FirstFused(Sink):
    name = "first-fused"

    def __init__(self) -> None:
        self.arrived = asyncio.Event()

    async def send(self, event: Event) -> None:
        if isinstance(event, FusedEvent):
            self.arrived.set()


@pytest.mark.slow
async def test_live_results_do_not_wait_for_the_next_item() -> None:
    """In latency mode a window's events go out when its batch is done, not when the camera's
    next frame happens to push them out (at 2 fps that added up to half a second)."""
    release = asyncio.Event()
    sink = FirstFused()
    source = OneWindowThenWait(release)
    pipeline = Pipeline([source], [InferStage(InferConfig(), policy=LIVE)], [sink],
                        device_id="live")
    running = asyncio.create_task(pipeline.run())
    try:  # bounded by model load + one forward pass
        await async_wait_until(sink.arrived.is_set, 60, "the window's fused event")
        assert not release.is_set() and not running.done(), "out before the next item"
    finally:
        release.set()
        await asyncio.wait_for(running, 60)


class WallClockStreams(AloneView):
    """Streams whose capture time is the wall clock, as a live camera's."""

    def age(self, stream_id: str, t_capture: float) -> float | None:
        return time.time() - t_capture


@pytest.mark.slow
async def test_live_inference_sheds_windows_older_than_max_lag_instead_of_queueing_them() -> None:
    now = time.time()
    frame = np.zeros((120, 160, 3), dtype=np.uint8)
    windows = []
    for index in range(10):  # a backlog: every other window is a minute old by its turn
        for stream, age in (("fresh", 0.0), ("stale", 60.0)):
            t = now - age + index
            windows.append(Window(stream, t, t - 2.0, index,
                                  VideoFrame(stream, t, frame, index)))
    stage = InferStage(InferConfig(), policy=LIVE, max_lag_s=30.0, vision_nice=10)
    async with StageHarness(stage, view=WallClockStreams()) as harness:
        for window in windows:
            await harness.feed(window)
        for stream in ("fresh", "stale"):
            await harness.feed(EndOfStream(stream, now + 10))
        vision = [t for t in threading.enumerate() if t.name.startswith(
            ("mmstream-infer", "mmstream-prepare"))]
        # speech first: the vision threads run at a lower priority
        assert vision and {os.getpriority(os.PRIO_PROCESS, t.native_id or 0)
                           for t in vision} == {10}
    fused = [e for e in harness.emitted if isinstance(e, FusedEvent)]
    assert [e.payload.window_end for e in fused] == [w.t_capture for w in windows
                                                     if w.stream_id == "fresh"]
    # counted, by stream and reason; the fresh stream's still frame is analysed once, carried
    # over after (the stale one's windows are shed before they could carry anything)
    assert stage.drops() == {"shed:stale_window:stale": 10, "carried:fresh": 9}
    assert [e.payload.carried for e in fused] == [False] + [True] * 9
    ends = [e for e in harness.emitted if isinstance(e, EndOfStream)]
    assert len(ends) == 2  # both streams still end properly


@pytest.mark.slow
async def test_live_a_window_whose_reference_was_shed_is_analysed_afresh() -> None:
    """Change gating, live: the still frame's first window is shed as stale, so the next one,
    with the same picture, has nothing to carry from and goes to the image models in its place;
    the window after it carries from that one."""
    now = time.time()
    frame = np.zeros((120, 160, 3), dtype=np.uint8)
    windows = [Window("cam", t, t - 2.0, i, VideoFrame("cam", t, frame, i))
               for i, t in enumerate((now - 60.0, now, now + 1.0))]
    config = InferConfig.model_validate({"change_gate": {"max_carry_s": 600}})
    stage = InferStage(config, policy=LIVE, max_lag_s=30.0)
    async with StageHarness(stage, view=WallClockStreams()) as harness:
        for window in windows:
            await harness.feed(window)
        await harness.feed(EndOfStream("cam", now + 2.0))
    fused = [e for e in harness.emitted if isinstance(e, FusedEvent)]
    assert [(e.t_capture, e.payload.carried) for e in fused] == [(now, False), (now + 1.0, True)]
    assert stage.drops() == {"shed:stale_window:cam": 1, "carried:cam": 1}
