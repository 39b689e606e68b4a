"""Bounded load on loopback: a steady 1,000 events/s and an unpaced burst, QoS 1, spool on.

Numbers are reported, not asserted (no wall-clock thresholds in tests; benchmarks/bench_mqtt.py
compares them); what is asserted is that every event arrives once, in order, intact.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import paho.mqtt.client as paho
import pytest

from mmstream.config import MqttSinkConfig
from mmstream.demo_broker import MosquittoBroker
from mmstream.events import Transcript, TranscriptEvent, decode
from mmstream.sinks.mqtt import MqttSink
from tests.sinks.mqtt.helpers import Subscriber

pytestmark = pytest.mark.slow


def events(count: int) -> list[TranscriptEvent]:
    return [TranscriptEvent(device_id="load", stream_id="mic0", seq=n, t_capture=float(n),
                            payload=Transcript(final=True, text=f"utterance {n} " * 12,
                                               start=n, end=n + 1)) for n in range(1, count + 1)]


async def publish(sink: MqttSink, batch: list[TranscriptEvent], rate: float | None) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    for index, event in enumerate(batch):
        if rate is not None and (delay := started + index / rate - loop.time()) > 0:
            await asyncio.sleep(delay)
        await sink.send(msgspec.structs.replace(event, t_publish=time.time()))
    return loop.time() - started


async def test_steady_rate_and_burst_arrive_complete_and_in_order(mosquitto: MosquittoBroker,
                                                                  tmp_path: Path) -> None:
    steady, burst = events(3000), events(8000)[3000:]
    config = MqttSinkConfig(url=mosquitto.url, spool={"path": tmp_path / "spool.db"})
    arrivals: dict[int, float] = {}
    with Subscriber(mosquitto.port, "mmstream/load/+/+", clean_session=True) as subscriber:
        def arrived(_client: object, _userdata: object, message: paho.MQTTMessage) -> None:
            event = decode(message.payload)
            arrivals.setdefault(event.seq, time.time() - event.t_publish)
            with subscriber.changed:  # wakes wait_for below
                subscriber.changed.notify_all()

        subscriber.client.on_message = arrived
        async with MqttSink(config, "load") as sink:
            await publish(sink, steady, rate=1000.0)
            await asyncio.to_thread(subscriber.wait_for, lambda _: len(arrivals) >= 3000, 30)
            burst_started = time.perf_counter()
            await publish(sink, burst, rate=None)
        burst_s = time.perf_counter() - burst_started  # the sink's exit waits for every PUBACK
        await asyncio.to_thread(subscriber.wait_for, lambda _: len(arrivals) >= 8000, 30)
    assert list(arrivals) == list(range(1, 8001))  # once each, in order
    latencies = sorted(arrivals[seq] for seq in range(1, 3001))
    p99_ms = 1000 * latencies[int(0.99 * len(latencies))]
    print(f"\nsteady 1000/s: p50 {1000 * latencies[1500]:.2f} ms, p99 {p99_ms:.2f} ms; "
          f"burst: {len(burst) / burst_s:.0f} events/s acknowledged")
    assert sink.published == 8000 and sink.spool.depth == 0
