"""`mmstream search`: find moments in the device's history (or any store file)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from mmstream.cli.app import app, user_errors
from mmstream.errors import ConfigError


def default_store(pipeline: Path | None, sets: list[str]) -> Path:
    """The store a daemon writes: its pipeline's, else the one in the state directory."""
    from mmstream.preflight import history_in_state_directory, state_directory

    if pipeline is not None:
        from mmstream.config import load_pipeline

        config = history_in_state_directory(load_pipeline(pipeline, sets=sets))
        if config.history.path is None:
            raise ConfigError(f"{pipeline}: history is off (history.enabled: false)")
        return config.history.path
    folder = state_directory()
    found = sorted(folder.glob("*.history.db"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConfigError(f"no history store in {folder} (mmstream run keeps one there): "
                          "give --history PATH or --pipeline FILE")
    names = ", ".join(path.name for path in found)
    raise ConfigError(f"several history stores in {folder} ({names}): pick one with "
                      "--history PATH or --pipeline FILE")


@app.command()
def search(
    text: str = typer.Argument("", metavar="[WORDS]", help="Words said (stemmed: 'packages' "
                               "finds 'package'); all must occur. Empty: every moment."),
    stream: list[str] = typer.Option([], "--stream", help="Only this stream (repeatable)."),
    type_: list[str] = typer.Option([], "--type", help="transcript, scene, emotion or fused "
                                    "(repeatable)."),
    tag: list[str] = typer.Option([], "--tag", help="A scene tag seen, e.g. person "
                                  "(repeatable: all of them)."),
    emotion: list[str] = typer.Option([], "--emotion", help="An emotion, e.g. angry "
                                      "(repeatable: any of them)."),
    since: str | None = typer.Option(None, "--since", help="From: 2h (ago), today, "
                                     "2026-12-01T08:00."),
    until: str | None = typer.Option(None, "--until", help="Until, in the same formats."),
    limit: int = typer.Option(20, "--limit", help="At most this many moments (1-1000)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON array of moments."),
    history: Path | None = typer.Option(None, "--history", help="A history store file; "
                                        "default: the device's."),
    pipeline: Path | None = typer.Option(None, "--pipeline", "-p", help="Find the store "
                                         "from this pipeline file."),
    db: str | None = typer.Option(None, "--db", envvar="MMSTREAM_DB", help="The fleet's "
                                  "PostgreSQL store (postgresql://user@host/mmstream), written "
                                  "by mmstream collect."),
    device: list[str] = typer.Option([], "--device", help="Only this device (repeatable)."),
) -> None:
    """Search the history: what was said, seen and felt, newest first.

    Each result is a moment: a sentence with the scene and emotion around it (or, asking for
    a tag or emotion only, a stretch of windows), and the recording that covers it.
    """
    with user_errors():
        from mmstream.history.query import History, Query, parse_when
        from mmstream.history.search import open_history

        query = Query(text=text, streams=tuple(stream), types=tuple(type_), tags=tuple(tag),
                      emotions=tuple(emotion), devices=tuple(device),
                      since=parse_when(since, "--since") if since else None,
                      until=parse_when(until, "--until") if until else None, limit=limit)
        store: History
        if db is not None:
            from mmstream.fleet.pg_search import PgHistory

            store = PgHistory(db)
        else:
            store = open_history(history if history is not None
                                 else default_store(pipeline, []))
        try:
            moments = store.search(query)
        finally:
            store.close()
        if as_json:
            typer.echo(json.dumps([moment.as_json() for moment in moments], ensure_ascii=False))
            return
        if not moments:
            typer.echo("no moments found", err=True)
            return
        day = ""
        for moment in moments:
            moment_day = time.strftime("%Y-%m-%d %A", time.localtime(moment.t))
            if moment_day != day:
                day = moment_day
                typer.echo(day)
            typer.echo(f"  {moment.line()}")
