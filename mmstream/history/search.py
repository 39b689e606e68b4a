"""The query interface (query.py) on the device's SQLite store: read-only connections, the
only place SQL for reading lives. Safe to use from any thread while the writer writes (WAL)."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mmstream.errors import MmstreamError
from mmstream.history.query import Moment, Query, Span, StreamDay
from mmstream.history.store import connect, is_unreadable

PAD_S = 1.0  # a window just past an utterance's end still shows who said it
MERGE_GAP_S = 3.0  # windows of one stream this close are one moment
PICTURE_RANGE_S = 120.0  # the nearest picture, within this
HITS_PER_MOMENT = 30  # window rows read per moment asked for
WINDOW_S = 2.0  # a window's end is its time: it began about this long before


def speech_moments(rows: Iterable[Sequence[Any]]) -> list[Moment]:
    """Final transcripts as (id, start, end, stream, device, text, t, media time, recording)
    rows, made moments, newest first (both backends, so they give the same moments)."""
    moments = []
    for event_id, start, end, stream, device, text, t, media_t, source in rows:
        offset = None if source is None else max(0.0, media_t - (t - start))
        moments.append(Moment(
            "speech", start, end, stream, device, text, recording=source, offset_s=offset,
            end_offset_s=None if source is None else media_t + (end - t),
            event_ids=(event_id,)))
    return sorted(moments, key=lambda m: m.t, reverse=True)


def window_moments(hits: Iterable[Sequence[Any]], limit: int) -> list[Moment]:
    """Matching windows, newest first, as (time, stream, media time, recording) rows, made
    moments: one per stretch of a stream whose windows are at most MERGE_GAP_S apart, at most
    `limit` of them (both backends group so, so they give the same moments)."""
    runs: list[list[Sequence[Any]]] = []
    open_runs: dict[str, list[Sequence[Any]]] = {}
    for hit in hits:
        run = open_runs.get(hit[1])
        if run is not None and run[-1][0] - hit[0] <= MERGE_GAP_S:
            run.append(hit)
            continue
        if len(runs) >= limit:
            break
        open_runs[hit[1]] = [hit]
        runs.append(open_runs[hit[1]])
    moments = []
    for run in runs:
        (first, stream, media_first, source), last = run[-1], run[0]
        moments.append(Moment(
            "window", first - WINDOW_S, last[0], stream, recording=source,
            offset_s=None if source is None else max(0.0, media_first - WINDOW_S),
            end_offset_s=None if source is None else last[2]))
    return moments
MAX_UTTERANCE_S = 120.0  # a final comes at most this long after the words it overlaps


class HistoryUnavailable(MmstreamError):
    exit_code = 2


def open_history(path: Path) -> SqliteHistory:
    if not path.is_file():
        raise HistoryUnavailable(f"no history store at {path} (it is made by `mmstream run`, "
                                 "or by `mmstream replay ... --history PATH`)")
    return SqliteHistory(path)


def _in(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    return f" AND {column} IN ({','.join('?' * len(values))})", list(values)


class SqliteHistory:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()  # one connection per thread (web API: to_thread)

    @property
    def db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = connect(self.path, read_only=True)
                db.execute("SELECT count(*) FROM meta").fetchone()
            except sqlite3.DatabaseError as exc:
                why = "not a history store, or a damaged one" if is_unreadable(exc) else exc
                raise HistoryUnavailable(f"cannot read the history store {self.path}: "
                                         f"{why}") from None
            self._local.db = db
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def streams(self) -> list[str]:
        return [row[0] for row in self.db.execute(
            "SELECT DISTINCT stream FROM events WHERE type = 'fused' OR type = 'transcript'")]

    def thumbnail(self, picture_id: int) -> bytes | None:
        row = self.db.execute("SELECT jpeg FROM thumbnails WHERE id = ?",
                              (picture_id,)).fetchone()
        return bytes(row[0]) if row else None

    # ---- search -----------------------------------------------------------------------------

    def search(self, query: Query) -> list[Moment]:
        windows_only = not query.words and "transcript" not in query.types and bool(
            query.tags or query.emotions or query.types)
        moments = self._windows(query) if windows_only else self._speech(query)
        return [self._completed(m) for m in moments]

    def _time_clause(self, query: Query, column: str) -> tuple[str, list[Any]]:
        sql, args = "", []
        if query.since is not None:
            sql, args = sql + f" AND {column} >= ?", [*args, query.since]
        if query.until is not None:
            sql, args = sql + f" AND {column} < ?", [*args, query.until]
        if query.streams:
            where, values = _in(column.replace(".t", ".stream"), query.streams)
            sql, args = sql + where, [*args, *values]
        if query.devices:
            where, values = _in("e.device", query.devices)
            sql, args = sql + where, [*args, *values]
        return sql, args

    def _speech(self, query: Query) -> list[Moment]:
        """Final transcripts: by words (FTS5, stemmed), time, stream, and the tags/emotions
        of the windows they overlap."""
        where, args = self._time_clause(query, "e.t")
        for tag in query.tags:
            where += (" AND EXISTS (SELECT 1 FROM tags g WHERE g.tag = ? AND g.t >= e.t_start"
                      " AND g.t <= e.t_end + ? AND g.stream = e.stream)")
            args += [tag, PAD_S]
        if query.emotions:
            marks = ",".join("?" * len(query.emotions))
            where += (f" AND EXISTS (SELECT 1 FROM events m WHERE m.emotion IN ({marks})"
                      " AND m.t >= e.t_start AND m.t <= e.t_end + ? AND m.stream = e.stream)")
            args += [*query.emotions, PAD_S]
        columns = ("e.id, e.t_start, e.t_end, e.stream, e.device, e.text, e.t, e.media_t, "
                   "s.path")
        if query.words:
            match = " ".join(f'"{word}"' for word in query.words)
            # the index is walked from the newest id down: start and stop it at the ids the
            # time range can hold, or a query for last month reads every newer match first
            low, high = id_bounds(self.db, query.since, query.until)
            sql = (f"SELECT {columns} FROM transcripts f JOIN events e ON e.id = f.rowid "
                   "LEFT JOIN sources s ON s.id = e.source_id WHERE transcripts MATCH ?"
                   " AND f.rowid >= ? AND f.rowid <= ?"
                   f"{where} ORDER BY f.rowid DESC LIMIT ?")
            args = [match, low, high, *args]
        else:
            sql = (f"SELECT {columns} FROM events e LEFT JOIN sources s ON s.id = e.source_id "
                   f"WHERE e.type = 'transcript' AND e.text IS NOT NULL{where} "
                   "ORDER BY e.t DESC LIMIT ?")
        rows = self.db.execute(sql, [*args, query.limit]).fetchall()
        return speech_moments(rows)

    def _window_hits(self, query: Query) -> list[tuple[float, str, float, str | None]]:
        """(t, stream, media_t, source) of windows that match, newest first; a tag query is
        driven by the (tag, time) index."""
        if query.tags:
            where, args = self._time_clause(query, "g.t")
            sql = ("FROM tags g JOIN events e ON e.id = g.event_id WHERE g.tag = ?"
                   f"{where}")
            args = [query.tags[0], *args]
            for tag in query.tags[1:]:
                sql += " AND EXISTS (SELECT 1 FROM tags h WHERE h.event_id = e.id AND h.tag = ?)"
                args.append(tag)
            order = "g.t DESC"
        else:
            where, args = self._time_clause(query, "e.t")
            sql, order = f"FROM events e WHERE 1{where}", "e.t DESC"
        # a tag query filters in the tags index (schema v4), reading events for hits only
        of = "g" if query.tags else "e"
        if query.emotions:
            clause, values = _in(f"{of}.emotion", query.emotions)
            sql, args = sql + clause, [*args, *values]
        types = [t for t in query.types if t != "transcript"] or (
            ["scene", "fused"] if query.tags else ["emotion", "fused"] if query.emotions
            else ["fused"])
        if query.tags and query.emotions:
            types = ["fused"]  # the one window event that carries both
        clause, values = _in(f"{of}.type", types)
        sql, args = sql + clause, [*args, *values]
        return self.db.execute(
            f"SELECT e.t, e.stream, e.media_t, (SELECT path FROM sources WHERE id = e.source_id)"
            f" {sql} ORDER BY {order} LIMIT ?",
            [*args, query.limit * HITS_PER_MOMENT]).fetchall()

    def _windows(self, query: Query) -> list[Moment]:
        """Stretches of matching windows, one moment per stretch of a stream."""
        return window_moments(self._window_hits(query), query.limit)

    # ---- what a moment shows ----------------------------------------------------------------

    def _completed(self, moment: Moment) -> Moment:
        """The tags, emotion, words and picture of the windows a moment overlaps (its own
        device's, when known: a store of many devices has many a `cam0`)."""
        db, start, end = self.db, moment.t, moment.t_end + PAD_S
        device, device_args = (" AND e.device = ?", [moment.device]) if moment.device else ("", [])
        rows = db.execute(
            "SELECT e.type, e.emotion, e.valence, e.person, e.device, e.id FROM events e "
            "WHERE e.stream = ? AND e.t >= ? AND e.t <= ? AND e.type IN ('scene', 'emotion', "
            f"'fused'){device} ORDER BY e.t, e.id LIMIT 500",  # ties: the same in every backend
            (moment.stream, start, end, *device_args)).fetchall()
        ids = [row[5] for row in rows if row[0] == "scene"] or [
            row[5] for row in rows if row[0] == "fused"]
        tags = Counter(tag for (tag,) in db.execute(
            f"SELECT tag FROM tags WHERE event_id IN ({','.join('?' * len(ids))})", ids))
        emotions = Counter(row[1] for row in rows if row[1] and row[0] == "emotion") or Counter(
            row[1] for row in rows if row[1])
        valences = [row[2] for row in rows if row[2] is not None and row[0] == "emotion"]
        text = moment.text
        if not text:
            text = " ".join(t for (t,) in db.execute(
                "SELECT text FROM events WHERE stream = ? AND type = 'transcript' AND "
                "text IS NOT NULL AND t >= ? AND t <= ? AND t_end >= ? AND t_start <= ? "
                "ORDER BY t_start LIMIT 5",  # t (the final's capture) bounds the index range
                (moment.stream, moment.t, moment.t_end + MAX_UTTERANCE_S, moment.t,
                 moment.t_end)))
        picture = db.execute(
            "SELECT id FROM thumbnails WHERE stream = ? AND t >= ? AND t <= ? "
            "ORDER BY abs(t - ?) LIMIT 1", (moment.stream, moment.t - PICTURE_RANGE_S,
                                            moment.t_end + PICTURE_RANGE_S,
                                            (moment.t + moment.t_end) / 2)).fetchone()
        return Moment(
            moment.kind, moment.t, moment.t_end, moment.stream,
            moment.device or next((row[4] for row in rows), ""), text,
            tuple(tag for tag, _ in tags.most_common()),
            emotions.most_common(1)[0][0] if emotions else None,
            round(sum(valences) / len(valences), 3) if valences else None,
            any(row[3] for row in rows), moment.recording, moment.offset_s,
            moment.end_offset_s, picture[0] if picture else None, moment.event_ids)

    # ---- a day, per stream ------------------------------------------------------------------

    def timeline(self, start: float, end: float, streams: Sequence[str] = ()) -> list[StreamDay]:
        where, args = _day_clause("", start, end, streams)
        e_where, _ = _day_clause("e.", start, end, streams)
        days: dict[str, StreamDay] = {}
        for stream, t_start, t_end, text in self.db.execute(
                "SELECT stream, t_start, t_end, text FROM events WHERE type = 'transcript' "
                f"AND text IS NOT NULL{where} ORDER BY t", args):
            days.setdefault(stream, StreamDay(stream)).speech.append(Span(t_start, t_end, text))
        tag_rows = self.db.execute(
            "SELECT e.stream, e.t, g.tag FROM events e JOIN tags g ON g.event_id = e.id "
            f"WHERE e.type = 'scene'{e_where}"
            " ORDER BY e.t", args)
        for stream, spans in _runs(tag_rows).items():
            days.setdefault(stream, StreamDay(stream)).tags.extend(spans)
        emotion_rows = self.db.execute(
            f"SELECT stream, t, emotion FROM events WHERE type = 'emotion'{where} ORDER BY t",
            args)
        for stream, spans in _runs(emotion_rows).items():
            days.setdefault(stream, StreamDay(stream)).emotions.extend(spans)
        return [days[name] for name in sorted(days)]


def id_bounds(db: sqlite3.Connection, since: float | None, until: float | None
              ) -> tuple[int, int]:
    """The ids that events in [since, until) can have (schema.py, v3: id_time). Below the
    last row whose latest time is before `since`, every event is older; past the first row
    whose latest time is `until` + the most any event came late, every later event is
    newer. Each bound is one index seek."""
    low, high = 0, 1 << 62
    if since is not None:
        row = db.execute("SELECT last_id FROM id_time WHERE high_t < ? "
                         "ORDER BY high_t DESC, last_id DESC LIMIT 1", (since,)).fetchone()
        low = row[0] + 1 if row else low
    if until is not None:
        late = db.execute("SELECT late_s FROM id_time ORDER BY last_id DESC LIMIT 1").fetchone()
        row = late and db.execute(
            "SELECT last_id FROM id_time WHERE high_t >= ? ORDER BY high_t, last_id LIMIT 1",
            (until + late[0],)).fetchone()
        high = row[0] if row else high
    return low, high


def _day_clause(prefix: str, start: float, end: float, streams: Sequence[str]
                ) -> tuple[str, list[Any]]:
    where, args = f" AND {prefix}t >= ? AND {prefix}t < ?", [start, end]
    if streams:
        clause, values = _in(f"{prefix}stream", streams)
        where, args = where + clause, [*args, *values]
    return where, args


def _runs(rows: Iterable[tuple[str, float, str]], window_s: float = 2.0
          ) -> dict[str, list[Span]]:
    """Per stream, windows with the same label in a row as one span each."""
    open_spans: dict[tuple[str, str], list[float]] = {}
    done: dict[str, list[Span]] = {}
    for stream, t, label in rows:
        key = (stream, label)
        span = open_spans.get(key)
        if span is not None and t - span[1] <= MERGE_GAP_S:
            span[1] = t
            continue
        if span is not None:
            done.setdefault(stream, []).append(Span(span[0], span[1], label))
        open_spans[key] = [t - window_s, t]
    for (stream, label), (first, last) in open_spans.items():
        done.setdefault(stream, []).append(Span(first, last, label))
    for spans in done.values():
        spans.sort(key=lambda s: s.t)
    return done
