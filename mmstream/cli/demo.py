"""`mmstream demo`: the sample clip -> pipeline -> MQTT broker -> a subscriber -> the terminal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import typer

from mmstream.config import MqttSinkConfig, PipelineConfig
from mmstream.display import describe
from mmstream.events import decode
from mmstream.sinks.mqtt import broker_settings

DEMO_DEVICE = "demo"
SETTLE_S = 1.0  # after the pipeline ends, wait this long for the last messages to arrive


@contextlib.contextmanager
def broker_url(mqtt: str | None) -> Iterator[str]:
    if mqtt is not None:
        yield mqtt
        return
    from mmstream.broker import embedded_broker

    with embedded_broker() as broker:
        typer.echo(f"embedded {broker.kind} broker on {broker.url}", err=True)
        yield broker.url


async def _show_events(mqtt: MqttSinkConfig, subscribed: asyncio.Event) -> None:
    broker = broker_settings(mqtt)  # the broker, credentials and TLS the pipeline's sink uses
    async with aiomqtt.Client(broker.host, broker.port, username=broker.username,
                              password=broker.password, tls_context=broker.tls) as client:
        await client.subscribe(f"{mqtt.prefix}/{DEMO_DEVICE}/+/+", qos=1)
        subscribed.set()
        async for message in client.messages:
            typer.echo(describe(decode(message.payload)))  # type: ignore[arg-type]


async def _demo(config: PipelineConfig, url: str) -> None:
    from mmstream.build import build_pipeline
    from mmstream.runtime.signals import stop_on_signals

    assert config.sinks.mqtt is not None
    subscribed = asyncio.Event()
    viewer = asyncio.create_task(_show_events(config.sinks.mqtt, subscribed))
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
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await viewer
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
        asyncio.run(_demo(config, url))
