"""The history store's SQLite schema and its migrations (`PRAGMA user_version` is the version).

Events are kept as published (`body`, the JSON envelope, for export and replay) with the
columns queries filter on. Final transcripts are indexed by an external-content FTS5 table
(porter stemming: "packages" finds "package"); tags have a table of their own, indexed by
(tag, time), so a tag query over months reads only the rows it returns. The writer adds to
both in the batch that adds the event (store.py); triggers delete from both, so retention
deletes from one table only.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 4

_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sources (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    t REAL NOT NULL,            -- epoch seconds: the event's moment (a window's end)
    t_start REAL NOT NULL,      -- what it covers: an utterance, a window
    t_end REAL NOT NULL,
    device TEXT NOT NULL,
    stream TEXT NOT NULL,
    type TEXT NOT NULL,
    seq INTEGER NOT NULL,
    final INTEGER,              -- transcripts: 1 final, 0 partial; others NULL
    text TEXT,                  -- final transcripts only: what the full-text index holds
    emotion TEXT,
    valence REAL,
    person INTEGER,             -- scene/fused: a person or a face was seen
    media_t REAL NOT NULL,      -- t_capture as stamped: the offset into `source`
    source_id INTEGER REFERENCES sources(id),  -- the file or recording replayed, if any
    body BLOB NOT NULL
);
CREATE INDEX events_t ON events(t);
CREATE INDEX events_stream_t ON events(stream, t);
CREATE INDEX events_type_t ON events(type, t);
CREATE INDEX events_emotion_t ON events(emotion, t) WHERE emotion IS NOT NULL;
CREATE TABLE tags (
    event_id INTEGER NOT NULL,
    tag TEXT NOT NULL,
    t REAL NOT NULL,
    stream TEXT NOT NULL
);
CREATE INDEX tags_tag_t ON tags(tag, t);
CREATE INDEX tags_event ON tags(event_id);
CREATE VIRTUAL TABLE transcripts USING fts5(
    text, content='events', content_rowid='id', tokenize='porter unicode61');
CREATE TRIGGER events_text_added AFTER INSERT ON events WHEN new.text IS NOT NULL BEGIN
    INSERT INTO transcripts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER events_deleted AFTER DELETE ON events BEGIN
    DELETE FROM tags WHERE event_id = old.id;
END;
CREATE TRIGGER events_text_deleted AFTER DELETE ON events WHEN old.text IS NOT NULL BEGIN
    INSERT INTO transcripts(transcripts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TABLE thumbnails (
    id INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    t REAL NOT NULL,
    jpeg BLOB NOT NULL
);
CREATE INDEX thumbnails_stream_t ON thumbnails(stream, t);
"""

# v2: the writer adds final transcripts to the full-text index itself, in one executemany
# per batch, rather than a trigger run for every row (ingest: docs/history.md, Figures)
_V2 = """
DROP TRIGGER events_text_added;
"""

# v3: where ids meet times, so a full-text query over a past hour reads that hour's index
# entries rather than every newer match (FTS5 walks its index in id order, not time order).
# high_t: the latest time of any event up to last_id (it only grows with the id); late_s: how
# far behind that an event has come, at most, so far (search.py: id_bounds). A store from
# before gets one row covering it whole: correct, and no faster for those events.
_V3 = """
CREATE TABLE id_time (last_id INTEGER PRIMARY KEY, high_t REAL NOT NULL,
                      late_s REAL NOT NULL);
CREATE INDEX id_time_high ON id_time(high_t);
INSERT INTO id_time SELECT max(id), max(t), max(t) - min(t) FROM events
    HAVING max(id) IS NOT NULL;
"""

# v4: a tag query ("person", angry, last month) filters on the window's type, emotion and
# stream in the (tag, time) index itself, and reads the events of its hits only
_V4 = """
ALTER TABLE tags ADD COLUMN type TEXT;
ALTER TABLE tags ADD COLUMN emotion TEXT;
UPDATE tags SET type = e.type, emotion = e.emotion FROM events e WHERE e.id = tags.event_id;
DROP INDEX tags_tag_t;
CREATE INDEX tags_tag_t ON tags(tag, t, type, emotion, stream, event_id);
"""

#: MIGRATIONS[n] brings a store at version n-1 to version n.
MIGRATIONS: dict[int, str] = {1: _V1, 2: _V2, 3: _V3, 4: _V4}


class NewerSchema(Exception):
    """The store was written by a newer mmstream: never downgraded in place."""


def migrate(db: sqlite3.Connection) -> int:
    """Bring the store to SCHEMA_VERSION, one transaction per step; returns the old version."""
    found = int(db.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        raise NewerSchema(f"history schema {found} is newer than this mmstream's "
                          f"({SCHEMA_VERSION})")
    for version in range(found + 1, SCHEMA_VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            current = int(db.execute("PRAGMA user_version").fetchone()[0])
            if current < version:  # another process may have migrated meanwhile
                for statement in _statements(MIGRATIONS[version]):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {version}")
                db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                           (str(version),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return found


def _statements(script: str) -> list[str]:
    """Split a script into statements (executescript would commit our transaction)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line.split("--")[0] + ("\n" if "--" in line else "")
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    return [s for s in statements if s]
