"""Pipeline runner: ordering and seq, error naming, source restart, orderly drain, the stage
contract (push, background results, declared drops and models)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any

import numpy as np
import pytest

from mmstream.config import FAST
from mmstream.errors import SourceError, StageError
from mmstream.events import Event, Status, StatusEvent, Transcript, TranscriptEvent
from mmstream.media import AudioChunk, EndOfStream
from mmstream.runtime.observer import PipelineView
from mmstream.runtime.pipeline import Pipeline
from mmstream.runtime.stage import Item, Sink, Source, Stage
from tests.conftest import async_wait_until


class ListSource(Source):
    kind = "list"

    def __init__(self, stream_id: str, count: int, delay: float = 0.0) -> None:
        self.stream_id = stream_id
        self.name = f"list:{stream_id}"
        self.count = count
        self.delay = delay

    async def __aiter__(self) -> AsyncIterator[Any]:  # type: ignore[override]
        for index in range(self.count):
            if self.delay:
                await asyncio.sleep(self.delay)
            yield AudioChunk(self.stream_id, index * 0.1, np.zeros(1600, dtype=np.float32))


class CountingStage(Stage):
    """Turns every audio chunk into a final transcript saying its index."""

    name = "count"

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.seen = 0
        self.ended: list[str] = []

    async def process(self, item: Item) -> None:
        if isinstance(item, AudioChunk):
            if self.seen == self.fail_at:
                raise ValueError("boom")
            self.seen += 1
            await self.emit(said(item, str(self.seen)))
        elif isinstance(item, EndOfStream):
            self.ended.append(item.stream_id)
        await self.emit(item)


def said(chunk: AudioChunk, text: str) -> TranscriptEvent:
    return TranscriptEvent(stream_id=chunk.stream_id, t_capture=chunk.t_capture,
                           payload=Transcript(final=True, text=text, start=chunk.t_capture,
                                              end=chunk.t_end))


class ListSink(Sink):
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False
        self.pipeline: PipelineView | None = None

    def attached(self, pipeline: PipelineView) -> None:
        self.pipeline = pipeline

    async def send(self, event: Event) -> None:
        self.events.append(event)

    async def __aexit__(self, *exc_info: object) -> None:
        self.closed = True


async def test_every_event_arrives_with_monotonic_seq_per_stream() -> None:
    sink, stage = ListSink(), CountingStage()
    pipeline = Pipeline([ListSource("a", 50), ListSource("b", 30)], [stage], [sink],
                        device_id="dev", policy=FAST, capacity=4)
    report = await pipeline.run()
    assert report.events["transcript"] == 80
    for stream, count in (("a", 50), ("b", 30)):
        mine = [e for e in sink.events if e.stream_id == stream]
        assert [e.seq for e in mine] == list(range(1, count + 1))
        assert all(e.device_id == "dev" and e.t_publish == e.t_capture for e in mine)
    assert sorted(stage.ended) == ["a", "b"]
    assert sink.closed


async def test_a_failing_stage_stops_the_pipeline_naming_the_stage() -> None:
    sink = ListSink()
    pipeline = Pipeline([ListSource("a", 100)], [CountingStage(fail_at=5)], [sink],
                        device_id="dev")
    with pytest.raises(BaseExceptionGroup) as caught:
        await pipeline.run()
    errors = caught.value.subgroup(StageError)
    assert errors is not None
    assert "stage 'count' failed: ValueError: boom" in str(errors.exceptions[0])
    assert sink.closed, "sinks are closed (flushed) even when a stage fails"


async def test_stop_drains_what_was_already_read() -> None:
    sink = ListSink()
    stop = asyncio.Event()
    pipeline = Pipeline([ListSource("a", 10_000, delay=0.001)], [CountingStage()], [sink],
                        device_id="dev", capacity=16)
    runner = asyncio.create_task(pipeline.run(stop))
    await async_wait_until(lambda: len(sink.events) >= 20, 10, "the first 20 events")
    stop.set()
    report = await asyncio.wait_for(runner, 10)
    assert 20 <= report.events["transcript"] < 10_000
    assert [e.seq for e in sink.events] == list(range(1, len(sink.events) + 1))


class FlakySource(Source):
    """Fails twice like an unplugged device, then works."""

    restartable = True

    def __init__(self) -> None:
        self.stream_id = "cam0"
        self.name = "flaky"
        self.opened = 0

    async def __aiter__(self) -> AsyncIterator[Any]:  # type: ignore[override]
        self.opened += 1
        if self.opened <= 2:
            raise SourceError(f"device gone (attempt {self.opened})")
        yield AudioChunk(self.stream_id, 0.0, np.zeros(160, dtype=np.float32))


async def test_a_restartable_source_is_reopened_with_status_events() -> None:
    sink, source = ListSink(), FlakySource()
    pipeline = Pipeline([source], [CountingStage()], [sink], device_id="dev",
                        restart_backoff=(0.01, 0.02))
    await asyncio.wait_for(pipeline.run(), 10)
    statuses = [e for e in sink.events if isinstance(e, StatusEvent)]
    assert [s.payload.state for s in statuses] == ["reconnecting", "reconnecting"]
    assert "device gone (attempt 1)" in statuses[0].payload.message
    assert isinstance(statuses[0].payload, Status)
    assert sum(isinstance(e, TranscriptEvent) for e in sink.events) == 1
    assert source.opened == 3


async def test_a_file_source_error_is_fatal_and_clear() -> None:
    from mmstream.config import FileSourceConfig
    from mmstream.sources.media_file import MediaFileSource

    source = MediaFileSource(FileSourceConfig(path="/nonexistent/clip.mp4"))
    pipeline = Pipeline([source], [], [ListSink()], device_id="dev")
    with pytest.raises(BaseExceptionGroup) as caught:
        await pipeline.run()
    assert "media file not found: /nonexistent/clip.mp4" in str(
        caught.value.subgroup(SourceError).exceptions[0])


class SlowEcho(Stage):
    """Answers each audio chunk in the background, after the next chunk may have arrived
    (like a model batch): the answer must go out when it is ready, not with the next item."""

    name = "echo"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.release = asyncio.Event()
        self.pending: list[asyncio.Task[None]] = []
        self.skipped: Counter[str] = Counter(shed=2)

    async def process(self, item: Item) -> None:
        if isinstance(item, AudioChunk):
            self.pending.append(self.in_background(self._answer(item)))
            return
        if isinstance(item, EndOfStream):
            await asyncio.gather(*self.pending)
        await self.emit(item)

    async def _answer(self, chunk: AudioChunk) -> None:
        await self.release.wait()
        if self.fail:
            raise RuntimeError("the model crashed")
        await self.emit(said(chunk, "answer"))

    def drops(self) -> Mapping[str, int]:
        return self.skipped

    @property
    def model_version(self) -> str | None:
        return "echo-1"


class HeldSource(Source):
    """One chunk, then waits until told to end (a live device between two items)."""

    kind = "held"

    def __init__(self) -> None:
        self.stream_id, self.name = "mic", "held:mic"
        self.go_on = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[Any]:  # type: ignore[override]
        yield AudioChunk(self.stream_id, 0.0, np.zeros(160, dtype=np.float32))
        await self.go_on.wait()


async def test_background_results_go_out_without_waiting_for_the_next_item() -> None:
    sink, stage, source = ListSink(), SlowEcho(), HeldSource()
    run = asyncio.create_task(Pipeline([source], [stage], [sink], device_id="dev").run())
    await async_wait_until(lambda: stage.pending, 10, "the chunk to reach the stage")
    stage.release.set()
    await async_wait_until(lambda: sink.events, 10, "the background answer")
    assert [e.payload.text for e in sink.events] == ["answer"]  # type: ignore[attr-defined]
    source.go_on.set()
    report = await asyncio.wait_for(run, 10)
    assert report.drops == {"echo:shed": 2}  # declared by the stage, not probed
    assert sink.pipeline is not None and sink.pipeline.models() == {"echo": "echo-1"}
    assert sink.pipeline.event_counts() == {"transcript": 1}


async def test_a_failure_in_background_work_stops_the_pipeline_naming_the_stage() -> None:
    sink, stage, source = ListSink(), SlowEcho(fail=True), HeldSource()
    stage.release.set()
    with pytest.raises(BaseExceptionGroup) as caught:
        await asyncio.wait_for(Pipeline([source], [stage], [sink], device_id="dev").run(), 10)
    errors = caught.value.subgroup(StageError)
    assert errors is not None
    assert "stage 'echo' failed: RuntimeError: the model crashed" in str(errors.exceptions[0])
    assert sink.closed
