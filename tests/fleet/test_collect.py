"""`mmstream collect` between a real mosquitto and a real PostgreSQL: every event once, bad
input counted and never an SQL error, redeliveries dropped, collectors sharing a group."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator

import psycopg
import pytest

from mmstream.demo_broker import MosquittoBroker
from mmstream.events import Transcript, TranscriptEvent, encode
from mmstream.fleet.collect_health import HealthServer
from mmstream.fleet.collector import Collector, CollectSettings
from mmstream.history.synthetic import synthetic_events
from tests.conftest import wait_until
from tests.fleet.postgres import PASSWORD, PostgresServer
from tests.fleet.publishing import event_topic, publish, publish_events


def stored(url: str) -> tuple[int, int]:
    """(rows, distinct (device, stream, seq))."""
    with psycopg.connect(url) as db:
        row = db.execute("SELECT count(*), count(DISTINCT (device, stream, seq)) FROM events"
                         ).fetchone()
    return int(row[0]), int(row[1])


@pytest.fixture
def collector(mosquitto: MosquittoBroker, pg_url: str) -> Iterator[Collector]:
    running = Collector(CollectSettings(mosquitto.url, pg_url, client_id="collect-test-1"))
    running.start()
    yield running
    running.stop()


def test_events_are_stored_once_and_redeliveries_dropped(
        mosquitto: MosquittoBroker, pg_url: str, collector: Collector) -> None:
    events = list(synthetic_events(2000, start=time.time() - 3600, device_id="kitchen"))
    publish_events(mosquitto.port, events)
    wait_until(lambda: stored(pg_url)[0] == 2000, what="2000 rows")
    publish_events(mosquitto.port, events[:300])  # a bridge sending again after a reconnect
    wait_until(lambda: collector.stats.duplicates == 300, what="300 duplicates counted")
    assert stored(pg_url) == (2000, 2000)


def test_bad_messages_are_refused_counted_per_device_and_never_stop_it(
        mosquitto: MosquittoBroker, pg_url: str, collector: Collector) -> None:
    now = time.time()
    good = TranscriptEvent(device_id="hall", stream_id="door", seq=1, t_capture=now,
                           payload=Transcript(final=True, text="hello", start=now - 1, end=now))
    newer = json.loads(encode(good))
    newer["schema"] = "mmstream.event/99"
    hostile = [TranscriptEvent(device_id=name, stream_id=name, seq=2, t_capture=now,
                               payload=Transcript(final=True, text="x'); DROP TABLE events;--",
                                                  start=now - 1, end=now))
               for name in ("it's; DROP TABLE events", "café-摄像头", 'a"\\b')]
    publish(mosquitto.port, [
        ("mmstream/broken/s/transcript", b"{not json"),
        ("mmstream/typo/s/transcript", b'{"type": "transcript", "stream_id": 3}'),
        ("mmstream/future/s/transcript", json.dumps(newer).encode()),
        ("mmstream/huge/s/transcript", b"x" * (300 * 1024)),
        ("mmstream/ancient/s/scene", encode(good).replace(
            str(good.t_capture).encode(), b"1000000000.0")),
        *((event_topic(e), encode(e)) for e in [*hostile, good]),
    ])
    wait_until(lambda: stored(pg_url)[0] == 4, what="the 4 good events")
    wait_until(lambda: collector.refusals.total == 5, what="5 refusals")
    assert collector.refusals.counts == {
        ("broken", "malformed"): 1, ("typo", "malformed"): 1, ("hall", "schema"): 1,
        ("huge", "oversized"): 1, ("hall", "out_of_range"): 1}
    with psycopg.connect(pg_url) as db:
        devices = {row[0] for row in db.execute("SELECT device FROM events")}
    assert devices == {"hall", *(e.device_id for e in hostile)}


def test_health_and_metrics_say_what_it_did(
        mosquitto: MosquittoBroker, pg_url: str, collector: Collector) -> None:
    publish(mosquitto.port, [("mmstream/bad\"dev/s/scene", b"[]")])
    publish_events(mosquitto.port, synthetic_events(50, start=time.time(), device_id="d"))
    wait_until(lambda: collector.stats.rows == 50, what="50 rows")
    server = HealthServer("127.0.0.1", 0, collector.stats, lambda: collector.refusals.counts)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        health = json.loads(urllib.request.urlopen(f"{base}/health", timeout=10).read())
        metrics = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
    finally:
        server.stop()
    assert health["state"] == "ok" and health["rows"] == 50 and health["refused"] == 1
    assert "mmstream_collect_rows_total 50" in metrics
    assert 'mmstream_collect_refused_total{device="bad\\"dev",reason="malformed"} 1' in metrics


def test_two_collectors_in_one_group_split_the_messages(
        mosquitto: MosquittoBroker, pg_url: str, collector: Collector) -> None:
    second = Collector(CollectSettings(mosquitto.url, pg_url, client_id="collect-test-2"))
    second.start()
    try:
        publish_events(mosquitto.port, synthetic_events(2000, start=time.time() - 60))
        wait_until(lambda: stored(pg_url)[0] == 2000, what="2000 rows")
        assert collector.stats.rows > 0 and second.stats.rows > 0
        assert collector.stats.rows + second.stats.rows == 2000
    finally:
        second.stop()


@pytest.mark.slow
def test_postgresql_restarted_mid_stream_loses_nothing(
        mosquitto: MosquittoBroker, own_postgres: PostgresServer) -> None:
    url = own_postgres.new_database()
    collector = Collector(CollectSettings(mosquitto.url, url, client_id="collect-test-pg"))
    collector.start()
    try:
        events = list(synthetic_events(3000, start=time.time() - 600))
        publish_events(mosquitto.port, events[:1000])
        wait_until(lambda: stored(url)[0] == 1000, what="the first 1000 rows")
        own_postgres.stop()
        publish_events(mosquitto.port, events[1000:])
        wait_until(lambda: collector.stats.database == "waiting", what="the collector waiting")
        own_postgres.start()
        wait_until(lambda: stored(url)[0] == 3000, limit_s=60, what="all 3000 rows")
        assert stored(url) == (3000, 3000)
        assert collector.stats.database == "ok"
    finally:
        collector.stop()


def test_a_wrong_password_is_one_line_exit_2_and_never_shows_it(
        cli, mosquitto: MosquittoBroker, postgres_server: PostgresServer) -> None:
    wrong = postgres_server.url(password="wrong-" + PASSWORD)
    done = cli("collect", mosquitto.url, "--db", wrong, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "password authentication failed" in lines[0]
    assert PASSWORD not in done.stderr + done.stdout


def start_collect(broker_url: str, db_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mmstream", "collect", broker_url, "--db", db_url,
         "--client-id", "collect-killed", "--listen", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_collector_killed_mid_stream_and_restarted_stores_every_event_once(
        mosquitto: MosquittoBroker, pg_url: str) -> None:
    events = list(synthetic_events(6000, start=time.time() - 600))
    process = start_collect(mosquitto.url, pg_url)
    try:
        assert process.stderr is not None
        wait_until(lambda: "collecting" in process.stderr.readline(), what="it to subscribe")
        publisher = threading.Thread(target=publish_events, args=(mosquitto.port, events))
        publisher.start()
        wait_until(lambda: stored(pg_url)[0] >= 500, what="the first rows")
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        publisher.join(120)
        assert stored(pg_url)[0] < 6000, "killed too late to test anything"
        process = start_collect(mosquitto.url, pg_url)
        wait_until(lambda: stored(pg_url)[0] == 6000, limit_s=90, what="all 6000 rows")
        assert stored(pg_url) == (6000, 6000)
    finally:
        process.terminate()
        process.wait(30)
