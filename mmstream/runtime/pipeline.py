"""Runs sources -> stages -> sinks as supervised asyncio tasks joined by bounded channels.

The runner stays thin: behaviour lives in stages. It owns four things only: wiring channels,
supervising tasks (a restartable source is reopened with backoff, anything else that fails
stops the pipeline with an error naming the part), stamping `seq`/`t_publish` just before
the sinks, and an orderly drain when asked to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmstream.errors import MmstreamError, SinkError, SourceError, StageError
from mmstream.events import Envelope, Event, Status, StatusEvent, event_type, stamped
from mmstream.media import EndOfStream
from mmstream.runtime.channel import Channel
from mmstream.runtime.clock import Clock, WallClock
from mmstream.runtime.observer import PipelineObserver
from mmstream.runtime.stage import Sink, Source, Stage

log = logging.getLogger(__name__)


@dataclass
class PipelineReport:
    """What a finished run did: events delivered by type and drops by channel and reason."""

    events: Counter[str] = field(default_factory=Counter)
    drops: dict[str, int] = field(default_factory=dict)
    last_seq: dict[str, int] = field(default_factory=dict)


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


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter, so many devices do not retry in lockstep."""
    return random.uniform(base / 2, min(cap, base * 2 ** (attempt - 1)))


class Pipeline:
    def __init__(
        self,
        sources: Sequence[Source],
        stages: Sequence[Stage],
        sinks: Sequence[Sink],
        *,
        device_id: str,
        clock: Clock | None = None,
        capacity: int = 64,
        restart_backoff: tuple[float, float] = (0.5, 30.0),
        observers: Sequence[PipelineObserver] = (),
        lossless: bool = False,
    ) -> None:
        if not sources:
            raise MmstreamError("the pipeline has no source")
        self.sources = list(sources)
        self.stages = list(stages)
        self.sinks = list(sinks)
        self.sequencer = Sequencer(device_id, clock or WallClock())
        self.restart_backoff = restart_backoff
        names = ["sources", *(stage.name for stage in self.stages)]
        self.channels = [Channel(f"{names[0]}->{names[1] if len(names) > 1 else 'sinks'}",
                                 capacity, producers=len(self.sources), lossless=lossless)]
        for index, stage in enumerate(self.stages):
            target = self.stages[index + 1].name if index + 1 < len(self.stages) else "sinks"
            self.channels.append(Channel(f"{stage.name}->{target}", capacity, lossless=lossless))
        self.report = PipelineReport()
        self.observers = list(observers)
        self._opened_sources: set[int] = set()

    def drops(self) -> dict[str, int]:
        found = {f"{ch.name}:{reason}": n for ch in self.channels for reason, n in ch.drops.items()}
        for stage in self.stages:  # stages that shed by policy count their own drops
            found.update({f"{stage.name}:{reason}": n
                          for reason, n in getattr(stage, "drops", {}).items()})
        return found

    async def run(self, stop: asyncio.Event | None = None) -> PipelineReport:
        """Run until every source ends (or `stop` is set), then drain and flush everything."""
        stop = stop or asyncio.Event()
        for stage in self.stages:
            await stage.open()
        async with contextlib.AsyncExitStack() as opened_sinks:
            for sink in self.sinks:
                await opened_sinks.enter_async_context(sink)
                self.sequencer.resume(getattr(sink, "last_seqs", dict)())
            async with asyncio.TaskGroup() as group:
                for source in self.sources:
                    group.create_task(self._run_source(source, stop), name=source.name)
                for index, stage in enumerate(self.stages):
                    group.create_task(self._run_stage(stage, index), name=stage.name)
                group.create_task(self._deliver(), name="sinks")
        self.report.drops = self.drops()
        self.report.last_seq = dict(self.sequencer.last_seq)
        return self.report

    async def _run_source(self, source: Source, stop: asyncio.Event) -> None:
        out = self.channels[0]
        attempt = 0
        try:
            while not stop.is_set():
                try:
                    last_t = await self._pump_until_stopped(source, stop)
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
                    for observer in self.observers:
                        observer.source_restart(source.name, str(exc))
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
            async with source:
                self._source_opened(source)
                async for item in source:
                    last_t = getattr(item, "t_capture", last_t)
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
            for observer in self.observers:
                observer.ready()

    async def _run_stage(self, stage: Stage, index: int) -> None:
        inbox, outbox = self.channels[index], self.channels[index + 1]
        inbox_done = asyncio.Event()
        collector = (asyncio.create_task(self._collect_ready(stage, outbox, inbox_done))
                     if stage.ready_signal is not None else None)
        try:
            async for item in inbox:
                if collector is not None and collector.done():
                    collector.result()  # a background result failed: the stage fails
                if self.observers:
                    await self._observed_step(stage, item, outbox)
                    continue
                async for produced in stage.process(item):
                    await outbox.put(produced)
            if collector is not None:
                # Let it finish what it holds: cancelling it inside `outbox.put` would lose
                # the events it has already taken from the stage.
                inbox_done.set()
                assert stage.ready_signal is not None
                stage.ready_signal.set()
                await collector  # and raises what failed in the background
            async for produced in stage.flush():
                await outbox.put(produced)
        except MmstreamError:
            raise
        except Exception as exc:
            raise StageError(f"stage '{stage.name}' failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if collector is not None and not collector.done():  # the stage failed
                collector.cancel()
            await outbox.close()
            await stage.close()

    @staticmethod
    async def _collect_ready(stage: Stage, outbox: Channel, inbox_done: asyncio.Event) -> None:
        """Hand on a stage's background results as soon as they are in: a live camera's
        window events must not wait for its next frame to push them out. Returns once the
        inbox has ended and what was ready is handed on (the stage's flush does the rest)."""
        signal = stage.ready_signal
        assert signal is not None
        while True:
            await signal.wait()
            signal.clear()
            async for produced in stage.ready():
                await outbox.put(produced)
            if inbox_done.is_set():
                return

    async def _observed_step(self, stage: Stage, item: Any, outbox: Channel) -> None:
        """One item through a stage, timing the stage's own work (not waits on the outbox)."""
        started = time.perf_counter()
        waited = 0.0
        produced_count = 0
        async for produced in stage.process(item):
            put_started = time.perf_counter()
            await outbox.put(produced)
            waited += time.perf_counter() - put_started
            produced_count += 1
        seconds = time.perf_counter() - started - waited
        for observer in self.observers:
            observer.stage_item(stage.name, seconds, produced_count)

    async def _deliver(self) -> None:
        media_sinks = [sink for sink in self.sinks if sink.wants_media]
        async for item in self.channels[-1]:
            if isinstance(item, Envelope):
                event = self.sequencer.stamp(item)  # type: ignore[arg-type]
                self.report.events[event_type(event)] += 1
                for sink in self.sinks:
                    await self._guarded(sink, sink.send(event))
            else:
                for sink in media_sinks:
                    await self._guarded(sink, sink.send_media(item))

    @staticmethod
    async def _guarded(sink: Sink, delivery: Awaitable[None]) -> None:
        try:
            await delivery
        except MmstreamError:
            raise
        except Exception as exc:
            raise SinkError(f"sink '{sink.name}' failed: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _status(stream_id: str, state: Any, message: str, **details: Any) -> StatusEvent:
        return StatusEvent(stream_id=stream_id, t_capture=time.time(),
                           payload=Status(state=state, message=message, details=details))
