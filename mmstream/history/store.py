"""The history store on SQLite: opening (and moving a damaged file aside), batched writes,
retention in small steps. Used from one thread, the writer's (writer.py); queries open their
own read-only connections (search.py).

WAL with synchronous=NORMAL: a commit survives a crash of mmstream (SIGKILL); a power cut may
lose the last commits, never the database. Several processes may write one store (a Ray
replay's workers): each batch is one `BEGIN IMMEDIATE` transaction and ids are taken in it.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mmstream.history.rows import EventRow
from mmstream.history.schema import migrate

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
WRITER_CACHE_KB = 32 * 1024  # the writer's page cache: an upper bound, used as needed
ID_TIME_S = 60.0  # an id_time row spans at most about this much time (schema.py, v3)
RETENTION_STEP_ROWS = 1000  # most rows in one delete step
RETENTION_STEP_S = 0.03  # what one step aims to take: ingest waits on it (100 ms at most)
UNREADABLE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class StoreUnreadable(Exception):
    """The file is not a database, or a damaged one."""


def is_unreadable(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and (
        getattr(exc, "sqlite_errorcode", None) in UNREADABLE_CODES
        or "not a database" in str(exc) or "malformed" in str(exc))


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or (
            "disk is full" in str(exc))
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                             timeout=BUSY_TIMEOUT_S, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA query_only = ON")
        return db
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                         check_same_thread=False)  # opened off the loop, used by the writer
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    # a year's indexes do not fit SQLite's default 2 MB page cache: inserts then re-read
    # index pages from disk (ingest fell from ~60,000 to ~40,000 rows/s by 600,000 events)
    db.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KB}")
    db.execute("PRAGMA temp_store = MEMORY")
    return db


def move_aside(path: Path) -> Path:
    """Keep a damaged store (and its WAL) for later inspection: renamed, never deleted."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.unreadable-{stamp}")
    n = 1
    while target.exists():
        target, n = path.with_name(f"{path.name}.unreadable-{stamp}-{n}"), n + 1
    path.replace(target)
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.replace(target.with_name(target.name + suffix))
    return target


def _note_id_time(db: sqlite3.Connection, last_id: int, times: list[float]) -> None:
    """Keep `id_time` true after a batch (in its transaction): the latest time of any event up
    to `last_id`, and the most an event came behind that. The last row moves on, or a new one
    starts each ID_TIME_S, so there are few rows."""
    previous = db.execute("SELECT last_id, high_t, late_s FROM id_time "
                          "ORDER BY last_id DESC LIMIT 1").fetchone()
    before, high, late = previous if previous else (None, float("-inf"), 0.0)
    for t in times:
        if t > high:
            high = t
        elif high - t > late:
            late = high - t
    if previous is None or high // ID_TIME_S != previous[1] // ID_TIME_S:
        db.execute("INSERT INTO id_time VALUES (?,?,?)", (last_id, high, late))
    else:
        db.execute("UPDATE id_time SET last_id = ?, high_t = ?, late_s = ? WHERE last_id = ?",
                   (last_id, high, late, before))


@dataclass(frozen=True, slots=True)
class Thumbnail:
    stream: str
    t: float
    jpeg: bytes


@dataclass(frozen=True, slots=True)
class Retention:
    max_age_s: float
    max_bytes: int
    thumbnail_max_age_s: float


