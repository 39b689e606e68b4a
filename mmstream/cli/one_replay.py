"""One input replayed (or recorded) by the CLI, honestly: its events file appears only when the
run succeeded, a terminal shows how far it is, and an interrupted run says how far it got and
exits as shells expect (130 for SIGINT, 143 for SIGTERM).

The events go to `<out>.partial` beside the target and are renamed to `<out>` on success; on
an error the partial file is removed (no empty or half file where the events should be); on
an interruption it is kept, and named, so nothing read so far is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from mmstream.config import PipelineConfig
from mmstream.runtime.observer import PipelineObserver, PipelineView
from mmstream.runtime.pipeline import PipelineReport
from mmstream.runtime.signals import Signals

REFRESH_S = 0.25


class FileProgress(PipelineObserver):
    """Media seconds done of the input's total and the speed, as a bar on a terminal."""

    def __init__(self, total_s: float | None) -> None:
        from mmstream.cli.replay_view import ConsoleProgress

        self.total_s = total_s or 0.0
        self.bar = ConsoleProgress()
        self.bar.started(self.total_s, files=1)
        self.view: PipelineView | None = None

    def attached(self, pipeline: PipelineView) -> None:
        self.view = pipeline

    def refresh(self) -> None:
        if self.view is not None:
            self.bar.advanced(max(self.view.media_read().values(), default=0.0))

    def close(self) -> None:
        self.refresh()
        self.bar.finished()


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def run_one(media: Path, config_for: Callable[[Path | None], PipelineConfig],
            out: Path | None) -> PipelineReport:
    """Run `config_for(events_path)` for `media`; `out` None or "-" writes no file."""
    from mmstream.replay.batch import probe_duration

    to_file = out is not None and str(out) != "-"
    partial = partial_path(out) if to_file and out is not None else None
    total = probe_duration(media)
    progress = FileProgress(total) if sys.stderr.isatty() else None
    try:
        report, signals = asyncio.run(_run(config_for(partial or out), progress))
    except BaseException:
        if partial is not None:
            with contextlib.suppress(OSError):
                partial.unlink()
        raise
    if signals.first is not None:
        _interrupted(report, signals, total, partial)
    if partial is not None and out is not None:
        partial.replace(out)
    return report


async def _run(config: PipelineConfig, progress: FileProgress | None
               ) -> tuple[PipelineReport, Signals]:
    from mmstream.daemon import run_service

    if progress is None:
        return await run_service(config)
    running = asyncio.ensure_future(run_service(config, observers=[progress]))
    try:
        while not (await asyncio.wait({running}, timeout=REFRESH_S))[0]:
            progress.refresh()
        return running.result()
    finally:
        progress.close()


def _interrupted(report: PipelineReport, signals: Signals, total: float | None,
                 partial: Path | None) -> Any:
    read = max(report.media_read.values(), default=0.0)
    of = f" of {total:.1f} s" if total else ""
    kept = f"; the events so far are in {partial}" if partial is not None else ""
    name = signals.first.name if signals.first is not None else "a signal"
    typer.echo(f"interrupted ({name}) at {read:.1f} s{of} of media, "
               f"{sum(report.events.values())} events{kept}", err=True)
    raise typer.Exit(signals.exit_code or 1)
