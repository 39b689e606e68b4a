"""Writing the fleet store: a batch of event rows in one transaction, idempotently.

A batch is COPYed into a temporary table and inserted from there with `ON CONFLICT DO NOTHING`
on (device, stream, seq, t), so a message redelivered after a collector's restart (or sent
twice by a bridge) never becomes a second row. Values travel as COPY data, never as SQL text:
quotes, semicolons or any Unicode in an id are only data. NUL, which PostgreSQL text cannot
hold, is replaced."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from mmstream.fleet.pg_schema import DAY_S, connect, drop_partitions_before, ensure_partitions
from mmstream.fleet.pg_schema import migrate as migrate_schema
from mmstream.history.rows import EventRow

COLUMNS = ("t", "t_start", "t_end", "device", "stream", "type", "seq", "final", "text",
           "emotion", "valence", "person", "media_t", "source", "tags", "body")
_INCOMING = """
CREATE TEMP TABLE IF NOT EXISTS incoming (
    n integer, t float8, t_start float8, t_end float8, device text, stream text, type text,
    seq bigint,
    final smallint, text text, emotion text, valence real, person boolean, media_t float8,
    source text, tags text[], body text) ON COMMIT DELETE ROWS
"""
_NAMES = ", ".join(COLUMNS)


def _clean(text: str | None) -> str | None:
    return None if text is None else text.replace("\x00", "\ufffd")


def copy_values(r: EventRow, source: str | None = None) -> tuple[Any, ...]:
    """One row as COPY data, in COLUMNS' order."""
    return (r.t, r.t_start, r.t_end, _clean(r.device), _clean(r.stream), r.type, r.seq, r.final,
            _clean(r.text), _clean(r.emotion), r.valence,
            None if r.person is None else bool(r.person), r.media_t, _clean(source),
            [_clean(tag) for tag in r.tags],
            r.body.decode("utf-8", "replace").replace("\x00", "\ufffd"))


@dataclass(frozen=True)
class Written:
    inserted: int
    duplicates: int


class PgStore:
    """One writer connection to the fleet database (used from one thread)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.db: psycopg.Connection[Any] | None = None
        self._days: set[int] = set()

    def open(self) -> None:
        """Connect, create or migrate the schema (raises DatabaseUnavailable, one line)."""
        db = connect(self.url)
        try:
            migrate_schema(db)
            db.execute(_INCOMING)
        except BaseException:
            db.close()
            raise
        self.db, self._days = db, set()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    @property
    def broken(self) -> bool:
        return self.db is None or self.db.closed or self.db.broken

    def write(self, rows: Sequence[EventRow], source: str | None = None) -> Written:
        """One transaction: every row not already stored; all or nothing."""
        db = self.db
        assert db is not None, "fleet store used before it was opened"
        if not rows:
            return Written(0, 0)
        days = {int(row.t // DAY_S) for row in rows} - self._days
        if days:
            ensure_partitions(db, days)
            self._days |= days
        with db.transaction(), db.cursor() as cursor:
            with cursor.copy(f"COPY incoming (n, {_NAMES}) FROM STDIN") as copy:
                for n, row in enumerate(rows):
                    copy.write_row((n, *copy_values(row, source)))
            # ids in the batch's order, as the device's store gives them
            cursor.execute(f"INSERT INTO events ({_NAMES}) SELECT {_NAMES} FROM incoming "
                           "ORDER BY n ON CONFLICT DO NOTHING")
            inserted = max(cursor.rowcount, 0)
        return Written(inserted, len(rows) - inserted)

    def drop_older_than(self, oldest_kept_t: float) -> list[str]:
        """Retention: whole daily partitions that end before `oldest_kept_t`."""
        assert self.db is not None
        dropped = drop_partitions_before(self.db, oldest_kept_t)
        self._days = {day for day in self._days if (day + 1) * DAY_S > oldest_kept_t}
        return dropped