class SqliteStore:
    """One writer connection to a store file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db: sqlite3.Connection | None = None
        self.moved_to: Path | None = None  # where an unreadable file went
        self._sources: dict[str, int] = {}
        self._to_trim = 0  # oldest rows still to delete for the size limit (this pass)
        # rows per delete step, halved when a step ran long (on a big store or a busy disk a
        # step of 1000 took 136 ms), grown again when quick
        self._step_rows = RETENTION_STEP_ROWS // 4

    def open(self) -> None:
        """Open (creating or migrating); an unreadable file is moved aside and a new one
        started (`moved_to` says where). Other failures (a read-only folder) raise."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = self._open_checked()
        except sqlite3.DatabaseError as exc:
            if not is_unreadable(exc):
                raise
            self.moved_to = move_aside(self.path)
            log.warning("history: %s is unreadable (%s): moved aside to %s, a new store "
                        "started", self.path, exc, self.moved_to)
            self.db = self._open_checked()

    def _open_checked(self) -> sqlite3.Connection:
        db = connect(self.path)
        try:
            migrate(db)
            db.execute("SELECT count(*) FROM meta").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        if self.db is not None:
            try:
                self.db.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass
            self.db.close()
            self.db = None

    def _source_id(self, db: sqlite3.Connection, source: str | None) -> int | None:
        if source is None:
            return None
        if source not in self._sources:
            db.execute("INSERT OR IGNORE INTO sources(path) VALUES (?)", (source,))
            self._sources[source] = db.execute("SELECT id FROM sources WHERE path = ?",
                                               (source,)).fetchone()[0]
        return self._sources[source]

    def write(self, rows: Sequence[EventRow], thumbnails: Sequence[Thumbnail] = (),
              source: str | None = None) -> None:
        """One transaction: every row, its tags and the pictures; all or nothing. `source`: the
        file every row comes from, unless a row names its own recording."""
        db = self.db
        assert db is not None, "history store used before it was opened"
        db.execute("BEGIN IMMEDIATE")
        try:
            source_id = self._source_id(db, source)
            first = int(db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]) + 1
            # rows are tuples in column order: one executemany per table, no per-row trigger
            db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           [(first + i, *r[:13],
                             source_id if r.source is None else self._source_id(db, r.source),
                             r.body) for i, r in enumerate(rows)])
            db.executemany("INSERT INTO transcripts(rowid, text) VALUES (?,?)",
                           [(first + i, r.text) for i, r in enumerate(rows) if r.text is not None])
            db.executemany("INSERT INTO tags VALUES (?,?,?,?,?,?)",
                           [(first + i, tag, r.t, r.stream, r.type, r.emotion)
                            for i, r in enumerate(rows) for tag in r.tags])
            if rows:
                _note_id_time(db, first + len(rows) - 1, [r.t for r in rows])
            db.executemany("INSERT INTO thumbnails(stream, t, jpeg) VALUES (?,?,?)",
                           [(p.stream, p.t, p.jpeg) for p in thumbnails])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._sources.clear()  # a rolled-back insert of a source is gone
            raise

    def used_bytes(self) -> int:
        assert self.db is not None
        pages, free, size = (self.db.execute(f"PRAGMA {name}").fetchone()[0]
                             for name in ("page_count", "freelist_count", "page_size"))
        return int((pages - free) * size)

    def _rows_over(self, max_bytes: int) -> int:
        """How many of the oldest rows to delete to get 5 % under `max_bytes`: counted from
        the average row, since deleted index entries free their room only as FTS5 merges."""
        assert self.db is not None
        used = self.used_bytes()
        if used <= max_bytes:
            return 0
        low, high = self.db.execute("SELECT min(id), max(id) FROM events").fetchone()
        if low is None:
            return 0
        rows = high - low + 1
        per_row = used / rows
        return min(rows, int((used - 0.95 * max_bytes) / per_row) + 1)

    def retention_step(self, retention: Retention, now: float) -> int:
        """Delete at most one step of rows past the age or size limit; returns how many."""
        assert self.db is not None
        db, step = self.db, self._step_rows
        deleted, began = 0, time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE t < ? "
                "ORDER BY t LIMIT ?)", (now - retention.max_age_s, step))
            deleted += cursor.rowcount
            if deleted == 0 and self._to_trim == 0:
                self._to_trim = self._rows_over(retention.max_bytes)
            if deleted == 0 and self._to_trim > 0:
                cursor = db.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id "
                    "LIMIT ?)", (min(step, self._to_trim),))
                deleted += cursor.rowcount
                self._to_trim = max(0, self._to_trim - cursor.rowcount) if cursor.rowcount \
                    else 0
            db.execute("DELETE FROM id_time WHERE last_id < (SELECT min(id) FROM events)")
            cursor = db.execute(
                "DELETE FROM thumbnails WHERE id IN (SELECT id FROM thumbnails WHERE t < ? "
                "LIMIT ?)", (now - retention.thumbnail_max_age_s, step))
            deleted += cursor.rowcount
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        took = time.perf_counter() - began
        if took > 2 * RETENTION_STEP_S:
            self._step_rows = max(20, step // 2)
        elif took < RETENTION_STEP_S / 2 and deleted >= step:
            self._step_rows = min(RETENTION_STEP_ROWS, step * 2)
        return deleted
