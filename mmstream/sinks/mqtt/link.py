"""The connection behind MqttSink: paho-mqtt driven from one thread of its own.

Why paho directly, not aiomqtt: aiomqtt resolves a future on the event loop per publish, a
third of a bare paho loop's rate on 2 cores; this thread keeps up with bare paho (measured by
benchmarks/bench_mqtt.py). The event loop only appends to a deque here.

The thread owns the paho client and the spool and runs one loop: take new events -> store them
in the spool (one transaction; on a full disk they wait in memory, send_queue.py) -> publish
while fewer than `max_in_flight` await their PUBACK -> delete acknowledged rows -> wait.
A lost connection is retried with jittered exponential backoff; paho resends the unacknowledged
publishes (DUP) first, then the spool continues where it stopped, so order is kept.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties

from mmstream.runtime import metrics
from mmstream.runtime.backoff import backoff_delay
from mmstream.sinks.mqtt.client import (
    REFUSED_FOR_GOOD,
    UNSUPPORTED_PROTOCOL,
    ConnectFailure,
    LinkSettings,
    LinkStats,
    Waker,
    connect_arguments,
    describe_connect_error,
    disconnect_cleanly,
    make_client,
    publish_properties,
    serve_socket,
)
from mmstream.sinks.mqtt.send_queue import ACK_INTERVAL_S, SendQueue
from mmstream.sinks.mqtt.spool import Outgoing, Spool

log = logging.getLogger(__name__)

MAINTAIN_INTERVAL_S = 1.0
EXPIRE_INTERVAL_S = 30.0
INBOX_BATCH = 5000  # events stored per spool transaction at most


class BrokerLink:
    """Spool + paho client + the thread that drives both. Thread-safe entry points: `submit`,
    `set_retained`, `start`, `stop`; everything else runs on the link thread."""

    def __init__(self, settings: LinkSettings, spool: Spool,
                 on_message: Callable[[str, bytes], None] | None = None,
                 on_change: Callable[[str], None] | None = None) -> None:
        self.settings, self.spool, self.on_message = settings, spool, on_message
        # told (on the link thread) of a full disk, room again, drops, the link's death
        self._tell = on_change or (lambda change: log.warning("MQTT: %s", change))
        self.failure: BaseException | None = None  # why the link thread stopped, if it did
        self.stats = LinkStats()
        self.connected = False
        # this connection's SUBSCRIBE was answered (`suback`) and granted (`subscribed`)
        self.suback = threading.Event()
        self.subscribed = threading.Event()
        self._inbox: deque[Outgoing] = deque()
        self._commands: deque[tuple[str, bytes]] = deque()
        self._waker = Waker()
        self._idle = self._stopping = False
        self._drained_callback: Callable[[], None] | None = None
        self._first: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._done: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._protocol = paho.MQTTv311 if settings.protocol == "3.1.1" else paho.MQTTv5
        self._client: paho.Client | None = None
        self._props: Properties | None = None
        self._retained: dict[str, bytes] = {}
        self._queue = SendQueue(spool)
        self._cap = settings.max_in_flight
        self._attempt, self._next_attempt = 0, 0.0
        self._connack_deadline: float | None = None
        self._just_connected = False
        self._flush_deadline = float("inf")
        self._maintained_at = self._expired_at = 0.0

    # -- called from any thread ---------------------------------------------------------------

    def start(self) -> concurrent.futures.Future[None]:
        """Start the thread; the future resolves on the first CONNACK (or ConnectFailure)."""
        self._queue = SendQueue(self.spool)  # the spool is open now: rows of the last run first
        self._thread.start()
        return self._first

    def submit(self, item: Outgoing) -> None:
        self._inbox.append(item)
        if self._idle:
            self._wake()

    @property
    def held(self) -> int:  # events waiting in memory: the spool's disk is full
        return len(self._queue.held)

    @property
    def backlog(self) -> int:
        """Events handed to the link and not yet in the spool."""
        return len(self._inbox)

    def when_drained(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the link thread) once the queued events are taken."""
        self._drained_callback = callback
        self._wake()

    def set_retained(self, topic: str, payload: bytes) -> None:
        """Publish retained now and again on every reconnect; b"" clears the topic for good."""
        self._commands.append((topic, payload))
        self._wake()

    def stop(self, flush_timeout_s: float | None = None) -> concurrent.futures.Future[int]:
        """Flush (up to flush_timeout_s), say "offline", disconnect; resolves to events left."""
        wait = self.settings.flush_timeout_s if flush_timeout_s is None else flush_timeout_s
        self._flush_deadline = time.monotonic() + wait
        self._stopping = True
        self._wake()
        if not self._thread.is_alive() and not self._done.done():
            self._done.set_result(self.spool.depth)
        return self._done

    def _wake(self) -> None:
        self._idle = False
        self._waker.wake()

    # -- the link thread ----------------------------------------------------------------------

    def _run(self) -> None:
        failure: BaseException | None = None
        try:
            while not self._finished():
                self._step()
            self._say_offline()
            self._queue.settle(force=True)
            self._queue.leave()
        except BaseException as exc:
            log.exception("MQTT link to %s failed", self.settings.label)
            self.failure = failure = exc  # the sink's next send stops the run with this cause
            self._tell(f"the MQTT link stopped: {type(exc).__name__}: {exc}")
        finally:
            self._close()  # before `stop()` resolves: a new link may open the spool at once
        for future in (self._first, self._done) if failure else ():
            if not future.done():
                future.set_exception(failure)
        if not self._done.done():
            self._done.set_result(self.spool.depth)

    def _step(self) -> None:
        now = time.monotonic()
        self._take_commands()
        self._take_inbox()
        if self.connected:
            if self._just_connected:
                self._after_connect()
            self._publish_rows()
        elif self._connack_deadline is not None and now > self._connack_deadline:
            if not self._may_fall_back():  # some MQTT 3 brokers just hang on an MQTT 5 CONNECT
                self._failed(f"no CONNACK within {self.settings.connect_timeout_s:g} s",
                             fatal=False)
        elif self._connack_deadline is None and now >= self._next_attempt:
            self._connect()
        self._queue.settle()
        if now - self._maintained_at >= MAINTAIN_INTERVAL_S:
            self._maintain(now)
        self._wait()

    def _finished(self) -> bool:
        if not self._stopping or self._inbox:
            return False
        if time.monotonic() >= self._flush_deadline or self._queue.disk_full:
            return time.monotonic() >= self._flush_deadline  # held events wait for room
        if not self.connected:  # a durable spool keeps them for the next start
            return self.spool.durable
        return self._queue.empty

    def _take_commands(self) -> None:
        while self._commands:
            topic, payload = self._commands.popleft()
            self._retained[topic] = payload
            if self.connected and self._client is not None:
                self._client.publish(topic, payload, qos=1, retain=True)
            if not payload:
                self._retained.pop(topic, None)

    def _take_inbox(self) -> None:
        if not self._inbox:
            return
        batch = [self._inbox.popleft() for _ in range(min(len(self._inbox), INBOX_BATCH))]
        self._stored(self._queue.disk_full, *self._queue.add(batch))  # (was full, shed, dropped)
        callback, self._drained_callback = self._drained_callback, None
        if callback is not None:
            callback()

    def _stored(self, was_full: bool, shed: int, dropped: int) -> None:
        """After the queue tried to store: count, tell of a full disk, send out QoS 0."""
        for change in self._queue.account(was_full, shed, dropped):
            self._tell(change)
        for item in self._queue.stored:
            if item.qos == 0:  # best effort: straight out, or counted as dropped when offline
                if self.connected and self._client is not None:
                    self._client.publish(item.topic, item.payload, qos=0, properties=self._props)
                    self.stats.published += 1
                else:
                    self.stats.dropped_qos0 += 1

    def _publish_rows(self) -> None:
        client, queue, props = self._client, self._queue, self._props
        assert client is not None
        while len(queue.in_flight) < self._cap:
            row = queue.next_row()
            if row is None:
                return
            queue.sent(row, client.publish(row[1], row[2], row[3], properties=props).mid)
            self.stats.published += 1

    def _maintain(self, now: float) -> None:
        self._maintained_at = now
        if self._queue.disk_full:
            self._stored(True, *self._queue.retry())
        if now - self._expired_at >= EXPIRE_INTERVAL_S:
            self._expired_at = now
            expired = self._queue.expire()
            if expired:
                metrics.count_drop("mqtt:spool", "spool_expired", expired)
        metrics.set_spool_depth("mqtt", self.spool.depth)
        self.stats.lag_s = self.spool.oldest_age_s()

    def _wait(self) -> None:
        """Sleep until the socket, a wake-up or the next timer; then let paho do its work."""
        timeout = MAINTAIN_INTERVAL_S
        if not self.connected and (self._client is None or self._client.socket() is None):
            timeout = min(timeout, max(0.0, self._next_attempt - time.monotonic()))
        if self._queue.acked_since:
            timeout = min(timeout, ACK_INTERVAL_S)
        self._idle = True
        if self._inbox or self._commands:
            timeout = 0.0
        serve_socket(self._client, self._waker, timeout)
        self._idle = False

    # -- connecting ---------------------------------------------------------------------------

    def _make_client(self) -> paho.Client:
        client = make_client(self.settings, self._protocol)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._props = publish_properties(self.settings) if self._protocol == paho.MQTTv5 else None
        return client

    def _connect(self) -> None:
        s = self.settings
        if self._client is None:
            self._client = self._make_client()
        try:
            self._client.connect(s.broker.host, s.broker.port, s.keepalive,
                                 **connect_arguments(s, self._protocol))
        except (OSError, ValueError) as exc:
            self._failed(*describe_connect_error(exc))
        else:
            self._connack_deadline = time.monotonic() + s.connect_timeout_s

    def _failed(self, reason: str, fatal: bool) -> None:
        self._connack_deadline = None
        self._lost()
        self.stats.last_error = reason
        if self._client is not None and self._client.socket() is not None:
            with contextlib.suppress(Exception):
                self._client.disconnect()
        self._attempt += 1
        delay = backoff_delay(self._attempt, *self.settings.reconnect)
        self._next_attempt = time.monotonic() + delay
        if not self._first.done():
            self._first.set_exception(ConnectFailure(reason, fatal))
        elif self._attempt == 1:  # one warning per outage; the retries are info
            log.warning("MQTT broker %s: %s; retrying in %.1f s (attempt %d, %d events spooled)",
                        self.settings.label, reason, delay, self._attempt, self.spool.depth)
        else:
            log.info("MQTT broker %s: %s; retrying in %.1f s", self.settings.label, reason, delay)

    def _on_connect(self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any,
                    props: Any) -> None:
        self._connack_deadline = None
        if not reason.is_failure:
            self.connected = self._just_connected = True
            self._attempt = 0
            receive_maximum = getattr(props, "ReceiveMaximum", None)
            self._cap = min(self.settings.max_in_flight, receive_maximum or 65535)
            return
        if reason.value == UNSUPPORTED_PROTOCOL and self._may_fall_back():
            return
        self._failed(f"refused: {reason}", fatal=reason.value in REFUSED_FOR_GOOD)

    def _after_connect(self) -> None:
        """Runs on the link thread after paho has resent what was in flight."""
        client = self._client
        assert client is not None
        self._just_connected = False
        self.stats.connects += 1
        if self.stats.connects > 1:
            metrics.count_reconnect("mqtt")
            log.warning("MQTT broker %s: connected again; %d events spooled to send",
                        self.settings.label, self.spool.depth)
        for topic, payload in self._retained.items():
            client.publish(topic, payload, qos=1, retain=True)
        if self.settings.subscriptions:
            client.subscribe([(topic, 1) for topic in self.settings.subscriptions])
        if not self._first.done():
            self._first.set_result(None)

    def _on_disconnect(self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any,
                       _props: Any) -> None:
        if self._connack_deadline is not None:  # closed before any CONNACK
            if self._may_fall_back():
                return
            self._failed(f"connection closed before CONNACK ({reason})", fatal=False)
            return
        if not self.connected:
            return
        self._lost()
        if self._stopping:
            return
        self._failed(f"connection lost ({reason})", fatal=False)

    def _may_fall_back(self) -> bool:
        """`protocol: auto` and the broker does not take MQTT 5: go on with 3.1.1."""
        if self.settings.protocol != "auto" or self._protocol != paho.MQTTv5:
            return False
        if self.stats.connects:
            return False  # it spoke MQTT 5 before: this is an ordinary failure
        log.info("MQTT broker %s does not speak MQTT 5: using 3.1.1", self.settings.label)
        self._protocol = paho.MQTTv311
        old, self._client = self._client, None  # the protocol is fixed per paho client
        if old is not None and (sock := old.socket()) is not None:
            sock.close()
        self._connack_deadline = None
        self._next_attempt = 0.0
        return True

    def _on_publish(self, _client: paho.Client, _userdata: Any, mid: int, reason: Any,
                    _props: Any) -> None:
        if not self._queue.acked(mid):
            return  # a retained status/health/discovery message
        self.stats.acked += 1
        if reason is not None and reason.is_failure:
            self.stats.rejected += 1
            if self.stats.rejected == 1 or self.stats.rejected % 1000 == 0:
                log.warning("MQTT broker %s rejected a publish: %s (%d so far)",
                            self.settings.label, reason, self.stats.rejected)

    def _on_subscribe(self, _client: paho.Client, _userdata: Any, _mid: int, reasons: Any,
                      _props: Any) -> None:
        topics = self.settings.subscriptions
        refused = [f"{t} ({r})" for t, r in zip(topics, reasons, strict=False) if r.is_failure]
        if refused:  # an ACL, say: the device works on, without its control topic
            log.warning("MQTT broker %s refused %s", self.settings.label, ", ".join(refused))
        else:
            self.subscribed.set()
        self.suback.set()

    def _lost(self) -> None:
        self.connected = False
        self.subscribed.clear()
        self.suback.clear()

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        if self.on_message is not None:
            self.on_message(message.topic, bytes(message.payload))

    # -- leaving ------------------------------------------------------------------------------

    def _say_offline(self) -> None:
        """Publish the retained "offline" ourselves and disconnect cleanly (no Last Will)."""
        client = self._client
        if client is None or not self.connected:
            return
        if self.settings.will_topic:
            info = client.publish(self.settings.will_topic, b"offline", qos=1, retain=True)
            deadline = time.monotonic() + min(2.0, self.settings.connect_timeout_s)
            while not info.is_published() and self.connected and time.monotonic() < deadline:
                self._wait()
        disconnect_cleanly(client)

    def _close(self) -> None:
        self._waker.close()
        with contextlib.suppress(Exception):
            self.spool.close()
