"""`mmstream demo`: the sample clip -> pipeline -> MQTT broker -> a subscriber -> the terminal.

The lines are printed in the order of their time (when a transcript was decided, when a window
ended), not in the order they arrive: a window is published after it waited for its text and
was analysed, so it arrives after transcripts decided later (in a fast replay, all transcripts
arrive before the first window). `TimeOrder` holds each line until the media is `hold_s` past
it, then prints what it held by time; the fast demo holds everything to the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
from collections.abc import Iterator
from pathlib import Path

import typer

from mmstream.config import MqttSinkConfig, PipelineConfig
from mmstream.display import describe
from mmstream.errors import SinkError
from mmstream.events import Event, StatusEvent, decode
from mmstream.sinks.mqtt.client import one_off_settings
from mmstream.sinks.mqtt.one_shot import Subscription

DEMO_DEVICE = "demo"
SETTLE_S = 1.0  # after the pipeline ends, wait this long for the last messages to arrive
# A window waits up to 0.5 s for its text (stages/window.py) and is then analysed: on the
# 2-core box lines arrived up to 0.6 s of media behind a line decided after them.
REALTIME_HOLD_S = 2.0


class TimeOrder:
    """Events in, events out by (time, seq): each is held until an event `hold_s` later has
    arrived (or `flush`). A status event's time is the wall clock's: it goes out at once."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self._held: list[tuple[float, int, int, Event]] = []
        self._newest = -math.inf
        self._arrived = 0  # ties (same time and seq on two streams) keep arrival order

    def add(self, event: Event) -> list[Event]:
        if isinstance(event, StatusEvent):
            return [event]
        self._arrived += 1
        heapq.heappush(self._held, (event.t_capture, event.seq, self._arrived, event))
        self._newest = max(self._newest, event.t_capture)
        released = []
        while self._held and self._held[0][0] <= self._newest - self.hold_s:
            released.append(heapq.heappop(self._held)[3])
        return released

    def flush(self) -> list[Event]:
        released = [entry[3] for entry in sorted(self._held)]
        self._held.clear()
        return released


@contextlib.contextmanager
def broker_url(mqtt: str | None) -> Iterator[str]:
    if mqtt is not None:
        yield mqtt
        return
    from mmstream.demo_broker import embedded_broker

    with embedded_broker() as broker:
        typer.echo(f"embedded {broker.kind} broker on {broker.url}", err=True)
        yield broker.url


async def _show_events(mqtt: MqttSinkConfig, subscribed: asyncio.Event, order: TimeOrder
                       ) -> None:
    settings = one_off_settings(mqtt)  # the broker, credentials and TLS the pipeline's sink uses
    async with Subscription(settings, [f"{mqtt.prefix}/{DEMO_DEVICE}/+/+"]) as messages:
        subscribed.set()
        async for _topic, payload in messages:
            for event in order.add(decode(payload)):
                typer.echo(describe(event))


async def _demo(config: PipelineConfig, url: str, realtime: bool) -> None:
    from mmstream.build import build_pipeline
    from mmstream.runtime.signals import stop_on_signals

    assert config.sinks.mqtt is not None
    subscribed = asyncio.Event()
    order = TimeOrder(REALTIME_HOLD_S if realtime else math.inf)
    viewer = asyncio.create_task(_show_events(config.sinks.mqtt, subscribed, order))
    await asyncio.wait({viewer, asyncio.create_task(subscribed.wait())},
                       return_when=asyncio.FIRST_COMPLETED)
    if viewer.done():
        viewer.result()  # raises the subscriber's connection error
    try:
        with stop_on_signals() as signals:
            report = await build_pipeline(config).run(signals.stop)
        await asyncio.sleep(SETTLE_S)
    finally:
        viewer.cancel()
        with contextlib.suppress(asyncio.CancelledError, SinkError):
            await viewer
        for event in order.flush():
            typer.echo(describe(event))
    total = sum(report.events.values())
    typer.echo(f"demo done: {total} events published to {url}", err=True)


def run_demo(clip: Path, *, mqtt: str | None, realtime: bool, sets: list[str]) -> None:
    from mmstream.replay.setup import ReplayOptions, replay_config

    with broker_url(mqtt) as url:
        config = replay_config(clip, mqtt=url, options=ReplayOptions(realtime=realtime),
                               sets=sets, device_id=DEMO_DEVICE)
        assert config.sinks.mqtt is not None
        typer.echo(f"playing {clip.name} ({'real time' if realtime else 'fast'}); "
                   f"events on {config.sinks.mqtt.prefix}/{DEMO_DEVICE}/#", err=True)
        asyncio.run(_demo(config, url, realtime))
