"""MqttSink against real brokers: protocol fallback, MQTT 5 properties, a broker that is not
there yet, availability (Last Will), the retained health payload."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from mmstream.config import MqttSinkConfig
from mmstream.demo_broker import AmqttBroker, MosquittoBroker, free_port
from mmstream.errors import SinkError
from mmstream.events import SCHEMA_VERSION, StatusEvent, Transcript, TranscriptEvent, decode
from mmstream.sinks.mqtt import MqttSink
from tests.conftest import REPO, async_wait_until, wait_until
from tests.sinks.mqtt.helpers import Subscriber, retained_payloads


def transcript(n: int, device: str = "dev") -> TranscriptEvent:
    return TranscriptEvent(device_id=device, stream_id="mic0", seq=n, t_capture=float(n),
                           payload=Transcript(final=True, text=f"line {n}", start=n, end=n + 1))


async def test_falls_back_to_mqtt_311_when_the_broker_has_no_mqtt_5() -> None:
    broker = AmqttBroker()  # amqtt speaks 3.1.1 only
    broker.start()
    try:
        with Subscriber(broker.port, "mm/dev/+/+", clean_session=True) as subscriber:
            sink = MqttSink(MqttSinkConfig(url=broker.url, prefix="mm", connect_timeout_s=1),
                            "dev")  # amqtt hangs on an MQTT 5 CONNECT with a will
            async with sink:
                for n in range(1, 6):
                    await sink.send(transcript(n))
            assert await asyncio.to_thread(subscriber.wait_for, lambda m: len(m) >= 5, 10)
        assert [seq for seq, _ in subscriber.events()] == [1, 2, 3, 4, 5]
        assert sink.published == 5
    finally:
        broker.stop()


async def test_mqtt_5_events_carry_the_schema_version_and_expiry(
        mosquitto: MosquittoBroker) -> None:
    received: list[paho.MQTTMessage] = []
    subscribed = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_message = lambda _c, _u, message: received.append(message)
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", mosquitto.port)
    client.subscribe("mm/dev/mic0/#", qos=1)
    client.loop_start()
    try:
        assert await asyncio.to_thread(subscribed.wait, 10), "no SUBACK"
        sink = MqttSink(MqttSinkConfig(url=mosquitto.url, prefix="mm", protocol="5",
                                       message_expiry_s=600), "dev")
        async with sink:
            await sink.send(transcript(1))
        await async_wait_until(lambda: received, 10, "the event at the subscriber")
    finally:
        client.loop_stop()
        client.disconnect()
    props = received[0].properties
    assert ("schema", SCHEMA_VERSION) in props.UserProperty
    assert 0 < props.MessageExpiryInterval <= 600


async def test_unreachable_broker_without_a_spool_is_an_error_at_start() -> None:
    port = free_port()
    sink = MqttSink(MqttSinkConfig(url=f"mqtt://127.0.0.1:{port}", connect_timeout_s=2), "dev")
    with pytest.raises(SinkError, match=rf"cannot connect to MQTT broker mqtt://127.0.0.1:{port}"):
        await sink.__aenter__()


async def test_with_a_spool_mmstream_starts_before_the_broker(tmp_path: Path) -> None:
    broker = MosquittoBroker()  # not started yet: its port is free
    config = MqttSinkConfig(url=broker.url, prefix="mm", spool={"path": tmp_path / "spool.db"},
                            reconnect_min_s=0.1, reconnect_max_s=0.3)
    sink = MqttSink(config, "dev")
    try:
        async with sink:
            for n in range(1, 101):
                await sink.send(transcript(n))
            await async_wait_until(lambda: sink.spool.depth == 100, 10, "100 events spooled")
            assert sink.published == 0 and sink.stats.connects == 0
            await asyncio.to_thread(broker.start)
            await async_wait_until(lambda: sink.published == 100, 15,
                                   "the spooled events delivered once the broker is up")
            with Subscriber(broker.port, "mm/dev/+/+", clean_session=True) as subscriber:
                for n in range(101, 111):
                    await sink.send(transcript(n))
                assert await asyncio.to_thread(
                    subscriber.wait_for, lambda m: len(subscriber.events()) >= 10, 15)
        assert [seq for seq, _ in subscriber.events()] == list(range(101, 111))
        assert sink.published == 110 and sink.spool.depth == 0
    finally:
        broker.stop()


def retained(port: int, topic: str) -> bytes | None:
    """The retained payload of `topic` as a new subscriber sees it."""
    payloads = retained_payloads(port, topic)
    return payloads[-1] if payloads else None


def test_availability_flips_to_offline_when_the_process_dies(mosquitto: MosquittoBroker,
                                                             tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.sinks.mqtt.producer", mosquitto.url, "--count", "100000",
         "--rate", "50", "--device", "doomed", "--keepalive", "5"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        wait_until(lambda: retained(mosquitto.port, "mmstream/doomed/status") == b"online", 10,
                   "the retained online", poll_s=0.2)
        health = decode(wait_until(lambda: retained(mosquitto.port, "mmstream/doomed/health"),
                                   10, "the retained health", poll_s=0.2))
        assert isinstance(health, StatusEvent) and health.payload.state == "online"
        assert {"uptime_s", "spool_depth", "published"} <= health.payload.details.keys()
    finally:
        process.kill()  # SIGKILL: no goodbye, the broker sends the Last Will
        process.wait(10)
    wait_until(lambda: retained(mosquitto.port, "mmstream/doomed/status") == b"offline", 30,
               "the Last Will", poll_s=0.2)


async def test_clean_exit_says_offline(mosquitto: MosquittoBroker) -> None:
    async with MqttSink(MqttSinkConfig(url=mosquitto.url), "tidy") as sink:
        await sink.send(transcript(1, device="tidy"))
    assert await asyncio.to_thread(retained, mosquitto.port, "mmstream/tidy/status") == b"offline"


async def test_qos_0_skips_the_spool(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    config = MqttSinkConfig(url=mosquitto.url, prefix="mm", qos=0,
                            spool={"path": tmp_path / "spool.db"})
    with Subscriber(mosquitto.port, "mm/dev/+/+", clean_session=True) as subscriber:
        async with MqttSink(config, "dev") as sink:
            for n in range(1, 21):
                await sink.send(transcript(n))
            assert await asyncio.to_thread(subscriber.wait_for, lambda m: len(m) >= 20, 10)
            assert sink.spool.depth == 0  # all sent, none stored: QoS 0 has no PUBACK to wait for
    assert [seq for seq, _ in subscriber.events()] == list(range(1, 21))
    assert sink.published == 20
