"""MQTT sink benchmark: sustained QoS 1 rate with the spool on, vs. bare clients, and latency.

    python benchmarks/bench_mqtt.py            # 20,000 events x 3 rounds per client, ~1 min
    python benchmarks/bench_mqtt.py --quick    # 5,000 events x 1 round

All against one local mosquitto (127.0.0.1), events of ~380 bytes, QoS 1, in the same run and
interleaved round by round, so the ratios compare like with like on a busy machine:
- bare_paho: paho-mqtt's loop thread, up to 100 publishes in flight (DESIGN.md's reference);
- aiomqtt: 1,000 `publish()` calls in flight through asyncio.gather;
- sink_memory: MqttSink with the spool in memory (no file);
- sink_spool: MqttSink with the spool on disk (SQLite WAL): the configuration that counts.
A rate is events / (first publish -> last PUBACK), median of the rounds.
Latency: the spooled sink at a steady 1,000 events/s for `--latency-s`, t_publish stamped
just before `send`, a paho subscriber thread timestamps arrival: p50/p99/max.
Prints one JSON object and writes it to benchmarks/results/mqtt[_quick].json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import paho.mqtt.client as paho

from mmstream.config import MqttSinkConfig
from mmstream.demo_broker import MosquittoBroker
from mmstream.events import Event, Transcript, TranscriptEvent, decode, encode
from mmstream.sinks.mqtt import MqttSink

RESULTS = Path(__file__).parent / "results"
TOPIC = "bench/dev/mic0/transcript"


def make_events(count: int) -> list[Event]:
    text = "the quick brown fox jumps over the lazy dog " * 5
    return [TranscriptEvent(device_id="dev", stream_id="mic0", seq=n + 1, t_capture=float(n),
                            payload=Transcript(final=True, text=text[:220], start=n, end=n + 1,
                                               confidence=0.9)) for n in range(count)]


def bare_paho(port: int, payloads: list[bytes], in_flight: int = 100) -> float:
    """DESIGN.md's reference client: paho's loop thread, a window of `in_flight` publishes."""
    window = threading.Semaphore(in_flight)
    done = threading.Event()
    acked = [0]

    def on_publish(*_: Any) -> None:
        acked[0] += 1
        window.release()
        if acked[0] == len(payloads):
            done.set()

    connected = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-bare")
    client.max_inflight_messages_set(in_flight)
    client.on_publish = on_publish
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    connected.wait(10)
    started = time.perf_counter()
    for payload in payloads:
        window.acquire()
        client.publish(TOPIC, payload, qos=1)
    done.wait(120)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


async def with_aiomqtt(port: int, payloads: list[bytes], in_flight: int = 1000) -> float:
    quiet = logging.getLogger("bench.aiomqtt")  # it warns on every publish beyond 10 pending
    quiet.setLevel(logging.ERROR)
    async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=in_flight,
                              logger=quiet) as client:
        window = asyncio.Semaphore(in_flight)

        async def one(payload: bytes) -> None:
            async with window:
                await client.publish(TOPIC, payload, qos=1)

        started = time.perf_counter()
        await asyncio.gather(*(one(payload) for payload in payloads))
        return time.perf_counter() - started


async def with_sink(port: int, events: list[Event], spool: Path | None) -> float:
    """First `send` -> every PUBACK in and the spool empty (the sink's exit waits for both)."""
    config = MqttSinkConfig(url=f"mqtt://127.0.0.1:{port}", prefix="bench",
                            spool={"path": spool}, health_interval_s=0)
    sink = MqttSink(config, "dev")
    async with sink:
        started = time.perf_counter()
        for event in events:
            await sink.send(event)
    elapsed = time.perf_counter() - started
    assert sink.published == len(events) and sink.spool.depth == 0
    return elapsed


def throughput(port: int, count: int, rounds: int, folder: Path) -> dict[str, Any]:
    events = make_events(count)
    payloads = [encode(event) for event in events]
    clients: dict[str, Callable[[int], float]] = {
        "bare_paho": lambda _: bare_paho(port, payloads),
        "aiomqtt": lambda _: asyncio.run(with_aiomqtt(port, payloads)),
        "sink_memory": lambda _: asyncio.run(with_sink(port, events, None)),
        "sink_spool": lambda n: asyncio.run(with_sink(port, events, folder / f"spool{n}.db")),
    }
    seconds: dict[str, list[float]] = {name: [] for name in clients}
    for round_index in range(rounds):  # interleaved: a busy moment hits every client alike
        for name, run in clients.items():
            seconds[name].append(run(round_index))
    rates = {name: round(count / statistics.median(values)) for name, values in seconds.items()}
    return {"events": count, "payload_bytes": len(payloads[0]), "rounds": rounds,
            "events_per_s": rates,
            "sink_spool_vs_bare_paho": round(rates["sink_spool"] / rates["bare_paho"], 3),
            "sink_spool_vs_aiomqtt": round(rates["sink_spool"] / rates["aiomqtt"], 3)}


async def latency(port: int, rate: float, seconds: float, spool: Path) -> dict[str, Any]:
    arrivals: list[float] = []
    got_all = threading.Event()
    count = int(rate * seconds)

    def on_message(_c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        arrivals.append(time.time() - decode(message.payload).t_publish)
        if len(arrivals) == count:
            got_all.set()

    subscriber = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-sub")
    subscriber.on_message = on_message
    subscriber.connect("127.0.0.1", port)
    subscriber.subscribe("bench/dev/+/+", qos=1)
    subscriber.loop_start()
    await asyncio.sleep(0.5)
    config = MqttSinkConfig(url=f"mqtt://127.0.0.1:{port}", prefix="bench",
                            spool={"path": spool}, health_interval_s=0)
    events = make_events(count)
    loop = asyncio.get_running_loop()
    async with MqttSink(config, "dev") as sink:
        started = loop.time()
        for index, event in enumerate(events):
            delay = started + index / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await sink.send(msgspec.structs.replace(event, t_publish=time.time()))
    await asyncio.to_thread(got_all.wait, 30)
    subscriber.loop_stop()
    subscriber.disconnect()
    ordered = sorted(arrivals)
    return {"rate": rate, "events": count, "received": len(arrivals),
            "p50_ms": round(1000 * ordered[len(ordered) // 2], 2),
            "p99_ms": round(1000 * ordered[int(len(ordered) * 0.99)], 2),
            "max_ms": round(1000 * ordered[-1], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--latency-s", type=float)
    args = parser.parse_args()
    count = args.events or (5000 if args.quick else 20000)
    rounds = args.rounds or (1 if args.quick else 3)
    broker = MosquittoBroker()
    broker.start()
    try:
        with tempfile.TemporaryDirectory(prefix="mmstream-bench-mqtt-") as folder:
            outcome: dict[str, Any] = {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform(), "broker": "mosquitto (loopback)"},
                "throughput": throughput(broker.port, count, rounds, Path(folder)),
                "latency": asyncio.run(latency(broker.port, 1000.0, args.latency_s or (
                    2.0 if args.quick else 5.0), Path(folder) / "latency.db")),
            }
    finally:
        broker.stop()
    tp = outcome["throughput"]
    outcome["targets"] = {
        "sink_spool >= 0.8x bare paho": tp["sink_spool_vs_bare_paho"] >= 0.8,
        "sink_spool >= 5000 events/s": tp["events_per_s"]["sink_spool"] >= 5000,
        "p99 <= 20 ms at 1000 events/s": outcome["latency"]["p99_ms"] <= 20,
    }
    RESULTS.mkdir(exist_ok=True)
    name = "mqtt_quick" if args.quick else "mqtt"
    (RESULTS / f"{name}.json").write_text(json.dumps(outcome, indent=2) + "\n")
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
