"""How recordings and replays look on the console: a batch's progress bar and its failures as
they happen (a `BatchProgress`), the summary table, and the text of `mmstream info`.

Rendering only: the runners in `mmstream.replay` report through `replay.progress.BatchProgress`
and `mmstream.recording.info` gathers the facts, so neither needs a console.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from mmstream.recording.info import RecordingInfo
    from mmstream.replay.batch import FileResult


class ConsoleProgress:
    """`BatchProgress` as a bar on stderr (files, media seconds, x realtime, ETA); a failed
    file is printed in red the moment it fails."""

    description = "replay"
    speed_before_first = "-"

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._bar: Progress | None = None
        self._task = TaskID(0)
        self._files = 0
        self._done = 0
        self._started = 0.0

    def columns(self) -> tuple[ProgressColumn, ...]:
        return (TextColumn("{task.description}"), BarColumn(),
                TextColumn("{task.fields[files]}"),
                TextColumn("{task.completed:.0f}/{task.total:.0f} media s"),
                TextColumn("{task.fields[speed]}"), TextColumn("ETA"), TimeRemainingColumn())

    def in_bar_units(self, media_s: float) -> float:
        return media_s

    def started(self, total_media_s: float, files: int, workers: int | None = None) -> None:
        self._files, self._done, self._started = files, 0, time.monotonic()
        self._bar = Progress(*self.columns(), console=self.console, transient=False)
        self._bar.start()
        self._task = self._bar.add_task(
            self.description, total=self.in_bar_units(total_media_s) or None,
            files=f"0/{files} files", speed=self.speed_before_first, workers=workers)

    def advanced(self, done_media_s: float) -> None:
        bar = self._running()
        done = self.in_bar_units(done_media_s)
        elapsed = max(time.monotonic() - self._started, 1e-9)
        bar.update(self._task, completed=done,
                   total=max(bar.tasks[0].total or 0.0, done),  # the probes may have missed
                   speed=f"{done_media_s / elapsed:.1f}x realtime")

    def file_done(self, result: FileResult) -> None:
        bar = self._running()
        self._done += 1
        bar.update(self._task, files=f"{self._done}/{self._files} files")
        if self._done == self._files:  # all done, however far off the probed total was
            task = bar.tasks[0]
            bar.update(self._task, completed=max(task.total or 0.0, task.completed))
        print_failure(self.console, result)

    def finished(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _running(self) -> Progress:
        assert self._bar is not None, "progress reported before started()"
        return self._bar


class RayConsoleProgress(ConsoleProgress):
    """The bar of `replay --ray`: files, media hours, workers, x realtime."""

    description = "replay on ray"
    speed_before_first = ""

    def columns(self) -> tuple[ProgressColumn, ...]:
        return (TextColumn("{task.description}"), BarColumn(),
                TextColumn("{task.fields[files]}"),
                TextColumn("{task.completed:.2f}/{task.total:.2f} media h"),
                TextColumn("{task.fields[workers]} workers"),
                TextColumn("{task.fields[speed]}", style="dim"), TimeRemainingColumn())

    def in_bar_units(self, media_s: float) -> float:
        return media_s / 3600


def print_failure(console: Console, result: FileResult) -> None:
    if result.status == "failed":
        console.print(f"[red]failed[/red] {escape(result.path)}: {escape(result.error)}",
                      highlight=False)


def summary_table(results: list[FileResult], base: Path | None = None) -> Table:
    """One row per input; names relative to the batch folder keep the table readable."""
    table = Table(title=f"replay summary ({base})" if base else "replay summary")
    table.add_column("file", overflow="fold")
    table.add_column("status")
    for column in ("media s", "wall s", "speed", "events"):
        table.add_column(column, justify="right")
    table.add_column("error", overflow="fold")
    for r in results:
        style = {"ok": "green", "skipped": "dim", "failed": "red"}.get(r.status, "yellow")
        table.add_row(escape(_shown(Path(r.path), base)), f"[{style}]{r.status}[/{style}]",
                      f"{r.media_s:.1f}",
                      f"{r.wall_s:.1f}", f"{r.speed:.1f}x" if r.wall_s else "-",
                      str(r.events), escape(r.error))
    return table


def _shown(path: Path, base: Path | None) -> str:
    if base is None:
        return str(path)
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def render_info(info: RecordingInfo) -> list[str]:
    """`mmstream info`'s report, one line per item."""
    state = "complete" if info.complete else f"CUT SHORT: {info.stopped}"
    lines = [f"{info.path}: {info.size / 1e6:.2f} MB, {state}"]
    meta = info.metadata.get("mmstream.recording", {})
    if meta:
        lines.append(f"recorded by mmstream {meta.get('mmstream', '?')} on device "
                     f"{meta.get('device_id', '?')} at {meta.get('created', '?')} "
                     f"(recording format {meta.get('format', '?')})")
    lines.append(f"profile {info.profile or '-'}, written by {info.library or '-'}; "
                 f"{info.chunks} chunks ({', '.join(info.compression) or 'none'})")
    if info.start_s is not None:
        lines.append(f"duration {info.duration_s:.2f} s (log time {info.start_s:.3f} -> "
                     f"{info.end_s:.3f})")
    lines.append(f"schemas: {', '.join(info.schemas()) or 'none'}")
    lines.append("channels:")
    for c in info.channels:
        rate = f", {c.messages / c.span_s:.1f}/s" if c.span_s > 0 and c.kind != "event" else ""
        detail = f", {c.detail}" if c.detail else ""
        if c.bytes_per_hour:
            detail += f", {c.bytes_per_hour / 1e6:.1f} MB/h"
        lines.append(f"  {c.topic:<34} {c.messages:>7} msgs  {c.bytes / 1e6:8.2f} MB  "
                     f"{c.span_s:8.2f} s{rate}{detail}  [{c.schema}]")
    return lines
