"""The three kinds of pipeline parts: sources produce items, stages transform, sinks deliver.

One typed union of items flows through a pipeline: `Item` = a media item (video frame, audio
chunk, end of stream), a fusion `Window`, or an `Event` (the public contract). A stage receives
each item in `process(item)` and pushes what goes on with `await self.emit(item)`: nothing,
the item itself, or new items. What a stage does not handle it passes on unchanged, so a
pipeline is a plain list of stages (pipecat's FrameProcessors). A stage whose work finishes in
the background (a model batch, a whisper decode) starts that work with `self.in_background()`
and emits the results from there the moment they are ready; `finish()` runs once its input
has ended and emits what it still holds.

What the runner, metrics and health need from a part is declared here, never probed:
`Stage.drops()` and `Stage.model_version`, `Sink.resume_seqs()` and `Sink.health()`. Every
part is also a `PipelineObserver` (runtime/observer.py): a sink that publishes health is told
the pipeline it serves through `attached(view)`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from mmstream.events import Event
from mmstream.media import MediaItem, Window
from mmstream.runtime.observer import PipelineObserver, PipelineView

Item = MediaItem | Window | Event
Emit = Callable[[Item], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


@dataclass(frozen=True)
class StageLink:
    """What the runner hands a stage before it runs: where its output goes, where its
    background work runs (a failure there stops the pipeline with the stage's name), and a
    read-only view of the pipeline around it (the overload governor reads queue fill)."""

    emit: Emit
    spawn: Spawn
    pipeline: PipelineView


class Stage:
    """Transforms items; the default passes everything through."""

    name: str = "stage"
    _link: StageLink | None = None

    def attach(self, link: StageLink) -> None:
        """Called by the runner before the first item."""
        self._link = link

    @property
    def link(self) -> StageLink:
        if self._link is None:
            raise RuntimeError(f"stage '{self.name}' is not attached to a pipeline")
        return self._link

    async def emit(self, item: Item) -> None:
        """Push an item to the next stage (waits while the channel there is full)."""
        await self.link.emit(item)

    def in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `work` beside the stage; if it fails, the pipeline stops with its error."""
        return self.link.spawn(work)

    async def open(self) -> None:
        """Load models or other resources (blocking work belongs in a thread)."""

    async def process(self, item: Item) -> None:
        await self.emit(item)

    async def finish(self) -> None:
        """The input has ended: emit what is still held (background work included)."""

    async def close(self) -> None:
        """Release resources (also after a failure: nothing is emitted here)."""

    def drops(self) -> Mapping[str, int]:
        """Items this stage dropped by policy, by reason (`shed:VideoFrame`)."""
        return {}

    @property
    def model_version(self) -> str | None:
        """The model behind this stage's results, for the health payload."""
        return None


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
    """An async context manager that yields media items: `async with src: async for x in src`.

    `kind` names the source in logs and errors (`camera:cam0`); the stream id is its config's
    `id` (a recording source decides the last one at its end).
    """

    kind: str = "source"
    #: restart on failure (live devices) instead of stopping the pipeline (files)
    restartable: bool = False
    #: media seconds the source delivers per wall second (a paced replay's `speed`): lag and
    #: staleness are measured on the wall clock this scales to
    clock_rate: float = 1.0
    #: set by the source when it ends: what of its input could not be read (a cut recording)
    damage: str | None = None

    def __init__(self, config: Any) -> None:
        self.config = config
        self.stream_id: str = config.id
        self.name = f"{self.kind}:{config.id}"

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[Item]: ...


class Sink(AsyncResource, PipelineObserver, ABC):
    """Delivers stamped events; an async context manager whose exit flushes everything."""

    name: str = "sink"
    #: receive media items too (the analysed frames a picture is drawn from); others get
    #: events only
    wants_media: bool = False

    @abstractmethod
    async def send(self, event: Event) -> None: ...

    async def send_media(self, item: MediaItem) -> None:
        """Receive a raw media item (only called when `wants_media`)."""

    def resume_seqs(self) -> Mapping[str, int]:
        """The last `seq` per stream that a durable sink already delivered in a previous run:
        the pipeline continues numbering from there."""
        return {}

    def health(self) -> Mapping[str, Any]:
        """The state of the sink's own link (connected, backlog), for health views; small,
        JSON-ready and quick: it is read on the event loop."""
        return {}

