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
import fcntl
import os
import sqlite3
import threading
import time
from collections import Counter, OrderedDict, deque
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
ACK_BATCH = 500  # delete acknowledged rows after this many acks ...
ACK_INTERVAL_S = 0.05  # ... or this long, whichever comes first
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
CREATE TABLE IF NOT EXISTS streams (stream_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
"""


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
        return dict(self.db.execute("SELECT stream_id, last_seq FROM streams").fetchall())

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
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT INTO outbox (topic, payload, qos, priority, created) "
                "VALUES (?, ?, ?, ?, ?)",
                [(i.topic, i.payload, i.qos, i.priority, now) for i in stored])
            if stored:  # AUTOINCREMENT ids of one transaction on an exclusive db are consecutive
                last = int(db.execute("SELECT last_insert_rowid()").fetchone()[0])
                first = last - len(stored) + 1
                rows = [(first + n, i.topic, i.payload, i.qos) for n, i in enumerate(stored)]
                self.bytes += sum(len(i.payload) + len(i.topic) for i in stored)
            db.executemany(
                "INSERT INTO streams VALUES (?, ?) ON CONFLICT(stream_id) "
                "DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)", seqs.items())
            self.depth += len(rows)
            shed = self._shed_if_full(protect_through)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
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
        """The broker has every row up to `row_id`: delete them (one statement, one commit)."""
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
            self.db.execute("BEGIN")
            self.db.executemany("DELETE FROM outbox WHERE id = ?", [(v[0],) for v in victims])
            self.db.execute("COMMIT")
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
        if self._db is not None:
            self._db.close()  # the last connection checkpoints and removes the WAL
            self._db = None
        self._unlock()


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


class SendQueue:
    """Which spooled rows go out next, which await their PUBACK, and what can be deleted.

    Rows go out in id order; `cursor` is the last one handed to the client. Every row up to
    the oldest still in flight (or up to the cursor) is acknowledged, so one range delete
    settles a whole batch of acks, in whatever order they came.
    """

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.cursor = 0
        self.in_flight: OrderedDict[int, int] = OrderedDict()  # row id -> size, in id order
        self._ready: deque[Row] = deque()
        self._backlog = spool.depth > 0  # rows left by the last run go out first
        self._mid_rows: dict[int, int] = {}
        self.acked_since = 0
        self._acked_bytes = 0
        self._settled_at = 0.0

    @property
    def empty(self) -> bool:
        return not (self.in_flight or self._ready or self._backlog)

    def add(self, items: list[Outgoing]) -> int:
        """Store in the spool (one transaction); returns how many rows were shed for room."""
        rows, shed = self.spool.append(items, protect_through=self.cursor)
        if shed:
            self._reread()
        elif self._backlog or len(self._ready) + len(rows) > READY_MAX:
            self._backlog = True
        else:
            self._ready.extend(rows)
        return shed

    def _reread(self) -> None:
        """Rows may have gone from under the in-memory list: read back what is left."""
        self._ready.clear()
        self._backlog = True

    def next_row(self) -> Row | None:
        if not self._ready:
            if not self._backlog:
                return None
            page = self.spool.read_after(self.cursor, PAGE)
            self._backlog = len(page) == PAGE
            if not page:
                return None
            self._ready.extend(page)
        return self._ready.popleft()

    def sent(self, row: Row, mid: int) -> None:
        self._mid_rows[mid] = row[0]
        self.in_flight[row[0]] = len(row[2]) + len(row[1])
        self.cursor = row[0]

    def acked(self, mid: int) -> bool:
        """False for a message that was not a spooled row (status, health, discovery)."""
        row_id = self._mid_rows.pop(mid, None)
        if row_id is None:
            return False
        self._acked_bytes += self.in_flight.pop(row_id, 0)
        self.acked_since += 1
        return True

    def settle(self, force: bool = False) -> None:
        """Delete every acknowledged row, in one statement per batch of acks."""
        if not self.acked_since:
            return
        now = time.monotonic()
        if not force and self.acked_since < ACK_BATCH and now - self._settled_at < ACK_INTERVAL_S:
            return
        through = next(iter(self.in_flight)) - 1 if self.in_flight else self.cursor
        self.spool.ack_through(through, self._acked_bytes)
        self.acked_since = self._acked_bytes = 0
        self._settled_at = now

    def expire(self) -> int:
        expired = self.spool.expire(protect_through=self.cursor)
        if expired:
            self._reread()
        return expired
