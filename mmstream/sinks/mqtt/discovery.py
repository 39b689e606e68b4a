"""Home Assistant MQTT discovery: one HA device per mmstream device, the whole device.

Per stream: a camera (the latest analysed frame, faces and tags drawn), binary sensors for
"person present" and "speech active", sensors for the last final transcript (confidence, start
and end as attributes), the scene tags, the emotion and the fused window's summary, and an
event entity that fires `utterance` for every *fresh* final transcript. Per device: a switch
for analysis on/off and a number for the analysed frame rate (only with `control`, which needs
an authenticated connection), and diagnostic sensors (lag, drops, spool depth, reconnects,
model load time, CPU). All follow the availability topic, so HA greys them out when mmstream
is offline. The configs are retained; `removal_messages` (empty retained payloads, used by
`mmstream ha PIPELINE --ha-remove`) makes HA forget them.
"""

from __future__ import annotations

import json
from typing import Any

from mmstream import __version__
from mmstream.config.sinks import HomeAssistantConfig
from mmstream.sinks.mqtt.homeassistant import control_state_topic, ha_topic
from mmstream.sinks.mqtt.topics import control_topic, health_topic

Entity = tuple[str, str, dict[str, Any]]  # (component, object id, entity keys)

# A final transcript fires `utterance` only when fresh: after a restart of either side, or a
# spool delivering an outage's events, an automation must not act on what was said long ago.
UTTERANCE_EVENT = (
    "{% if value_json.payload.final and value_json.payload.text "
    "and as_timestamp(now()) - value_json.t_publish < MAX_AGE %}"
    "{{ {'event_type': 'utterance', 'text': value_json.payload.text, "
    "'confidence': value_json.payload.confidence, 'stream_id': value_json.stream_id, "
    "'start': value_json.payload.start, 'end': value_json.payload.end, "
    "'time': value_json.t_publish, 'seq': value_json.seq} | tojson }}{% endif %}"
)
SCENE_STATE = "{{ value_json.payload.tags | map(attribute='label') | join(', ') | truncate(255) }}"
EMOTION_STATE = "{{ value_json.payload.label }}"
SUMMARY_STATE = (
    "{{ ((value_json.payload.scene | map(attribute='label') | list) + "
    "([value_json.payload.emotion] if value_json.payload.emotion else [])) "
    "| join(', ') | truncate(255) }}"
)
PAYLOAD_ATTRIBUTES = "{{ value_json.payload | tojson }}"


def _stream_entities(config: HomeAssistantConfig, prefix: str, device_id: str,
                     stream: str) -> list[Entity]:
    events = f"{prefix}/{device_id}/{stream}"
    # Entity names say which stream; HA shows them after the device's name, and warns about
    # a name that repeats it (a device "kitchen" whose one stream is "kitchen").
    label = "" if stream == (config.name or device_id) else f"{stream} "
    state = lambda name: ha_topic(prefix, device_id, stream, name)  # noqa: E731
    fresh = UTTERANCE_EVENT.replace("MAX_AGE", f"{config.event_max_age_s:g}")
    return [
        ("camera", f"{stream}_camera", {"name": f"{label}camera", "topic": state("snapshot"),
                                         "image_encoding": None}),
        ("binary_sensor", f"{stream}_person", {
            "name": f"{label}person present", "device_class": "occupancy",
            "state_topic": state("presence")}),
        ("binary_sensor", f"{stream}_speech", {
            "name": f"{label}speech active", "device_class": "sound",
            "state_topic": state("speech")}),
        ("sensor", f"{stream}_transcript", {
            "name": f"{label}transcript", "icon": "mdi:text-to-speech",
            "state_topic": state("final"), "value_template": "{{ value_json.text[:255] }}",
            "json_attributes_topic": state("final")}),
        ("event", f"{stream}_utterance", {
            "name": f"{label}utterance", "icon": "mdi:account-voice",
            "state_topic": f"{events}/transcript", "event_types": ["utterance"],
            "value_template": fresh}),
        ("sensor", f"{stream}_scene", {
            "name": f"{label}scene", "icon": "mdi:image-search",
            "state_topic": f"{events}/scene", "value_template": SCENE_STATE,
            "json_attributes_topic": f"{events}/scene",
            "json_attributes_template": PAYLOAD_ATTRIBUTES}),
        ("sensor", f"{stream}_emotion", {
            "name": f"{label}emotion", "icon": "mdi:emoticon-outline",
            "state_topic": f"{events}/emotion", "value_template": EMOTION_STATE,
            "json_attributes_topic": f"{events}/emotion",
            "json_attributes_template": PAYLOAD_ATTRIBUTES}),
        ("sensor", f"{stream}_summary", {
            "name": f"{label}summary", "icon": "mdi:view-dashboard-outline",
            "state_topic": f"{events}/fused", "value_template": SUMMARY_STATE,
            "json_attributes_topic": f"{events}/fused",
            "json_attributes_template": PAYLOAD_ATTRIBUTES}),
    ]


