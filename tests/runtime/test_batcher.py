"""The dynamic micro-batcher: batching, ordering, waiting, errors, deterministic mode."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from mmstream.runtime.batcher import MicroBatcher


class Recorder:
    """A run_batch that records its batches and the thread it ran in."""

    def __init__(self, fail_on: int | None = None, gate: threading.Event | None = None) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on
        self.gate = gate

    def __call__(self, items: Sequence[tuple[str, int]]) -> list[str]:
        if self.gate is not None:
            self.gate.wait(5)
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(items))
        if self.fail_on is not None and any(n == self.fail_on for _, n in items):
            raise ValueError(f"bad item {self.fail_on}")
        return [f"{key}:{n * 10}" for key, n in items]


async def test_items_from_many_streams_share_batches_and_get_their_own_results() -> None:
    gate = threading.Event()  # hold the first batch so the rest queue up behind it
    run = Recorder(gate=gate)
    async with MicroBatcher(run, max_batch=8, max_wait_ms=100) as batcher:
        futures = [batcher.submit((f"cam{n % 4}", n), key=f"cam{n % 4}") for n in range(17)]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*futures)
    assert results == [f"cam{n % 4}:{n * 10}" for n in range(17)]
    assert sorted(batcher.batch_sizes.elements()) == [1, 8, 8]
    assert [n for batch in run.batches for _, n in batch] == list(range(17))  # FIFO
    assert {key for key, _ in run.batches[0]} == {"cam0", "cam1", "cam2", "cam3"}
    assert run.threads and threading.current_thread().name not in run.threads


async def test_a_lone_item_waits_at_most_max_wait() -> None:
    run = Recorder()
    async with MicroBatcher(run, max_batch=64, max_wait_ms=20) as batcher:
        result = await asyncio.wait_for(batcher.submit(("a", 1)), timeout=5)
    assert result == "a:10" and run.batches == [[("a", 1)]]


async def test_a_failing_batch_fails_its_callers_only() -> None:
    run = Recorder(fail_on=3)
    async with MicroBatcher(run, max_batch=4, max_wait_ms=10) as batcher:
        first = [batcher.submit(("a", n)) for n in range(4)]
        outcome = await asyncio.gather(*first, return_exceptions=True)
        later = await batcher.submit(("a", 9))
    assert all(isinstance(r, ValueError) for r in outcome)
    assert later == "a:90"  # the batcher keeps working after a failed batch


async def test_deterministic_mode_batches_by_stream_and_count_only() -> None:
    run = Recorder()
    async with MicroBatcher(run, max_batch=3, max_wait_ms=0, by_count=True) as batcher:
        futures = [batcher.submit((key, n), key=key) for n in range(4) for key in ("a", "b")]
        await asyncio.sleep(0.05)  # max_wait has long passed: only full batches may run
        assert [len(b) for b in run.batches] == [3, 3]
        batcher.flush("a")
        await asyncio.gather(*futures[:: 2])
        assert run.batches[2] == [("a", 3)]
    await asyncio.gather(*futures)  # close() flushed the rest of "b"
    assert run.batches[0] == [("a", 0), ("a", 1), ("a", 2)]
    assert run.batches[1] == [("b", 0), ("b", 1), ("b", 2)]
    assert run.batches[3] == [("b", 3)]


async def test_submit_needs_a_running_batcher() -> None:
    batcher = MicroBatcher(Recorder())
    with pytest.raises(RuntimeError, match="not running"):
        batcher.submit(("a", 1))
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), max_batch=0)


async def test_call_runs_in_the_batch_worker_thread() -> None:
    run = Recorder()
    async with MicroBatcher(run, max_batch=2, max_wait_ms=1) as batcher:
        builder = await batcher.call(lambda: threading.current_thread().name)
        await batcher.submit(("a", 1))
    assert run.threads == {builder}  # the model is built where it will run


async def test_keyed_items_go_once_every_active_stream_has_one_waiting() -> None:
    run = Recorder()
    # max_wait is a minute: anything that finishes here did not wait for it
    async with MicroBatcher(run, max_batch=16, max_wait_ms=60_000) as batcher:
        # A lone camera: nothing else can come, so its window goes at once.
        assert await asyncio.wait_for(batcher.submit(("a", 1), key="a"), 30) == "a:10"
        # A second camera appears: its window waits for a's (a is active, its window is due
        # too), then both go in one batch.
        second = batcher.submit(("b", 2), key="b")
        for _ in range(50):  # the batcher looks at what waits every time it runs
            await asyncio.sleep(0)
        assert not second.done() and run.batches == [[("a", 1)]], "waits for a's window"
        first = batcher.submit(("a", 3), key="a")
        assert await asyncio.wait_for(asyncio.gather(first, second), 30) == ["a:30", "b:20"]
    assert run.batches == [[("a", 1)], [("b", 2), ("a", 3)]]
