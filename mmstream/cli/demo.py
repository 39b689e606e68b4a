"""`mmstream demo`: the sample clip -> pipeline -> MQTT broker -> a subscriber -> the terminal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import typer

from mmstream.display import describe
from mmstream.events import decode
from mmstream.sinks.mqtt import parse_mqtt_url

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


async def _show_events(url: str, prefix: str, subscribed: asyncio.Event) -> None:
    address = parse_mqtt_url(url)
    async with aiomqtt.Client(address.host, address.port, username=address.username,
                              password=address.password) as client:
        await client.subscribe(f"{prefix}/{DEMO_DEVICE}/+/+", qos=1)
        subscribed.set()
        async for message in client.messages:
            typer.echo(describe(decode(message.payload)))  # type: ignore[arg-type]


async def _demo(config: object, url: str) -> None:
    from mmstream.build import build_pipeline
    from mmstream.runtime.signals import run_until_signalled

    subscribed = asyncio.Event()
    viewer = asyncio.create_task(_show_events(url, config.sinks.mqtt.prefix, subscribed))  # type: ignore[attr-defined]
    await asyncio.wait({viewer, asyncio.create_task(subscribed.wait())},
                       return_when=asyncio.FIRST_COMPLETED)
    if viewer.done():
        viewer.result()  # raises the subscriber's connection error
    try:
        report = await run_until_signalled(build_pipeline(config))  # type: ignore[arg-type]
        await asyncio.sleep(SETTLE_S)
    finally:
        viewer.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await viewer
    total = sum(report.events.values())
    typer.echo(f"demo done: {total} events published to {url}", err=True)


def run_demo(clip: Path, *, mqtt: str | None, realtime: bool, sets: list[str]) -> None:
    from mmstream.cli.run_cmds import replay_config

    with broker_url(mqtt) as url:
        config = replay_config(clip, pipeline=None, out=None, mqtt=url, realtime=realtime,
                               sets=sets, device_id=DEMO_DEVICE)
        typer.echo(f"playing {clip.name} ({'real time' if realtime else 'fast'}); "
                   f"events on {config.sinks.mqtt.prefix}/{DEMO_DEVICE}/#", err=True)
        asyncio.run(_demo(config, url))
