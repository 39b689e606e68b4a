"""The three kinds of pipeline parts: sources produce items, stages transform, sinks deliver.

A stage receives every item that reaches it and yields what goes on: it handles the kinds it
cares about and passes the rest through unchanged, so a pipeline is a plain list of stages.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self

from mmstream.events import Event


class Stage:
    """Transforms items; the default passes everything through."""

    name: str = "stage"

    async def open(self) -> None:
        """Load models or other resources (blocking work belongs in a thread)."""

    async def process(self, item: Any) -> AsyncIterator[Any]:
        yield item

    async def flush(self) -> AsyncIterator[Any]:
        """Emit what is still buffered once every source has ended."""
        return
        yield  # pragma: no cover - makes this an async generator

    #: Set by a stage whose work finishes in the background (a model batch): the pipeline
    #: then collects `ready()` at once instead of waiting for the next item to arrive.
    ready_signal: asyncio.Event | None = None

    async def ready(self) -> AsyncIterator[Any]:
        """What finished in the background since the last call (see `ready_signal`)."""
        return
        yield  # pragma: no cover - makes this an async generator

    async def close(self) -> None:
        """Release resources."""


class AsyncResource:
    """Opened and closed with `async with`; nothing to do unless a subclass says so."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class Source(AsyncResource, ABC):
    """An async context manager that yields media items: `async with src: async for x in src`."""

    name: str = "source"
    stream_id: str = ""
    #: restart on failure (live devices) instead of stopping the pipeline (files)
    restartable: bool = False

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[Any]: ...


class Sink(AsyncResource, ABC):
    """Delivers stamped events; an async context manager whose exit flushes everything."""

    name: str = "sink"
    #: receive raw media items too (recorders); others get events only
    wants_media: bool = False

    @abstractmethod
    async def send(self, event: Event) -> None: ...

    async def send_media(self, item: Any) -> None:
        """Receive a raw media item (only called when `wants_media`)."""
