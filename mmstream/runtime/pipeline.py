"""Runs sources -> stages -> sinks as supervised asyncio tasks joined by bounded channels.

The runner stays thin: behaviour lives in stages. It owns five things only: wiring channels
(each stage's `emit` puts into the channel to the next), supervising tasks (a restartable
source is reopened with backoff; anything else that fails, a stage's background work
included, stops the pipeline with an error naming the part), stamping `seq`/`t_publish` just
before the sinks, telling observers what happens, and an orderly drain when asked to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmstream.config.runtime import LIVE, RunPolicy
from mmstream.errors import MmstreamError, SinkError, SourceError, StageError
from mmstream.events import (
    Envelope,
    Event,
    FusedEvent,
    Status,
    StatusEvent,
    event_type,
    stamped,
)
from mmstream.media import EndOfStream
from mmstream.runtime.backoff import backoff_delay
from mmstream.runtime.channel import Channel
from mmstream.runtime.clock import Clock, clock_for
from mmstream.runtime.control import PipelineControl
from mmstream.runtime.lag import SourceClocks
from mmstream.runtime.observer import ChannelState, PipelineObserver
from mmstream.runtime.stage import Item, Sink, Source, Stage, StageLink

log = logging.getLogger(__name__)


@dataclass
class PipelineReport:
    """What a finished run did: events delivered by type and drops by channel and reason."""

    events: Counter[str] = field(default_factory=Counter)
    drops: dict[str, int] = field(default_factory=dict)
    last_seq: dict[str, int] = field(default_factory=dict)
    media_read: dict[str, float] = field(default_factory=dict)  # seconds read, per source
    damage: list[str] = field(default_factory=list)  # inputs read only in part, and why


class Sequencer:
    """Stamps `seq` (monotonic per stream, from 1), `device_id` and `t_publish`."""

    def __init__(self, device_id: str, clock: Clock) -> None:
        self.device_id = device_id
        self.clock = clock
        self.last_seq: dict[str, int] = {}

    def stamp(self, event: Event) -> Event:
        seq = self.last_seq.get(event.stream_id, 0) + 1
        self.last_seq[event.stream_id] = seq
        t_publish = self.clock.publish_time(event.t_capture)
        return stamped(event, device_id=self.device_id, seq=seq, t_publish=t_publish)

    def resume(self, last_seq: dict[str, int]) -> None:
        """Continue numbering after a previous run (a durable sink remembers where it was)."""
        for stream_id, seq in last_seq.items():
            self.last_seq[stream_id] = max(seq, self.last_seq.get(stream_id, 0))


@dataclass
class _StageTiming:
    """Per stage: time spent waiting on the next channel, and items emitted (for observers)."""

    waited: float = 0.0
    emitted: int = 0


class Pipeline:
    """`await Pipeline(sources, stages, sinks, device_id=..., policy=...).run(stop)`"""

    def __init__(
        self,
        sources: Sequence[Source],
        stages: Sequence[Stage],
        sinks: Sequence[Sink],
        *,
        device_id: str,
        policy: RunPolicy = LIVE,
        capacity: int = 64,
        restart_backoff: tuple[float, float] = (0.5, 30.0),
        observers: Sequence[PipelineObserver] = (),
        control: PipelineControl | None = None,
    ) -> None:
        if not sources:
            raise MmstreamError("the pipeline has no source")
        self.sources = list(sources)
        self.stages = list(stages)
        self.sinks = list(sinks)
        self.policy = policy
        self.sequencer = Sequencer(device_id, clock_for(policy))
        self.restart_backoff = restart_backoff
        self._control = control
        # A fast replay has no clock to keep up with: even frames wait for space, since
        # which frame a full channel sheds depends on timing.
        sheds = policy.channels_shed
        names = [stage.name for stage in self.stages] + ["sinks"]
        self.channels = [Channel(f"sources->{names[0]}", capacity,
                                 producers=len(self.sources), sheds=sheds)]
        self.channels += [Channel(f"{stage.name}->{names[i + 1]}", capacity, sheds=sheds)
                          for i, stage in enumerate(self.stages)]
        self.report = PipelineReport()
        self.observers = list(observers)
        self._opened_sources: set[int] = set()
        self._closed_stages: set[int] = set()
        self._timing = {stage.name: _StageTiming() for stage in self.stages}
        self.clocks = SourceClocks()

    # ---- what observers and stages may read (runtime/observer.py PipelineView) ---------------

    @property
    def control(self) -> PipelineControl | None:
        return self._control

    def drops(self) -> dict[str, int]:
        found = {f"{ch.name}:{reason}": n for ch in self.channels for reason, n in ch.drops.items()}
        for stage in self.stages:  # stages that shed by policy count their own drops
            found.update({f"{stage.name}:{reason}": n for reason, n in stage.drops().items()})
        return found

    def models(self) -> dict[str, str]:
        return {stage.name: stage.model_version for stage in self.stages
                if stage.model_version is not None}

    def event_counts(self) -> dict[str, int]:
        return dict(self.report.events)

    def media_read(self) -> dict[str, float]:
        return dict(self.report.media_read)

    def channels_after(self, stage_name: str | None) -> list[Channel]:
        if stage_name is None:
            return list(self.channels)
        names = [stage.name for stage in self.stages]
        return self.channels[names.index(stage_name) + 1:] if stage_name in names else []

    def channels_state(self, after: str | None = None) -> list[ChannelState]:
        return [ChannelState(ch.name, len(ch), ch.capacity, sum(ch.drops.values()))
                for ch in self.channels_after(after)]

    # ---- running -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None,
                  after: Mapping[str, int] | None = None) -> PipelineReport:
        """Run until every source ends (or `stop` is set), then drain and flush everything.

        `after`: the last seq per stream of a previous pipeline (a reload): numbering goes on.
        """
        stop = stop or asyncio.Event()
        self.sequencer.resume(dict(after or {}))
        for watcher in self._watchers():
            watcher.attached(_View(self))
        # Stages and sinks open in one exit stack: whatever fails to open (a later stage, a
        # sink's connect), everything opened before it is closed again (threads, models).
        async with contextlib.AsyncExitStack() as opened:
            for stage in self.stages:
                opened.push_async_callback(self._close_stage, stage)  # a half-open one too
                await stage.open()
            for sink in self.sinks:
                await opened.enter_async_context(sink)
                self.sequencer.resume(dict(sink.resume_seqs()))
            async with asyncio.TaskGroup() as group:
                for source in self.sources:
                    group.create_task(self._run_source(source, stop), name=source.name)
                for index, stage in enumerate(self.stages):
                    stage.attach(self._link(stage, index, group))
                    group.create_task(self._run_stage(stage, index), name=stage.name)
                group.create_task(self._deliver(), name="sinks")
        self.report.drops = self.drops()
        self.report.last_seq = dict(self.sequencer.last_seq)
        return self.report

    def _watchers(self) -> list[PipelineObserver]:
        return [*self.observers, *self.sinks]

    async def _run_source(self, source: Source, stop: asyncio.Event) -> None:
        out = self.channels[0]
        attempt = 0
        try:
            while not stop.is_set():
                try:
                    last_t = await self._pump_until_stopped(source, stop)
                    if source.damage is not None:
                        self.report.damage.append(source.damage)
                    for watcher in self._watchers():
                        watcher.source_ended(source.name)
                    await out.put(EndOfStream(source.stream_id, last_t))
                    return
                except SourceError as exc:
                    if not source.restartable:
                        raise
                    # A live device that is not there at start must not hold the daemon out
                    # of READY (systemd would kill it at its start timeout and restart it in a
                    # loop): the pipeline is up and says the device is reconnecting.
                    self._source_opened(source)
                    attempt += 1
                    delay = backoff_delay(attempt, *self.restart_backoff)
                    log.warning("%s failed (%s); reopening in %.1fs", source.name, exc, delay)
                    for watcher in self._watchers():
                        watcher.source_restart(source.name, str(exc))
                    await out.put(self._status(source.stream_id, "reconnecting", str(exc),
                                               attempt=attempt, retry_in_s=round(delay, 2)))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
        finally:
            await out.close()

    async def _pump_until_stopped(self, source: Source, stop: asyncio.Event) -> float:
        """Copy the source's items into the first channel; cancel the read when asked to stop.

        Returns the capture time of the last item, which stamps the stream's EndOfStream.
        """
        last_t = 0.0

        async def pump() -> None:
            nonlocal last_t
            first_t: float | None = None
            async with source:
                self._source_opened(source)
                for watcher in self._watchers():
                    watcher.source_opened(source.name)
                async for item in source:
                    last_t = item.t_capture
                    self.clocks.observe(item.stream_id, last_t, rate=source.clock_rate)
                    first_t = last_t if first_t is None else first_t
                    self.report.media_read[source.name] = last_t - first_t
                    await self.channels[0].put(item)

        pump_task = asyncio.create_task(pump())
        stop_task = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({pump_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_task.cancel()
            if not pump_task.done():
                pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump_task
        if not pump_task.cancelled() and pump_task.exception() is not None:
            raise pump_task.exception()  # type: ignore[misc]
        return last_t

    def _source_opened(self, source: Source) -> None:
        """Tell observers the pipeline is up once every source has opened, or (a restartable
        one) failed its first try and is retrying (sinks open first)."""
        first_time = id(source) not in self._opened_sources
        self._opened_sources.add(id(source))
        if first_time and len(self._opened_sources) == len(self.sources):
            for watcher in self._watchers():
                watcher.ready()

    def _link(self, stage: Stage, index: int, group: asyncio.TaskGroup) -> StageLink:
        outbox, timing = self.channels[index + 1], self._timing[stage.name]

        async def emit(item: Item) -> None:
            started = time.perf_counter()
            await outbox.put(item)
            timing.waited += time.perf_counter() - started
            timing.emitted += 1

        def spawn(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
            return group.create_task(_named_failure(stage.name, work),
                                     name=f"{stage.name}-background")

        return StageLink(emit, spawn, _View(self))

    async def _run_stage(self, stage: Stage, index: int) -> None:
        try:
            await _named_failure(stage.name, self._consume(stage, self.channels[index]))
        finally:
            await self.channels[index + 1].close()
            await self._close_stage(stage)  # at once: its threads are not needed any more

    async def _close_stage(self, stage: Stage) -> None:
        """Close a stage once, whether its run ended or the pipeline never got that far."""
        if id(stage) not in self._closed_stages:
            self._closed_stages.add(id(stage))
            await stage.close()

    async def _consume(self, stage: Stage, inbox: Channel) -> None:
        async for item in inbox:
            if not self.observers:
                await stage.process(item)
                continue
            await self._observed_step(stage, item)
        await stage.finish()

    async def _observed_step(self, stage: Stage, item: Item) -> None:
        """One item through a stage, timing the stage's own work (not waits on the outbox)."""
        timing = self._timing[stage.name]
        started, waited, emitted = time.perf_counter(), timing.waited, timing.emitted
        await stage.process(item)
        seconds = time.perf_counter() - started - (timing.waited - waited)
        for observer in self.observers:
            observer.stage_item(stage.name, seconds, timing.emitted - emitted)

    async def _deliver(self) -> None:
        media_sinks = [sink for sink in self.sinks if sink.wants_media]
        async for item in self.channels[-1]:
            if isinstance(item, Envelope):
                event = self.sequencer.stamp(item)  # type: ignore[arg-type]
                self.report.events[event_type(event)] += 1
                if isinstance(event, FusedEvent):  # one per analysed window
                    self.clocks.published_window(event.stream_id, event.t_capture)
                for sink in self.sinks:
                    await _delivered(sink, sink.send(event))
            else:
                for sink in media_sinks:
                    await _delivered(sink, sink.send_media(item))

    @staticmethod
    def _status(stream_id: str, state: Any, message: str, **details: Any) -> StatusEvent:
        return StatusEvent(stream_id=stream_id, t_capture=time.time(),
                           payload=Status(state=state, message=message, details=details))


