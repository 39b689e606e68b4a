"""The queue of whisper decodes of every stream of a transcription stage.

Requests run in submission order on the one shared decoder, in batches of what is waiting
(across microphones; batched on CUDA). A request is built only when its batch is formed, so
its prompt — the stream's previous finals, with `prompt_previous` — includes every final
decided before it, whatever the timing: a batch holds at most one request per stream, so a
stream's earlier final is always decoded (in an earlier batch) before its next request is
built. A live run and a fast replay therefore give whisper the same prompts.

It also measures how long a partial takes to decode here (`partial_seconds`, a moving average),
which a live stage uses to space its partials on a slow machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from mmstream.models.whisper import DecodeRequest, DecodeResult, WhisperDecoder

SMOOTHING = 0.3  # weight of the newest partial in the moving average of decode times


@dataclass(eq=False)
class _Queued:
    stream_id: str
    build: Callable[[], DecodeRequest]
    result: asyncio.Future[DecodeResult]


class DecodeQueue:
    def __init__(self, decoder: WhisperDecoder, max_batch: int) -> None:
        self.decoder = decoder
        self.max_batch = max_batch
        self._queue: deque[_Queued] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.partial_seconds: float | None = None  # wall time of one partial's decode

    def submit(self, stream_id: str, build: Callable[[], DecodeRequest]
               ) -> asyncio.Future[DecodeResult]:
        """Queue a decode; `build()` makes its request when its batch is formed."""
        result: asyncio.Future[DecodeResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(stream_id, build, result))
        self._wakeup.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="whisper-decode")
        return result

    def _next_batch(self) -> list[_Queued]:
        """Waiting requests in order, at most one per stream, skipping cancelled ones."""
        batch: list[_Queued] = []
        streams: set[str] = set()
        while self._queue and len(batch) < self.max_batch:
            queued = self._queue[0]
            if queued.result.done():  # cancelled: a speculative final that was not needed
                self._queue.popleft()
                continue
            if queued.stream_id in streams:
                break
            streams.add(queued.stream_id)
            batch.append(self._queue.popleft())
        return batch

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while batch := self._next_batch():
                try:
                    requests = [queued.build() for queued in batch]
                    started = time.perf_counter()
                    results = await asyncio.to_thread(self.decoder.decode, requests)
                    self._measured(requests, time.perf_counter() - started)
                except Exception as exc:  # hand the failure to whoever waits on it
                    for queued in batch:
                        if not queued.result.done():
                            queued.result.set_exception(exc)
                    continue
                for queued, decoded in zip(batch, results, strict=True):
                    if not queued.result.done():
                        queued.result.set_result(decoded)

    def _measured(self, requests: list[DecodeRequest], seconds: float) -> None:
        if any(request.final for request in requests):
            return  # a final's beam and word times say little about a partial's cost
        each = seconds / len(requests)
        known = self.partial_seconds
        self.partial_seconds = each if known is None else known + SMOOTHING * (each - known)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
