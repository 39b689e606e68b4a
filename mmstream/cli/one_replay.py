"""One input replayed (or recorded) by the CLI, honestly: its events file appears only when the
run succeeded, a terminal shows how far it is, and an interrupted run says how far it got and
exits as shells expect (130 for SIGINT, 143 for SIGTERM).

The events go to `<out>.partial` beside the target and are renamed to `<out>` on success; on
an error the partial file is removed (no empty or half file where the events should be); on
an interruption it is kept, and named, so nothing read so far is lost.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from mmstream.config import PipelineConfig
from mmstream.paths import PartialFile
from mmstream.replay.progress import MediaRead, followed
from mmstream.runtime.pipeline import PipelineReport
from mmstream.runtime.signals import Signals


class FileProgress(MediaRead):
    """Media seconds done of the input's total and the speed, as a bar on a terminal."""

    def __init__(self, total_s: float | None) -> None:
        from mmstream.cli.replay_view import ConsoleProgress

        super().__init__()
        self.bar = ConsoleProgress()
        self.bar.started(total_s or 0.0, files=1)


def run_one(media: Path, config_for: Callable[[Path | None], PipelineConfig],
            out: Path | None) -> PipelineReport:
    """Run `config_for(events_path)` for `media`; `out` None or "-" writes no file."""
    from mmstream.replay.batch import probe_duration

    events = PartialFile(out) if out is not None and str(out) != "-" else None
    total = probe_duration(media)
    progress = FileProgress(total) if sys.stderr.isatty() else None
    try:
        report, signals = asyncio.run(_run(config_for(events.path if events else out), progress))
    except BaseException:
        if events is not None:
            events.discard()
        raise
    if signals.first is not None:
        _interrupted(report, signals, total, events.path if events else None)
    if events is not None:
        events.complete()
    return report


async def _run(config: PipelineConfig, progress: FileProgress | None
               ) -> tuple[PipelineReport, Signals]:
    from mmstream.daemon import run_service

    if progress is None:
        return await run_service(config)
    try:
        return await followed(run_service(config, observers=[progress]), progress,
                              progress.bar.advanced)
    finally:
        progress.bar.finished()


def _interrupted(report: PipelineReport, signals: Signals, total: float | None,
                 partial: Path | None) -> Any:
    read = max(report.media_read.values(), default=0.0)
    of = f" of {total:.1f} s" if total else ""
    kept = f"; the events so far are in {partial}" if partial is not None else ""
    name = signals.first.name if signals.first is not None else "a signal"
    typer.echo(f"interrupted ({name}) at {read:.1f} s{of} of media, "
               f"{sum(report.events.values())} events{kept}", err=True)
    raise typer.Exit(signals.exit_code or 1)
