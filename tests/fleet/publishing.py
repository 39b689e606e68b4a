"""Publishing events to a test broker as devices do: QoS 1, `mmstream/<dev>/<stream>/<type>`."""

from __future__ import annotations

from collections.abc import Iterable

import paho.mqtt.client as paho

from mmstream.events import Event, encode, event_type


def event_topic(event: Event) -> str:
    return f"mmstream/{event.device_id}/{event.stream_id}/{event_type(event)}"


def publish(port: int, messages: Iterable[tuple[str, bytes]], client_id: str = "") -> int:
    """Publish every (topic, payload) with QoS 1 and wait for each PUBACK; returns how many."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=paho.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(60)
            assert info.is_published(), "the broker did not acknowledge a publish"
        return len(infos)
    finally:
        client.disconnect()
        client.loop_stop()


def publish_events(port: int, events: Iterable[Event]) -> int:
    return publish(port, ((event_topic(e), encode(e)) for e in events))
