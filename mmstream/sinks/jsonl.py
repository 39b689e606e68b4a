"""JSONL sink: one JSON envelope per line, to a file or stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from mmstream.errors import SinkError
from mmstream.events import Event, encode
from mmstream.runtime.stage import Sink


class JsonlSink(Sink):
    name = "jsonl"

    def __init__(self, path: str | Path = "-") -> None:
        self.path = str(path)
        self._file: IO[bytes] | None = None

    async def __aenter__(self) -> Self:
        if self.path == "-":
            self._file = sys.stdout.buffer
            return self
        target = Path(self.path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._file = target.open("wb")  # noqa: ASYNC230 - opening once at start
        except OSError as exc:
            raise SinkError(f"cannot write events to {target}: {exc.strerror}") from None
        return self

    async def send(self, event: Event) -> None:
        assert self._file is not None
        # one line out as each event is delivered (a reader tails it live); small writes,
        # cheap enough to stay on the loop
        self._file.write(encode(event) + b"\n")
        self._file.flush()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is None:
            return
        self._file.flush()
        if self._file is not sys.stdout.buffer:
            self._file.close()
        self._file = None
