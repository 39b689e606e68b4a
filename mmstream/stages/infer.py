"""Fused inference: each Window becomes `scene`, `emotion` and `fused` events.

Windows from every stream go through one `MicroBatcher` into the fused model
(`load_fused_model`: ONNX Runtime on a CPU, else torch), so several cameras share each
forward pass. Per window, the CPU work that cannot be batched (face
detection, prosody, text affect) runs in a worker thread first. Results come back to their
stream in window order; other items pass through (a stream's EndOfStream only after all of
its windows' events). Events say why: each modality's presence, gate weight, confidence and
own opinion, and the model version.

Change gating (stages/change_gate.py): a window whose frame did not change since the stream's
last analysed one skips face detection, the image encoder and the face net; it reuses that
window's face and encoder outputs, and only the fusion runs on its own voice and text. Its
events say `carried: true` (stages/infer_events.py makes the events).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from mmstream.config import InferConfig, RunPolicy
from mmstream.events import Envelope
from mmstream.media import AUDIO_RATE, EndOfStream, VideoFrame, Window
from mmstream.models.fused_onnx import cuda_possible, load_fused_model
from mmstream.models.fused_windows import MODALITIES, FusedRunner, PreparedWindow, WindowResult
from mmstream.models.numerics import pin_math_threads
from mmstream.models.speedups import keep_freed_memory, lower_thread_priority
from mmstream.runtime import metrics
from mmstream.runtime.batcher import MicroBatcher
from mmstream.runtime.stage import Item, Stage
from mmstream.stages.change_gate import ChangeGate
from mmstream.stages.infer_events import WindowEvents, analysed_frame

log = logging.getLogger(__name__)


def set_up_memory(cfg: InferConfig) -> None:
    """On a CPU, one malloc arena that keeps and reuses freed memory (`keep_freed_memory`).
    The builder calls this too, before any stage's thread exists: a thread that allocated
    before it keeps an arena of its own (whisper's load and decodes: ~50 MB more at peak)."""
    on_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not cuda_possible())
    if on_cpu and cfg.keep_freed_memory:
        keep_freed_memory()


@dataclass(eq=False)
class _Job:
    """One window on its way: prepared in a thread pool, then batched, then turned to events."""

    window: Window
    result: asyncio.Future[WindowResult | None]  # None: shed, never analysed
    submitted: asyncio.Event = field(default_factory=asyncio.Event)
    carry_from: _Job | None = None  # the gate found its frame unchanged since this one's
    prepared: PreparedWindow | None = None  # once it went to the model (None: shed)
    replaced_by: _Job | None = None  # live, shed: the window analysed afresh in its place


