"""Fused inference: each Window becomes `scene`, `emotion` and `fused` events.

Windows from every stream go through one `MicroBatcher` into `FusedModel.forward`, so several
cameras share each forward pass. Per window, the CPU work that cannot be batched (face
detection, prosody, text affect) runs in a worker thread first. Results come back to their
stream in window order; other items pass through (a stream's EndOfStream only after all of
its windows' events). Events say why: each modality's presence, gate weight, confidence and
own opinion, and the model version.

- `scene` (when the window has a frame): fused tag scores ≥ `scene_threshold`, top k, and the
  raw ImageNet classes behind them;
- `emotion` (when a face, a voice or text is present — never guessed from nothing): label,
  7 scores, valence, confidence;
- `fused`: the window's combined result; absent modalities are listed as such.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from mmstream.config import InferConfig
from mmstream.events import Emotion as EmotionPayload
from mmstream.events import (
    EmotionEvent,
    Envelope,
    Fused,
    FusedEvent,
    ModalityContribution,
    Scene,
    SceneEvent,
    Tag,
)
from mmstream.media import EndOfStream, Window
from mmstream.models.fused_model import (
    MODALITIES,
    FusedModel,
    PreparedWindow,
    WindowResult,
    plan_for,
)
from mmstream.models.numerics import pin_math_threads
from mmstream.models.speedups import keep_freed_memory
from mmstream.runtime import metrics
from mmstream.runtime.batcher import MicroBatcher
from mmstream.runtime.stage import Stage

log = logging.getLogger(__name__)
EMOTION_SOURCES = ("face", "voice", "text")


def _r(value: float) -> float:
    return round(float(value), 4)


@dataclass(eq=False)
class _Job:
    """One window on its way: prepared in a thread pool, then batched, then turned to events."""

    window: Window
    submitted: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[WindowResult] | None = None


class InferStage(Stage):
    name = "infer"

    def __init__(self, config: InferConfig | None = None, *, deterministic: bool = False,
                 model: FusedModel | None = None) -> None:
        self.config = config or InferConfig()
        mode = self.config.batching
        self.deterministic = mode == "deterministic" or (mode == "auto" and deterministic)
        self.model = model
        self.batcher: MicroBatcher[PreparedWindow, WindowResult] | None = None
        self.pending: dict[str, deque[_Job]] = {}
        self.max_pending_per_stream = 2 * self.config.max_batch
        self._prepare_pool: ThreadPoolExecutor | None = None
        # Latency mode: results go out when they are in (the pipeline collects `ready()`);
        # deterministic mode emits at fixed places in the input instead.
        self.ready_signal = None if self.deterministic else asyncio.Event()

    async def open(self) -> None:
        cfg = self.config
        pin_math_threads()
        if cfg.cpu_threads:
            torch.set_num_threads(cfg.cpu_threads)
        plan = plan_for(cfg.device, cfg.precision, cfg.compile)
        if plan.device.type == "cpu" and cfg.keep_freed_memory:
            keep_freed_memory()  # before the worker threads exist: they inherit it
        self.batcher = MicroBatcher(self._forward, max_batch=cfg.max_batch,
                                    max_wait_ms=cfg.max_wait_ms,
                                    deterministic=self.deterministic, name=self.name)
        self.batcher.start()
        if self.model is None:
            modalities = [m for m in MODALITIES if getattr(cfg, m)]
            with metrics.timed_model_load("fused"):
                # Built on the thread that runs it, so CPU inference uses one thread pool.
                self.model = await self.batcher.call(
                    FusedModel, plan, checkpoint=cfg.checkpoint, vocabulary=cfg.vocabulary,
                    modalities=modalities, face_detector=cfg.face_detector)
        self._prepare_pool = ThreadPoolExecutor(cfg.prepare_threads,
                                                thread_name_prefix="mmstream-prepare")
        log.info("fused model %s on %s, batches of up to %d (%s)", self.model.version,
                 self.model.plan.device, cfg.max_batch,
                 "deterministic" if self.deterministic else f"{cfg.max_wait_ms} ms wait")

    def _forward(self, batch: Sequence[PreparedWindow]) -> list[WindowResult]:
        assert self.model is not None
        return self.model.forward(batch)

    async def process(self, item: Any) -> AsyncIterator[Any]:
        if isinstance(item, Window):
            await self._start(item)
            if self.deterministic:
                events = await self._full_batch(item.stream_id)
            else:
                events = self._finished()
            for event in events:
                yield event
            return
        if isinstance(item, EndOfStream):
            for event in await self._drain(item.stream_id):
                yield event
        elif not self.deterministic:
            # Deterministic mode never emits on a pass-through item: whether a result is in
            # by then is timing, and would move events between replays.
            for event in self._finished():
                yield event
        yield item

    async def flush(self) -> AsyncIterator[Any]:
        for stream_id in list(self.pending):
            for event in await self._drain(stream_id):
                yield event

    async def close(self) -> None:
        for queue in self.pending.values():  # only left when the pipeline was cancelled
            for job in queue:
                if job.task is not None:
                    job.task.cancel()
        if self.batcher is not None:
            await self.batcher.close()
        if self._prepare_pool is not None:
            self._prepare_pool.shutdown(wait=True)

    async def _start(self, window: Window) -> None:
        """Start preparing the window at once (windows of all streams prepare in parallel)."""
        queue = self.pending.setdefault(window.stream_id, deque())
        job = _Job(window)
        job.task = asyncio.create_task(self._run(job, queue[-1] if queue else None))
        queue.append(job)
        if len(queue) > self.max_pending_per_stream:
            await asyncio.wait([queue[0].task])  # backpressure: wait for the oldest window

    async def _run(self, job: _Job, previous: _Job | None) -> WindowResult:
        assert self.model is not None and self.batcher is not None
        loop = asyncio.get_running_loop()
        try:
            prepared = await loop.run_in_executor(self._prepare_pool, self.model.prepare,
                                                  job.window)
            if previous is not None:  # a stream's windows enter the batcher in their order
                await previous.submitted.wait()
            future = self.batcher.submit(prepared, key=job.window.stream_id)
        finally:
            job.submitted.set()  # also on failure, so the stream's next window is not stuck
        try:
            return await future
        finally:
            if self.ready_signal is not None:
                self.ready_signal.set()

    async def ready(self) -> AsyncIterator[Any]:
        for event in self._finished():
            yield event

    def _finished(self) -> list[Envelope]:
        """Events of the windows whose results are in, stopping at each stream's first gap."""
        events: list[Envelope] = []
        for queue in self.pending.values():
            while queue and queue[0].task is not None and queue[0].task.done():
                events.extend(self.events_for(queue.popleft().task.result()))
        return events

    async def _full_batch(self, stream_id: str) -> list[Envelope]:
        """Deterministic mode: once a stream has a whole batch queued, wait for it and emit it.

        The batcher runs a stream's windows in groups of `max_batch`, so the queue holds exactly
        one group here; its events then sit at the same place in the output on every replay.
        """
        queue = self.pending.get(stream_id)
        if queue is None or len(queue) < self.config.max_batch:
            return []
        jobs = list(queue)
        queue.clear()
        events: list[Envelope] = []
        for job in jobs:
            assert job.task is not None
            events.extend(self.events_for(await job.task))
        return events

    async def _drain(self, stream_id: str) -> list[Envelope]:
        assert self.batcher is not None
        queue = self.pending.pop(stream_id, deque())
        if queue:
            await queue[-1].submitted.wait()
        self.batcher.flush(stream_id)
        events: list[Envelope] = []
        for job in queue:
            assert job.task is not None
            events.extend(self.events_for(await job.task))
        return events

    # ---- results -> events ------------------------------------------------------------------
    def events_for(self, result: WindowResult) -> list[Envelope]:
        window = result.prepared.window
        stream, t = window.stream_id, window.t_capture
        events: list[Envelope] = []
        scene = self._scene(result) if result.present["image"] else None
        if scene is not None:
            events.append(SceneEvent(stream_id=stream, t_capture=t, payload=scene))
        emotion = self._emotion(result) if self._has_emotion(result) else None
        if emotion is not None:
            events.append(EmotionEvent(stream_id=stream, t_capture=t, payload=emotion))
        events.append(FusedEvent(stream_id=stream, t_capture=t, payload=self._fused(
            result, scene, emotion)))
        return events

    @staticmethod
    def _has_emotion(result: WindowResult) -> bool:
        return any(result.present[m] for m in EMOTION_SOURCES)

    def _tags(self, scores: dict[str, float]) -> list[Tag]:
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [Tag(name, _r(score)) for name, score in ranked[: self.config.scene_top_k]
                if score >= self.config.scene_threshold]

    def _scene(self, result: WindowResult) -> Scene:
        assert self.model is not None
        image_tags = self._tags(result.image_tags)
        contributions = [ModalityContribution(
            modality="image", present=True, weight=_r(result.scene_weights["image"]),
            confidence=_r(max(result.image_tags.values(), default=0.0)),
            label=image_tags[0].label if image_tags else None,
            scores={t.label: t.score for t in image_tags})]
        face = result.present["face"]
        contributions.append(ModalityContribution(
            modality="face", present=face, weight=_r(result.scene_weights["face"]),
            confidence=_r(result.confidence["face"]), label="person" if face else None,
            scores={"person": _r(result.face_person)} if face else {}))
        return Scene(tags=self._tags(result.scene), model=self.model.version,
                     top_classes=[Tag(n, _r(s)) for n, s in result.top_classes],
                     contributions=contributions)

    def _emotion(self, result: WindowResult) -> EmotionPayload:
        assert self.model is not None
        scores = {k: _r(v) for k, v in result.emotion.items()}
        label = max(scores, key=lambda k: (scores[k], k))
        # Overall confidence: the top probability, discounted by how sure the sources were.
        doubt = math.prod(1.0 - result.confidence[m] for m in EMOTION_SOURCES
                          if result.present[m])
        return EmotionPayload(label=label, scores=scores, valence=_r(result.valence),
                              confidence=_r(max(result.emotion.values()) * (1.0 - doubt)),
                              contributions=self._emotion_contributions(result),
                              model=self.model.version)

    @staticmethod
    def _emotion_contributions(result: WindowResult) -> list[ModalityContribution]:
        found = []
        for m in EMOTION_SOURCES:
            present = result.present[m]
            own = result.expert_emotion[m]
            found.append(ModalityContribution(
                modality=m, present=present, weight=_r(result.weights[m]) if present else 0.0,
                confidence=_r(result.confidence[m]) if present else 0.0,
                label=max(own, key=lambda k: (own[k], k)) if present else None,
                scores={k: _r(v) for k, v in own.items()} if present else {}))
        return found

    def _fused(self, result: WindowResult, scene: Scene | None,
               emotion: EmotionPayload | None) -> Fused:
        assert self.model is not None
        window = result.prepared.window
        contributions = list(emotion.contributions) if emotion is not None else [
            ModalityContribution(modality=m, present=False) for m in EMOTION_SOURCES]
        image = scene.contributions[0] if scene is not None else ModalityContribution(
            modality="image", present=False)
        return Fused(
            window_start=window.t_start, window_end=window.t_capture,
            scene=scene.tags if scene is not None else [],
            emotion=emotion.label if emotion is not None else None,
            valence=emotion.valence if emotion is not None else None,
            transcript=window.text,
            modalities=[m for m in MODALITIES if result.present[m]],
            model=self.model.version,
            contributions=[image, *contributions],
            emotion_confidence=emotion.confidence if emotion is not None else 0.0,
        )
