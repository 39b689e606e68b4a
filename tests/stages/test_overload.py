"""Overload: a source 10x faster than the analysis; memory stays bounded, audio is not lost,
drops are counted by reason, a `degraded` status is published, and the pipeline recovers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from mmstream.build import build_pipeline, overload_active
from mmstream.config import OverloadConfig, validate_pipeline
from mmstream.events import Event, StatusEvent
from mmstream.media import AudioChunk, VideoFrame
from mmstream.runtime.harness import AloneView
from mmstream.runtime.observer import ChannelState
from mmstream.runtime.pipeline import Pipeline
from mmstream.runtime.stage import Sink, Source, Stage, StageLink
from mmstream.stages.overload import OverloadStage
from tests.pipelines import NO_ANALYSIS

FRAME_SHAPE = (240, 320, 3)  # 230 KB a frame: keeping every frame of the burst would need ~460 MB
SLOW_FRAME_S = 0.01  # the analysis handles 100 frames/s
BURST_FPS, BURST_S = 1000, 2.0  # 10x what the analysis can do
CALM_FPS, CALM_S = 20, 3.0  # then well below it, to recover


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class BurstSource(Source):
    """Video at BURST_FPS, then CALM_FPS; 100 ms audio chunks throughout (wall-clock paced)."""

    name = "burst"
    stream_id = "cam0"

    def __init__(self) -> None:
        self.frames = 0
        self.audio = 0

    async def __aiter__(self) -> AsyncIterator[Any]:  # type: ignore[override]
        t = 0.0
        for fps, seconds in ((BURST_FPS, BURST_S), (CALM_FPS, CALM_S)):
            per_tick = max(1, fps // 100)  # frames per 10 ms tick
            for tick in range(int(seconds * 100)):
                for _ in range(per_tick if fps >= 100 else int(tick % (100 // fps) == 0)):
                    image = np.full(FRAME_SHAPE, self.frames % 251, dtype=np.uint8)
                    yield VideoFrame(self.stream_id, t, image, self.frames)
                    self.frames += 1
                if tick % 10 == 0:
                    yield AudioChunk(self.stream_id, t, np.full(1600, 0.1, dtype=np.float32))
                    self.audio += 1
                t += 0.01
                await asyncio.sleep(0.01)


class SlowVision(Stage):
    name = "vision"

    async def process(self, item: Any) -> None:
        if isinstance(item, VideoFrame):
            await asyncio.sleep(SLOW_FRAME_S)  # stands in for a model forward pass
        await self.emit(item)


class CountingSink(Sink):
    wants_media = True

    def __init__(self) -> None:
        self.frames = 0
        self.audio = 0
        self.statuses: list[StatusEvent] = []

    async def send(self, event: Event) -> None:
        if isinstance(event, StatusEvent):
            self.statuses.append(event)

    async def send_media(self, item: Any) -> None:
        if isinstance(item, VideoFrame):
            self.frames += 1
        elif isinstance(item, AudioChunk):
            self.audio += 1


async def test_overload_sheds_frames_keeps_audio_and_recovers() -> None:
    policy = OverloadConfig(check_interval_s=0.2, recover_checks=2, max_stride=16)
    governor = OverloadStage(policy)
    source, sink = BurstSource(), CountingSink()
    pipeline = Pipeline([source], [governor, SlowVision()], [sink], device_id="t", capacity=16)
    baseline = rss_bytes()
    peak = baseline

    async def watch_memory() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_bytes())
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_memory())
    report = await asyncio.wait_for(pipeline.run(), timeout=60)
    watcher.cancel()

    assert source.frames > 2000  # the burst really happened
    assert peak - baseline < 120 * 2**20, f"RSS grew {(peak - baseline) / 2**20:.0f} MB"
    assert sink.audio == source.audio  # audio is lossless
    shed = report.drops.get("overload:shed:VideoFrame", 0)
    overflow = sum(n for key, n in report.drops.items() if key.endswith("overflow:VideoFrame"))
    assert shed > 0 and overflow > 0, report.drops
    assert sink.frames + shed + overflow == source.frames  # every frame accounted for
    states = [event.payload.state for event in sink.statuses]
    assert states[0] == "degraded" and states[-1] == "online", states
    degraded = sink.statuses[0].payload
    assert degraded.details["frame_stride"] >= 2 and degraded.drops
    assert governor.transitions == ["degraded", "online"]
    assert governor.stride == 1 and not governor.degraded


async def test_policy_steps_down_under_pressure_and_back_up() -> None:
    """The decision rule alone, driven by a channel that is full and then empty."""
    from mmstream.runtime.channel import Channel

    queue = Channel("vision->sinks", capacity=4)
    governor = OverloadStage(OverloadConfig(recover_checks=1, max_stride=4))

    class Downstream(AloneView):
        def channels(self, after: str | None = None) -> list[ChannelState]:
            return [ChannelState(queue.name, len(queue), queue.capacity, 0)]

    async def nowhere(item: Any) -> None:
        raise AssertionError("check() emits nothing")

    governor.attach(StageLink(nowhere, asyncio.create_task, Downstream()))
    for index in range(4):
        await queue.put(AudioChunk("mic", index, np.zeros(10, dtype=np.float32)))
    assert governor.check() == "degraded" and governor.stride == 2
    assert governor.check() is None and governor.stride == 4
    assert governor.check() is None and governor.stride == 4  # capped at max_stride
    while len(queue):
        await queue.get()
    assert governor.check() is None and governor.stride == 2
    assert governor.check() == "online" and governor.stride == 1


def test_overload_policy_is_off_for_fast_replays(tmp_path: Any) -> None:
    """Shedding would make replays non-deterministic: auto turns it on only for paced input."""
    fast = validate_pipeline({"sources": [{"kind": "synthetic"}], "stages": NO_ANALYSIS})
    paced = validate_pipeline({"sources": [{"kind": "synthetic", "realtime": True}],
                               "stages": NO_ANALYSIS})
    assert not overload_active(fast) and overload_active(paced)
    stages = build_pipeline(paced).stages
    assert isinstance(stages[0], OverloadStage)
    assert not any(isinstance(stage, OverloadStage) for stage in build_pipeline(fast).stages)


def test_a_backlog_inside_a_stage_is_overload_though_the_queues_are_empty() -> None:
    """The inference stage takes windows without blocking and works in the background: its
    queues look empty while its windows come out late. The governor goes by that lag."""
    late = {"cam0": 2.5}

    class LateWindows(AloneView):
        def lags(self) -> dict[str, float]:
            return dict(late)

    governor = OverloadStage(OverloadConfig(recover_checks=2, max_stride=8, max_lag_s=1.0))

    async def nowhere(item: Any) -> None:
        raise AssertionError("check() emits nothing")

    governor.attach(StageLink(nowhere, asyncio.create_task, LateWindows()))
    assert governor.pressure() == 0.0
    assert governor.check() == "degraded" and governor.stride == 2
    assert governor.check() is None and governor.stride == 4
    late["cam0"] = 0.9  # within max_lag_s but not yet well within it: hold
    assert governor.check() is None and governor.stride == 4
    late["cam0"] = 0.2
    assert governor.check() is None and governor.check() is None and governor.stride == 2
    assert governor.check() is None and governor.check() == "online" and governor.stride == 1
