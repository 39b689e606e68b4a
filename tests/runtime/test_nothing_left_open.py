"""Nothing is left open: whatever fails while a pipeline opens (a later stage, a sink's
connect), every stage opened before it is closed again, its threads included; background
work a stage starts is supervised, so its failure is never lost."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from mmstream.config import LIVE, InferConfig, TranscribeConfig
from mmstream.errors import SinkError
from mmstream.events import Event
from mmstream.runtime.harness import StageHarness
from mmstream.runtime.pipeline import Pipeline
from mmstream.runtime.stage import Sink, Stage
from mmstream.stages.infer import InferStage
from mmstream.stages.transcribe import TranscribeStage
from tests.runtime.test_pipeline import ListSource


class NoBrokerSink(Sink):
    """A sink whose connect fails, as an MQTT sink's with the broker away."""

    async def __aenter__(self) -> NoBrokerSink:
        raise SinkError("broker unreachable")

    async def send(self, event: Event) -> None:
        raise AssertionError("never opened")


class FailsToOpen(Stage):
    name = "fails"

    async def open(self) -> None:
        raise RuntimeError("no model")


class Recorded(Stage):
    name = "recorded"

    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


def _fake_model() -> Any:
    """What a live InferStage's open needs of a model (its warm-up starts the threads)."""
    return SimpleNamespace(version="fake", plan=SimpleNamespace(device="cpu"),
                           device_name="cpu", prepare=lambda window, carry_from=None: window,
                           forward=lambda batch: list(batch))


def _infer_stage() -> InferStage:
    return InferStage(InferConfig(), policy=LIVE, model=_fake_model())


async def test_a_sink_that_fails_to_open_leaves_no_thread_behind() -> None:
    before = set(threading.enumerate())
    pipeline = Pipeline([ListSource("a", 3)], [_infer_stage()], [NoBrokerSink()],
                        device_id="dev")
    with pytest.raises(SinkError):
        await pipeline.run()
    assert set(threading.enumerate()) - before == set()
    assert not [task for task in asyncio.all_tasks() if "batcher" in task.get_name()]


async def test_twenty_failed_starts_in_a_row_leave_the_thread_count_where_it_was() -> None:
    await _fail_to_start()  # the first run may start threads that live on (torch's pool)
    before = threading.active_count()
    for _ in range(20):
        await _fail_to_start()
    assert threading.active_count() == before


async def _fail_to_start() -> None:
    pipeline = Pipeline([ListSource("a", 3)], [_infer_stage()], [NoBrokerSink()],
                        device_id="dev")
    with pytest.raises(SinkError):
        await pipeline.run()


async def test_a_stage_that_fails_to_open_closes_the_ones_opened_before_it() -> None:
    first, last = Recorded(), Recorded()
    pipeline = Pipeline([ListSource("a", 3)], [first, FailsToOpen(), last], [],
                        device_id="dev")
    with pytest.raises(RuntimeError, match="no model"):
        await pipeline.run()
    assert (first.closed, last.closed) == (1, 0)


async def test_a_stage_closes_once_when_the_pipeline_ends() -> None:
    stage = Recorded()
    await Pipeline([ListSource("a", 3)], [stage], [], device_id="dev").run()
    assert stage.closed == 1


async def test_a_failing_sentence_check_stops_the_stage_even_if_no_one_awaits_it() -> None:
    stage = TranscribeStage(TranscribeConfig(), policy=LIVE)
    failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    failed.set_exception(RuntimeError("decoder crashed"))
    with pytest.raises(BaseExceptionGroup) as caught:
        async with StageHarness(stage, open_stage=False):
            verdict = stage._sentence_check(failed, None, False)
    assert caught.value.subgroup(RuntimeError) is not None
    assert isinstance(verdict.exception(), RuntimeError)  # and `_segment` would see it
