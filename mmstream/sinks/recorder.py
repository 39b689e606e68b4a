"""MCAP recorder: raw inputs and every published event, in files Foxglove Studio opens.

Where raw inputs come from: the pipeline builder puts a `RecordTap` stage (stages/record_tap.py)
first, before anything that may thin the input out (the overload governor sheds frames,
analysis stages may consume items), and it hands every frame and audio chunk to
`record_input`.

All encoding (H.264 and AAC, or JPEG/PNG and PCM: `recording/inputs.py`) and file I/O runs
on one writer thread, in arrival order; the event
loop only queues work and waits when too much is queued (backpressure, never loss). The files
themselves (chunks, rotation, flushing, fsync) are `mmstream.recording.writer`'s. Every write
goes through a `DiskGuard` (a full disk pauses the recording, never the pipeline); with
`record.mode: activity` inputs pass an `ActivityGate` first; with `retain_days`/`max_gb` a
background task deletes the oldest closed segments (`recording/segments.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from mmstream.config.record import RecordConfig
from mmstream.errors import SinkError
from mmstream.events import Event, encode, event_type
from mmstream.media import AudioChunk, VideoFrame
from mmstream.recording import format as fmt
from mmstream.recording.activity import ActivityGate, Released, activity_span
from mmstream.recording.disk import DiskGuard
from mmstream.recording.inputs import AnalysisGrid, InputEncoder, Written
from mmstream.recording.segments import apply_retention
from mmstream.recording.writer import RecordingFiles
from mmstream.runtime.stage import Sink

log = logging.getLogger(__name__)

MAX_QUEUED = 64  # writes waiting for the writer thread before producers wait
RETENTION_EVERY_S = 30.0  # at most; sooner with short segments


class RecorderSink(Sink):
    """`record:` in a pipeline file. Events arrive through `send`, raw inputs through the tap."""

    name = "recorder"

    def __init__(self, config: RecordConfig, device_id: str = "mmstream",
                 grid: AnalysisGrid | None = None) -> None:
        self.config = config
        # `grid`: where the pipeline's windows end; without one, "analysed" keeps every frame
        self.encoder = InputEncoder(config, grid)
        self.files = RecordingFiles(config, device_id)
        self.streams = set(config.streams) if config.streams is not None else None
        self._executor: ThreadPoolExecutor | None = None
        self._queued: deque[asyncio.Future[None]] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self.guard = DiskGuard(self.files.abandon)
        self.gate = ActivityGate(config) if config.mode == "activity" else None
        self._activity_tags = set(config.activity_tags)
        self.segments_deleted = 0
        self._retention: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="mmstream-recorder")
        await self._run(self.files.open)
        self._flusher = asyncio.create_task(self._flush_periodically())
        if self.config.retain_days is not None or self.config.max_gb is not None:
            self._retention = asyncio.create_task(self._keep_retention())
        return self

    async def send(self, event: Event) -> None:
        if not self._selected(event.stream_id):
            return
        if self.config.events:
            topic = fmt.Topic(event.stream_id, "event", event_type(event))
            data = encode(event)  # small and fast: stays on the loop
            await self._queue(self.guard.run, self.files.add, topic,
                              fmt.to_ns(event.t_capture), fmt.to_ns(event.t_publish), data,
                              event.seq)
        # activity mode decides by events even when they are not recorded
        span = activity_span(event, self._activity_tags) if self.gate is not None else None
        if span is not None:
            await self._queue(self._mark_activity, event.stream_id, *span)

    async def record_input(self, item: Any) -> None:
        """A raw input, from the tap at the head of the pipeline."""
        if not self.config.inputs or not isinstance(item, VideoFrame | AudioChunk):
            return
        if self._selected(item.stream_id):
            await self._queue(self._write_input, item)

    @property
    def segments(self) -> list[tuple[Path, float]]:
        """Each file written so far, in order, with the recorded time (s) of its first
        message: where the history points results (read-only; the writer thread appends)."""
        return self.files.segments

    def _selected(self, stream_id: str) -> bool:
        return self.streams is None or stream_id in self.streams

    def _write_input(self, item: VideoFrame | AudioChunk) -> None:
        """Writer thread: compress and append one raw input (skipped while paused)."""
        self.guard.run(self._encode_and_add, item)

    def _encode_and_add(self, item: VideoFrame | AudioChunk) -> None:
        self._add_inputs(self.encoder.encode(item, self._new_file))

    def _new_file(self, topic: fmt.Topic, t_ns: int) -> bool:
        # activity mode writes late, so a new file cannot be foreseen: the gate rotates
        # files at keyframes instead
        return self.gate is None and self.files.starts_file(topic, t_ns)

    def _add_inputs(self, written: list[Written]) -> None:
        if self.gate is None:
            for topic, t_ns, data in written:
                self.files.add(topic, t_ns, t_ns, data)
            return
        for topic, t_ns, data in written:
            self._add_released(self.gate.add(topic, t_ns, data))

    def _add_released(self, released: list[Released]) -> None:
        for topic, t_ns, data, boundary in released:
            self.files.add(topic, t_ns, t_ns, data, may_rotate=boundary)

    def _mark_activity(self, stream_id: str, start_s: float, end_s: float) -> None:
        assert self.gate is not None
        self.guard.run(self._add_released, self.gate.mark(stream_id, start_s, end_s))

    def _close_files(self) -> None:
        """Writer thread: what the encoders still hold, then the last file's summary."""
        self.guard.run(self._flush_encoders)
        self.guard.run(self.files.close)

    def _flush_encoders(self) -> None:
        self._add_inputs(self.encoder.flush(self._new_file))
        if self.gate is not None:
            self._add_released(self.gate.flush())

    def health(self) -> dict[str, Any]:
        """Recording on or paused (and why), what retention and activity mode dropped."""
        state = self.guard.state()
        if self._retention is not None:
            state["segments_deleted"] = self.segments_deleted
        if self.gate is not None:
            state["activity_kept_bytes"] = self.gate.kept_bytes
            state["activity_dropped_bytes"] = self.gate.dropped_bytes
        return state

    async def _keep_retention(self) -> None:
        """Delete the oldest closed segments (a worker thread: never the loop, never the
        writer thread), at start and then every RETENTION_EVERY_S or half a segment."""
        cfg = self.config
        assert cfg.dir is not None
        every = min(RETENTION_EVERY_S, (cfg.rotate_s or RETENTION_EVERY_S) / 2)
        while True:
            keep = {Path(p) for p in self.files.written[-1:]}
            deleted = await asyncio.to_thread(apply_retention, cfg.dir, keep,
                                              cfg.retain_days, cfg.max_gb)
            self.segments_deleted += len(deleted)
            await asyncio.sleep(every)

    async def _queue(self, work: Callable[..., None], *args: Any) -> None:
        """Hand work to the writer thread; wait only when too much is already queued."""
        assert self._executor is not None, "recorder used before it was opened"
        loop = asyncio.get_running_loop()
        self._queued.append(loop.run_in_executor(self._executor, work, *args))
        while self._queued and (self._queued[0].done() or len(self._queued) > MAX_QUEUED):
            await self._settle(self._queued.popleft())

    async def _settle(self, future: asyncio.Future[None]) -> None:
        try:
            await future
        except OSError as exc:
            raise SinkError(f"cannot write recording {self._current_path()}: "
                            f"{exc.strerror or exc}") from exc

    def _current_path(self) -> Path | str:
        return self.files.written[-1] if self.files.written else (
            self.config.path or self.config.dir or "?")

    async def _run(self, work: Callable[..., None], *args: Any) -> None:
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        await self._settle(loop.run_in_executor(self._executor, work, *args))

    async def _flush_periodically(self) -> None:
        """Close the open chunk even when nothing arrives (a stalled camera, a quiet mic)."""
        while True:
            await asyncio.sleep(self.config.flush_interval_s)
            await self._queue(self.guard.unless_paused, self.files.flush_if_due)

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._executor is None:
            return
        for task in (self._flusher, self._retention):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            while self._queued:
                await self._settle(self._queued.popleft())
            await self._run(self._close_files)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None
        log.info("recording written: %s", ", ".join(str(p) for p in self.files.written))

