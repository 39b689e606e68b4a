"""What a recording holds (`mmstream info rec.mcap`), read the crash-tolerant way.

The whole data section is scanned (not just the summary), so counts are right for files cut
short too, and `RecordingInfo.stopped` says where such a file stops. The text `mmstream info`
prints is made from this in the CLI (`cli/replay_view.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from mmstream.recording.format import Topic
from mmstream.recording.reader import RecordingReader


@dataclass
class ChannelInfo:
    topic: str
    stream_id: str
    kind: str
    event_type: str
    schema: str
    messages: int = 0
    bytes: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    detail: str = ""  # the codec or image format, audio format and rate

    @property
    def bytes_per_hour(self) -> float:
        """Message bytes per hour of its span (before chunk compression); 0 when too short."""
        return self.bytes / self.span_s * 3600 if self.span_s > 0 else 0.0

    @property
    def span_s(self) -> float:
        if self.first_ns is None or self.last_ns is None:
            return 0.0
        return (self.last_ns - self.first_ns) / 1e9


@dataclass
class RecordingInfo:
    path: str
    size: int
    complete: bool
    stopped: str
    profile: str
    library: str
    metadata: dict[str, dict[str, str]]
    chunks: int
    compression: list[str]
    channels: list[ChannelInfo] = field(default_factory=list)

    @property
    def start_s(self) -> float | None:
        firsts = [c.first_ns for c in self.channels if c.first_ns is not None]
        return min(firsts) / 1e9 if firsts else None

    @property
    def end_s(self) -> float | None:
        lasts = [c.last_ns for c in self.channels if c.last_ns is not None]
        return max(lasts) / 1e9 if lasts else None

    @property
    def duration_s(self) -> float:
        inputs = [c for c in self.channels if c.kind in ("video", "audio") and c.messages]
        chosen = inputs or [c for c in self.channels if c.messages]
        if not chosen:
            return 0.0
        first = min(c.first_ns for c in chosen if c.first_ns is not None)
        last = max(c.last_ns for c in chosen if c.last_ns is not None)
        return (last - first) / 1e9

    def schemas(self) -> list[str]:
        return sorted({c.schema for c in self.channels if c.schema})

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in vars(self).items() if k != "channels"}
        data["duration_s"] = self.duration_s
        data["schemas"] = self.schemas()
        data["channels"] = [{**vars(c), "span_s": c.span_s, "bytes_per_hour": c.bytes_per_hour}
                            for c in self.channels]
        return data


def inspect_recording(path: Path) -> RecordingInfo:
    with RecordingReader(path) as reader:
        found: dict[str, ChannelInfo] = {}
        for channel in reader.channels.values():  # channels written before any message
            _channel_info(found, channel.name, channel.topic, channel.schema_name)
        for message in reader.messages():
            channel = _channel_info(found, message.topic.name, message.topic,
                                    _schema_of(reader, message.topic.name))
            channel.messages += 1
            channel.bytes += len(message.data)
            if channel.first_ns is None:
                channel.first_ns = message.log_time
                channel.detail = _detail(message.topic.kind, message.data)
            channel.first_ns = min(channel.first_ns, message.log_time)
            channel.last_ns = max(channel.last_ns or 0, message.log_time)
        header = reader.header
        return RecordingInfo(
            str(path), path.stat().st_size, reader.complete,
            reader.stop.describe(path) if reader.stop and not reader.complete else "",
            header.profile if header else "", header.library if header else "",
            reader.metadata, reader.chunks, sorted(reader.compressions),
            sorted(found.values(), key=lambda c: (c.stream_id, c.kind, c.event_type)))


def _channel_info(found: dict[str, ChannelInfo], name: str, topic: Topic | None,
                  schema: str) -> ChannelInfo:
    if name not in found:
        found[name] = ChannelInfo(name, topic.stream_id if topic else "",
                                  topic.kind if topic else "other",
                                  topic.event_type if topic else "", schema)
    return found[name]


def _schema_of(reader: RecordingReader, topic_name: str) -> str:
    for channel in reader.channels.values():
        if channel.name == topic_name:
            return channel.schema_name
    return ""


def _detail(kind: str, data: bytes) -> str:
    """A word on the content of a channel's first message (format, size, rate)."""
    if kind not in ("video", "audio"):
        return ""
    try:
        message = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return "undecodable"
    if kind == "audio":
        return f"{message.get('format')} {message.get('sample_rate')} Hz"
    return str(message.get("format", ""))

