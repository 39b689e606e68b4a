"""The history's one query interface (mmstream/history/query.py) on the fleet's PostgreSQL
store: the same moments as the device's SQLite backend (history/search.py) for the same events,
so `mmstream search --db`, the History page and `/api/` need nothing else. Read-only
connections, one per thread; every value travels as a query parameter."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import psycopg

from mmstream.fleet.pg_schema import connect
from mmstream.history.query import Moment, Query, StreamDay
from mmstream.history.search import (
    HITS_PER_MOMENT,
    MAX_UTTERANCE_S,
    PAD_S,
    Span,
    _runs,
    speech_moments,
    window_moments,
)


class PgHistory:
    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()  # one connection per thread (web API: to_thread)

    @property
    def db(self) -> psycopg.Connection[Any]:
        db = getattr(self._local, "db", None)
        if db is None or db.closed or db.broken:
            db = self._local.db = connect(self.url, read_only=True)
        return db

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.db.execute(sql.encode(), list(args)).fetchall()

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def streams(self) -> list[str]:
        return [row[0] for row in self._rows(
            "SELECT DISTINCT stream FROM events WHERE type IN ('fused', 'transcript') "
            "ORDER BY stream")]

    def devices(self) -> list[str]:
        return [row[0] for row in self._rows("SELECT DISTINCT device FROM events ORDER BY 1")]

    def thumbnail(self, picture_id: int) -> bytes | None:
        return None  # the fleet keeps events only: pictures stay on the devices

    # ---- search -------------------------------------------------------------------------------

    def search(self, query: Query) -> list[Moment]:
        windows_only = not query.words and "transcript" not in query.types and bool(
            query.tags or query.emotions or query.types)
        moments = self._windows(query) if windows_only else self._speech(query)
        return [self._completed(m) for m in moments]

    @staticmethod
    def _filters(query: Query) -> tuple[str, list[Any]]:
        sql, args = "", []
        if query.since is not None:
            sql, args = sql + " AND e.t >= %s", [*args, query.since]
        if query.until is not None:
            sql, args = sql + " AND e.t < %s", [*args, query.until]
        if query.streams:
            sql, args = sql + " AND e.stream = ANY(%s)", [*args, list(query.streams)]
        if len(query.devices) == 1:  # `=`, not `= ANY`: the (device, words) index takes it
            sql, args = sql + " AND e.device = %s", [*args, query.devices[0]]
        elif query.devices:
            sql, args = sql + " AND e.device = ANY(%s)", [*args, list(query.devices)]
        return sql, args

    def _speech(self, query: Query) -> list[Moment]:
        where, args = self._filters(query)
        for tag in query.tags:
            where += (" AND EXISTS (SELECT 1 FROM events g WHERE g.tags @> ARRAY[%s]::text[] "
                      "AND g.t >= e.t_start AND g.t <= e.t_end + %s AND g.stream = e.stream)")
            args += [tag, PAD_S]
        if query.emotions:
            where += (" AND EXISTS (SELECT 1 FROM events m WHERE m.emotion = ANY(%s) AND "
                      "m.t >= e.t_start AND m.t <= e.t_end + %s AND m.stream = e.stream)")
            args += [list(query.emotions), PAD_S]
        if query.words:
            where = " AND e.words @@ plainto_tsquery('english', %s)" + where
            args = [" ".join(query.words), *args]
        rows = self._rows(
            "SELECT e.id, e.t_start, e.t_end, e.stream, e.device, e.text, e.t, e.media_t, "
            "e.source FROM events e WHERE e.type = 'transcript' AND e.text IS NOT NULL"
            f"{where} ORDER BY e.t DESC, e.id DESC LIMIT %s", [*args, query.limit])
        return speech_moments(rows)

    def _windows(self, query: Query) -> list[Moment]:
        where, args = self._filters(query)
        if query.tags:
            where, args = where + " AND e.tags @> %s::text[]", [*args, list(query.tags)]
        if query.emotions:
            where, args = where + " AND e.emotion = ANY(%s)", [*args, list(query.emotions)]
        types = [t for t in query.types if t != "transcript"] or (
            ["scene", "fused"] if query.tags else ["emotion", "fused"] if query.emotions
            else ["fused"])
        if query.tags and query.emotions:
            types = ["fused"]  # the one window event that carries both
        hits = self._rows(
            f"SELECT e.t, e.stream, e.media_t, e.source FROM events e WHERE e.type = ANY(%s)"
            f"{where} ORDER BY e.t DESC, e.id DESC LIMIT %s",
            [types, *args, query.limit * HITS_PER_MOMENT])
        return window_moments(hits, query.limit)

    def _completed(self, moment: Moment) -> Moment:
        """The tags, emotion and words of the windows a moment overlaps (its own device's,
        when known, as the device's store does)."""
        device, device_args = (" AND device = %s", [moment.device]) if moment.device else ("", [])
        rows = self._rows(
            "SELECT type, emotion, valence, person, device, tags, id FROM events WHERE stream = %s "
            f"AND t >= %s AND t <= %s AND type IN ('scene', 'emotion', 'fused'){device} "
            "ORDER BY t, id LIMIT 500", (moment.stream, moment.t, moment.t_end + PAD_S,
                                         *device_args))
        by_id = sorted(rows, key=lambda row: row[6])  # the device's store counts tags so
        tagged = [row[5] for row in by_id if row[0] == "scene"] or [
            row[5] for row in by_id if row[0] == "fused"]
        tags = Counter(tag for row_tags in tagged for tag in row_tags)
        emotions = Counter(row[1] for row in rows if row[1] and row[0] == "emotion") or Counter(
            row[1] for row in rows if row[1])
        valences = [row[2] for row in rows if row[2] is not None and row[0] == "emotion"]
        text = moment.text or " ".join(t for (t,) in self._rows(
            "SELECT text FROM events WHERE stream = %s AND type = 'transcript' AND text IS NOT "
            "NULL AND t >= %s AND t <= %s AND t_end >= %s AND t_start <= %s ORDER BY t_start "
            "LIMIT 5", (moment.stream, moment.t, moment.t_end + MAX_UTTERANCE_S, moment.t,
                        moment.t_end)))
        return Moment(
            moment.kind, moment.t, moment.t_end, moment.stream,
            moment.device or next((row[4] for row in rows), ""), text,
            tuple(tag for tag, _ in tags.most_common()),
            emotions.most_common(1)[0][0] if emotions else None,
            round(sum(valences) / len(valences), 3) if valences else None,
            any(row[3] for row in rows), moment.recording, moment.offset_s,
            moment.end_offset_s, None, moment.event_ids)

    # ---- a day, per stream --------------------------------------------------------------------

    def timeline(self, start: float, end: float, streams: Sequence[str] = ()) -> list[StreamDay]:
        where, args = " AND t >= %s AND t < %s", [start, end]
        if streams:
            where, args = where + " AND stream = ANY(%s)", [*args, list(streams)]
        days: dict[str, StreamDay] = {}
        for stream, t_start, t_end, text in self._rows(
                "SELECT stream, t_start, t_end, text FROM events WHERE type = 'transcript' "
                f"AND text IS NOT NULL{where} ORDER BY t", args):
            days.setdefault(stream, StreamDay(stream)).speech.append(Span(t_start, t_end, text))
        tag_rows = self._rows(
            "SELECT stream, t, unnest(tags) FROM events WHERE type = 'scene'"
            f"{where} ORDER BY t", args)
        for stream, spans in _runs(tag_rows).items():
            days.setdefault(stream, StreamDay(stream)).tags.extend(spans)
        emotion_rows = self._rows(
            f"SELECT stream, t, emotion FROM events WHERE type = 'emotion'{where} ORDER BY t",
            args)
        for stream, spans in _runs(emotion_rows).items():
            days.setdefault(stream, StreamDay(stream)).emotions.extend(spans)
        return [days[name] for name in sorted(days)]
