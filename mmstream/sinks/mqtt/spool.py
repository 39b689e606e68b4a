"""The MQTT sink's durable outbox: SQLite in WAL mode, one transaction per batch.

Every QoS >= 1 event is written here before it is sent and deleted only once the broker has
acknowledged it (and every event before it), so a broker outage or a crash of mmstream loses
nothing that reached the spool: on the next start the rows are sent again, oldest first.

Bounds and what happens when they are reached (the shedding policy):
- `max_age_s`: rows older than this are dropped (the news is stale), oldest first;
- `max_events` / `max_bytes`: the spool sheds down to 90 % of the limit, taking the oldest rows
  of the lowest priority first: partial transcripts, scene tags and fused windows (video rate)
  go first, then status events, and final transcripts and emotion changes only when nothing
  else is left. Rows already handed to the broker are never shed.
Every shed or expired row is counted (`Spool.dropped`, by reason).

The spool also keeps the last `seq` stamped per stream, so a restarted mmstream continues the
numbering and subscribers that dedupe by (`stream_id`, `seq`) never mistake new events for old.
A lock file (`<spool>.lock`, flock) keeps a second process off the same spool. Checkpoints
(the only fsyncs with synchronous=normal) run on a thread of their own, off the publish path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mmstream.errors import SinkError
from mmstream.events import EmotionEvent, Event, StatusEvent, TranscriptEvent

SHED_FIRST = 0  # partial transcripts, scene tags, fused windows: superseded within seconds
SHED_LATER = 1  # status events
SHED_LAST = 2  # final transcripts and emotion changes: what subscribers act on
SHED_TARGET = 0.9  # shed down to this fraction of a limit, so shedding is rare and batched
READY_MAX = 10_000  # spooled rows kept in memory for sending; the rest are read back in pages
PAGE = 1000
CHECKPOINT_INTERVAL_S = 0.5
BACKSTOP_CHECKPOINT_PAGES = 20_000  # ~80 MB of WAL

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS streams (stream_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL,
                                    reserved INTEGER NOT NULL DEFAULT 0);
"""
# `reserved`: a seq no run has gone past, stored ahead of use (in blocks, in the transaction
# that stores the rows). A restart continues after it, so a run that died (SIGKILL, a full
# disk) never hands out a number again; a clean close brings it back down to the last seq
# stamped (`release_seqs`), so an ordinary restart goes on without a gap.
SEQ_BLOCK = 10_000


class SpoolFull(SinkError):
    """The spool's disk is full: nothing could be stored (the transaction was rolled back)."""


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or (
            "disk is full" in str(exc))
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def shed_priority(event: Event) -> int:
    if isinstance(event, TranscriptEvent):
        return SHED_LAST if event.payload.final else SHED_FIRST
    if isinstance(event, EmotionEvent):
        return SHED_LAST
    if isinstance(event, StatusEvent):
        return SHED_LATER
    return SHED_FIRST


@dataclass(slots=True)
class Outgoing:
    """One message on its way to the broker."""

    topic: str
    payload: bytes
    qos: int = 1
    priority: int = SHED_FIRST
    stream_id: str = ""
    seq: int = 0


@dataclass(frozen=True, slots=True)
class SpoolLimits:
    max_events: int = 1_000_000
    max_bytes: int = 256 * 1024 * 1024
    max_age_s: float = 7 * 24 * 3600.0
    max_held_events: int = 20_000  # in memory while the disk is full (send_queue.py)


# (row id, topic, payload, qos): what the publisher needs to send a spooled row
Row = tuple[int, str, bytes, int]


