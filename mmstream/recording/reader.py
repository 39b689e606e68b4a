"""Reads mmstream MCAP recordings record by record, tolerating files cut short.

A recording interrupted by a crash or power cut has no summary and ends inside a record. This
reader walks the data section itself: it checks every record's length against the bytes left,
decompresses and CRC-checks each chunk before handing out any of its messages, and stops at
the first record that is incomplete or corrupt, remembering where (`RecordingReader.stop`).
So a replay gets every complete chunk and a precise account of what was lost.
"""

from __future__ import annotations

import errno
import heapq
import io
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import zstandard
from mcap.data_stream import ReadDataStream
from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.records import Channel, Chunk, Header, Message, Metadata, Schema
from mcap.stream_reader import CRCValidationError, breakup_chunk

from mmstream.errors import SourceError, missing_path
from mmstream.recording.format import Kind, Topic

MAGIC = b"\x89MCAP0\r\n"
_RECORD_HEAD = struct.Struct("<BQ")
# what damaged bytes raise while parsing or decompressing (lz4 raises RuntimeError)
_PARSE_ERRORS = (McapError, struct.error, UnicodeDecodeError, ValueError, EOFError,
                 zstandard.ZstdError, RuntimeError)


@dataclass(frozen=True)
class StopReport:
    """Where reading stopped before the end of a complete recording, and why."""

    offset: int
    size: int
    reason: str
    complete_chunks: int
    last_t: float | None  # log time (s) of the last message read, if any

    def describe(self, path: Path | str) -> str:
        read_to = f"up to t={self.last_t:.3f} s" if self.last_t is not None else "nothing"
        return (f"{path}: {self.reason} at byte {self.offset} of {self.size}; read {read_to} "
                f"({self.complete_chunks} complete chunks)")


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    topic: Topic
    log_time: int
    publish_time: int
    sequence: int
    data: bytes


@dataclass
class _Channel:
    name: str
    schema_name: str
    topic: Topic | None  # None: not an mmstream channel (kept for `info`)


