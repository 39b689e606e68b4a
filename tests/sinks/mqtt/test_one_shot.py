"""The short MQTT sessions beside the sink (`ha`, `listen`, the demo): one library (paho),
retained publishes acknowledged, messages read with `async for`, failures named."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mmstream.config import MqttSinkConfig
from mmstream.demo_broker import MosquittoBroker
from mmstream.errors import SinkError
from mmstream.sinks.mqtt.client import one_off_settings
from mmstream.sinks.mqtt.one_shot import Subscription, publish_retained


async def test_a_retained_publish_is_read_back_by_a_subscription(
        mosquitto: MosquittoBroker) -> None:
    settings = one_off_settings(MqttSinkConfig(url=mosquitto.url))
    await asyncio.to_thread(publish_retained, settings, [("one-shot/a", b"first"),
                                                         ("one-shot/b", b"second")])
    async with Subscription(settings, ["one-shot/+"]) as messages:
        got = {}
        async for topic, payload in messages:
            got[topic] = payload
            if len(got) == 2:
                break
    assert got == {"one-shot/a": b"first", "one-shot/b": b"second"}
    await asyncio.to_thread(publish_retained, settings, [("one-shot/a", b""),
                                                         ("one-shot/b", b"")])  # cleared
    assert not [t for t in threading.enumerate() if t.name.startswith("paho")], (
        "paho's loop threads are stopped")


async def test_no_broker_is_a_sink_error_naming_it(mosquitto: MosquittoBroker) -> None:
    port = mosquitto.port
    mosquitto.stop()
    try:
        settings = one_off_settings(MqttSinkConfig(url=f"mqtt://127.0.0.1:{port}"),
                                    connect_timeout_s=2.0)
        with pytest.raises(SinkError, match=f"cannot connect to MQTT broker .*{port}"):
            async with Subscription(settings, ["x/#"]):
                pass
        with pytest.raises(SinkError, match="cannot connect"):
            publish_retained(settings, [("x/y", b"z")])
    finally:
        mosquitto.start()