class _View:
    """The read-only face of a pipeline that observers and stages get (PipelineView)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    @property
    def control(self) -> PipelineControl | None:
        return self._pipeline.control

    def drops(self) -> dict[str, int]:
        return self._pipeline.drops()

    def models(self) -> dict[str, str]:
        return self._pipeline.models()

    def event_counts(self) -> dict[str, int]:
        return self._pipeline.event_counts()

    def media_read(self) -> dict[str, float]:
        return self._pipeline.media_read()

    def channels(self, after: str | None = None) -> list[ChannelState]:
        return self._pipeline.channels_state(after)

    def age(self, stream_id: str, t_capture: float) -> float | None:
        return self._pipeline.clocks.age(stream_id, t_capture)

    def lags(self) -> dict[str, float]:
        return self._pipeline.clocks.lags()

    def sink_health(self) -> dict[str, Mapping[str, Any]]:
        return {sink.name: sink.health() for sink in self._pipeline.sinks}


async def _named_failure(stage: str, work: Awaitable[None]) -> None:
    """Await a stage's work; an unexpected error becomes `stage '<name>' failed: ...`."""
    await _failing_as(StageError, f"stage '{stage}'", work)


async def _delivered(sink: Sink, delivery: Awaitable[None]) -> None:
    await _failing_as(SinkError, f"sink '{sink.name}'", delivery)


async def _failing_as(error: type[MmstreamError], part: str, work: Awaitable[None]) -> None:
    """A user-facing error passes as it is; anything else is wrapped, naming the part."""
    try:
        await work
    except MmstreamError:
        raise
    except Exception as exc:
        raise error(f"{part} failed: {type(exc).__name__}: {exc}") from exc
