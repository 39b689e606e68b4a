"""One stage outside a pipeline: feed it items, collect what it emits (tests, benchmarks).

    async with StageHarness(TranscribeStage(cfg, policy=FAST)) as harness:
        for chunk in chunks:
            await harness.feed(chunk)
    events = harness.emitted  # everything, the stage's finish() included

The stage is opened on entry, and on a clean exit its `finish()` runs, its background work is
awaited and it is closed, exactly as the pipeline runner does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import Any, Self

from mmstream.runtime.control import PipelineControl
from mmstream.runtime.observer import ChannelState, PipelineView
from mmstream.runtime.stage import Item, Stage, StageLink


class AloneView:
    """The PipelineView of a part that runs alone: nothing around it but, perhaps, control
    (an MQTT sink tested without a pipeline)."""

    def __init__(self, control: PipelineControl | None = None) -> None:
        self.control = control

    def drops(self) -> dict[str, int]:
        return {}

    def models(self) -> dict[str, str]:
        return {}

    def event_counts(self) -> dict[str, int]:
        return {}

    def media_read(self) -> dict[str, float]:
        return {}

    def age(self, stream_id: str, t_capture: float) -> float | None:
        return None

    def lags(self) -> dict[str, float]:
        return {}

    def channels(self, after: str | None = None) -> list[ChannelState]:
        return []


class StageHarness:
    def __init__(self, stage: Stage, *, open_stage: bool = True,
                 view: PipelineView | None = None) -> None:
        self.stage = stage
        self.open_stage = open_stage
        self.view = view or AloneView()
        self.emitted: list[Item] = []
        self._group = asyncio.TaskGroup()

    async def _collect(self, item: Item) -> None:
        self.emitted.append(item)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return self._group.create_task(work)

    async def __aenter__(self) -> Self:
        await self._group.__aenter__()
        self.stage.attach(StageLink(self._collect, self._spawn, self.view))
        if self.open_stage:
            await self.stage.open()
        return self

    async def feed(self, item: Item) -> list[Item]:
        """Process one item; returns what the stage emitted meanwhile."""
        start = len(self.emitted)
        await self.stage.process(item)
        return self.emitted[start:]

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc is None:
                await self.stage.finish()
            await self._group.__aexit__(exc_type, exc, tb)
        finally:
            await self.stage.close()


async def run_stage(stage: Stage, items: Iterable[Item], *, open_stage: bool = True
                    ) -> list[Item]:
    """Everything `stage` emits for `items`, its finish() included."""
    async with StageHarness(stage, open_stage=open_stage) as harness:
        for item in items:
            await harness.feed(item)
    return harness.emitted
