"""MQTT sink: every event reaches the broker once acknowledged, in order, even across outages.

Topics (topics.py): events on `<prefix>/<device>/<stream>/<type>`; `<prefix>/<device>/status`
retained "online" while connected (Last Will and a clean exit: "offline");
`<prefix>/<device>/health` a retained status event every `health_interval_s` (health.py);
opt-in Home Assistant discovery (discovery.py) and a control topic (control.py).

Delivery (docs/mqtt.md): QoS >= 1 events go through the spool (spool.py) and a paho client on
its own thread (link.py) that keeps many publishes in flight and deletes rows only after
PUBACK. `send` returns as soon as the event is queued; it waits only when the link falls far
behind (backpressure, never a silent drop). Where the broker is and how to log in comes from
broker.py, as for `doctor`, `ha` and `listen`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from mmstream.config import MqttSinkConfig
from mmstream.errors import SinkError
from mmstream.events import Event, encode
from mmstream.media import MediaItem
from mmstream.runtime.observer import PipelineView
from mmstream.runtime.stage import Sink
from mmstream.sinks.mqtt.broker import broker_settings, parse_mqtt_url
from mmstream.sinks.mqtt.client import ConnectFailure, LinkSettings, LinkStats, link_settings
from mmstream.sinks.mqtt.control import ControlTopic
from mmstream.sinks.mqtt.health import HealthReport
from mmstream.sinks.mqtt.homeassistant import HomeAssistantStates
from mmstream.sinks.mqtt.link import BrokerLink
from mmstream.sinks.mqtt.spool import Outgoing, Spool, SpoolLimits, shed_priority
from mmstream.sinks.mqtt.topics import availability_topic, event_topic, health_topic

log = logging.getLogger(__name__)

HIGH_WATER = 20_000  # events queued for the link thread before `send` waits


def device_client_id(config: MqttSinkConfig, device_id: str) -> str:
    """A fixed id for a persistent session; otherwise one per process, readable in broker logs."""
    if config.client_id:
        return config.client_id
    if not config.clean_session:
        return f"mmstream-{device_id}"
    return f"mmstream-{device_id}-{secrets.token_hex(4)}"


class MqttSink(Sink):
    name = "mqtt"

    def __init__(self, config: MqttSinkConfig, device_id: str, *,
                 streams: Sequence[str] = (), configuration_url: str | None = None) -> None:
        self.config = config
        self.device_id = device_id
        self.configuration_url = configuration_url  # Home Assistant's link to the web view
        self.broker = parse_mqtt_url(config.url)  # a bad URL fails here, at build time
        self.status_topic = availability_topic(config.prefix, device_id)
        self.health_topic = health_topic(config.prefix, device_id)
        self.streams = list(streams)
        self.pipeline: PipelineView | None = None  # drops, models, control: for health
        self.commands = ControlTopic(config, device_id)
        spool = config.spool
        path = spool.path if isinstance(spool.path, Path) else None  # unset or "memory"
        self.spool = Spool(path, SpoolLimits(spool.max_events, int(spool.max_mb * 2**20),
                                             spool.max_age_s, spool.max_held_events),
                           spool.synchronous)
        self.stats = LinkStats()
        self._link: BrokerLink | None = None
        self._resume: dict[str, int] = {}
        self._health = HealthReport(device_id)
        self._health_task: asyncio.Task[None] | None = None
        ha = config.homeassistant
        # Home Assistant's states (presence, speech, the camera's picture) come from events
        # and from the analysed frames, so the sink then takes media too.
        self.ha = (HomeAssistantStates(ha, config.prefix, device_id, self._set_retained)
                   if ha.enabled else None)
        self.wants_media = self.ha is not None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room = asyncio.Event()

    @property
    def published(self) -> int:
        """Events the broker has acknowledged (QoS 1/2) or taken (QoS 0), this run."""
        return self.stats.acked + (self.stats.published if self.config.qos == 0 else 0)

    @property
    def listening_for_control(self) -> bool:
        """The broker has granted the control topic's subscription on the current connection."""
        return self._link is not None and self._link.subscribed.is_set()

    def attached(self, pipeline: PipelineView) -> None:
        self.pipeline = pipeline

    def health(self) -> Mapping[str, Any]:
        """The broker link and the spool, for the web view's health panel."""
        link = self._link
        return {"broker": str(self.broker), "connected": link is not None and link.connected,
                "spool_depth": self.spool.depth, "published": self.published,
                "spool_held": link.held if link is not None else 0,
                "connects": self.stats.connects, "last_error": self.stats.last_error}

    def resume_seqs(self) -> Mapping[str, int]:
        """The last seq per stream of the previous run (durable spool only): the pipeline
        continues from there so subscribers that dedupe by (stream_id, seq) keep working."""
        return dict(self._resume)

    def link_settings(self) -> LinkSettings:
        """The connection this sink makes: broker.py's address, credentials and TLS."""
        return link_settings(self.config, broker_settings(self.config),
                             client_id=device_client_id(self.config, self.device_id),
                             will_topic=self.status_topic,
                             subscriptions=self.commands.subscriptions)

    async def __aenter__(self) -> Self:
        settings = self.link_settings()
        self.commands.check_allowed(settings.broker)
        await asyncio.to_thread(self.spool.open)
        if self.spool.durable:
            self._resume = self.spool.last_seqs()
        self._loop = asyncio.get_running_loop()
        link = BrokerLink(settings, self.spool, on_message=self._message_from_link,
                          on_change=self._link_changed)
        link.set_retained(self.status_topic, b"online")
        for topic, payload in self._discovery_messages():
            link.set_retained(topic, payload)
        await self._connect(link)
        self._link, self.stats = link, link.stats
        if self.ha is not None:  # the switch and the number show what the device does
            self.ha.control(self.pipeline.control if self.pipeline else None)
        await self.commands.wait_subscribed(link, settings.connect_timeout_s)
        if self.spool.depth:
            log.info("MQTT spool %s: %d events from the last run go out first",
                     self.spool.path, self.spool.depth)
        if self.config.health_interval_s > 0:
            self._health_task = asyncio.create_task(self._publish_health_forever())
        log.info("MQTT sink for %s on %s", self.device_id, settings.label)
        return self

    async def _connect(self, link: BrokerLink) -> None:
        """The first connection; without it, start only when a durable spool can wait."""
        try:
            await asyncio.wrap_future(link.start())
        except ConnectFailure as exc:
            if exc.fatal or not self.spool.durable:
                await asyncio.wrap_future(link.stop(flush_timeout_s=0))
                raise SinkError(f"cannot connect to MQTT broker {link.settings.label}: "
                                f"{exc}") from None
            log.warning("MQTT broker %s: %s; events wait in the spool %s until it is back",
                        link.settings.label, exc, self.spool.path)

    def _discovery_messages(self) -> list[tuple[str, bytes]]:
        ha = self.config.homeassistant
        if not ha.enabled:
            return []
        from mmstream.sinks.mqtt.discovery import discovery_messages

        return discovery_messages(ha, self.config.prefix, self.device_id, self.streams,
                                  control=self.config.control,
                                  configuration_url=self.configuration_url)

    def _set_retained(self, topic: str, payload: bytes) -> None:
        if self._link is not None:
            self._link.set_retained(topic, payload)

    async def send(self, event: Event) -> None:
        link = self._link
        if link is None:
            raise SinkError(f"MQTT sink for {self.broker} is not open")
        if link.failure is not None:  # the thread is gone: stop the run with the real cause
            raise SinkError(f"the MQTT link to {link.settings.label} stopped: "
                            f"{type(link.failure).__name__}: {link.failure}")
        link.submit(Outgoing(event_topic(self.config.prefix, event), encode(event),
                             self.config.qos, shed_priority(event), event.stream_id, event.seq))
        if self.ha is not None:
            self.ha.event(event)
        while link.backlog >= HIGH_WATER:  # the link thread is far behind: slow the pipeline
            self._room.clear()
            link.when_drained(self._say_room)
            if link.backlog < HIGH_WATER:
                break
            await self._room.wait()

    async def send_media(self, item: MediaItem) -> None:
        if self.ha is not None:
            self.ha.media(item)

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
        if self.ha is not None:
            await self.ha.close()  # the last pictures go out before the link closes
        link, self._link = self._link, None
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        if link is None:
            return
        try:
            left = await asyncio.wrap_future(link.stop())
        except Exception as failure:  # the link thread died; send() has said so if it could
            if exc is None:
                raise SinkError(f"the MQTT link to {link.settings.label} stopped: "
                                f"{type(failure).__name__}: {failure}") from None
            return
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
        event = self._health.next_event(link.stats, link.connected, self.spool, self.pipeline,
                                        held=link.held, failure=link.failure)
        link.set_retained(self.health_topic, encode(event))

    def _link_changed(self, change: str) -> None:
        """Runs on the link thread: a full disk, room again, drops, the link's end. Logged, and
        the health payload (a status event) says it at once."""
        log.warning("MQTT: %s", change)
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to tell
                self._loop.call_soon_threadsafe(self.publish_health)

    def _message_from_link(self, topic: str, payload: bytes) -> None:
        """Runs on the link thread: hand the command to the event loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._apply_control, topic, payload)

    def _apply_control(self, topic: str, payload: bytes) -> None:
        if self.commands.apply(self.pipeline, topic, payload):
            self.publish_health()  # subscribers see the new state at once
            if self.ha is not None:
                self.ha.control(self.pipeline.control if self.pipeline else None)
