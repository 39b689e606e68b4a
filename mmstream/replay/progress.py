"""How a batch replay reports its progress: a small interface its caller implements.

The runners (`batch.BatchRunner`, `on_ray.RayBatchRunner`) say what happens — how much media
the batch holds, how far it got, which file just finished — and draw nothing: the CLI turns
that into a progress bar and red failure lines (`cli/replay_view.py`); library users, Ray
workers and tests pass nothing and get `NoProgress`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mmstream.replay.batch import FileResult


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
