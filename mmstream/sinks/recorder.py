"""MCAP recorder: raw inputs and every published event, in files Foxglove Studio opens.

Where raw inputs come from: the pipeline builder puts a `RecordTap` stage (stages/record_tap.py)
first, before anything that may thin the input out (the overload governor sheds frames,
analysis stages may consume items), and it hands every frame and audio chunk to `send_media`.
A recorder built with `inputs_from_tap=False` (a plain sink) records the media items that reach
the sinks instead (`wants_media`).

All encoding (JPEG/PNG) and file I/O runs on one writer thread, in arrival order; the event
loop only queues work and waits when too much is queued (backpressure, never loss). Files are
chunked and compressed; the open chunk is closed every `flush_interval_s` and at rotation, so
a crash (even SIGKILL) loses at most that much: the reader stops at the last complete chunk.
Files are fsync'd when rotated or closed and, with `fsync`, at each periodic flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Self

from mcap.writer import CompressionType, Writer

from mmstream import __version__
from mmstream.config.record import RecordConfig
from mmstream.errors import SinkError
from mmstream.events import SCHEMA_VERSION, Event, encode, event_type
from mmstream.media import AudioChunk, VideoFrame
from mmstream.replay import format as fmt
from mmstream.runtime.stage import Sink

log = logging.getLogger(__name__)

MAX_QUEUED = 64  # writes waiting for the writer thread before producers wait
_COMPRESSION = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4,
                "none": CompressionType.NONE}


class McapFile:
    """One open recording file (writer thread only): registers channels as they first appear."""

    def __init__(self, path: Path, config: RecordConfig, device_id: str) -> None:
        self.path = path
        self.config = config
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = path.open("wb")
        self.writer = Writer(self._file, chunk_size=config.chunk_kb * 1024,
                             compression=_COMPRESSION[config.compression])
        self.writer.start(profile=fmt.PROFILE, library=f"mmstream {__version__}")
        self.writer.add_metadata(fmt.METADATA_NAME, {
            "format": fmt.RECORDING_FORMAT, "mmstream": __version__,
            "event_schema": SCHEMA_VERSION, "device_id": device_id,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "record": json.dumps(config.model_dump(mode="json"), sort_keys=True)})
        self._schemas: dict[str, int] = {}
        self._channels: dict[fmt.Topic, int] = {}
        self.first_log_ns: int | None = None
        self.messages = 0
        _fsync_dir(path.parent)

    def add(self, topic: fmt.Topic, log_ns: int, publish_ns: int, data: bytes,
            sequence: int = 0) -> None:
        channel = self._channels.get(topic)
        if channel is None:
            channel = self._channels[topic] = self._register(topic)
        if self.first_log_ns is None:
            self.first_log_ns = log_ns
        self.writer.add_message(channel, log_ns, data, publish_ns, sequence & 0xFFFFFFFF)
        self.messages += 1

    def _register(self, topic: fmt.Topic) -> int:
        schema = self._schemas.get(topic.schema_name)
        if schema is None:
            schema = self._schemas[topic.schema_name] = self.writer.register_schema(
                topic.schema_name, "jsonschema", fmt.schema_bytes(topic.schema_name))
        return self.writer.register_channel(topic.name, "json", schema, topic.metadata())

    def size(self) -> int:
        return self._file.tell()

    def flush(self, fsync: bool) -> None:
        """Close the open chunk and hand it to the OS (and the disk, with fsync)."""
        self.writer.flush()
        if fsync:
            os.fsync(self._file.fileno())

    def close(self, fsync: bool) -> None:
        self.writer.finish()
        self._file.flush()
        if fsync:
            os.fsync(self._file.fileno())
        self._file.close()


def _fsync_dir(folder: Path) -> None:
    """Make a new file's directory entry durable too (where the OS allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class RecordingFiles:
    """The sequence of files of one recording session: naming, rotation, flushing."""

    _claimed: ClassVar[set[Path]] = set()  # every file written by this process

    def __init__(self, config: RecordConfig, device_id: str) -> None:
        self.config = config
        self.device_id = device_id
        self.current: McapFile | None = None
        self.written: list[Path] = []
        self._started = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self._last_flush = time.monotonic()

    def _next_path(self) -> Path:
        """The next file name no recorder of this process has used: a pipeline rebuilt by a
        SIGHUP reload goes on in a new file instead of overwriting the recording so far."""
        number = len(self.written)
        while (path := self._path_for(number)).resolve() in self._claimed:
            number += 1
        self._claimed.add(path.resolve())
        return path

    def _path_for(self, number: int) -> Path:
        cfg = self.config
        if cfg.path is not None:
            rotating = cfg.rotate_mb is not None or cfg.rotate_s is not None
            if not rotating and number == 0:
                return cfg.path
            return cfg.path.with_name(f"{cfg.path.stem}-{number:03d}.mcap")
        assert cfg.dir is not None
        return cfg.dir / f"rec-{self._started}-{number:04d}.mcap"

    def open(self) -> McapFile:
        path = self._next_path()
        self.current = McapFile(path, self.config, self.device_id)
        self.written.append(path)
        return self.current

    def add(self, topic: fmt.Topic, log_ns: int, publish_ns: int, data: bytes,
            sequence: int = 0) -> None:
        current = self.current or self.open()
        if current.messages and self._rotation_due(current, log_ns):
            current.close(self.config.fsync)
            log.info("recording rotated: %s done, %d messages", current.path, current.messages)
            current = self.open()
        current.add(topic, log_ns, publish_ns, data, sequence)
        if time.monotonic() - self._last_flush >= self.config.flush_interval_s:
            self.flush()

    def _rotation_due(self, current: McapFile, log_ns: int) -> bool:
        cfg = self.config
        if cfg.rotate_mb is not None and current.size() >= cfg.rotate_mb * 1024 * 1024:
            return True
        first = current.first_log_ns
        return (cfg.rotate_s is not None and first is not None
                and log_ns - first >= cfg.rotate_s * 1e9)

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if self.current is not None:
            self.current.flush(self.config.fsync)

    def flush_if_due(self) -> None:
        if time.monotonic() - self._last_flush >= self.config.flush_interval_s:
            self.flush()

    def close(self) -> None:
        if self.current is not None:
            self.current.close(self.config.fsync)
            self.current = None


