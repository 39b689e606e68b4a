"""Commands about recordings: record, info, diff."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mmstream.cli.app import app, user_errors
from mmstream.cli.run_cmds import SET_HELP, execute, say_done

if TYPE_CHECKING:
    from mmstream.config import PipelineConfig

PIPELINE_SUFFIXES = (".yaml", ".yml")


def record_config(source: Path, out: Path, *, pipeline: Path | None, events: Path | None,
                  realtime: bool, analysis: bool, sets: list[str]) -> PipelineConfig:
    """A pipeline file as it is, or a media file through the (given or default) pipeline,
    with the recorder on."""
    from mmstream.config import load_pipeline
    from mmstream.replay.setup import NO_ANALYSIS, ReplayOptions, record_target, replay_config

    if source.suffix.lower() not in PIPELINE_SUFFIXES:
        return replay_config(source, pipeline=pipeline, out=events, sets=sets,
                             options=ReplayOptions(realtime=realtime), record_to=out,
                             analysis=analysis, stdout_by_default=False)
    updates = record_target(out)
    if events is not None:
        updates.append((["sinks", "jsonl"], {"path": str(events)}))
    if not analysis:
        updates += NO_ANALYSIS
    return load_pipeline(source, updates=updates, sets=sets)


@app.command()
def record(
    source: Path = typer.Argument(..., metavar="PIPELINE|MEDIA",
                                  help="A pipeline file (runs until SIGINT/SIGTERM or its "
                                  "sources end) or a media file."),
    out: Path = typer.Option(..., "--out", "-o", help="Recording file (.mcap) or a folder "
                             "for rotated files."),
    pipeline: Path | None = typer.Option(None, "--pipeline", "-p",
                                         help="For a media file: the pipeline to run it with."),
    events: Path | None = typer.Option(None, "--events", help="Also write events as JSONL."),
    realtime: bool = typer.Option(False, "--realtime", help="Media file: pace it in real time."),
    analysis: bool = typer.Option(True, "--analysis/--no-analysis",
                                  help="--no-analysis records raw inputs only (no models)."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP + " E.g. record.rotate_mb=512."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing recording file."),
) -> None:
    """Record raw inputs (frames, audio) and every event to MCAP (opens in Foxglove Studio).

    Replay the recording later with `mmstream replay rec.mcap`: the same inputs on the
    recording's own clock. A media file is recorded like a replay: stopped by SIGINT it says
    how far it got and exits 130; a pipeline file runs until SIGINT/SIGTERM and exits 0.
    """
    with user_errors():
        from mmstream.errors import ConfigError

        if out.is_file() and not force:
            raise ConfigError(f"--out {out}: the file exists; --force overwrites it")

        def config_for(events_path: Path | None) -> PipelineConfig:
            return record_config(source, out, pipeline=pipeline, events=events_path,
                                 realtime=realtime, analysis=analysis, sets=set_)

        if source.suffix.lower() in PIPELINE_SUFFIXES:
            execute(config_for(events))
        else:
            from mmstream.cli.one_replay import run_one

            say_done(run_one(source, config_for, events))
        typer.echo(f"recorded to {out}", err=True)


@app.command()
def info(
    recording: Path = typer.Argument(..., help="An .mcap recording."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Streams, duration, message counts and schemas of a recording (and where a damaged
    one stops)."""
    with user_errors():
        from mmstream.cli.replay_view import render_info
        from mmstream.recording.info import inspect_recording

        found = inspect_recording(recording)
        if as_json:
            typer.echo(json.dumps(found.as_dict(), indent=2, sort_keys=True))
        else:
            typer.echo("\n".join(render_info(found)))
    if not found.complete:  # described as far as it is readable: still not a whole recording
        from mmstream.errors import DAMAGED_INPUT_EXIT

        raise typer.Exit(DAMAGED_INPUT_EXIT)


@app.command()
def diff(
    a: Path = typer.Argument(..., help="Events of run A: JSONL, or a recording (.mcap)."),
    b: Path = typer.Argument(..., help="Events of run B: JSONL, or a recording (.mcap)."),
    tolerance: float = typer.Option(0.5, "--tolerance", min=0,
                                    help="Seconds apart two events may be and still pair."),
    examples: int = typer.Option(5, "--examples", min=0, help="Changes shown per kind."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """How two runs' events differ: tags, transcripts, emotions, timing, extra or missing.

    Exit code 0 when the runs agree (same events, content and capture times), 1 when not,
    2 when an input cannot be read (like diff(1)).
    """
    with user_errors():
        from mmstream.errors import MmstreamError
        from mmstream.replay.diff import diff_runs, load_events, render

        try:
            found = diff_runs(load_events(a), load_events(b), tolerance)
        except MmstreamError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps(found.as_dict(), indent=2, sort_keys=True))
        else:
            typer.echo("\n".join(render(found, str(a), str(b), examples=examples)))
    if not found.identical:
        raise typer.Exit(1)
