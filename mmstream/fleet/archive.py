"""`mmstream replay ... --db`: an archive's events into the fleet's PostgreSQL store.

The replay writes each input's events as JSONL (locally, or sent back by the Ray workers to the
driver); the driver then loads those files here, through the collector's batch writer
(pg_store.PgStore: COPY, one transaction per batch, ON CONFLICT DO NOTHING). So Ray workers
need no route to the database, and one connection writes.

A file's media seconds become epoch seconds as `--history` makes them: the inputs lie back to
back in input order and the last one ends at the time of loading. A recording made live keeps
its own wall-clock times (and a second load of it adds nothing: same device, stream, seq, t).
Each row's `source` is the input, so a moment found later says which file to replay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from mmstream.events import Event, decode
from mmstream.fleet.pg_store import PgStore
from mmstream.history.rows import EventRow, event_row
from mmstream.media import is_wall_clock

log = logging.getLogger(__name__)

BATCH = 5000


@dataclass
class Loaded:
    inserted: int = 0
    duplicates: int = 0
    unreadable: int = 0  # lines of the events files that are not an event: counted, skipped


def _events(path: Path, loaded: Loaded) -> Iterator[Event]:
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield decode(line)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                if not loaded.unreadable:
                    log.warning("replay --db: %s line %d is not an event (%s): skipped, "
                                "counted", path, number, str(exc)[:200])
                loaded.unreadable += 1


def media_seconds(path: Path) -> float:
    """How long an events file's media runs (0 for a live recording's wall-clock times)."""
    ends = [e.t_capture for e in _events(path, Loaded()) if not is_wall_clock(e.t_capture)]
    return max(ends, default=0.0)


def load_events(store: PgStore, files: Sequence[tuple[Path, str]],
                now: float | None = None, window_s: float = 2.0) -> Loaded:
    """Every event of `files` ((events file, input it came from)) into the open `store`."""
    now = time.time() if now is None else now
    durations = [media_seconds(events) for events, _ in files]
    anchor = now - sum(durations)
    loaded = Loaded()
    for (events, source), duration in zip(files, durations, strict=True):
        batch: list[EventRow] = []
        for event in _events(events, loaded):
            batch.append(event_row(event, anchor, window_s))
            if len(batch) >= BATCH:
                _write(store, batch, source, loaded)
                batch = []
        _write(store, batch, source, loaded)
        anchor += duration
    return loaded


def _write(store: PgStore, rows: list[EventRow], source: str, loaded: Loaded) -> None:
    written = store.write(rows, source=source)
    loaded.inserted += written.inserted
    loaded.duplicates += written.duplicates