class InferStage(Stage):
    name = "infer"

    def __init__(self, config: InferConfig | None = None, *, policy: RunPolicy,
                 model: FusedRunner | None = None, max_lag_s: float | None = None,
                 vision_nice: int = 0) -> None:
        self.config = config or InferConfig()
        # A fast replay batches by stream and count and emits at fixed places in its input, so
        # its output never depends on timing; live, results go out the moment they are in.
        self.by_count = not policy.results_when_ready
        self.model = model
        self.batcher: MicroBatcher[PreparedWindow, WindowResult] | None = None
        self.pending: dict[str, deque[_Job]] = {}
        self.max_pending_per_stream = 2 * self.config.max_batch
        self._prepare_pool: ThreadPoolExecutor | None = None
        self._model_thread: ThreadPoolExecutor | None = None
        self._emitting = asyncio.Lock()  # results of one stream go out in window order
        # Live overload policy: a few windows in analysis at a time (prepared, batched or
        # running: enough to keep the threads busy and batch a little); a window older than
        # `max_lag_s` when its turn comes, or once prepared, is shed, not analysed further, so
        # no backlog of stale work builds inside the stage and nothing is published very late.
        self.max_lag_s = max_lag_s if policy.overload_control else None
        self._admission = (asyncio.Semaphore(2 * self.config.prepare_threads + 2)
                           if self.max_lag_s is not None else None)
        self.vision_nice = vision_nice
        self.shed: Counter[str] = Counter()
        self.gate = ChangeGate(self.config.change_gate)
        self.references: dict[str, _Job] = {}  # per stream: the window carried windows reuse
        self._events: WindowEvents | None = None

    def drops(self) -> Mapping[str, int]:
        """Stale windows shed and, counted beside them though nothing is lost, windows that
        carried image results over (`carried:<stream>`)."""
        return self.shed

    @property
    def model_version(self) -> str | None:
        return self.model.version if self.model is not None else None

    async def open(self) -> None:
        cfg = self.config
        pin_math_threads()
        set_up_memory(cfg)  # before the worker threads exist: they inherit it
        # vision runs at a lower priority than speech (its thread pools inherit it)
        self._model_thread = ThreadPoolExecutor(
            1, thread_name_prefix="mmstream-infer", initializer=lower_thread_priority,
            initargs=(self.vision_nice,))
        self.batcher = MicroBatcher(self._forward, max_batch=cfg.max_batch,
                                    max_wait_ms=cfg.max_wait_ms, executor=self._model_thread,
                                    by_count=self.by_count, name=self.name)
        self.batcher.start()
        if self.model is None:
            modalities = [m for m in MODALITIES if getattr(cfg, m)]
            with metrics.timed_model_load("fused"):
                # Built on the thread that runs it, so CPU inference uses one thread pool.
                self.model = await self.batcher.call(
                    load_fused_model, device=cfg.device, precision=cfg.precision,
                    compile=cfg.compile, image_runtime=cfg.image_runtime,
                    threads=cfg.cpu_threads, checkpoint=cfg.checkpoint,
                    vocabulary=cfg.vocabulary, modalities=modalities,
                    face_detector=cfg.face_detector)
        self._prepare_pool = ThreadPoolExecutor(
            cfg.prepare_threads, thread_name_prefix="mmstream-prepare",
            initializer=lower_thread_priority, initargs=(self.vision_nice,))
        if not self.by_count:
            await self._warm_up()
        log.info("fused model %s on %s, batches of up to %d (%s)", self.model.version,
                 self.model.device_name, cfg.max_batch,
                 "by count" if self.by_count else f"{cfg.max_wait_ms} ms wait")

    async def _warm_up(self) -> None:
        """Live: the first window of each prepare thread and the first forward pass cost up to a
        second (detector set-up, kernel choice); pay that before the camera's first window, not
        with it (it would be stale, and shed)."""
        assert self.model is not None and self.batcher is not None
        frame = VideoFrame("warm-up", 0.0, np.zeros((480, 640, 3), dtype=np.uint8))
        blank = Window("warm-up", 2.0, 0.0, 0, frame, np.zeros(2 * AUDIO_RATE, np.float32),
                       has_audio=True)
        loop = asyncio.get_running_loop()
        prepared = await asyncio.gather(*(
            loop.run_in_executor(self._prepare_pool, self.model.prepare, blank)
            for _ in range(self.config.prepare_threads)))
        await self.batcher.call(self.model.forward, prepared[:1])

    def _forward(self, batch: Sequence[PreparedWindow]) -> list[WindowResult]:
        assert self.model is not None
        return self.model.forward(batch)

    async def process(self, item: Item) -> None:
        if isinstance(item, Window):
            await self._start(item)
            if self.by_count:
                await self._emit_full_batch(item.stream_id)
            return
        if isinstance(item, EndOfStream):  # a stream ends after all of its windows' events
            await self._drain(item.stream_id)
            self.gate.forget(item.stream_id)
            self.references.pop(item.stream_id, None)
        await self.emit(item)

    async def finish(self) -> None:
        for stream_id in list(self.pending):
            await self._drain(stream_id)

    async def close(self) -> None:
        for queue in self.pending.values():  # only left when the pipeline was cancelled
            for job in queue:
                job.result.cancel()
        if self.batcher is not None:
            await self.batcher.close()
        for pool in (self._prepare_pool, self._model_thread):
            if pool is not None:
                pool.shutdown(wait=True)

    async def _start(self, window: Window) -> None:
        """Start preparing the window at once (windows of all streams prepare in parallel)."""
        queue = self.pending.setdefault(window.stream_id, deque())
        job = _Job(window, asyncio.get_running_loop().create_future())
        if self.gate.carry(window):  # decided in window order, from the frames alone
            job.carry_from = self.references[window.stream_id]
        elif window.frame is not None:
            self.references[window.stream_id] = job
        self.in_background(self._run(job, queue[-1] if queue else None))
        queue.append(job)
        if self.max_lag_s is None and len(queue) > self.max_pending_per_stream:
            await asyncio.wait([queue[0].result])  # backpressure: wait for the oldest window

    def _stale(self, window: Window) -> bool:
        if self.max_lag_s is None:
            return False
        age = self.link.pipeline.age(window.stream_id, window.t_capture)
        if age is None or age <= self.max_lag_s:
            return False
        self.shed[f"shed:stale_window:{window.stream_id}"] += 1
        return True

    async def _run(self, job: _Job, previous: _Job | None) -> None:
        """Background: prepare, batch, infer; live, emit what is finished right away."""
        try:
            async with self._admission or contextlib.nullcontext():
                job.result.set_result(await self._analyse(job, previous))
        except BaseException:
            job.result.cancel()  # whoever waits for it stops; the pipeline stops with the error
            raise
        if not self.by_count:
            await self._emit_finished()

    async def _analyse(self, job: _Job, previous: _Job | None) -> WindowResult | None:
        assert self.model is not None and self.batcher is not None
        loop = asyncio.get_running_loop()
        try:
            if self._stale(job.window):
                return self._shed(job)
            source = await self._carry_source(job)
            prepared = await loop.run_in_executor(self._prepare_pool, self.model.prepare,
                                                  job.window, source)
            if previous is not None:  # a stream's windows enter the batcher in their order
                await previous.submitted.wait()
            if self._stale(job.window):
                return self._shed(job)
            future = self.batcher.submit(prepared, key=job.window.stream_id)
            job.prepared = prepared
            if prepared.carried:
                self.shed[f"carried:{job.window.stream_id}"] += 1
        finally:
            job.submitted.set()  # also when shed or failed: the stream's next window goes on
        return await future

    @staticmethod
    async def _carry_source(job: _Job) -> PreparedWindow | None:
        """What `job` carries from: its reference, submitted before it. Live, a shed reference
        has nothing to carry: the first window that carried from it is analysed afresh in its
        place, and the others carry from that one."""
        reference = job.carry_from
        while reference is not None:
            await reference.submitted.wait()
            if reference.prepared is not None:
                return reference.prepared
            if reference.replaced_by is None:
                reference.replaced_by = job
                return None
            reference = reference.replaced_by
        return None

    def _shed(self, job: _Job) -> None:
        """A shed reference has nothing to carry: the stream's next window is analysed."""
        if self.references.get(job.window.stream_id) is job:
            self.gate.forget(job.window.stream_id)
            del self.references[job.window.stream_id]
        return None

    async def _emit_finished(self) -> None:
        """Live: events of the windows whose results are in, up to each stream's first gap."""
        async with self._emitting:
            for queue in list(self.pending.values()):
                while queue and queue[0].result.done():
                    await self._emit_events(queue.popleft())

    async def _emit_full_batch(self, stream_id: str) -> None:
        """Fast replay: once a stream has a whole batch queued, wait for it and emit it.

        The batcher runs a stream's windows in groups of `max_batch`, so the queue holds exactly
        one group here; its events then sit at the same place in the output on every replay.
        """
        queue = self.pending.get(stream_id)
        if queue is None or len(queue) < self.config.max_batch:
            return
        jobs = list(queue)
        queue.clear()
        for job in jobs:
            await job.result
            await self._emit_events(job)

    async def _drain(self, stream_id: str) -> None:
        """Every window of the stream inferred and its events emitted, in order."""
        assert self.batcher is not None
        queue = self.pending.get(stream_id)
        if queue:
            await queue[-1].submitted.wait()
        self.batcher.flush(stream_id)
        async with self._emitting:
            for job in self.pending.pop(stream_id, deque()):
                await job.result
                await self._emit_events(job)

    async def _emit_events(self, job: _Job) -> None:
        result = job.result.result()
        if result is None:
            return
        events = self.events_for(result)
        job.carry_from = None  # nothing more to take from it
        for event in events:
            await self.emit(event)
        if not self.by_count and result.prepared.window.frame is not None:
            await self.emit(analysed_frame(result, events))  # for sinks that show a picture

    def events_for(self, result: WindowResult) -> list[Envelope]:
        """The window's scene, emotion and fused events (stages/infer_events.py)."""
        if self._events is None:
            assert self.model is not None
            self._events = WindowEvents(self.config, self.model.version)
        return self._events.events_for(result)
