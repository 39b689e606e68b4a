"""Test helpers: a persistent-session subscriber that survives broker restarts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import paho.mqtt.client as paho

from mmstream.events import decode


class Subscriber:
    """paho on its own thread: QoS 1, fixed client id, clean_session False, resubscribes on
    every connect; keeps (topic, payload) in arrival order."""

    def __init__(self, port: int, topic: str, client_id: str = "test-subscriber",
                 clean_session: bool = False, **tls: object) -> None:
        self.topic = topic
        self.messages: list[tuple[str, bytes]] = []
        self.changed = threading.Condition()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv311, clean_session=clean_session)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.port = port

    def _on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        with self.changed:
            self.messages.append((message.topic, bytes(message.payload)))
            self.changed.notify_all()

    def __enter__(self) -> Subscriber:
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscription not acknowledged"
        return self

    def __exit__(self, *_: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_for(self, done: Callable[[list[tuple[str, bytes]]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not done(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
            return True

    def events(self, suffix: str = "") -> list[tuple[int, bytes]]:
        """(seq, payload) of every event message (schema-validated), duplicates included."""
        found = []
        for topic, payload in list(self.messages):
            if topic.count("/") == 3 and topic.endswith(suffix):
                found.append((decode(payload).seq, payload))
        return found


def first_occurrences(events: list[tuple[int, bytes]]) -> list[int]:
    """The seqs in arrival order with repeats (redeliveries) removed: what a deduper keeps."""
    seen: set[int] = set()
    kept = []
    for seq, _ in events:
        if seq not in seen:
            seen.add(seq)
            kept.append(seq)
    return kept
