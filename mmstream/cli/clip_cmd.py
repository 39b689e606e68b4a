"""`mmstream clip`: a moment of the recordings as an mp4 any player opens (+ .srt)."""

from __future__ import annotations

from pathlib import Path

import typer

from mmstream.cli.app import app, user_errors
from mmstream.errors import DAMAGED_INPUT_EXIT, ConfigError
from mmstream.recording.clip_times import parse_end, parse_moment, parse_seconds


def recordings_folder(pipeline: Path | None, folder: Path | None) -> Path:
    if folder is not None:
        return folder
    if pipeline is None:
        raise ConfigError("clip needs a recording (mmstream clip rec.mcap ...), --dir FOLDER "
                          "or --pipeline FILE (whose record.dir holds the daemon's segments)")
    from mmstream.config import load_pipeline

    config = load_pipeline(pipeline)
    if config.record is None or config.record.dir is None:
        raise ConfigError(f"{pipeline}: record.dir is not set, so there are no segments to "
                          "clip from")
    return config.record.dir


@app.command()
def clip(
    recording: Path | None = typer.Argument(
        None, help="One .mcap recording (--from/--to: seconds into it). Without it: the "
        "daemon's segments in --dir or the --pipeline file's record.dir."),
    start: str = typer.Option(..., "--from", help="Start: seconds into RECORDING, or a time "
                              "(2026-12-07T18:02:00, local unless it has a zone; or epoch "
                              "seconds, as search results give them)."),
    end: str = typer.Option(..., "--to", help="End: like --from, or +20s / +2m after it."),
    out: Path = typer.Option(..., "--out", "-o", help="The mp4 to write (H.264 + AAC); the "
                             "transcripts go to an .srt beside it."),
    stream: str | None = typer.Option(None, "--stream", "-s", help="The stream to cut "
                                      "(needed when the recordings hold several)."),
    folder: Path | None = typer.Option(None, "--dir", help="The folder of segments."),
    pipeline: Path | None = typer.Option(None, "--pipeline", "-p", help="The daemon's pipeline "
                                         "file: its record.dir is the folder."),
) -> None:
    """Cut a moment out of the recordings into an mp4 (remuxed from the keyframe at or before
    --from, no re-encoding for compact recordings)."""
    with user_errors():
        from mmstream.recording.clip import clip_from_file, clip_from_folder

        if recording is not None:
            t0 = parse_seconds(start, "--from")
            t1 = parse_end(end, t0, "--to", seconds_into=True)
            result = clip_from_file(recording, stream, t0, t1, out)
        else:
            t0 = parse_moment(start, "--from")
            t1 = parse_end(end, t0, "--to", seconds_into=False)
            result = clip_from_folder(recordings_folder(pipeline, folder), stream, t0, t1, out)
    for note in result.notes:
        typer.echo(f"warning: {note}", err=True)
    how = "re-encoded" if result.re_encoded else "remuxed"
    subtitles = f" + {result.subtitles}" if result.subtitles else ""
    early = f", from the keyframe {result.early_s:.1f} s before --from" if result.early_s else ""
    typer.echo(f"clip: {result.out}{subtitles} ({result.end_s - result.start_s:.1f} s"
               f"{early}, {result.frames} frames, {how})", err=True)
    if any("damaged" in note for note in result.notes):
        raise typer.Exit(DAMAGED_INPUT_EXIT)
