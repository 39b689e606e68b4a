"""The store: batches committed by the writer thread, retention, migrations, damaged files,
full disks."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from mmstream.history.query import Query
from mmstream.history.schema import SCHEMA_VERSION
from mmstream.history.search import SqliteHistory
from mmstream.history.store import Retention
from mmstream.history.synthetic import synthetic_events
from mmstream.history.writer import HistoryWriter
from tests.conftest import wait_until
from tests.history.helpers import KEEP_ALL, written_store


def test_every_event_is_written_with_its_columns(tmp_path: Path) -> None:
    events = list(synthetic_events(500, start=time.time() - 3600, streams=2))
    writer = written_store(tmp_path / "h.db", events)
    assert writer.status.written == 500 and writer.status.state == "ok"
    db = sqlite3.connect(tmp_path / "h.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 500
    finals = sum(1 for e in events if getattr(e.payload, "final", False))
    assert db.execute("SELECT count(*) FROM transcripts_docsize").fetchone()[0] == finals
    assert db.execute("SELECT count(*) FROM tags").fetchone()[0] > 0
    assert db.execute("SELECT count(DISTINCT stream) FROM events").fetchone()[0] == 2


def test_commits_while_running_not_only_at_close(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "h.db", KEEP_ALL, anchor=time.time(),
                           commit_interval_s=0.1)
    writer.open()
    writer.start()
    for event in synthetic_events(100, start=time.time()):
        writer.submit(event)
    reader = sqlite3.connect(tmp_path / "h.db")
    wait_until(lambda: reader.execute("SELECT count(*) FROM events").fetchone()[0] == 100,
               what="the batch committed by the writer thread")
    writer.close()


def test_retention_deletes_old_events_with_their_index_entries(tmp_path: Path) -> None:
    now = time.time()
    old = list(synthetic_events(3000, start=now - 40 * 86400, seed=1))
    new = list(synthetic_events(300, start=now - 60, seed=2))
    written_store(tmp_path / "h.db", old + new)
    writer = HistoryWriter(tmp_path / "h.db", Retention(30 * 86400, 1 << 40, 1e9),
                           anchor=now, commit_interval_s=0.05)
    writer.open()
    writer.start()
    db = sqlite3.connect(tmp_path / "h.db")
    wait_until(lambda: db.execute("SELECT count(*) FROM events").fetchone()[0] == 300,
               what="retention to delete the events older than 30 days")
    writer.close()
    assert db.execute("SELECT min(t) FROM events").fetchone()[0] >= now - 60
    fts = db.execute("SELECT count(*) FROM transcripts_docsize").fetchone()[0]
    assert fts == db.execute("SELECT count(*) FROM events WHERE text IS NOT NULL").fetchone()[0]
    assert db.execute("SELECT count(*) FROM tags WHERE t < ?", (now - 3600,)).fetchone()[0] == 0
    assert db.execute("INSERT INTO transcripts(transcripts) VALUES ('integrity-check')")


def test_retention_by_size_keeps_the_newest(tmp_path: Path) -> None:
    now = time.time()
    written_store(tmp_path / "h.db", list(synthetic_events(20_000, start=now - 7200)))
    writer = HistoryWriter(tmp_path / "h.db", Retention(1e9, 1 << 20, 1e9), anchor=now)
    writer.open()
    writer.start()
    db = sqlite3.connect(tmp_path / "h.db")

    count = db.execute("SELECT count(*) FROM events").fetchone()[0]
    wait_until(lambda: db.execute("SELECT count(*) FROM events").fetchone()[0] < count / 2,
               what="retention to delete the oldest events for the size limit")
    writer.close()
    left = db.execute("SELECT count(*) FROM events").fetchone()[0]
    assert 0 < left < count / 2
    newest = db.execute("SELECT max(id) FROM events").fetchone()[0]
    assert newest == count  # the newest rows are kept, the oldest went


def test_an_unreadable_file_is_moved_aside_and_a_new_store_started(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    garbage = b"this is not a database\n" * 400
    path.write_bytes(garbage)
    writer = written_store(path, list(synthetic_events(50, start=time.time())))
    assert writer.status.moved_aside is not None
    kept = Path(writer.status.moved_aside)
    assert kept.read_bytes() == garbage and kept.parent == tmp_path
    assert "moved aside" in writer.health()["problem"]
    assert sqlite3.connect(path).execute("SELECT count(*) FROM events").fetchone()[0] == 50


def test_a_full_disk_pauses_history_and_never_raises(small_tmpfs: Path) -> None:
    writer = HistoryWriter(small_tmpfs / "h.db", KEEP_ALL, anchor=time.time(),
                           commit_interval_s=0.05)
    writer.open()
    writer.start()
    for event in synthetic_events(20_000, start=time.time()):
        writer.submit(event)  # never waits, never raises
    wait_until(lambda: writer.status.state == "paused", what="history paused by the full disk")
    writer.close()
    health = writer.health()
    assert "disk full" in health["problem"] and health["dropped"]["disk_full"] > 0
    history = SqliteHistory(small_tmpfs / "h.db")
    assert history.search(Query(limit=5)) is not None  # what was committed is readable


def test_a_store_from_a_newer_mmstream_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    writer = HistoryWriter(path, KEEP_ALL, anchor=time.time())
    try:
        writer.open()
    except Exception as exc:
        assert "newer" in str(exc)
    else:
        raise AssertionError("a newer schema was opened")


def test_a_version_1_store_is_migrated_and_its_transcripts_stay_searchable(
        tmp_path: Path) -> None:
    """v1 indexed transcripts by a trigger, v2 by the writer (v3 added id_time): both kinds
    are found after, in any time range."""
    from mmstream.history.rows import event_row
    from mmstream.history.schema import MIGRATIONS, _statements

    path, now = tmp_path / "h.db", time.time()
    old, new = (list(synthetic_events(400, start=now - 3600, seed=seed)) for seed in (1, 2))
    db = sqlite3.connect(path, isolation_level=None)
    for statement in _statements(MIGRATIONS[1]):
        db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   [(n + 1, *r[:13], None, r.body)
                    for n, r in enumerate(event_row(e, 0.0) for e in old)])
    db.close()
    written_store(path, new)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    finals = [e.payload.text for e in old + new if getattr(e.payload, "final", False)]
    assert db.execute("SELECT count(*) FROM transcripts_docsize").fetchone()[0] == len(finals)
    word = finals[0].split()[0].lower().strip(".")
    found = SqliteHistory(path).search(Query(text=word, limit=1000))
    expected = sum(1 for text in finals if word in text.lower().replace(".", "").split())
    assert len(found) == expected


def test_id_bounds_hold_every_event_of_a_time_range_late_ones_included(
        tmp_path: Path) -> None:
    """id_time narrows full-text queries to ids; events that arrive late (a final after the
    windows of its words, another writer's batch) must never fall outside the bounds."""
    import random

    from mmstream.history.search import id_bounds

    path, now, rng = tmp_path / "h.db", time.time(), random.Random(4)
    events = list(synthetic_events(6000, start=now - 6 * 3600, seed=3, step_s=30))  # ~4 h
    for n in range(0, len(events), 300):  # out of order within batches, some very late
        batch = events[n:n + 300]
        rng.shuffle(batch)
        events[n:n + 300] = batch
    events += list(synthetic_events(200, start=now - 5 * 3600, seed=9))  # hours late
    writer = HistoryWriter(path, KEEP_ALL, anchor=now, commit_interval_s=0.02)
    writer.open()
    writer.start()
    for n, event in enumerate(events):
        writer.submit(event)
        if n % 500 == 0:
            wait_until(lambda: not writer._events, what="a batch committed")
    writer.close()
    db = SqliteHistory(path).db
    assert db.execute("SELECT count(*) FROM id_time").fetchone()[0] > 3
    rows = db.execute("SELECT id, t FROM events").fetchall()
    for _ in range(200):
        since = rng.uniform(now - 7 * 3600, now)
        until = since + rng.choice((60, 600, 3600, 4 * 3600))
        low, high = id_bounds(db, since, until)
        inside = [i for i, t in rows if since <= t < until]
        assert all(low <= i <= high for i in inside), (since, until, low, high)
    low, _ = id_bounds(db, now - 3 * 3600, now - 2 * 3600)
    assert low > len(rows) / 2  # and they do narrow (the late batch widens the upper bound)
