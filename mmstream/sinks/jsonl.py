"""JSONL sink: one JSON envelope per line, to a file or stdout.

A daemon's file is continued, never truncated: a pipeline rebuilt by a SIGHUP reload, or a
restart, appends to it and numbers on from the last `seq` per stream it holds (`append`, the
default). A replay writes a fresh file instead (`append: false`), under a temporary name that
the command renames once the run succeeded. Each line goes out as its event is delivered, so
`tail -f` and a pipe see events live; a reader that closes the pipe (`| head -2`) ends the run
quietly, as Unix tools do.
"""

from __future__ import annotations

import asyncio
import errno
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import msgspec

from mmstream.errors import OutputClosed, SinkError
from mmstream.events import Event, encode
from mmstream.runtime.stage import Sink


class _Numbered(msgspec.Struct):
    """The two fields of an envelope that say where numbering stopped."""

    stream_id: str = ""
    seq: int = 0


def last_seqs(path: Path) -> dict[str, int]:
    """The highest `seq` per stream in an events file (a torn last line is skipped)."""
    decoder = msgspec.json.Decoder(_Numbered)
    found: dict[str, int] = {}
    with path.open("rb") as lines:
        for line in lines:
            try:
                event = decoder.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if event.seq > found.get(event.stream_id, 0):
                found[event.stream_id] = event.seq
    return found


def write_failure(exc: OSError, where: str) -> str:
    """A failed write in words: a full disk is the common case on a device."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full writing {where}"
    return f"cannot write events to {where}: {exc.strerror or exc}"


def _ends_torn(path: Path) -> bool:
    with path.open("rb") as file:
        if file.seek(0, 2) == 0:
            return False
        file.seek(-1, 2)
        return file.read(1) != b"\n"


class JsonlSink(Sink):
    name = "jsonl"

    def __init__(self, path: str | Path = "-", *, append: bool = True) -> None:
        self.path = str(path)
        self.append = append
        self._file: IO[bytes] | None = None
        self._resume: dict[str, int] = {}
        self._failed = False  # a write failed: what is left in the buffer cannot go out either

    def resume_seqs(self) -> Mapping[str, int]:
        return self._resume

    async def __aenter__(self) -> Self:
        if self.path == "-":
            self._file = sys.stdout.buffer
            return self
        # reading where numbering stopped scans the file: not on the event loop
        self._file = await asyncio.to_thread(self._open, Path(self.path))
        return self

    def _open(self, target: Path) -> IO[bytes]:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if not (self.append and target.is_file()):
                return target.open("wb")
            self._resume = last_seqs(target)
            file = target.open("ab")
            if _ends_torn(target):
                file.write(b"\n")  # a crash cut the last line: keep it on a line of its own
            return file
        except OSError as exc:
            raise SinkError(f"cannot write events to {target}: {exc.strerror}") from None

    async def send(self, event: Event) -> None:
        assert self._file is not None
        try:  # small writes, flushed per line: cheap enough to stay on the loop
            self._file.write(encode(event) + b"\n")
            self._file.flush()
        except BrokenPipeError:
            raise OutputClosed(f"the reader of {self._shown()} went away") from None
        except OSError as exc:
            self._failed = True
            raise SinkError(write_failure(exc, self._shown())) from None

    def _shown(self) -> str:
        return "standard output" if self.path == "-" else self.path

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        if file is sys.stdout.buffer:
            try:
                file.flush()
            except BrokenPipeError:
                pass  # the reader went away; what it read is what it wanted
            return
        try:
            file.close()
        except OSError as error:
            if not self._failed and exc is None:
                raise SinkError(write_failure(error, self._shown())) from None
