"""The paho-mqtt client as mmstream configures it: settings, MQTT 5 properties, errors, and
one turn of its socket loop.

link.py decides when to connect, publish and wait. Every paho client mmstream makes (the
sink's link, `doctor`, `ha`) comes from `make_client`, with the broker address, credentials
and TLS of broker.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import select
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mmstream.config import MqttSinkConfig
from mmstream.events import SCHEMA_VERSION
from mmstream.sinks.mqtt.broker import BrokerSettings, broker_settings

REFUSED_FOR_GOOD = {133, 134, 135, 138, 140}  # bad client id / credentials, not authorized, banned
UNSUPPORTED_PROTOCOL = 132


class ConnectFailure(Exception):
    """The broker could not be reached or refused us; `fatal` when retrying cannot help."""

    def __init__(self, reason: str, fatal: bool) -> None:
        super().__init__(reason)
        self.fatal = fatal


@dataclass(frozen=True)
class LinkSettings:
    """One connection to the broker: where and as whom (broker.py), and how it behaves."""

    broker: BrokerSettings
    client_id: str = ""  # "": paho makes one up
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    keepalive: int = 30
    connect_timeout_s: float = 5.0
    clean_session: bool = True
    session_expiry_s: int = 3600
    message_expiry_s: int | None = None
    max_in_flight: int = 1000
    reconnect: tuple[float, float] = (0.5, 30.0)
    flush_timeout_s: float = 10.0
    will_topic: str = ""  # "": no Last Will (and no "offline" on a clean exit)
    subscriptions: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """What errors and logs call the broker (never with the password)."""
        return self.broker.label


def link_settings(config: MqttSinkConfig, broker: BrokerSettings, *, client_id: str,
                  will_topic: str = "", subscriptions: tuple[str, ...] = ()) -> LinkSettings:
    """The connection `config` asks for, to `broker` (from broker.py's `broker_settings`)."""
    return LinkSettings(
        broker=broker, client_id=client_id, protocol=config.protocol,
        keepalive=config.keepalive, connect_timeout_s=config.connect_timeout_s,
        clean_session=config.clean_session, session_expiry_s=config.session_expiry_s,
        message_expiry_s=config.message_expiry_s, max_in_flight=config.max_in_flight,
        reconnect=(config.reconnect_min_s, config.reconnect_max_s),
        flush_timeout_s=config.flush_timeout_s, will_topic=will_topic,
        subscriptions=subscriptions)


def one_off_settings(config: MqttSinkConfig, *, client_id: str = "",
                     connect_timeout_s: float | None = None) -> LinkSettings:
    """A connection beside the device's (`doctor`, `ha`): the same broker, credentials, TLS and
    protocol, but a client id of its own (the device's would end its session), no Last Will
    and no session left behind on the broker."""
    settings = link_settings(config, broker_settings(config), client_id=client_id)
    timeout = settings.connect_timeout_s if connect_timeout_s is None else connect_timeout_s
    return dataclasses.replace(settings, clean_session=True, connect_timeout_s=timeout)


@dataclass
class LinkStats:
    published: int = 0
    acked: int = 0
    rejected: int = 0
    connects: int = 0
    dropped_qos0: int = 0
    last_error: str = ""
    lag_s: float = 0.0  # age of the oldest event not yet acknowledged


def make_client(settings: LinkSettings, protocol: int) -> paho.Client:
    """A paho client that never reconnects by itself (the link does, with jitter)."""
    v5 = protocol == paho.MQTTv5
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                         protocol=protocol, clean_session=None if v5 else settings.clean_session,
                         reconnect_on_failure=False)
    client.connect_timeout = settings.connect_timeout_s
    # unlimited in paho: with a limit it rescans every unacknowledged message on each PUBACK
    # (O(in flight) per ack); the link caps what is in flight itself
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    broker = settings.broker
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls is not None:
        client.tls_set_context(broker.tls)
    if settings.will_topic:
        client.will_set(settings.will_topic, b"offline", qos=1, retain=True)
    return client


class PackedProperties(Properties):
    """The same properties on every publish: packed once, not per message (paho packs on
    every send, which costs more than the rest of a publish)."""

    def freeze(self) -> PackedProperties:
        object.__setattr__(self, "_packed", super().pack())
        return self

    def pack(self) -> bytes:
        return object.__getattribute__(self, "_packed")  # type: ignore[no-any-return]


def publish_properties(settings: LinkSettings) -> Properties:
    """MQTT 5 properties of every event: the schema version, and an expiry if configured."""
    props = PackedProperties(PacketTypes.PUBLISH)
    props.UserProperty = [("schema", SCHEMA_VERSION)]
    if settings.message_expiry_s:
        props.MessageExpiryInterval = settings.message_expiry_s
    return props.freeze()


def connect_arguments(settings: LinkSettings, protocol: int) -> dict[str, Any]:
    """MQTT 5 sessions: clean start or a session the broker keeps for `session_expiry_s`."""
    if protocol != paho.MQTTv5:
        return {}  # 3.1.1: clean_session was given to the client
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0 if settings.clean_session else settings.session_expiry_s
    return {"clean_start": settings.clean_session, "properties": props}


def describe_connect_error(exc: BaseException) -> tuple[str, bool]:
    """(reason, fatal): TLS trust and handshake problems will not fix themselves."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate is not trusted ({exc.verify_message})", True
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc})", True
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"connection failed ({reason})", False


class Waker:
    """Wakes the link thread out of `serve_socket` from any thread: a byte on a socket pair."""

    def __init__(self) -> None:
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # full: a wake-up is pending anyway
            self._writer.send(b"\0")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self.reader.recv(4096)

    def close(self) -> None:
        self.reader.close()
        self._writer.close()


def serve_socket(client: paho.Client | None, waker: Waker, timeout: float) -> None:
    """Wait up to `timeout` for the broker's socket (or a wake-up), then let paho read, write
    and keep the connection alive: paho's loop, driven by the link's own thread."""
    sock = client.socket() if client is not None else None
    readers: list[Any] = [waker.reader]
    writers: list[Any] = []
    tls_pending = False
    if client is not None and sock is not None:
        readers.append(sock)
        if client.want_write():
            writers.append(sock)
        tls_pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
        if tls_pending:
            timeout = 0.0  # decrypted bytes wait in the TLS layer, not in the socket
    readable, writable, _ = select.select(readers, writers, [], timeout)
    if waker.reader in readable:
        waker.drain()
    if client is None or sock is None:
        return
    if sock in readable or tls_pending:
        client.loop_read()
    if writable and client.socket() is not None:
        client.loop_write()
    if client.socket() is not None:
        client.loop_misc()


def disconnect_cleanly(client: paho.Client, timeout_s: float = 1.0) -> None:
    """DISCONNECT, and write it out before the socket closes (no Last Will then)."""
    client.disconnect()
    deadline = time.monotonic() + timeout_s
    while client.want_write() and client.socket() is not None and time.monotonic() < deadline:
        client.loop_write()
