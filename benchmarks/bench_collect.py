"""Events/s from MQTT to committed PostgreSQL rows, with one and two collectors, beside what
mosquitto alone delivers to a bare subscriber in the same run: paho as it comes, and the
collector's own client (fleet/fast_mqtt.py); and a collector on paho as it comes (the "before").

Each measurement drains a backlog: the subscriber's persistent session is queued N events while
it is offline (so the publisher's speed is not what is measured), then it connects and the
clock runs until the last row is committed (or the last message received). Real mosquitto and a
real PostgreSQL (tests/fleet/postgres.py), both on loopback.

    PYTHONPATH=. python3 benchmarks/bench_collect.py --events 40000
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterable

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mmstream.demo_broker import MosquittoBroker
from mmstream.fleet.collector import Collector, CollectSettings
from mmstream.fleet.fast_mqtt import BufferedClient
from mmstream.history.synthetic import synthetic_events
from tests.fleet.postgres import running_postgres
from tests.fleet.publishing import publish_events


class PahoClient(paho.Client):
    """paho as it comes: a read per header byte, a PUBACK packet per message (the "before")."""

    def ack_all(self, mids: Iterable[int]) -> None:
        for mid in mids:
            self.ack(mid, 1)


class PahoCollector(Collector):
    client_class = PahoClient  # type: ignore[assignment]


def bare_subscriber(broker: MosquittoBroker, count: int,
                    client_class: type[paho.Client] = paho.Client) -> float:
    """Events/s mosquitto hands a subscriber that only counts them (QoS 1)."""
    received = threading.Event()
    seen = [0]

    def on_message(*_args: object) -> None:
        seen[0] += 1
        if seen[0] >= count:
            received.set()

    def session() -> paho.Client:
        client = client_class(paho.CallbackAPIVersion.VERSION2, client_id="bare",
                             protocol=paho.MQTTv5)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        client.on_message = on_message
        client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
        return client

    client = session()
    client.subscribe(f"$share/bare{client_class.__name__}/mmstream/+/+/+", qos=1)
    client.loop_start()
    time.sleep(0.5)
    client.disconnect()
    client.loop_stop()
    publish_events(broker.port, synthetic_events(count, start=time.time() - 3600, seed=3))
    seen[0] = 0
    start = time.monotonic()
    client = session()
    client.loop_start()
    received.wait(600)
    elapsed = time.monotonic() - start
    client.disconnect()
    client.loop_stop()
    return count / elapsed


def collectors(broker: MosquittoBroker, url: str, count: int, how_many: int,
               kind: type[Collector] = Collector) -> float:
    name = f"{kind.__name__}{how_many}"
    settings = [CollectSettings(broker.url, url, group=f"g{name}", client_id=f"c{name}-{n}")
                for n in range(how_many)]
    for each in settings:  # make the sessions, then leave: the broker queues for them
        first = kind(each)
        first.start()
        first.stop()
    publish_events(broker.port, synthetic_events(count, start=time.time() - 3600,
                                                 seed=how_many, device_id=f"dev{name}"))
    start = time.monotonic()
    running = [kind(each) for each in settings]
    for collector in running:
        collector.start()
    while sum(c.stats.rows for c in running) < count:
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    for collector in running:
        collector.stop()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    broker = MosquittoBroker(extra_config="max_queued_messages 1000000\n")
    broker.start()
    try:
        with running_postgres() as server:
            measure(broker, server.new_database(), args.events)
    finally:
        broker.stop()


def measure(broker: MosquittoBroker, url: str, n: int) -> None:
    """Side by side in one run: the ceilings, the collector before (paho as it comes) and now."""
    results = {
        "events": n,
        "mosquitto_to_bare_paho_subscriber_per_s": round(bare_subscriber(broker, n)),
        "mosquitto_to_bare_buffered_subscriber_per_s": round(
            bare_subscriber(broker, n, BufferedClient)),
        "one_collector_plain_paho_rows_per_s": round(collectors(broker, url, n, 1,
                                                                PahoCollector)),
        "one_collector_rows_per_s": round(collectors(broker, url, n, 1)),
        "two_collectors_rows_per_s": round(collectors(broker, url, n, 2))}
    with psycopg.connect(url) as db:
        size, rows = db.execute(
            "SELECT sum(pg_total_relation_size(inhrelid)), (SELECT count(*) FROM events) "
            "FROM pg_inherits WHERE inhparent = 'events'::regclass").fetchone()
    results["bytes_per_event"] = round(int(size) / int(rows))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
