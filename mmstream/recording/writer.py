"""Writes mmstream recordings: MCAP files that Foxglove Studio opens, in rotated sequences.

Files are chunked and compressed; the open chunk is closed every `flush_interval_s` — of wall
time and of recorded time, whichever comes first (a media file recorded as fast as possible
covers 10 s of media in a fraction of a second) — and at rotation, so a crash (even SIGKILL)
loses at most that much recorded time: the reader stops at the last
complete chunk. Files are fsync'd when rotated or closed and, with `fsync`, at each periodic
flush. Not thread-safe: one thread (the recorder sink's writer thread) does all the writing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, ClassVar

from mcap.writer import CompressionType, Writer

from mmstream import __version__
from mmstream.config.record import RecordConfig
from mmstream.events import SCHEMA_VERSION
from mmstream.recording import format as fmt

log = logging.getLogger(__name__)

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

    def has(self, topic: fmt.Topic) -> bool:
        return topic in self._channels

    def size(self) -> int:
        return self._file.tell()

    def flush(self, fsync: bool) -> None:
        """Close the open chunk and hand it to the OS (and the disk, with fsync)."""
        self.writer.flush()
        if fsync:
            os.fsync(self._file.fileno())

    def abandon(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._file.close()  # flushing what the buffer holds may fail again: fine
        if not self.messages:
            with contextlib.suppress(OSError):
                self.path.unlink()

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
        # (file, recorded time of its first message: where a replay's --start counts from),
        # appended by the writer thread; the history reads it (sinks/recorder.py: segments)
        self.segments: list[tuple[Path, float]] = []
        self._started = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self._last_flush = time.monotonic()
        self._chunk_start_ns: int | None = None  # recorded time of the open chunk's first message

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
        try:
            self.current = McapFile(path, self.config, self.device_id)
        except OSError:
            with contextlib.suppress(OSError):  # a full disk: no stub file left behind
                path.unlink()
            raise
        self.written.append(path)
        return self.current

    def add(self, topic: fmt.Topic, log_ns: int, publish_ns: int, data: bytes,
            sequence: int = 0, may_rotate: bool = True) -> None:
        """`may_rotate`: False holds a due rotation back (activity mode: until a keyframe)."""
        current = self.current or self.open()
        if current.messages and may_rotate and self._rotation_due(current, log_ns):
            current.close(self.config.fsync)
            self._chunk_start_ns = None
            log.info("recording rotated: %s done, %d messages", current.path, current.messages)
            current = self.open()
        current.add(topic, log_ns, publish_ns, data, sequence)
        if current.messages == 1:
            self.segments.append((current.path, log_ns / 1e9))
        if self._chunk_start_ns is None:
            self._chunk_start_ns = log_ns
        recorded_ns = log_ns - self._chunk_start_ns
        if (recorded_ns >= self.config.flush_interval_s * 1e9
                or time.monotonic() - self._last_flush >= self.config.flush_interval_s):
            self.flush()

    def starts_file(self, topic: fmt.Topic, log_ns: int) -> bool:
        """Whether a message of `topic` logged at `log_ns` is its channel's first in a file
        (the H.264 encoder starts each file with a keyframe, so every file plays alone)."""
        current = self.current
        return (current is None or (current.messages > 0 and self._rotation_due(current, log_ns))
                or not current.has(topic))

    def _rotation_due(self, current: McapFile, log_ns: int) -> bool:
        cfg = self.config
        if cfg.rotate_mb is not None and current.size() >= cfg.rotate_mb * 1024 * 1024:
            return True
        first = current.first_log_ns
        return (cfg.rotate_s is not None and first is not None
                and log_ns - first >= cfg.rotate_s * 1e9)

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        self._chunk_start_ns = None
        if self.current is not None:
            self.current.flush(self.config.fsync)

    def flush_if_due(self) -> None:
        if time.monotonic() - self._last_flush >= self.config.flush_interval_s:
            self.flush()

    def close(self) -> None:
        if self.current is not None:
            self.current.close(self.config.fsync)
            self.current = None

    def abandon(self) -> None:
        """Give up the open file after a failed write (a full disk): it keeps its complete
        chunks (the reader stops at the damage); the next message opens a new file."""
        current, self.current = self.current, None
        self._chunk_start_ns = None
        if current is not None:
            current.abandon()
