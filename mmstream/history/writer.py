"""The history's writer thread: events in from the event loop, batches out to the store.

`submit` only appends to a deque (never waits, never touches SQLite), so the publish path
pays nothing for history. The thread commits what has arrived at least every
`commit_interval_s` (and at once when a batch is full), so a SIGKILL loses at most the last
uncommitted interval; `close()` commits everything (SIGTERM, SIGHUP reload). Between batches it
runs retention in small steps. Whatever goes wrong with the store — a full disk, a damaged
file, a folder it cannot write — is said once (log and `health()`) and never reaches the
pipeline: while the disk is full, events are counted and let go, and writing is tried again
every `PAUSE_S`.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmstream.events import Event
from mmstream.history.rows import EventRow, event_row
from mmstream.history.store import (
    Retention,
    SqliteStore,
    Thumbnail,
    is_disk_full,
    is_unreadable,
    move_aside,
)

log = logging.getLogger(__name__)

BATCH_MAX = 5000  # rows in one transaction
MAX_PENDING = 200_000  # events waiting for the thread; beyond, the oldest are let go
PAUSE_S = 10.0  # after a full disk, try again this long after
RETENTION_EVERY_S = 5.0  # a retention pass at most this often (it goes on while it deletes)

# a picture to encode in the writer thread: (stream, epoch t, encode() -> jpeg bytes)
PendingPicture = tuple[str, float, Callable[[], bytes | None]]


@dataclass
class WriterState:
    """What health views show: a copy is read from the event loop."""

    state: str = "starting"  # ok | paused | off
    problem: str = ""
    written: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    moved_aside: str | None = None


class HistoryWriter(threading.Thread):
    def __init__(self, path: Path, retention: Retention, *, anchor: float,
                 window_s: float = 2.0, commit_interval_s: float = 0.5,
                 source: str | None = None) -> None:
        super().__init__(name="mmstream-history", daemon=True)
        self.path = path
        self.retention = retention
        self.anchor = anchor
        self.window_s = window_s
        self.commit_interval_s = commit_interval_s
        self.source = source  # the file a replay reads: results point into it
        self.status = WriterState()
        self._store = SqliteStore(path)
        self._events: deque[Event] = deque()
        self._pictures: deque[PendingPicture] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._paused_until = 0.0
        self._next_retention = 0.0
        # the daemon's own recording: (first recorded time, file) of each segment, in order
        self._segment_starts: list[float] = []
        self._segment_paths: list[Path] = []
        self._resolved: dict[Path, str] = {}  # resolved in this thread: no I/O on the loop

    # ---- the event loop's side --------------------------------------------------------------

    def open(self) -> None:
        """Open the store (blocking: call it off the loop); raises if it cannot be written."""
        self._store.open()
        if self._store.moved_to is not None:
            self.status.moved_aside = str(self._store.moved_to)
            self.status.problem = (f"{self.path} was unreadable: moved aside to "
                                   f"{self._store.moved_to}, a new store started")
        self.status.state = "ok"

    def submit(self, event: Event) -> None:
        if len(self._events) >= MAX_PENDING:
            self._events.popleft()
            self._count_drop("backlog")
        self._events.append(event)
        if len(self._events) >= BATCH_MAX:
            with self._wake:
                self._wake.notify()

    def segment_started(self, path: Path, first_t: float) -> None:
        """A recording segment (the daemon's `record:`) whose first message is at `first_t`
        (capture clock): events from then on point into it, at their offset."""
        if self._segment_paths and self._segment_paths[-1] == path:
            return
        self._segment_paths.append(path)  # the path first: the thread reads starts, then it
        self._segment_starts.append(first_t)

    def submit_picture(self, picture: PendingPicture) -> None:
        if len(self._pictures) < 100:  # pictures are a nicety: never a backlog of them
            self._pictures.append(picture)

    def close(self) -> None:
        """Commit everything submitted, then stop (blocking: call it off the loop)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self.is_alive():
            self.join()
        else:
            self._drain()
        self._store.close()

    def health(self) -> dict[str, Any]:
        status = self.status
        shown: dict[str, Any] = {"state": status.state, "path": str(self.path),
                                 "written": status.written, "pending": len(self._events)}
        if status.problem:
            shown["problem"] = status.problem
        if status.dropped:
            shown["dropped"] = dict(status.dropped)
        return shown

    # ---- the thread -------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            with self._wake:
                if not self._stopping and len(self._events) < BATCH_MAX:
                    self._wake.wait(self.commit_interval_s)
                stopping = self._stopping
            self._drain()
            if stopping:
                return
            self._retention()

    def _drain(self) -> None:
        while self._events or self._pictures:
            self._write(self._take_rows(), self._take_pictures())
            if not self._stopping:
                self._retention()  # between batches: a busy stream never starves retention

    def _take_rows(self) -> list[EventRow]:
        rows = []
        starts, paths = self._segment_starts, self._segment_paths
        while self._events and len(rows) < BATCH_MAX:
            event = self._events.popleft()
            row = event_row(event, self.anchor, self.window_s)
            # the segment where what it covers begins (a final comes after its words)
            began = row.t_start - (row.t - event.t_capture)  # on the capture clock
            segment = bisect_right(starts, began) - 1 if starts else -1
            if 0 <= segment < len(paths):
                path = paths[segment]
                if path not in self._resolved:
                    self._resolved[path] = str(path.resolve())
                row = row._replace(media_t=event.t_capture - starts[segment],
                                   source=self._resolved[path])
            rows.append(row)
        return rows

    def _take_pictures(self) -> list[Thumbnail]:
        pictures = []
        while self._pictures:
            stream, t, encode = self._pictures.popleft()
            try:
                jpeg = encode()
            except Exception as exc:  # a picture is never worth stopping the history for
                log.debug("history: thumbnail not made: %s", exc)
                continue
            if jpeg:
                pictures.append(Thumbnail(stream, t, jpeg))
        return pictures

    def _write(self, rows: list[EventRow], pictures: list[Thumbnail]) -> None:
        """One batch to the store; what cannot be written is counted (and said once)."""
        if self.status.state == "off" or time.monotonic() < self._paused_until:
            self._count_drop("paused" if self.status.state == "paused" else "off", len(rows))
            return
        try:
            self._store.write(rows, pictures, self.source)
        except Exception as exc:
            self._failed(exc, len(rows))
            return
        if self.status.state == "paused":
            log.warning("history: writing again to %s", self.path)
            self.status.state = "ok"
            self.status.problem = (f"an unreadable store was moved aside to "
                                   f"{self.status.moved_aside}" if self.status.moved_aside
                                   else "")
        self.status.written += len(rows)

    def _failed(self, exc: Exception, lost: int) -> None:
        if is_disk_full(exc):
            self._count_drop("disk_full", lost)
            self._paused_until = time.monotonic() + PAUSE_S
            if self.status.state != "paused":
                log.warning("history: disk full writing %s: history paused, the pipeline "
                            "goes on", self.path)
                self.status.state = "paused"
                self.status.problem = f"disk full writing {self.path}: history paused"
            return
        if is_unreadable(exc):
            self._count_drop("unreadable", lost)
            self._start_over(exc)
            return
        self._count_drop("error", lost)
        if self.status.state != "off":
            log.warning("history: cannot write %s (%s): history off, the pipeline goes on",
                        self.path, exc)
            self.status.state, self.status.problem = "off", f"cannot write {self.path}: {exc}"

    def _start_over(self, exc: Exception) -> None:
        """The file became unreadable under us: keep it aside, write a new one."""
        self._store.close()
        try:
            moved = move_aside(self.path)
            self._store = SqliteStore(self.path)
            self._store.open()
        except Exception as error:
            self.status.state, self.status.problem = "off", f"cannot write {self.path}: {error}"
            log.warning("history: %s", self.status.problem)
            return
        self.status.moved_aside = str(moved)
        self.status.problem = f"{self.path} became unreadable ({exc}): moved aside to {moved}"
        log.warning("history: %s, a new store started", self.status.problem)

    def _retention(self) -> None:
        now = time.monotonic()
        if now < self._next_retention or self.status.state != "ok":
            return
        try:
            deleted = self._store.retention_step(self.retention, time.time())
        except Exception as exc:
            if not is_disk_full(exc):
                log.warning("history: retention failed: %s", exc)
            deleted = 0
        # more to delete: the next step after the next batch, so ingest never waits long
        self._next_retention = now if deleted else now + RETENTION_EVERY_S

    def _count_drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.status.dropped[reason] = self.status.dropped.get(reason, 0) + n
