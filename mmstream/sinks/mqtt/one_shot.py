"""Short MQTT sessions beside the sink's link, on the same library (paho, client.py):

    publish_retained(settings, [(topic, payload), ...])   # `ha`: wait for every PUBACK
    async with Subscription(settings, topics) as messages:  # `listen`, `demo`
        async for topic, payload in messages: ...

paho runs its network loop in a thread of its own; connecting and waiting for the broker's
answers happen in a worker thread, so the event loop never blocks. Failures are `SinkError`s
naming the broker.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any, Self

import paho.mqtt.client as paho

from mmstream.errors import SinkError
from mmstream.sinks.mqtt.client import LinkSettings, describe_connect_error, make_client

PUBLISH_TIMEOUT_S = 10.0


def _connected(settings: LinkSettings, client: paho.Client) -> None:
    """Connect `client` and start its loop thread; returns once the broker has accepted us."""
    connack = threading.Event()
    outcome: dict[str, Any] = {}

    def on_connect(_c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        outcome["reason"] = reason
        connack.set()

    client.on_connect = on_connect
    try:
        client.connect(settings.broker.host, settings.broker.port, settings.keepalive)
    except (OSError, ValueError) as exc:
        raise SinkError(f"cannot connect to MQTT broker {settings.label}: "
                        f"{describe_connect_error(exc)[0]}") from None
    client.loop_start()
    reason = outcome.get("reason") if connack.wait(settings.connect_timeout_s) else None
    if reason is None or getattr(reason, "is_failure", True):
        _disconnected(client)
        raise SinkError(f"cannot connect to MQTT broker {settings.label}: "
                        f"refused: {reason or 'no CONNACK'}")


def _disconnected(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()


def publish_retained(settings: LinkSettings, messages: Sequence[tuple[str, bytes]]) -> None:
    """Connect once, publish every message retained with QoS 1, wait for each PUBACK."""
    client = make_client(settings, paho.MQTTv311)
    _connected(settings, client)
    try:
        infos = [client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(PUBLISH_TIMEOUT_S)
            if not info.is_published():
                raise SinkError(f"MQTT broker {settings.label}: no PUBACK within "
                                f"{PUBLISH_TIMEOUT_S:g} s")
    except (RuntimeError, ValueError) as exc:
        raise SinkError(f"MQTT broker {settings.label}: publish failed: {exc}") from None
    finally:
        _disconnected(client)


class Subscription:
    """Subscribed to `topics` (QoS 1) while open; yields (topic, payload) as they arrive.

    A lost connection ends the iteration with a `SinkError`.
    """

    def __init__(self, settings: LinkSettings, topics: Sequence[str]) -> None:
        self.settings = settings
        self.topics = list(topics)
        self._client = make_client(settings, paho.MQTTv311)
        self._arrived: asyncio.Queue[tuple[str, bytes] | SinkError] = asyncio.Queue()
        self._closing = False

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()

        def on_message(_c: object, _u: object, message: paho.MQTTMessage) -> None:
            loop.call_soon_threadsafe(self._arrived.put_nowait,
                                      (message.topic, bytes(message.payload)))

        def on_disconnect(_c: object, _u: object, _f: object, reason: object,
                          _p: object) -> None:
            if not self._closing:
                lost = SinkError(f"MQTT broker {self.settings.label}: connection lost ({reason})")
                loop.call_soon_threadsafe(self._arrived.put_nowait, lost)

        self._client.on_message = on_message
        await asyncio.to_thread(self._subscribe)
        self._client.on_disconnect = on_disconnect
        return self

    def _subscribe(self) -> None:
        """Worker thread: connect, then subscribe and wait for the broker's SUBACK."""
        _connected(self.settings, self._client)
        acked = threading.Event()
        self._client.on_subscribe = lambda *_: acked.set()
        result, _mid = self._client.subscribe([(topic, 1) for topic in self.topics])
        if result != paho.MQTT_ERR_SUCCESS or not acked.wait(self.settings.connect_timeout_s):
            _disconnected(self._client)
            raise SinkError(f"MQTT broker {self.settings.label}: subscribing to "
                            f"{', '.join(self.topics)} failed")

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing = True
        await asyncio.to_thread(_disconnected, self._client)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> tuple[str, bytes]:
        arrived = await self._arrived.get()
        if isinstance(arrived, SinkError):
            raise arrived
        return arrived
