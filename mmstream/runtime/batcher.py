"""Dynamic micro-batching: many callers submit one item each, a model sees whole batches.

`MicroBatcher` gathers items submitted from any stream until `max_batch` are waiting or the
oldest has waited `max_wait_ms`, then runs `run_batch(items)` once in a worker thread (the event
loop never blocks) and resolves each caller's future with its own result, in submission order.
While one batch runs, the next fills up, so a busy model gets full batches and a quiet one
answers within `max_wait_ms`. Items submitted with a `key` (a camera's stream id) do not wait
longer than needed: once every key seen in the last `active_key_s` has an item waiting, the
batch goes at once — a single camera never waits for company that cannot come (its next
window is a hop away), and four cameras go as soon as the fourth window is in.

`by_count=True` is for fast replays, where the same input must give the same output: the
batches a window lands in then depend only on the submission order per key (stream) — a key's
items go in groups of `max_batch`, the rest on `flush(key)` — never on timing, so numerics that
vary slightly with batch composition cannot change between two replays.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from mmstream.runtime import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]
    key: str
    submitted: float


class MicroBatcher(Generic[T, R]):
    """`async with MicroBatcher(fn, max_batch=16, max_wait_ms=20) as b: r = await b.submit(x)`"""

    def __init__(self, run_batch: Callable[[Sequence[T]], Sequence[R]], *, max_batch: int = 16,
                 max_wait_ms: float = 20.0, by_count: bool = False,
                 name: str = "batcher", executor: ThreadPoolExecutor | None = None,
                 active_key_s: float = 5.0) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.by_count = by_count
        self.name = name
        self.batch_sizes: Counter[int] = Counter()
        self._waiting: deque[_Pending[T, R]] = deque()  # latency mode: one FIFO for all keys
        self._by_key: dict[str, list[_Pending[T, R]]] = {}  # by_count
        self.active_key_s = active_key_s  # longer than a stream's gap between items
        self._last_seen: dict[str, float] = {}  # latency mode: key -> its latest submission
        self._ready: deque[list[_Pending[T, R]]] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._flush_now = False
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = executor  # one worker thread
        self._owns_executor = executor is None

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    def start(self) -> None:
        if self._task is None:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"mmstream-{self.name}")
            self._task = asyncio.create_task(self._loop(), name=f"{self.name}-batcher")

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run `fn` in the batch worker thread (e.g. build the model on the thread that will
        run it: CPU thread pools and allocator arenas are per thread)."""
        if self._executor is None:
            raise RuntimeError(f"{self.name}: call() on a batcher that is not running")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def submit(self, item: T, key: str = "") -> asyncio.Future[R]:
        """Queue one item; the future resolves to its result (or raises the batch's error)."""
        if self._task is None or self._closing:
            raise RuntimeError(f"{self.name}: submit() on a batcher that is not running")
        loop = asyncio.get_running_loop()
        pending = _Pending(item, loop.create_future(), key, loop.time())
        if self.by_count:
            queue = self._by_key.setdefault(key, [])
            queue.append(pending)
            if len(queue) >= self.max_batch:
                self._ready.append(queue[:])
                queue.clear()
        else:
            self._waiting.append(pending)
            if key:
                self._last_seen[key] = pending.submitted
        self._wake.set()
        return pending.future

    def flush(self, key: str | None = None) -> None:
        """Send what is queued (for `key`, or all) without waiting for a full batch."""
        if self.by_count:
            for name in [key] if key is not None else list(self._by_key):
                queue = self._by_key.get(name)
                if queue:
                    self._ready.append(queue[:])
                    queue.clear()
        elif self._waiting:
            self._flush_now = True
        self._wake.set()

    async def close(self) -> None:
        """Run everything still queued, then stop the worker."""
        if self._task is None:
            return
        self.flush()
        self._closing = True
        self._wake.set()
        try:
            await self._task
        finally:
            self._task = None
            if self._executor is not None and self._owns_executor:
                self._executor.shutdown(wait=True)
                self._executor = None

    async def _loop(self) -> None:
        while (batch := await self._next_batch()) is not None:
            await self._run(batch)

    async def _next_batch(self) -> list[_Pending[T, R]] | None:
        loop = asyncio.get_running_loop()
        while True:
            if self._ready:
                return self._ready.popleft()
            timeout: float | None = None
            if self._waiting:
                due = self._waiting[0].submitted + self.max_wait_s
                if (len(self._waiting) >= self.max_batch or loop.time() >= due
                        or self._flush_now or self._closing or self._all_keys_in(loop.time())):
                    count = min(self.max_batch, len(self._waiting))
                    batch = [self._waiting.popleft() for _ in range(count)]
                    self._flush_now = self._flush_now and bool(self._waiting)
                    return batch
                timeout = due - loop.time()
            elif self._closing:
                return None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _all_keys_in(self, now: float) -> bool:
        """Every recently active key has an item waiting (and every waiting item has a key)."""
        waiting = {p.key for p in self._waiting}
        if "" in waiting:
            return False
        for key, seen in list(self._last_seen.items()):
            if now - seen > self.active_key_s:
                del self._last_seen[key]  # a stream that went quiet is not waited for
        return set(self._last_seen) <= waiting

    async def _run(self, batch: list[_Pending[T, R]]) -> None:
        loop = asyncio.get_running_loop()
        self.batch_sizes[len(batch)] += 1
        metrics.observe_batch_size(self.name, len(batch))
        try:
            results = await loop.run_in_executor(self._executor, self.run_batch,
                                                 [p.item for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: run_batch returned {len(results)} results "
                                   f"for {len(batch)} items")
        except Exception as exc:  # every caller of the batch learns what went wrong
            log.debug("%s: batch of %d failed: %s", self.name, len(batch), exc)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)
