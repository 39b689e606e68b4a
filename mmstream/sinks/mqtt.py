"""MQTT sink: every event reaches the broker once acknowledged, in order, even across outages.

Topics: events on `<prefix>/<device>/<stream>/<type>`; `<prefix>/<device>/status` retained
"online" while connected (Last Will and a clean exit: "offline"); `<prefix>/<device>/health`
a retained status event every `health_interval_s` (uptime, drops, lag, model versions);
opt-in Home Assistant discovery and a control topic (`<prefix>/<device>/control`).

Delivery (docs/mqtt.md): QoS >= 1 events go through the spool (mmstream/sinks/spool.py) and a
paho client on its own thread (mmstream/sinks/mqtt_link.py) that keeps many publishes in
flight and deletes rows only after PUBACK. `send` returns as soon as the event is queued; it
waits only when the link falls far behind (backpressure, never a silent drop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit

from mmstream.config import MqttSinkConfig
from mmstream.errors import ConfigError, SinkError
from mmstream.events import Event, Status, StatusEvent, encode, event_type
from mmstream.runtime.control import PipelineControl
from mmstream.runtime.observer import PipelineView
from mmstream.runtime.stage import Sink
from mmstream.sinks.mqtt_client import ConnectFailure, LinkSettings, LinkStats
from mmstream.sinks.mqtt_link import BrokerLink
from mmstream.sinks.spool import Outgoing, Spool, SpoolLimits, shed_priority

log = logging.getLogger(__name__)

HIGH_WATER = 20_000  # events queued for the link thread before `send` waits


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:  # never shows the password
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"BrokerAddress({self})"


def parse_mqtt_url(url: str) -> BrokerAddress:
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ConfigError(f"MQTT URL {parts.scheme}://{parts.hostname}: scheme must be mqtt:// "
                          "or mqtts://")
    if not parts.hostname:
        raise ConfigError(f"MQTT URL {parts.scheme}://…: no host")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ConfigError(f"MQTT URL {parts.scheme}://{parts.hostname}: bad port") from None
    return BrokerAddress(
        parts.hostname, port, tls,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


def event_topic(prefix: str, event: Event) -> str:
    return f"{prefix}/{event.device_id}/{event.stream_id}/{event_type(event)}"


def availability_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/{device_id}/status"


def health_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/{device_id}/health"


def control_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/{device_id}/control"


def read_password(config: MqttSinkConfig, broker: BrokerAddress) -> str | None:
    """The password from the config, else its file, else the URL (never logged)."""
    if config.password:
        return config.password
    if config.password_file is not None:
        try:
            return config.password_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"sinks.mqtt.password_file {config.password_file}: "
                              f"{exc.strerror}") from None
    return broker.password


def tls_context(config: MqttSinkConfig, broker: BrokerAddress) -> ssl.SSLContext | None:
    """Certificate and hostname checks on, unless `tls.insecure` turns the hostname check off."""
    tls = config.tls
    if not (tls.enabled if tls.enabled is not None else broker.tls):
        return None

    def load(what: str, path: Path, action: Callable[[], Any]) -> None:
        try:
            action()
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"sinks.mqtt.tls.{what} {path}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None

    context = ssl.create_default_context()
    if tls.ca_file is not None:
        load("ca_file", tls.ca_file, lambda: context.load_verify_locations(cafile=tls.ca_file))
    if tls.cert_file is not None:
        load("cert_file", tls.cert_file,
             lambda: context.load_cert_chain(tls.cert_file, tls.key_file))  # type: ignore[arg-type]
    if tls.insecure:
        context.check_hostname = False
    return context


def link_settings(config: MqttSinkConfig, device_id: str, broker: BrokerAddress,
                  subscriptions: tuple[str, ...] = ()) -> LinkSettings:
    context = tls_context(config, broker)
    # a fixed id for a persistent session; otherwise one per process, readable in broker logs
    client_id = config.client_id or (f"mmstream-{device_id}" if not config.clean_session
                                     else f"mmstream-{device_id}-{secrets.token_hex(4)}")
    label = f"{'mqtts' if context else 'mqtt'}://{broker.host}:{broker.port}"
    return LinkSettings(
        host=broker.host, port=broker.port, label=label, client_id=client_id,
        username=config.username or broker.username, password=read_password(config, broker),
        tls=context, protocol=config.protocol, keepalive=config.keepalive,
        connect_timeout_s=config.connect_timeout_s, clean_session=config.clean_session,
        session_expiry_s=config.session_expiry_s, message_expiry_s=config.message_expiry_s,
        max_in_flight=config.max_in_flight,
        reconnect=(config.reconnect_min_s, config.reconnect_max_s),
        flush_timeout_s=config.flush_timeout_s,
        will_topic=availability_topic(config.prefix, device_id), subscriptions=subscriptions)


class MqttSink(Sink):
    name = "mqtt"

    def __init__(self, config: MqttSinkConfig, device_id: str, *,
                 streams: Sequence[str] = ()) -> None:
        self.config = config
        self.device_id = device_id
        self.broker = parse_mqtt_url(config.url)
        self.status_topic = availability_topic(config.prefix, device_id)
        self.health_topic = health_topic(config.prefix, device_id)
        self.streams = list(streams)
        self.pipeline: PipelineView | None = None  # drops, models, control: for health
        spool = config.spool
        self.spool = Spool(spool.path, SpoolLimits(spool.max_events, int(spool.max_mb * 2**20),
                                                   spool.max_age_s), spool.synchronous)
        self._link: BrokerLink | None = None
        self.stats = LinkStats()
        self._resume: dict[str, int] = {}
        self._started = time.monotonic()
        self._health_seq = 0
        self._health_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room = asyncio.Event()

    @property
    def published(self) -> int:
        """Events the broker has acknowledged (QoS 1/2) or taken (QoS 0), this run."""
        return self.stats.acked + (self.stats.published if self.config.qos == 0 else 0)

    @property
    def control(self) -> PipelineControl | None:
        return self.pipeline.control if self.pipeline is not None else None

    def attached(self, pipeline: PipelineView) -> None:
        self.pipeline = pipeline

    def resume_seqs(self) -> Mapping[str, int]:
        """The last seq per stream of the previous run (durable spool only): the pipeline
        continues from there so subscribers that dedupe by (stream_id, seq) keep working."""
        return dict(self._resume)

    async def __aenter__(self) -> Self:
        settings = link_settings(self.config, self.device_id, self.broker, self._subscriptions())
        if self.config.control and settings.username is None and not self.config.tls.cert_file:
            raise ConfigError("sinks.mqtt.control needs an authenticated broker connection "
                              "(username/password or a client certificate)")
        await asyncio.to_thread(self.spool.open)
        if self.spool.durable:
            self._resume = self.spool.last_seqs()
        self._loop = asyncio.get_running_loop()
        link = BrokerLink(settings, self.spool, on_message=self._message_from_link)
        link.set_retained(self.status_topic, b"online")
        for topic, payload in self._discovery_messages():
            link.set_retained(topic, payload)
        try:
            await asyncio.wrap_future(link.start())
        except ConnectFailure as exc:
            if exc.fatal or not self.spool.durable:
                await asyncio.wrap_future(link.stop(flush_timeout_s=0))
                raise SinkError(f"cannot connect to MQTT broker {settings.label}: {exc}") from None
            log.warning("MQTT broker %s: %s; events wait in the spool %s until it is back",
                        settings.label, exc, self.spool.path)
        self._link, self.stats = link, link.stats
        if self.spool.depth:
            log.info("MQTT spool %s: %d events from the last run go out first",
                     self.spool.path, self.spool.depth)
        if self.config.health_interval_s > 0:
            self._health_task = asyncio.create_task(self._publish_health_forever())
        log.info("MQTT sink for %s on %s", self.device_id, settings.label)
        return self

    def _subscriptions(self) -> tuple[str, ...]:
        if not self.config.control:
            return ()
        return (control_topic(self.config.prefix, self.device_id),)

    def _discovery_messages(self) -> list[tuple[str, bytes]]:
        ha = self.config.homeassistant
        if not ha.enabled:
            return []
        from mmstream.sinks.discovery import discovery_messages

        return discovery_messages(ha, self.config.prefix, self.device_id, self.streams)

    async def send(self, event: Event) -> None:
        link = self._link
        if link is None:
            raise SinkError(f"MQTT sink for {self.broker} is not open")
        link.submit(Outgoing(event_topic(self.config.prefix, event), encode(event),
                             self.config.qos, shed_priority(event), event.stream_id, event.seq))
        while link.backlog >= HIGH_WATER:  # the link thread is far behind: slow the pipeline
            self._room.clear()
            link.when_drained(self._say_room)
            if link.backlog < HIGH_WATER:
                break
            await self._room.wait()

    def _say_room(self) -> None:
        """Runs on the link thread once it has taken the queued events."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._room.set)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        link, self._link = self._link, None
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        if link is None:
            return
        left = await asyncio.wrap_future(link.stop())
        if not left:
            return
        if self.spool.durable:
            log.warning("MQTT broker %s: %d events stay in the spool %s for the next start",
                        link.settings.label, left, self.spool.path)
        elif exc is None:
            raise SinkError(f"MQTT broker {link.settings.label}: {left} events could not be "
                            f"delivered within {self.config.flush_timeout_s:g} s "
                            f"({link.stats.last_error or 'no acknowledgement'})")

    # -- health and control -------------------------------------------------------------------

    async def _publish_health_forever(self) -> None:
        while True:
            self.publish_health()
            await asyncio.sleep(self.config.health_interval_s)

    def publish_health(self) -> None:
        link = self._link
        if link is None:
            return
        self._health_seq += 1
        link.set_retained(self.health_topic, encode(self.health_event(link)))

    def health_event(self, link: BrokerLink) -> StatusEvent:
        stats, pipeline = link.stats, self.pipeline
        drops = {f"mqtt:{reason}": n for reason, n in self.spool.dropped.items()}
        if stats.dropped_qos0:
            drops["mqtt:qos0_offline"] = stats.dropped_qos0
        details: dict[str, Any] = {
            "uptime_s": round(time.monotonic() - self._started, 1),
            "spool_depth": self.spool.depth, "published": stats.acked,
            "rejected": stats.rejected, "connects": stats.connects,
        }
        if pipeline is not None:
            drops.update(pipeline.drops())
            details.update(models=pipeline.models(), events=pipeline.event_counts())
        if self.control is not None:
            details["control"] = self.control.snapshot()
        return StatusEvent(
            device_id=self.device_id, stream_id="health", seq=self._health_seq,
            t_capture=time.time(), t_publish=time.time(),
            payload=Status(state="online" if link.connected else "reconnecting",
                           message=stats.last_error if not link.connected else "",
                           drops=drops, lag_s=round(stats.lag_s, 3), details=details))

    def _message_from_link(self, topic: str, payload: bytes) -> None:
        """Runs on the link thread: hand the command to the event loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._apply_control, topic, payload)

    def _apply_control(self, topic: str, payload: bytes) -> None:
        if self.control is None:
            log.warning("control message on %s ignored: no pipeline control attached", topic)
            return
        try:
            change = self.control.apply(payload)
        except ValueError as exc:
            log.warning("control message on %s rejected: %s", topic, exc)
            return
        log.warning("control: %s", change)
        self.publish_health()  # subscribers see the new state at once