@dataclass
class RecordingReader:
    """`with RecordingReader(path) as rec: for msg in rec.messages(kinds={"video"}): ...`"""

    path: Path
    header: Header | None = None
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    channels: dict[int, _Channel] = field(default_factory=dict)
    stop: StopReport | None = None
    complete: bool = False  # reached the end of the data section
    chunks: int = 0
    compressions: set[str] = field(default_factory=set)
    _schemas: dict[int, str] = field(default_factory=dict)
    _file: IO[bytes] | None = None
    _size: int = 0
    _last_log_time: int | None = None

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        try:
            self._file = self.path.open("rb")
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SourceError(missing_path(self.path, "recording")) from None
            raise SourceError(f"cannot read recording {self.path}: {exc.strerror}") from None
        self._size = self.path.stat().st_size
        if self._file.read(len(MAGIC)) != MAGIC:
            self.close()
            raise SourceError(f"{self.path}: not an MCAP recording (the file does not start "
                              "with the MCAP magic bytes)")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def messages(self, *, kinds: Iterable[Kind] | None = None,
                 streams: Iterable[str] | None = None, start_ns: int | None = None,
                 end_ns: int | None = None) -> Iterator[RecordedMessage]:
        """Messages in file order, filtered; stops quietly at a damaged end (see `stop`)."""
        wanted_kinds = set(kinds) if kinds is not None else None
        wanted_streams = set(streams) if streams is not None else None
        for message in self._all_messages(start_ns, end_ns):
            channel = self.channels.get(message.channel_id)
            topic = channel.topic if channel else None
            if topic is None:
                continue
            if wanted_kinds is not None and topic.kind not in wanted_kinds:
                continue
            if wanted_streams is not None and topic.stream_id not in wanted_streams:
                continue
            if start_ns is not None and message.log_time < start_ns:
                continue
            if end_ns is not None and message.log_time >= end_ns:
                continue
            yield RecordedMessage(topic, message.log_time, message.publish_time,
                                  message.sequence, message.data)

    def _all_messages(self, start_ns: int | None, end_ns: int | None) -> Iterator[Message]:
        for offset, opcode, body in self._records():
            try:
                if opcode == Opcode.CHUNK:
                    yield from self._chunk_messages(offset, body, start_ns, end_ns)
                elif opcode == Opcode.MESSAGE:
                    yield self._note(Message.read(_stream(body), len(body)))
                else:
                    self._take_record(opcode, body)
            except (CRCValidationError, *_PARSE_ERRORS) as exc:
                what = "fails its CRC" if isinstance(exc, CRCValidationError) else "is corrupt"
                self._stop(offset, f"{Opcode(opcode).name.lower()} record {what}")
                return
            if opcode in (Opcode.DATA_END, Opcode.FOOTER):
                self.complete = True
                return

    def _chunk_messages(self, offset: int, body: bytes, start_ns: int | None,
                        end_ns: int | None) -> Iterator[Message]:
        chunk = Chunk.read(_stream(body))
        records = breakup_chunk(chunk, validate_crc=True)  # whole chunk checked before use
        self.chunks += 1
        self.compressions.add(chunk.compression or "none")
        outside = ((start_ns is not None and chunk.message_end_time < start_ns)
                   or (end_ns is not None and chunk.message_start_time >= end_ns))
        for record in records:
            if isinstance(record, Message):
                if not outside:
                    yield self._note(record)
            else:
                self._take_record(_opcode_of(record), record)

    def _take_record(self, opcode: int, record: Any) -> None:
        """Schemas, channels, header and metadata: what messages need to be understood."""
        if isinstance(record, bytes):
            parse = {Opcode.SCHEMA: Schema.read, Opcode.CHANNEL: Channel.read,
                     Opcode.HEADER: Header.read, Opcode.METADATA: Metadata.read}.get(opcode)
            if parse is None:
                return
            record = parse(_stream(record))
        if isinstance(record, Schema):
            self._schemas[record.id] = record.name
        elif isinstance(record, Channel):
            topic = Topic.from_metadata(dict(record.metadata), record.topic)
            self.channels[record.id] = _Channel(record.topic,
                                                self._schemas.get(record.schema_id, ""), topic)
        elif isinstance(record, Header):
            self.header = record
        elif isinstance(record, Metadata):
            self.metadata[record.name] = dict(record.metadata)

    def _note(self, message: Message) -> Message:
        self._last_log_time = message.log_time
        return message

    def _records(self) -> Iterator[tuple[int, int, bytes]]:
        """(offset, opcode, body) of each whole record; records where the file is cut short."""
        assert self._file is not None, "reader is closed"
        file = self._file
        while True:
            offset = file.tell()
            head = file.read(_RECORD_HEAD.size)
            if not head:
                self._stop(offset, "the file ends before its summary (recording interrupted)")
                return
            if len(head) < _RECORD_HEAD.size:
                self._stop(offset, "the file ends inside a record header")
                return
            opcode, length = _RECORD_HEAD.unpack(head)
            left = self._size - offset - _RECORD_HEAD.size
            if length > left:
                name = Opcode(opcode).name.lower() if opcode in Opcode._value2member_map_ else (
                    f"opcode 0x{opcode:02x}")
                self._stop(offset, f"incomplete {name} record ({left} of {length} bytes)")
                return
            yield offset, opcode, file.read(length)

    def _stop(self, offset: int, reason: str) -> None:
        last = self._last_log_time / 1e9 if self._last_log_time is not None else None
        self.stop = StopReport(offset, self._size, reason, self.chunks, last)


def _stream(body: bytes) -> ReadDataStream:
    return ReadDataStream(io.BytesIO(body))


def _opcode_of(record: Any) -> int:
    return Opcode.SCHEMA if isinstance(record, Schema) else Opcode.CHANNEL


def in_time_order(messages: Iterable[RecordedMessage], window_ns: int,
                  order: dict[str, int]) -> Iterator[RecordedMessage]:
    """Re-sort nearly ordered messages by (log time, stream order, arrival), holding at most
    `window_ns` of them: streams recorded live interleave by arrival, not exactly by time."""
    heap: list[tuple[int, int, int, RecordedMessage]] = []
    newest = 0
    for arrival, message in enumerate(messages):
        rank = order.setdefault(message.topic.name, len(order))
        heapq.heappush(heap, (message.log_time, rank, arrival, message))
        newest = max(newest, message.log_time)
        while heap and heap[0][0] <= newest - window_ns:
            yield heapq.heappop(heap)[3]
    while heap:
        yield heapq.heappop(heap)[3]
