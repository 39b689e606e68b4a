"""The fleet store on a real PostgreSQL: schema, idempotent batches, hostile ids, retention,
and connection errors that never show the password."""

from __future__ import annotations

import time

import psycopg
import pytest

from mmstream.events import Scene, SceneEvent, Tag, Transcript, TranscriptEvent
from mmstream.fleet.pg_schema import (
    DAY_S,
    MIGRATIONS,
    SCHEMA_VERSION,
    DatabaseUnavailable,
    connect,
    ensure_partitions,
)
from mmstream.fleet.pg_store import PgStore
from mmstream.history.rows import event_row
from mmstream.history.synthetic import synthetic_events
from tests.fleet.postgres import PASSWORD, PostgresServer

HOSTILE_IDS = ("door'; DROP TABLE events; --", 'a"b', "küche-café-摄像头", "x\x00y")


def count(url: str, where: str = "TRUE") -> int:
    with psycopg.connect(url) as db:
        return int(db.execute(f"SELECT count(*) FROM events WHERE {where}").fetchone()[0])


def test_a_batch_written_twice_is_stored_once(pg_url: str) -> None:
    rows = [event_row(e, 0) for e in synthetic_events(500, start=time.time() - 600)]
    store = PgStore(pg_url)
    store.open()
    try:
        assert store.write(rows).inserted == 500
        again = store.write(rows[100:300] + rows[100:110])
        assert (again.inserted, again.duplicates) == (0, 210)
    finally:
        store.close()
    assert count(pg_url) == 500


def test_opening_again_keeps_the_schema_and_the_rows(pg_url: str) -> None:
    start = time.time()
    for _ in range(2):
        store = PgStore(pg_url)
        store.open()
        store.write([event_row(e, 0) for e in synthetic_events(10, start=start)])
        store.close()
    with psycopg.connect(pg_url) as db:
        version = db.execute("SELECT value FROM mmstream_meta WHERE key = 'schema_version'"
                             ).fetchone()
    assert version == (str(SCHEMA_VERSION),)
    assert count(pg_url) == 10


def test_a_store_of_the_first_schema_is_migrated_with_its_rows(pg_url: str) -> None:
    row = event_row(TranscriptEvent(device_id="hall", stream_id="door", seq=1,
                                    t_capture=time.time(), payload=Transcript(
                                        final=True, text="the parcel", start=0, end=1)), 0)
    with connect(pg_url) as db:  # as the first collectors left it
        db.execute(MIGRATIONS[1].encode())
        db.execute("INSERT INTO mmstream_meta VALUES ('schema_version', '1')")
        ensure_partitions(db, {int(row.t // DAY_S)})
        db.execute("INSERT INTO events (t, t_start, t_end, device, stream, type, seq, text, "
                   "media_t, body) VALUES (%s, %s, %s, 'hall', 'door', 'transcript', 1, "
                   "'the parcel', %s, '{}')", (row.t, row.t_start, row.t_end, row.t))
    store = PgStore(pg_url)
    store.open()
    assert store.write([row]).duplicates == 1  # the same key, kept across the migration
    store.close()
    with psycopg.connect(pg_url) as db:
        version = db.execute("SELECT value FROM mmstream_meta WHERE key = 'schema_version'"
                             ).fetchone()
        indexes = {name for (name,) in db.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename LIKE 'events_%'")}
    assert version == ("2",) and any(name.endswith("device_words_idx") for name in indexes)


def test_ids_with_quotes_semicolons_and_unicode_are_only_data(pg_url: str) -> None:
    now = time.time()
    events = [TranscriptEvent(device_id=name, stream_id=name, seq=1, t_capture=now,
                              payload=Transcript(final=True, text=f"said {name}", start=now - 1,
                                                 end=now))
              for name in HOSTILE_IDS]
    store = PgStore(pg_url)
    store.open()
    try:
        assert store.write([event_row(e, 0) for e in events]).inserted == len(HOSTILE_IDS)
    finally:
        store.close()
    with psycopg.connect(pg_url) as db:
        stored = {row[0] for row in db.execute("SELECT device FROM events")}
    assert stored == {name.replace("\x00", "\ufffd") for name in HOSTILE_IDS}


def test_retention_drops_whole_old_days(pg_url: str) -> None:
    now = time.time()
    old = SceneEvent(device_id="d", stream_id="s", seq=1, t_capture=now - 10 * DAY_S,
                     payload=Scene(tags=[Tag("cup", 0.9)]))
    new = SceneEvent(device_id="d", stream_id="s", seq=2, t_capture=now,
                     payload=Scene(tags=[Tag("cup", 0.9)]))
    store = PgStore(pg_url)
    store.open()
    try:
        store.write([event_row(old, 0), event_row(new, 0)])
        dropped = store.drop_older_than(now - 5 * DAY_S)
        assert len(dropped) == 1 and dropped[0].startswith("events_")
        store.write([event_row(old, 0)])  # the day comes back when written again
    finally:
        store.close()
    assert count(pg_url) == 2


def test_a_wrong_password_is_one_line_without_the_password(
        postgres_server: PostgresServer) -> None:
    wrong = postgres_server.url(password="not-the-" + PASSWORD)
    with pytest.raises(DatabaseUnavailable) as caught:
        connect(wrong)
    message = str(caught.value)
    assert "\n" not in message and "password" in message and PASSWORD not in message
    assert "not-the-" not in message and "127.0.0.1" in message


def test_a_url_of_another_scheme_is_refused(postgres_server: PostgresServer) -> None:
    with pytest.raises(DatabaseUnavailable, match="postgresql://"):
        connect(f"mysql://u:{PASSWORD}@127.0.0.1/x")
