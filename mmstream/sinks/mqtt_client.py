"""The paho-mqtt client as mmstream configures it: settings, TLS, MQTT 5 properties, errors.

Only construction and classification live here; mqtt_link.py drives the client.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mmstream.events import SCHEMA_VERSION

REFUSED_FOR_GOOD = {133, 134, 135, 138, 140}  # bad client id / credentials, not authorized, banned
UNSUPPORTED_PROTOCOL = 132


class ConnectFailure(Exception):
    """The broker could not be reached or refused us; `fatal` when retrying cannot help."""

    def __init__(self, reason: str, fatal: bool) -> None:
        super().__init__(reason)
        self.fatal = fatal


@dataclass(frozen=True)
class LinkSettings:
    host: str
    port: int
    label: str  # what errors and logs call the broker (never with the password)
    client_id: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: ssl.SSLContext | None = None
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    keepalive: int = 30
    connect_timeout_s: float = 5.0
    clean_session: bool = True
    session_expiry_s: int = 3600
    message_expiry_s: int | None = None
    max_in_flight: int = 1000
    reconnect: tuple[float, float] = (0.5, 30.0)
    flush_timeout_s: float = 10.0
    will_topic: str = ""
    subscriptions: tuple[str, ...] = ()


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
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls is not None:
        client.tls_set_context(settings.tls)
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
