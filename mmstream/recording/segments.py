"""The segments of a recording folder (`record.dir`): what each covers, and retention.

A daemon recording into a folder writes `rec-<UTC start>-<n>.mcap` files that rotate every
few minutes. This module lists them with their recorded span and streams — from each file's
MCAP summary, or by scanning the data of a file without one (the open segment, or one a power
cut interrupted) — finds the ones covering a moment of a stream (clips, the web view's /clip),
and picks the oldest closed ones to delete by age and total size (retention). Nothing here
writes: the recorder runs retention in a worker thread, never on its writer thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mcap.exceptions import McapError
from mcap.reader import make_reader

from mmstream.errors import SourceError
from mmstream.recording.format import Topic
from mmstream.recording.reader import RecordingReader

log = logging.getLogger(__name__)

PATTERN = "*.mcap"
DAY_S = 86400.0
GB = 1024**3


@dataclass(frozen=True)
class Segment:
    """One recording file: its recorded span (log times, ns) and the streams it holds."""

    path: Path
    size: int
    mtime: float
    start_ns: int
    end_ns: int
    streams: frozenset[str]
    complete: bool  # has its summary (closed cleanly)

    def covers(self, stream: str | None, t0_ns: int, t1_ns: int) -> bool:
        return ((stream is None or stream in self.streams)
                and self.start_ns < t1_ns and self.end_ns >= t0_ns)


def read_segment(path: Path) -> Segment | None:
    """A file's span and streams; None for a file that holds no message (or no MCAP)."""
    try:
        stat = path.stat()
    except OSError:
        return None  # deleted meanwhile (retention)
    found = _from_summary(path) or _by_scanning(path)
    if found is None:
        return None
    start, end, streams, complete = found
    return Segment(path, stat.st_size, stat.st_mtime, start, end, frozenset(streams), complete)


def _from_summary(path: Path) -> tuple[int, int, set[str], bool] | None:
    try:
        with path.open("rb") as file:
            summary = make_reader(file).get_summary()
    except (OSError, McapError, ValueError, EOFError):
        return None
    if summary is None or summary.statistics is None or not summary.statistics.message_count:
        return None
    streams = {topic.stream_id for channel in summary.channels.values()
               if (topic := Topic.from_metadata(dict(channel.metadata), channel.topic))}
    stats = summary.statistics
    return stats.message_start_time, stats.message_end_time, streams, True


def _by_scanning(path: Path) -> tuple[int, int, set[str], bool] | None:
    """A file without a summary: read what its complete chunks hold."""
    start = end = None
    streams: set[str] = set()
    try:
        with RecordingReader(path) as reader:
            for message in reader.messages():
                start = message.log_time if start is None else min(start, message.log_time)
                end = message.log_time if end is None else max(end, message.log_time)
                streams.add(message.topic.stream_id)
    except (SourceError, OSError):
        return None
    if start is None or end is None:
        return None
    return start, end, streams, False


def list_segments(folder: Path, unreadable: list[Path] | None = None) -> list[Segment]:
    """The folder's recordings in recorded-time order; files without a readable message
    are left out (and added to `unreadable`, when given)."""
    found = []
    for path in sorted(Path(folder).glob(PATTERN)):
        segment = read_segment(path)
        if segment is not None:
            found.append(segment)
        elif unreadable is not None and path.exists():
            unreadable.append(path)
    return sorted(found, key=lambda s: (s.start_ns, s.path.name))


def covering(segments: Iterable[Segment], stream: str | None, t0_ns: int,
             t1_ns: int) -> list[Segment]:
    """The segments holding any of [t0, t1) of `stream` (any stream: None), in time order."""
    return [s for s in segments if s.covers(stream, t0_ns, t1_ns)]


@dataclass(frozen=True)
class FileOnDisk:
    path: Path
    size: int
    mtime: float


def files_on_disk(folder: Path) -> list[FileOnDisk]:
    """The folder's recordings, oldest write first (retention needs no parsing)."""
    found = []
    for path in Path(folder).glob(PATTERN):
        try:
            stat = path.stat()
        except OSError:
            continue
        found.append(FileOnDisk(path, stat.st_size, stat.st_mtime))
    return sorted(found, key=lambda f: (f.mtime, f.path.name))


def expired(files: list[FileOnDisk], keep: set[Path], retain_days: float | None,
            max_gb: float | None, now: float | None = None) -> list[FileOnDisk]:
    """What retention deletes: closed files last written more than `retain_days` ago, then
    the oldest until the folder is within `max_gb`. Files in `keep` (the open segment) never."""
    now = time.time() if now is None else now
    keep = {p.resolve() for p in keep}
    closed = [f for f in files if f.path.resolve() not in keep]
    doomed: list[FileOnDisk] = []
    if retain_days is not None:
        doomed = [f for f in closed if now - f.mtime > retain_days * DAY_S]
    if max_gb is not None:
        total = sum(f.size for f in files) - sum(f.size for f in doomed)
        for candidate in closed:
            if total <= max_gb * GB:
                break
            if candidate not in doomed:
                doomed.append(candidate)
                total -= candidate.size
    return doomed


def apply_retention(folder: Path, keep: set[Path], retain_days: float | None,
                    max_gb: float | None) -> list[Path]:
    """Delete what `expired` picks; returns the deleted paths. A file already gone is fine."""
    deleted = []
    for file in expired(files_on_disk(folder), keep, retain_days, max_gb):
        try:
            file.path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("retention cannot delete %s: %s", file.path, exc.strerror or exc)
            continue
        deleted.append(file.path)
    if deleted:
        log.info("retention deleted %d segment(s), oldest %s", len(deleted), deleted[0].name)
    return deleted