def _control_entities(prefix: str, device_id: str) -> list[Entity]:
    """Analysis on/off and the frame rate, commands on the control topic, state as it is."""
    command, state = control_topic(prefix, device_id), control_state_topic(prefix, device_id)
    return [
        ("switch", "analysis", {
            "name": "analysis", "icon": "mdi:motion-play", "command_topic": command,
            "payload_on": '{"command": "resume"}', "payload_off": '{"command": "pause"}',
            "state_topic": state, "state_on": "ON", "state_off": "OFF",
            "value_template": "{{ 'OFF' if value_json.paused else 'ON' }}"}),
        ("number", "frame_rate", {
            "name": "analysed frame rate", "icon": "mdi:camera-timer", "min": 0, "max": 30,
            "step": 0.5, "unit_of_measurement": "fps", "mode": "box", "command_topic": command,
            "command_template": '{"command": "set_fps", "fps": '
                                "{{ value if value | float > 0 else 'null' }}}",
            "state_topic": state, "value_template": "{{ value_json.fps or 0 }}"}),
    ]


DIAGNOSTICS = (  # object id, name, unit, template over the retained health status event
    ("lag", "lag", "s", "{{ value_json.payload.details.lag_s | default(0) }}"),
    # what was lost: windows carried over by change gating are counted beside drops, not lost
    ("drops", "drops", None,
     "{% set ns = namespace(n=0) %}{% for key, n in value_json.payload.drops.items() "
     "if ':carried:' not in key %}{% set ns.n = ns.n + n %}{% endfor %}{{ ns.n }}"),
    ("spool_depth", "spool depth", None, "{{ value_json.payload.details.spool_depth }}"),
    ("reconnects", "MQTT reconnects", None,
     "{{ [value_json.payload.details.connects - 1, 0] | max }}"),
    ("model_load", "model load time", "s",
     "{{ value_json.payload.details.model_load_s | default(0) }}"),
    ("cpu", "CPU", "%", "{{ value_json.payload.details.cpu_percent | default(0) }}"),
)


def _diagnostic_entities(prefix: str, device_id: str) -> list[Entity]:
    topic = health_topic(prefix, device_id)
    return [("sensor", object_id, {
        "name": name, "state_topic": topic, "value_template": template,
        "entity_category": "diagnostic", "state_class": "measurement",
        **({"unit_of_measurement": unit} if unit else {})})
        for object_id, name, unit, template in DIAGNOSTICS]


def discovery_messages(config: HomeAssistantConfig, prefix: str, device_id: str,
                       streams: list[str], *, control: bool = False,
                       configuration_url: str | None = None) -> list[tuple[str, bytes]]:
    """Retained (topic, config JSON) for every entity of the device."""
    node = f"mmstream_{device_id}".replace(".", "_")
    device: dict[str, Any] = {"identifiers": [node], "name": config.name or device_id,
                              "manufacturer": "mmstream", "model": "mmstream edge daemon",
                              "sw_version": __version__}
    if configuration_url:
        device["configuration_url"] = configuration_url
    entities = [e for stream in streams for e in _stream_entities(config, prefix, device_id,
                                                                  stream)]
    entities += _diagnostic_entities(prefix, device_id)
    if control:
        entities += _control_entities(prefix, device_id)
    messages = []
    for component, object_id, keys in entities:
        body = {
            **{key: value for key, value in keys.items() if value is not None},
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
                     streams: list[str], *, control: bool = True) -> list[tuple[str, bytes]]:
    """An empty retained payload on each config topic removes the entity from HA."""
    return [(topic, b"") for topic, _ in discovery_messages(config, prefix, device_id, streams,
                                                            control=control)]
