"""How a replay reports its progress: `MediaRead` watches one pipeline (an observer, as the
pipeline tells every observer what it read), and a batch reports through a small interface
its caller implements.

The runners (`batch.BatchRunner`, `on_ray.RayBatchRunner`) say what happens — how much media
the batch holds, how far it got, which file just finished — and draw nothing: the CLI turns
that into a progress bar and red failure lines (`cli/replay_view.py`); library users, Ray
workers and tests pass nothing and get `NoProgress`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from mmstream.runtime.observer import PipelineObserver, PipelineView

if TYPE_CHECKING:
    from mmstream.replay.batch import FileResult

T = TypeVar("T")
REFRESH_S = 0.25


class MediaRead(PipelineObserver):
    """How many media seconds a pipeline has read of its input (its furthest source)."""

    def __init__(self) -> None:
        self.view: PipelineView | None = None

    def attached(self, pipeline: PipelineView) -> None:
        self.view = pipeline

    @property
    def seconds(self) -> float:
        return max(self.view.media_read().values(), default=0.0) if self.view else 0.0


async def followed(running: Awaitable[T], read: MediaRead, advance: Callable[[float], None],
                   every_s: float = REFRESH_S) -> T:
    """Await `running` (a pipeline that has `read` among its observers), telling `advance`
    how far it has read every `every_s` and once more at its end."""
    task = asyncio.ensure_future(running)
    try:
        while not (await asyncio.wait({task}, timeout=every_s))[0]:
            advance(read.seconds)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        advance(read.seconds)
    return task.result()


class BatchProgress(Protocol):
    def started(self, total_media_s: float, files: int, workers: int | None = None) -> None:
        """The batch begins: `files` inputs to go through, `total_media_s` of media in them as
        far as probing could tell (0: unknown), on `workers` parallel workers (None: this
        process, one input after another)."""

    def advanced(self, done_media_s: float) -> None:
        """Media seconds done so far in the whole batch (it only grows)."""

    def file_done(self, result: FileResult) -> None:
        """One input is finished with (ok, skipped, failed or interrupted); its outcome."""

    def finished(self) -> None:
        """The batch ended, normally or not: nothing more will be reported."""


class NoProgress:
    """Reports to nobody: the default."""

    def started(self, total_media_s: float, files: int, workers: int | None = None) -> None:
        pass

    def advanced(self, done_media_s: float) -> None:
        pass

    def file_done(self, result: FileResult) -> None:
        pass

    def finished(self) -> None:
        pass