class Spool:
    """SQLite outbox; used from one thread only (the MQTT sink's publisher thread)."""

    def __init__(self, path: Path | None, limits: SpoolLimits = SpoolLimits(),
                 synchronous: Literal["normal", "full"] = "normal") -> None:
        self.path = path
        self.limits = limits
        self.synchronous = synchronous
        self.depth = 0
        self.bytes = 0
        self.dropped: Counter[str] = Counter()
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._checkpointer: Checkpointer | None = None

    @property
    def durable(self) -> bool:
        return self.path is not None

    def open(self) -> None:
        where = str(self.path) if self.path else ":memory:"
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._lock(self.path)
            db = sqlite3.connect(where, timeout=5.0, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            # the checkpointer thread does this; here only a backstop if it falls far behind
            db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_CHECKPOINT_PAGES}")
            db.executescript(SCHEMA)
            if "reserved" not in {row[1] for row in db.execute("PRAGMA table_info(streams)")}:
                db.execute("ALTER TABLE streams ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0")
            count, size = db.execute(
                "SELECT count(*), coalesce(sum(length(payload) + length(topic)), 0) FROM outbox"
            ).fetchone()
        except (sqlite3.DatabaseError, OSError) as exc:
            self._unlock()
            raise SinkError(f"cannot open the MQTT spool {where}: {exc}") from None
        self._db, self.depth, self.bytes = db, int(count), int(size)
        if self.path is not None:
            self._checkpointer = Checkpointer(self.path)
            self._checkpointer.start()

    def _lock(self, path: Path) -> None:
        """One process per spool: two would send every row twice."""
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise SinkError(f"the MQTT spool {path} is in use by another mmstream "
                            f"(pid {holder})") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the file stays: removing it would race a new owner
            self._lock_fd = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise SinkError("the MQTT spool is not open")
        return self._db

    def last_seqs(self) -> dict[str, int]:
        """Where numbering goes on per stream: past every seq a previous run may have used."""
        return dict(self.db.execute(
            "SELECT stream_id, max(last_seq, reserved) FROM streams").fetchall())

    def release_seqs(self, stamped: Mapping[str, int]) -> None:
        """A clean close: the next run continues right after the last seq stamped per stream
        (`stamped`, which includes events that could not be stored), not after the block."""
        with self._transaction():
            self.db.execute("UPDATE streams SET reserved = last_seq")
            self.db.executemany(
                "INSERT INTO streams VALUES (?, 0, ?) ON CONFLICT(stream_id) "
                "DO UPDATE SET reserved = max(last_seq, excluded.reserved)", stamped.items())

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction; a full disk raises SpoolFull with the counters as they were."""
        db = self.db
        saved = self.depth, self.bytes, Counter(self.dropped)
        try:
            db.execute("BEGIN")
            yield
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:  # a failed COMMIT has rolled back already
                db.execute("ROLLBACK")
            self.depth, self.bytes, self.dropped = saved
            if _is_disk_full(exc):
                raise SpoolFull(f"the disk of the MQTT spool {self.path} is full") from None
            raise

    def append(self, items: list[Outgoing], protect_through: int) -> tuple[list[Row], int]:
        """Store `items` in one transaction; returns their rows and how many rows were shed.

        Rows with id <= `protect_through` are with the broker already and are never shed.
        """
        db = self.db
        now = time.time()
        rows: list[Row] = []
        seqs: dict[str, int] = {}
        stored = [item for item in items if item.qos > 0]
        for item in items:
            if item.stream_id:
                seqs[item.stream_id] = max(item.seq, seqs.get(item.stream_id, 0))
        with self._transaction():
            db.executemany(
                "INSERT INTO outbox (topic, payload, qos, priority, created) "
                "VALUES (?, ?, ?, ?, ?)",
                [(i.topic, i.payload, i.qos, i.priority, now) for i in stored])
            if stored:  # AUTOINCREMENT ids of one transaction on an exclusive db are consecutive
                last = int(db.execute("SELECT last_insert_rowid()").fetchone()[0])
                first = last - len(stored) + 1
                rows = [(first + n, i.topic, i.payload, i.qos) for n, i in enumerate(stored)]
                self.bytes += sum(len(i.payload) + len(i.topic) for i in stored)
            db.executemany(  # the reservation moves a block ahead once a seq reaches it
                "INSERT INTO streams VALUES (?, ?, ? + ?) ON CONFLICT(stream_id) DO UPDATE SET "
                "last_seq = max(last_seq, excluded.last_seq), reserved = CASE WHEN "
                "excluded.last_seq >= reserved THEN excluded.reserved ELSE reserved END",
                [(stream, seq, seq, SEQ_BLOCK) for stream, seq in seqs.items()])
            self.depth += len(rows)
            shed = self._shed_if_full(protect_through)
        return rows, shed

    def _shed_if_full(self, protect_through: int) -> int:
        limits = self.limits
        if self.depth <= limits.max_events and self.bytes <= limits.max_bytes:
            return 0
        excess_events = self.depth - int(limits.max_events * SHED_TARGET)
        excess_bytes = self.bytes - int(limits.max_bytes * SHED_TARGET)
        shed = 0
        for priority in (SHED_FIRST, SHED_LATER, SHED_LAST):
            while excess_events > 0 or excess_bytes > 0:
                victims = self.db.execute(
                    "SELECT id, length(payload) + length(topic) FROM outbox "
                    "WHERE priority = ? AND id > ? ORDER BY id LIMIT 1000",
                    (priority, protect_through)).fetchall()
                if not victims:
                    break
                taken = []
                for row_id, size in victims:
                    if excess_events <= 0 and excess_bytes <= 0:
                        break
                    taken.append((row_id,))
                    excess_events -= 1
                    excess_bytes -= size
                    self.bytes -= size
                self.db.executemany("DELETE FROM outbox WHERE id = ?", taken)
                self.depth -= len(taken)
                self.dropped[f"spool_full:priority{priority}"] += len(taken)
                shed += len(taken)
        return shed

    def read_after(self, after_id: int, limit: int = 1000) -> list[Row]:
        return self.db.execute(
            "SELECT id, topic, payload, qos FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit)).fetchall()

    def ack_through(self, row_id: int, acked_bytes: int) -> None:
        """The broker has every row up to `row_id`: delete them (one statement, one commit).
        On a full disk (a delete needs room in the WAL too) SpoolFull: the rows stay."""
        with self._transaction():
            cursor = self.db.execute("DELETE FROM outbox WHERE id <= ?", (row_id,))
        self.depth = max(0, self.depth - cursor.rowcount)
        self.bytes = max(0, self.bytes - acked_bytes)

    def expire(self, protect_through: int, now: float | None = None) -> int:
        """Drop rows older than `max_age_s` (oldest first); returns how many went."""
        cutoff = (now or time.time()) - self.limits.max_age_s
        oldest = self.db.execute("SELECT created FROM outbox WHERE id > ? ORDER BY id LIMIT 1",
                                 (protect_through,)).fetchone()
        if oldest is None or oldest[0] >= cutoff:
            return 0  # rows are stored in time order: nothing older further on either
        expired = 0
        while True:
            victims = self.db.execute(
                "SELECT id, length(payload) + length(topic) FROM outbox "
                "WHERE id > ? AND created < ? ORDER BY id LIMIT 1000",
                (protect_through, cutoff)).fetchall()
            if not victims:
                return expired
            with self._transaction():
                self.db.executemany("DELETE FROM outbox WHERE id = ?", [(v[0],) for v in victims])
            expired += len(victims)
            self.depth -= len(victims)
            self.bytes -= sum(v[1] for v in victims)
            self.dropped["spool_expired"] += len(victims)

    def oldest_age_s(self, now: float | None = None) -> float:
        row = self.db.execute("SELECT created FROM outbox ORDER BY id LIMIT 1").fetchone()
        return 0.0 if row is None else max(0.0, (now or time.time()) - row[0])

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        db, self._db = self._db, None
        try:
            if db is not None:
                db.close()  # the last connection checkpoints and removes the WAL
        finally:
            self._unlock()  # also when the checkpoint failed (a full disk)


class Checkpointer:
    """Copies the WAL into the database file on a thread and connection of its own.

    With synchronous=NORMAL a WAL commit does not fsync; a checkpoint does, and it can take
    tens of milliseconds. Done here (PASSIVE: never waits for the writer), it never delays a
    publish.
    """

    def __init__(self, path: Path, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self.path = path
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        try:
            while not self._stop.wait(self.interval_s):
                with contextlib.suppress(sqlite3.OperationalError):
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
