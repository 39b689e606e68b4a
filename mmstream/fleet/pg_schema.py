"""The fleet store's PostgreSQL schema, its migrations, its daily partitions, and connecting.

`events` is partitioned by day on `t` (epoch seconds, UTC days), so retention drops whole
partitions instead of deleting rows. A redelivered message is the same envelope, hence the same
(device, stream, seq, t): that key is unique (a unique index of a partitioned table must hold the
partition key; `t` is part of the envelope, so redeliveries still collide). Final transcripts
are in a GIN full-text index (`english`: stemmed like the device's porter tokenizer); tags are
an array with a GIN index.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from mmstream.errors import MmstreamError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
DAY_S = 86_400
MIGRATION_LOCK = 7_356_114_031  # pg_advisory_xact_lock key: one collector migrates at a time

_V1 = """
CREATE TABLE IF NOT EXISTS mmstream_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE events (
    id bigserial NOT NULL,
    t double precision NOT NULL,        -- epoch seconds: the event's moment (a window's end)
    t_start double precision NOT NULL,  -- what it covers: an utterance, a window
    t_end double precision NOT NULL,
    device text NOT NULL,
    stream text NOT NULL,
    type text NOT NULL,
    seq bigint NOT NULL,
    final smallint,                     -- transcripts: 1 final, 0 partial; others NULL
    text text,                          -- final transcripts only: the full-text index's
    emotion text,
    valence real,
    person boolean,
    media_t double precision NOT NULL,  -- t_capture as stamped: the offset into `source`
    source text,                        -- the file a replay read, if any
    tags text[] NOT NULL DEFAULT '{}',
    body text NOT NULL,                 -- the envelope as published (JSON)
    received double precision NOT NULL DEFAULT extract(epoch FROM clock_timestamp()),
    words tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(text, ''))) STORED
) PARTITION BY RANGE (t);
CREATE UNIQUE INDEX events_key ON events (device, stream, seq, t);
CREATE INDEX events_t ON events (t);
CREATE INDEX events_stream_t ON events (stream, t);
CREATE INDEX events_device_t ON events (device, t);
CREATE INDEX events_type_t ON events (type, t);
CREATE INDEX events_emotion_t ON events (emotion, t) WHERE emotion IS NOT NULL;
CREATE INDEX events_tags ON events USING gin (tags) WHERE tags <> '{}';
CREATE INDEX events_words ON events USING gin (words) WHERE text IS NOT NULL;
"""

# The fleet's commonest search: words of one device in a time range. With only the words'
# index, every sentence with the words is read from the heap and most are another device's
# (10 devices: 9 of 10); (device, words) in one GIN index finds the device's alone.
# btree_gin ships with PostgreSQL (contrib) and is a trusted extension: the database's owner
# may create it.
_V2 = """
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX events_device_words ON events USING gin (device, words) WHERE text IS NOT NULL;
"""

#: MIGRATIONS[n] brings a store at version n-1 to version n.
MIGRATIONS: dict[int, str] = {1: _V1, 2: _V2}


class DatabaseUnavailable(MmstreamError):
    """The database URL is wrong, or the server refuses or cannot be reached: one line."""

    exit_code = 2


def database_label(url: str) -> str:
    """`user@host:port/db`: what messages call the database (never the password)."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(an unreadable database URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', 'localhost')}{port}/{parts.get('dbname', '')}"


def _without_password(message: str, url: str) -> str:
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.ProgrammingError:
        return message.splitlines()[0] if message else "invalid"
    first = (message.strip().splitlines() or ["failed"])[0].strip()
    first = first.removeprefix("connection failed: ")
    return first.replace(str(password), "***") if password else first


def connect(url: str, *, read_only: bool = False, timeout_s: float = 10.0
            ) -> psycopg.Connection[Any]:
    """A connection, or DatabaseUnavailable with one clear line (password never shown)."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise DatabaseUnavailable(f"--db {database_label(url)}: use a postgresql:// URL")
    try:
        db = psycopg.connect(url, connect_timeout=max(1, round(timeout_s)),
                             application_name="mmstream")
    except psycopg.Error as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL {database_label(url)}: "
                                  f"{_without_password(str(exc), url)}") from None
    db.autocommit = True  # transactions are explicit: `with db.transaction()`
    if read_only:
        db.read_only = True
    return db


def migrate(db: psycopg.Connection[Any]) -> int:
    """Bring the schema to SCHEMA_VERSION (one transaction, one migrator at a time); returns
    the version found."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        db.execute("CREATE TABLE IF NOT EXISTS mmstream_meta "
                   "(key text PRIMARY KEY, value text NOT NULL)")
        row = db.execute("SELECT value FROM mmstream_meta WHERE key = 'schema_version'"
                         ).fetchone()
        found = int(row[0]) if row else 0
        if found > SCHEMA_VERSION:
            raise DatabaseUnavailable(f"fleet schema {found} is newer than this mmstream's "
                                      f"({SCHEMA_VERSION}): upgrade mmstream")
        for version in range(found + 1, SCHEMA_VERSION + 1):
            db.execute(MIGRATIONS[version].encode())
            db.execute("INSERT INTO mmstream_meta VALUES ('schema_version', %s) ON CONFLICT "
                       "(key) DO UPDATE SET value = excluded.value", (str(version),))
    return found


def partition_name(day: int) -> str:
    return "events_" + time.strftime("%Y%m%d", time.gmtime(day * DAY_S))


def ensure_partitions(db: psycopg.Connection[Any], days: set[int]) -> None:
    """Create the daily partitions `days` (UTC day numbers) need, if missing."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        for day in sorted(days):
            db.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ({}) TO ({})"
            ).format(sql.Identifier(partition_name(day)), sql.Literal(day * DAY_S),
                     sql.Literal((day + 1) * DAY_S)))


def drop_partitions_before(db: psycopg.Connection[Any], oldest_kept_t: float) -> list[str]:
    """Retention: drop every daily partition that ends before `oldest_kept_t`."""
    rows = db.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass"
    ).fetchall()
    dropped = []
    for name, bound in rows:
        upper = float(bound.rsplit("TO (", 1)[1].rstrip(")").strip("'"))
        if upper <= oldest_kept_t:
            with db.transaction():
                db.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
            dropped.append(name)
    return dropped
