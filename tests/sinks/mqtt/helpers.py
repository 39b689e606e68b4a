"""Test helpers: a mosquitto with TLS and passwords, a persistent-session subscriber that
survives broker restarts, a look at retained messages that waits for the broker instead of for
a while, and reading a process's output up to the line that says it is ready."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import paho.mqtt.client as paho

from mmstream.demo_broker import MosquittoBroker
from mmstream.events import decode
from tests.sinks.mqtt.certs import Authority


def password_file(folder: Path, users: Mapping[str, str]) -> Path:
    """A mosquitto password file for `users` (name: password)."""
    passwd = folder / "passwd"
    passwd.unlink(missing_ok=True)
    for user, password in users.items():
        flags = ["-b", "-c"] if not passwd.exists() else ["-b"]
        subprocess.run(["mosquitto_passwd", *flags, str(passwd), user, password], check=True,
                       capture_output=True)
    passwd.chmod(0o600)
    return passwd


def password_broker(folder: Path, users: Mapping[str, str]) -> MosquittoBroker:
    """A started mosquitto on 127.0.0.1 that lets in only `users` (name: password)."""
    passwd = password_file(folder, users)
    broker = MosquittoBroker(extra_config=f"allow_anonymous false\npassword_file {passwd}\n")
    broker.start()
    return broker


def tls_broker(folder: Path, authority: Authority, names: list[str], users: Mapping[str, str],
               extra: str = "") -> MosquittoBroker:
    """A started mosquitto on 127.0.0.1 with TLS (a certificate from `authority` for `names`)
    that lets in only `users` (name: password)."""
    server = authority.issue(f"server-{names[0]}", names)
    passwd = password_file(folder, users)
    broker = MosquittoBroker(extra_config=(
        f"cafile {authority.ca_file}\ncertfile {server.cert}\nkeyfile {server.key}\n"
        f"allow_anonymous false\npassword_file {passwd}\n{extra}"))
    broker.start()
    return broker


class Subscriber:
    """paho on its own thread: QoS 1, fixed client id, clean_session False, resubscribes on
    every connect; keeps (topic, payload) in arrival order. `topic` may be several filters."""

    def __init__(self, port: int, topic: str | list[str], client_id: str = "test-subscriber",
                 clean_session: bool = False) -> None:
        self.topics = [topic] if isinstance(topic, str) else topic
        self.messages: list[tuple[str, bytes]] = []
        self.changed = threading.Condition()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv311, clean_session=clean_session)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(
            [(filter_, 1) for filter_ in self.topics])
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()  # the broker's SUBACK
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
        """Wait until `done(messages)`; False if `timeout` (a bound on a hang) passes first."""
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


def retained_payloads(port: int, topic: str) -> list[bytes]:
    """The retained payloads a new subscriber of `topic` gets, in order.

    The broker queues them for a new subscription before it reads anything else, so once a
    marker published after the SUBACK comes back, every retained message has arrived.
    """
    marker = f"test-marker/{time.monotonic_ns()}"
    with Subscriber(port, [topic, marker], client_id=f"peek-{time.monotonic_ns()}",
                    clean_session=True) as peek:
        peek.client.publish(marker, b"", qos=1)
        assert peek.wait_for(lambda m: any(t == marker for t, _ in m), 10), "no marker back"
        return [payload for t, payload in peek.messages if t != marker]


def first_occurrences(events: list[tuple[int, bytes]]) -> list[int]:
    """The seqs in arrival order with repeats (redeliveries) removed: what a deduper keeps."""
    seen: set[int] = set()
    kept = []
    for seq, _ in events:
        if seq not in seen:
            seen.add(seq)
            kept.append(seq)
    return kept


def read_until(stream: IO[str], needle: str) -> list[str]:
    """Lines of `stream` up to the first holding `needle` (a process saying it is ready, e.g.
    `mmstream listen`'s "subscribed on"); fails if the stream ends first."""
    lines: list[str] = []
    while not (lines and needle in lines[-1]):
        line = stream.readline()
        assert line, f"the stream ended before {needle!r}: {''.join(lines)}"
        lines.append(line)
    return lines


async def async_read_until(stream: asyncio.StreamReader, needle: str) -> list[str]:
    """`read_until` for an asyncio subprocess's pipe."""
    lines: list[str] = []
    while not (lines and needle in lines[-1]):
        line = (await stream.readline()).decode()
        assert line, f"the stream ended before {needle!r}: {''.join(lines)}"
        lines.append(line)
    return lines
