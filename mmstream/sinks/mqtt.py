"""MQTT sink (aiomqtt): QoS 1 events on `<prefix>/<device>/<stream>/<type>`.

Availability: `<prefix>/<device>/status` is retained "online" while connected, and the broker
publishes the Last Will "offline" (retained) if the process dies. Many publishes are kept in
flight at once (awaiting each PUBACK in turn caps a client near 3,000 events/s); the exit
waits for every outstanding acknowledgement before saying "offline" and disconnecting.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import unquote, urlsplit

import aiomqtt

from mmstream.config import MqttSinkConfig
from mmstream.errors import ConfigError, SinkError
from mmstream.events import Event, encode, event_type
from mmstream.runtime.stage import Sink

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 1000


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:  # never shows the password
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> BrokerAddress:
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ConfigError(f"MQTT URL {url!r}: scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError(f"MQTT URL {url!r}: no host")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ConfigError(f"MQTT URL {url!r}: bad port") from None
    return BrokerAddress(
        parts.hostname, port, tls,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


def event_topic(prefix: str, event: Event) -> str:
    return f"{prefix}/{event.device_id}/{event.stream_id}/{event_type(event)}"


def availability_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/{device_id}/status"


class MqttSink(Sink):
    name = "mqtt"

    def __init__(self, config: MqttSinkConfig, device_id: str) -> None:
        self.config = config
        self.device_id = device_id
        self.broker = parse_mqtt_url(config.url)
        self.status_topic = availability_topic(config.prefix, device_id)
        self.published = 0
        self._client: aiomqtt.Client | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._failure: BaseException | None = None

    async def __aenter__(self) -> Self:
        client = aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.broker.username,
            password=self.broker.password,
            identifier=self.config.client_id,
            keepalive=self.config.keepalive,
            timeout=self.config.connect_timeout_s,
            will=aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True),
            max_inflight_messages=MAX_IN_FLIGHT,
            tls_params=aiomqtt.TLSParameters() if self.broker.tls else None,
        )
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise SinkError(f"cannot connect to MQTT broker {self.broker}: {exc}") from None
        self._client = client
        await client.publish(self.status_topic, b"online", qos=1, retain=True)
        log.info("connected to MQTT broker %s", self.broker)
        return self

    async def send(self, event: Event) -> None:
        if self._failure is not None:
            raise SinkError(f"MQTT broker {self.broker}: publish failed: {self._failure}")
        await self._slots.acquire()
        task = asyncio.create_task(self._publish(event_topic(self.config.prefix, event),
                                                 encode(event)))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _publish(self, topic: str, payload: bytes) -> None:
        assert self._client is not None
        try:
            await self._client.publish(topic, payload, qos=self.config.qos)
            self.published += 1
        except aiomqtt.MqttError as exc:
            self._failure = self._failure or exc
        finally:
            self._slots.release()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            await client.publish(self.status_topic, b"offline", qos=1, retain=True)
        except aiomqtt.MqttError as error:
            log.warning("MQTT broker %s: could not say offline: %s", self.broker, error)
        finally:
            try:
                await client.__aexit__(None, None, None)
            except aiomqtt.MqttError:
                pass
        if self._failure is not None and exc is None:
            raise SinkError(f"MQTT broker {self.broker}: publish failed: {self._failure}")
