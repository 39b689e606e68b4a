"""`mmstream report`: an HTML report of a recording or an events file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mmstream.cli.app import app, user_errors
from mmstream.errors import DAMAGED_INPUT_EXIT as DAMAGED_EXIT  # written, from a damaged input

if TYPE_CHECKING:
    from mmstream.replay.batch import FileResult
    from mmstream.web.summary import ReportSummary



@app.command()
def report(
    source: Path = typer.Argument(..., metavar="INPUT", help="A recording (.mcap) or an events "
                                  "file (.jsonl, as written by replay --out or record --events)."),
    out: Path = typer.Option(..., "--out", "-o", help="The HTML file to write."),
    media: Path | None = typer.Option(None, "--media", help="For an events file: the media "
                                      "file (or recording) it came from, for thumbnails."),
    thumbnails: int = typer.Option(60, "--thumbnails", min=0, help="At most this many "
                                   "thumbnails, spread evenly (0: none)."),
) -> None:
    """Write one self-contained HTML page about a run: scene tags, emotion and valence over
    time, the transcripts under them, thumbnails of what the camera saw, and a summary
    (duration, events per type, drops, models).

    The page needs no network (scripts, styles and images are inside it). A damaged input
    (a recording cut short, an events file whose last line was cut) is reported as far as it
    is readable, with where it stops; the exit code is then 3.
    """
    with user_errors():
        from mmstream.web.report import report_from_input

        summary = report_from_input(source, out, media=media, max_thumbnails=thumbnails)
    _tell(out, summary)
    if summary.damage:
        raise typer.Exit(DAMAGED_EXIT)


def write_replay_report(events: Path, replayed: Path, out: Path) -> None:
    """`replay INPUT --out events.jsonl --report out.html`: the report of the events just
    written, with thumbnails from the input replayed."""
    from mmstream.web.report import report_from_input

    _tell(out, report_from_input(events, out, media=replayed, title=replayed.name))


def write_batch_reports(results: Sequence[FileResult], base: Path, index: Path) -> None:
    """A batch's reports: `<name>.html` beside each input's events, and an index page that
    links them (relative to where it is) and lists the inputs that failed."""
    from mmstream.errors import MmstreamError
    from mmstream.web.report import IndexEntry, report_from_input, write_index

    entries = []
    for result in results:
        name = str(Path(result.path).relative_to(base)) if Path(result.path).is_relative_to(
            base) else result.path
        if not result.output:
            entries.append(IndexEntry(name, error=result.error or result.status))
            continue
        events = Path(result.output)
        page = events.with_suffix(".html")
        try:
            summary = report_from_input(events, page, media=Path(result.path), title=name)
        except MmstreamError as exc:
            entries.append(IndexEntry(name, error=str(exc)))
            continue
        entries.append(IndexEntry(name, os.path.relpath(page, index.parent), summary))
    index.parent.mkdir(parents=True, exist_ok=True)
    write_index(entries, index)
    typer.echo(f"wrote {index}: {sum(e.summary is not None for e in entries)} reports of "
               f"{len(entries)} inputs", err=True)


def _tell(out: Path, summary: ReportSummary) -> None:
    """One line on stderr: what the report holds, or where its damaged input stops."""
    counts = ", ".join(f"{n} {kind}" for kind, n in summary.counts.items()) or "no events"
    wrote = f"wrote {out}: {summary.span.duration_s:.1f} s, {counts}, {summary.thumbnails} frames"
    if summary.damage:
        typer.echo(f"warning: {summary.damage}; {wrote} (what is readable)", err=True)
    else:
        typer.echo(wrote, err=True)
