"""What a report is made from: the events of a recording or of an events file.

Damaged inputs are read as far as they go: a recording cut short up to its last complete chunk
(the reader checks each chunk's CRC), an events file up to a last line cut mid-write. What was
lost is said in `LoadedEvents.damage`; an input with nothing readable is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec

from mmstream.errors import SourceError
from mmstream.events import Event, decode
from mmstream.paths import missing_reason
from mmstream.recording.reader import MAGIC, RecordingReader

MEDIA_SUFFIXES = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi", ".wav", ".flac", ".mp3",
                            ".ogg", ".m4a"})


@dataclass(frozen=True)
class LoadedEvents:
    path: Path
    events: list[Event]
    is_recording: bool
    video_frames: int = 0  # a recording's video messages (its thumbnails' source)
    damage: str = ""  # where a damaged input stops; "" when it was read whole


def load_events(path: Path) -> LoadedEvents:
    """The events of a recording (.mcap) or an events file (JSONL, one envelope a line)."""
    if (missing := missing_reason(path)) is not None:
        raise SourceError(f"{path}: {missing}")
    if path.is_dir():
        raise SourceError(f"{path} is a folder: give a recording (.mcap) or an events file "
                          "(.jsonl)")
    if is_recording(path):
        return _recording_events(path)
    if path.suffix.lower() in MEDIA_SUFFIXES:
        raise SourceError(f"{path} is a media file: replay it first (mmstream replay {path} "
                          f"--out events.jsonl), then report on events.jsonl --media {path}")
    return _jsonl_events(path)


def is_recording(path: Path) -> bool:
    """By suffix, or by the MCAP magic bytes for a recording under another name."""
    if path.suffix.lower() == ".mcap":
        return True
    try:
        with path.open("rb") as file:
            return file.read(len(MAGIC)) == MAGIC
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from None


def _recording_events(path: Path) -> LoadedEvents:
    events: list[Event] = []
    frames = 0
    with RecordingReader(path) as reader:
        for message in reader.messages(kinds=("event", "video")):
            if message.topic.kind == "video":
                frames += 1
            else:
                events.append(_decode(message.data, f"{path} {message.topic.name}"))
        damage = reader.stop.describe(path) if reader.stop and not reader.complete else ""
    if not events and not frames:
        if damage:
            raise SourceError(f"{damage}: nothing readable to report")
        raise SourceError(f"{path}: the recording holds no events and no video frames")
    return LoadedEvents(path, events, True, frames, damage)


def _jsonl_events(path: Path) -> LoadedEvents:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read events from {path}: {exc.strerror}") from None
    lines = data.splitlines()
    events: list[Event] = []
    damage = ""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append(decode(line))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            # a writer killed mid-line leaves a last line without its newline: keep the rest
            if number == len(lines) and not data.endswith(b"\n") and events:
                damage = (f"{path}: the last line ({number}) is cut short; read "
                          f"{len(events)} events up to t={events[-1].t_capture:.3f} s")
                break
            raise SourceError(f"{path} line {number}: not an mmstream event ({exc})") from None
    if not events:
        raise SourceError(f"{path}: no events (the file is empty)")
    return LoadedEvents(path, events, False, 0, damage)


def _decode(data: bytes, where: str) -> Event:
    try:
        return decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SourceError(f"{where}: not an mmstream event ({exc})") from None