class RecorderSink(Sink):
    """`record:` in a pipeline file. Events arrive through `send`, raw inputs through the tap."""

    name = "recorder"

    def __init__(self, config: RecordConfig, device_id: str = "mmstream", *,
                 inputs_from_tap: bool = False) -> None:
        self.config = config
        self.wants_media = not inputs_from_tap
        self.files = RecordingFiles(config, device_id)
        self.streams = set(config.streams) if config.streams is not None else None
        self._executor: ThreadPoolExecutor | None = None
        self._queued: deque[asyncio.Future[None]] = deque()
        self._flusher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="mmstream-recorder")
        await self._run(self.files.open)
        self._flusher = asyncio.create_task(self._flush_periodically())
        return self

    async def send(self, event: Event) -> None:
        if not self.config.events or not self._selected(event.stream_id):
            return
        topic = fmt.Topic(event.stream_id, "event", event_type(event))
        data = encode(event)  # small and fast: stays on the loop
        await self._queue(self.files.add, topic, fmt.to_ns(event.t_capture),
                          fmt.to_ns(event.t_publish), data, event.seq)

    async def send_media(self, item: Any) -> None:
        if not self.config.inputs or not isinstance(item, VideoFrame | AudioChunk):
            return
        if self._selected(item.stream_id):
            await self._queue(self._write_input, item)

    def _selected(self, stream_id: str) -> bool:
        return self.streams is None or stream_id in self.streams

    def _write_input(self, item: VideoFrame | AudioChunk) -> None:
        """Writer thread: compress and append one raw input."""
        cfg = self.config
        if isinstance(item, VideoFrame):
            topic = fmt.Topic(item.stream_id, "video")
            data = fmt.encode_frame(item, cfg.frame_format, cfg.jpeg_quality)
        else:
            topic = fmt.Topic(item.stream_id, "audio")
            data = fmt.encode_audio(item, cfg.audio_format)
        t_ns = fmt.to_ns(item.t_capture)
        self.files.add(topic, t_ns, t_ns, data)

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
            await self._queue(self.files.flush_if_due)

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._executor is None:
            return
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        try:
            while self._queued:
                await self._settle(self._queued.popleft())
            await self._run(self.files.close)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None
        log.info("recording written: %s", ", ".join(str(p) for p in self.files.written))

