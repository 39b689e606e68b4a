"""`mmstream collect`: every device's events from the central broker into PostgreSQL.

    broker ──$share/<group>/<prefix>/+/+/+ (QoS 1, MQTT 5 persistent session, manual acks)──>
    paho's thread: append (mid, topic, payload) ──> the parser thread: validate a batch ──>
    the committer thread: COPY, commit, then PUBACK every message of the batch

A message is acknowledged only after its row is committed (or it was refused), so a collector
killed mid-batch leaves those messages unacknowledged in its session: the broker sends them
again when it comes back, and the unique (device, stream, seq, t) key drops the ones that had
been committed. Several collectors in one group split the messages. While PostgreSQL is down
the writer retries the same batch with backoff; nothing is acknowledged, so the broker holds
what follows (its `max_queued_messages`, docs/fleet.md).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mmstream.config import MqttSinkConfig
from mmstream.errors import MmstreamError
from mmstream.fleet.collect_health import CollectStats
from mmstream.fleet.fast_mqtt import BufferedClient
from mmstream.fleet.intake import Refusals, accept
from mmstream.fleet.pg_schema import DAY_S, DatabaseUnavailable
from mmstream.fleet.pg_store import PgStore
from mmstream.history.rows import EventRow
from mmstream.sinks.mqtt.broker import broker_settings

log = logging.getLogger(__name__)

Received = tuple[int, str, bytes, float]  # (mid, topic, payload, monotonic arrival)

RETENTION_EVERY_S = 3600.0
RETRY_MIN_S, RETRY_MAX_S = 0.2, 10.0


class CollectError(MmstreamError):
    exit_code = 2


@dataclass(frozen=True)
class CollectSettings:
    mqtt_url: str
    db_url: str
    group: str = "mmstream-collect"
    client_id: str = "mmstream-collect"  # one per collector: its session on the broker
    prefix: str = "mmstream"
    batch_max: int = 5000
    commit_interval_s: float = 0.2
    max_age_days: float = 30.0
    session_expiry_s: int = 7 * 86_400  # how long the broker keeps queueing for a collector
    receive_maximum: int = 20_000  # unacknowledged messages in flight to this collector

    @property
    def topic(self) -> str:
        return f"$share/{self.group}/{self.prefix}/+/+/+"


class Collector:
    client_class: type[BufferedClient] = BufferedClient

    def __init__(self, settings: CollectSettings) -> None:
        self.settings = settings
        self.stats = CollectStats()
        self.refusals = Refusals()
        self._store = PgStore(settings.db_url)
        self._inbox: deque[Received] = deque()
        self._handoff: queue.Queue[tuple[list[Received], list[EventRow]] | None] = \
            queue.Queue(maxsize=1)
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._writer = threading.Thread(target=self._run, name="mmstream-collect", daemon=True)
        self._committer = threading.Thread(target=self._commit_loop, name="mmstream-commit",
                                           daemon=True)
        self._client: BufferedClient | None = None
        self._next_retention = 0.0

    # ---- start and stop (the caller's thread) -----------------------------------------------

    def start(self) -> None:
        """Open the database (creating its schema) and subscribe; a wrong URL, password or
        broker raises one clear line."""
        self._store.open()
        self._client = self._connect()
        self._writer.start()

    def _connect(self) -> BufferedClient:
        broker = broker_settings(MqttSinkConfig(url=self.settings.mqtt_url),
                                 {"password_file": "--mqtt-password-file"})
        client = self.client_class(paho.CallbackAPIVersion.VERSION2,
                                   client_id=self.settings.client_id, protocol=paho.MQTTv5,
                                   manual_ack=True)
        if broker.username is not None:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls is not None:
            client.tls_set_context(broker.tls)
        client.reconnect_delay_set(RETRY_MIN_S, RETRY_MAX_S)
        connected = threading.Event()
        outcome: dict[str, Any] = {}

        def on_connect(c: paho.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
            outcome["reason"] = reason
            if not reason.is_failure:
                c.subscribe(self.settings.topic, qos=1)
                self.stats.connects += 1
                self.stats.broker = "connected"
            connected.set()

        def on_disconnect(_c: object, _u: object, _f: object, reason: Any, _p: object) -> None:
            self.stats.broker = f"reconnecting ({reason})"

        client.on_connect, client.on_disconnect = on_connect, on_disconnect
        client.on_message = self._received
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        props.ReceiveMaximum = self.settings.receive_maximum
        try:
            client.connect(broker.host, broker.port, 30, clean_start=False, properties=props)
        except (OSError, ValueError) as exc:
            raise CollectError(f"cannot connect to MQTT broker {broker.label}: {exc}") from None
        client.loop_start()
        reason = outcome.get("reason") if connected.wait(10) else None
        if reason is None or reason.is_failure:
            client.loop_stop()
            raise CollectError(f"cannot connect to MQTT broker {broker.label}: "
                               f"{reason or 'no CONNACK'}")
        return client

    def stop(self) -> None:
        """Commit and acknowledge everything received, then leave (the session stays)."""
        if self._client is not None:
            self._client.on_message = None  # what arrives now stays unacknowledged: resent
        self._stopping.set()
        with self._wake:
            self._wake.notify()
        if self._writer.is_alive():
            self._writer.join()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        self._store.close()

    # ---- paho's thread ------------------------------------------------------------------------

    def _received(self, _client: object, _userdata: object, message: paho.MQTTMessage) -> None:
        self._inbox.append((message.mid, message.topic, message.payload, time.monotonic()))
        self.stats.received += 1
        if len(self._inbox) >= self.settings.batch_max:
            with self._wake:
                self._wake.notify()

    # ---- the parser thread, then the committer thread ----------------------------------------

    def _run(self) -> None:
        """Parse a batch while the committer waits on PostgreSQL with the one before (double
        buffering: the server's INSERT releases the GIL for this thread and paho's)."""
        self._committer.start()
        while True:
            with self._wake:
                if not self._stopping.is_set() and len(self._inbox) < self.settings.batch_max:
                    self._wake.wait(self.settings.commit_interval_s)
            while self._inbox:
                batch = self._take()
                self._handoff.put((batch, self._parse(batch)))
            if self._stopping.is_set():
                self._handoff.put(None)
                self._committer.join()
                return

    def _take(self) -> list[Received]:
        batch = []
        while self._inbox and len(batch) < self.settings.batch_max:
            batch.append(self._inbox.popleft())
        return batch

    def _parse(self, batch: list[Received]) -> list[EventRow]:
        oldest_t = time.time() - self.settings.max_age_days * DAY_S
        rows: list[EventRow] = []
        for _mid, topic, payload, _arrived in batch:
            row = accept(topic, payload, self.refusals, oldest_t=oldest_t)
            if row is not None:
                rows.append(row)
        self.stats.refused = self.refusals.total
        return rows

    def _commit_loop(self) -> None:
        gave_up = False
        while True:
            try:
                item = self._handoff.get(timeout=self.settings.commit_interval_s)
            except queue.Empty:
                self.stats.lag_s = 0.0 if not self._inbox else self.stats.lag_s
                self._retention()
                continue
            if item is None:
                return
            if not gave_up:  # after giving up, what is left stays unacknowledged: resent
                gave_up = not self._commit(*item)

    def _commit(self, batch: list[Received], rows: list[EventRow]) -> bool:
        """Write, then acknowledge; False when asked to stop while the database is down."""
        delay = RETRY_MIN_S
        while True:
            self.stats.lag_s = time.monotonic() - batch[0][3]
            try:
                if self._store.broken:
                    self._store.close()
                    self._store.open()
                written = self._store.write(rows)
                break
            except (psycopg.Error, DatabaseUnavailable) as exc:
                if self.stats.database == "ok":
                    log.warning("collect: PostgreSQL unavailable (%s): holding %d messages "
                                "unacknowledged, retrying", str(exc).splitlines()[0][:200],
                                len(batch))
                self.stats.database = "waiting"
                self.stats.db_errors += 1
                self._store.close()
                if self._stopping.wait(delay) and self._store_down_for_good():
                    return False  # stopping with the database down: the broker resends these
                delay = min(delay * 2, RETRY_MAX_S)
        if self.stats.database != "ok":
            log.warning("collect: PostgreSQL is back: writing again")
            self.stats.database = "ok"
        self.stats.count_batch(written.inserted, written.duplicates)
        assert self._client is not None
        self._client.ack_all(mid for mid, *_ in batch)
        return True

    def _store_down_for_good(self) -> bool:
        """Asked to stop while the database is down: one more try, then leave unacknowledged."""
        try:
            self._store.open()
            return False
        except (psycopg.Error, DatabaseUnavailable):
            return True

    def _retention(self) -> None:
        now = time.monotonic()
        if now < self._next_retention:
            return
        self._next_retention = now + RETENTION_EVERY_S
        try:
            dropped = self._store.drop_older_than(
                time.time() - self.settings.max_age_days * DAY_S)
        except psycopg.Error as exc:
            log.warning("collect: retention failed: %s", str(exc).splitlines()[0][:200])
            return
        if dropped:
            log.info("collect: retention dropped %s", ", ".join(dropped))
