"""User-facing errors: the CLI prints their message as one line (traceback only with --debug)."""

from __future__ import annotations

from pathlib import Path

DAMAGED_INPUT_EXIT = 3  # what was readable was written; the input (a cut recording) was damaged


class MmstreamError(Exception):
    """Base class: the message says what is wrong and where."""

    exit_code: int = 1


class ConfigError(MmstreamError):
    exit_code = 2


class SourceError(MmstreamError):
    """A source cannot be opened or read (missing file, corrupt media, vanished device)."""


class SinkError(MmstreamError):
    """A sink cannot deliver (unreachable broker, unwritable file)."""


class StageError(MmstreamError):
    """A stage raised: the pipeline stops and names the stage."""


class OutputClosed(MmstreamError):
    """The reader of our output went away (`... | head -2`): end quietly, as Unix tools do."""

    exit_code = 0


class ModelError(MmstreamError):
    """Model weights are missing or cannot be loaded."""


def first_user_error(exc: BaseException) -> MmstreamError | None:
    """Find the first MmstreamError inside an exception (group) tree."""
    if isinstance(exc, MmstreamError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = first_user_error(inner)
            if found is not None:
                return found
    cause = exc.__cause__
    if isinstance(cause, BaseException) and cause is not exc:
        return first_user_error(cause)
    return None


FFMPEG_INVALID_DATA = 1094995529  # AVERROR_INVALIDDATA, which PyAV shows as "[Errno 1094995529]"
NOT_MEDIA = "not a media file ffmpeg can read"


def missing_path(path: str | Path, what: str = "file") -> str:
    """Why `path` cannot be opened, in words: "<what> not found: <path>", or what is wrong
    with it (a loop of symbolic links, a link to nothing: `paths.missing_reason`)."""
    from mmstream.paths import missing_reason

    reason = missing_reason(Path(path))
    if reason is None or reason == "no such file":
        return f"{what} not found: {path}"
    return f"{what} {path}: {reason}"


def ffmpeg_reason(exc: BaseException) -> str:
    """PyAV's error in words: "[Errno 1094995529] Invalid data ..." -> what it means."""
    if getattr(exc, "errno", None) == FFMPEG_INVALID_DATA:
        return NOT_MEDIA
    reason = getattr(exc, "strerror", None) or str(exc)
    return reason[:1].lower() + reason[1:]
