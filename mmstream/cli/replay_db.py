"""`mmstream replay ... --db URL`: the replay's events into the fleet's PostgreSQL store
(mmstream/fleet/archive.py), checked before the replay runs and loaded after it."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import typer


def opened_store(url: str) -> Any:
    """The store, its schema made; a wrong URL or password is one line now, not after an
    hour of replaying."""
    from mmstream.fleet.pg_store import PgStore

    store = PgStore(url)
    store.open()
    return store


@contextlib.contextmanager
def events_file(out: Path | None) -> Iterator[Path]:
    """Where a single file's events go: `--out`, else a temporary file (the database is
    where they are wanted)."""
    if out is not None and str(out) != "-":
        yield out
        return
    with tempfile.TemporaryDirectory(prefix="mmstream-replay-db-") as folder:
        yield Path(folder) / "events.jsonl"


def load(store: Any, files: Sequence[tuple[Path, str]], url: str) -> None:
    """Load, say what was written, close."""
    from mmstream.fleet.archive import load_events
    from mmstream.fleet.pg_schema import database_label

    try:
        loaded = load_events(store, [(p, s) for p, s in files if p.is_file()])
    finally:
        store.close()
    extra = f", {loaded.duplicates} already there" if loaded.duplicates else ""
    bad = f", {loaded.unreadable} unreadable lines skipped" if loaded.unreadable else ""
    typer.echo(f"wrote {loaded.inserted} events into {database_label(url)}{extra}{bad}",
               err=True)
