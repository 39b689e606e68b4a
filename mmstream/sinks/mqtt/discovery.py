"""Home Assistant MQTT discovery: one HA device per mmstream device, entities per stream.

Per stream: a sensor with the last final transcript, one with the scene tags, one with the
emotion (scores and valence as attributes), and an event entity that fires `utterance` for
every final transcript. All use the availability topic, so HA greys them out when mmstream
is offline. The configs are retained; `removal_messages` (empty retained payloads, used by
`mmstream ha PIPELINE --ha-remove`) makes HA forget them.
"""

from __future__ import annotations

import json
from typing import Any

from mmstream import __version__
from mmstream.config.sinks import HomeAssistantConfig

TRANSCRIPT_STATE = (
    "{% if value_json.payload.final %}{{ value_json.payload.text[:255] }}"
    "{% else %}{{ this.state }}{% endif %}"
)
# partials render empty, which HA's event entity ignores; finals fire an `utterance`
UTTERANCE_EVENT = (
    "{% if value_json.payload.final %}{{ {'event_type': 'utterance', "
    "'text': value_json.payload.text, 'confidence': value_json.payload.confidence, "
    "'stream_id': value_json.stream_id, 'seq': value_json.seq} | tojson }}{% endif %}"
)
SCENE_STATE = "{{ value_json.payload.tags | map(attribute='label') | join(', ') | truncate(255) }}"
EMOTION_STATE = "{{ value_json.payload.label }}"
PAYLOAD_ATTRIBUTES = "{{ value_json.payload | tojson }}"


def _entities(topic: str, stream: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(component, object id, entity keys) of one stream's entities."""
    return [
        ("sensor", f"{stream}_transcript", {
            "name": f"{stream} transcript", "icon": "mdi:text-to-speech",
            "state_topic": f"{topic}/transcript", "value_template": TRANSCRIPT_STATE}),
        ("event", f"{stream}_utterance", {
            "name": f"{stream} utterance", "icon": "mdi:account-voice",
            "state_topic": f"{topic}/transcript", "event_types": ["utterance"],
            "value_template": UTTERANCE_EVENT}),
        ("sensor", f"{stream}_scene", {
            "name": f"{stream} scene", "icon": "mdi:image-search",
            "state_topic": f"{topic}/scene", "value_template": SCENE_STATE,
            "json_attributes_topic": f"{topic}/scene",
            "json_attributes_template": PAYLOAD_ATTRIBUTES}),
        ("sensor", f"{stream}_emotion", {
            "name": f"{stream} emotion", "icon": "mdi:emoticon-outline",
            "state_topic": f"{topic}/emotion", "value_template": EMOTION_STATE,
            "json_attributes_topic": f"{topic}/emotion",
            "json_attributes_template": PAYLOAD_ATTRIBUTES}),
    ]


def discovery_messages(config: HomeAssistantConfig, prefix: str, device_id: str,
                       streams: list[str], *,
                       configuration_url: str | None = None) -> list[tuple[str, bytes]]:
    """Retained (topic, config JSON) for every entity of every stream."""
    node = f"mmstream_{device_id}".replace(".", "_")
    device: dict[str, Any] = {"identifiers": [node], "name": config.name or device_id,
                              "manufacturer": "mmstream", "model": "mmstream edge daemon",
                              "sw_version": __version__}
    if configuration_url:
        device["configuration_url"] = configuration_url
    messages = []
    for stream in streams:
        for component, object_id, keys in _entities(f"{prefix}/{device_id}/{stream}", stream):
            body = {
                **keys,
                "unique_id": f"{node}_{object_id}",
                "availability_topic": f"{prefix}/{device_id}/status",
                "payload_available": "online", "payload_not_available": "offline",
                "qos": 1, "device": device,
                "origin": {"name": "mmstream", "sw_version": __version__},
            }
            topic = f"{config.prefix}/{component}/{node}/{object_id}/config"
            messages.append((topic, json.dumps(body, sort_keys=True).encode()))
    return messages


def removal_messages(config: HomeAssistantConfig, prefix: str, device_id: str,
                     streams: list[str]) -> list[tuple[str, bytes]]:
    """An empty retained payload on each config topic removes the entity from HA."""
    return [(topic, b"") for topic, _ in discovery_messages(config, prefix, device_id, streams)]
