"""Home Assistant discovery (documented keys, templates rendered on real events, publish and
--ha-remove against mosquitto) and the control topic (authenticated connections only)."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import msgspec
import paho.mqtt.client as paho
import pytest
import yaml

from mmstream.config import MqttSinkConfig
from mmstream.config.sinks import HomeAssistantConfig
from mmstream.demo_broker import MosquittoBroker
from mmstream.errors import ConfigError
from mmstream.events import (
    Emotion,
    EmotionEvent,
    Scene,
    SceneEvent,
    Tag,
    Transcript,
    TranscriptEvent,
    encode,
)
from mmstream.runtime.control import PipelineControl
from mmstream.runtime.harness import AloneView
from mmstream.sinks.mqtt import MqttSink
from mmstream.sinks.mqtt.discovery import discovery_messages
from tests.conftest import async_wait_until
from tests.sinks.mqtt.helpers import password_broker as password_broker_for
from tests.sinks.mqtt.helpers import retained_payloads

Cli = Callable[..., subprocess.CompletedProcess[str]]

# keys documented for MQTT discovery (home-assistant.io/integrations/mqtt and each platform)
COMMON_KEYS = {"availability_topic", "payload_available", "payload_not_available", "device",
               "origin", "unique_id", "name", "icon", "qos", "enabled_by_default",
               "entity_category", "encoding", "default_entity_id"}
STATE_KEYS = {"state_topic", "value_template", "json_attributes_topic",
              "json_attributes_template"}
COMPONENT_KEYS = {
    "sensor": COMMON_KEYS | STATE_KEYS | {"device_class", "state_class", "unit_of_measurement",
                                          "expire_after", "force_update",
                                          "suggested_display_precision"},
    "event": COMMON_KEYS | STATE_KEYS | {"event_types", "device_class"},
    "binary_sensor": COMMON_KEYS | STATE_KEYS | {"device_class", "payload_on", "payload_off",
                                                 "off_delay", "expire_after"},
    "camera": COMMON_KEYS | {"topic", "image_encoding", "json_attributes_topic"},
    "switch": COMMON_KEYS | STATE_KEYS | {"command_topic", "payload_on", "payload_off",
                                          "state_on", "state_off", "device_class"},
    "number": COMMON_KEYS | STATE_KEYS | {"command_topic", "command_template", "min", "max",
                                          "step", "mode", "unit_of_measurement",
                                          "device_class"},
}
REQUIRED = {"sensor": {"state_topic"}, "event": {"state_topic", "event_types"},
            "binary_sensor": {"state_topic"}, "camera": {"topic"},
            "switch": {"command_topic"}, "number": {"command_topic"}}
DEVICE_KEYS = {"identifiers", "connections", "name", "manufacturer", "model", "model_id",
               "sw_version", "hw_version", "serial_number", "suggested_area",
               "configuration_url", "via_device"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}


def configs(streams: list[str], control: bool = False) -> dict[str, dict]:
    return {topic: json.loads(payload) for topic, payload in discovery_messages(
        HomeAssistantConfig(enabled=True), "mmstream", "kitchen", streams, control=control)}


def test_discovery_configs_use_only_documented_keys() -> None:
    found = configs(["cam0", "mic0"], control=True)
    per_component = Counter(topic.split("/")[1] for topic in found)
    # per stream: camera, 2 binary sensors, 4 sensors, an event; per device: 6 diagnostic
    # sensors, the analysis switch and the frame-rate number
    assert per_component == {"camera": 2, "binary_sensor": 4, "sensor": 14, "event": 2,
                             "switch": 1, "number": 1}
    unique = set()
    for topic, body in found.items():
        prefix, component, node, _object_id, tail = topic.split("/")
        assert (prefix, node, tail) == ("homeassistant", "mmstream_kitchen", "config")
        assert body.keys() <= COMPONENT_KEYS[component], body.keys() - COMPONENT_KEYS[component]
        assert REQUIRED[component] <= body.keys()
        assert body["device"].keys() <= DEVICE_KEYS and body["origin"].keys() <= ORIGIN_KEYS
        assert body["availability_topic"] == "mmstream/kitchen/status"
        assert body.get("state_topic", body.get("topic", "")).startswith("mmstream/kitchen/")
        unique.add(body["unique_id"])
    assert len(unique) == len(found)
    diagnostics = [b for b in found.values() if b.get("entity_category") == "diagnostic"]
    assert {b["name"] for b in diagnostics} == {"lag", "drops", "spool depth", "MQTT reconnects",
                                                "model load time", "CPU"}
    assert not any(t.split("/")[1] in ("switch", "number") for t in configs(["cam0"]))


def render(template: str, value: object, state: str = "before") -> str:
    """Render like Home Assistant: `value_json` is the payload, `this.state` the current
    state, and `now()`/`as_timestamp` are Home Assistant's template functions."""
    environment = jinja2.Environment(autoescape=False)
    value_json = json.loads(encode(value)) if not isinstance(value, dict) else value  # type: ignore[arg-type]
    return environment.from_string(template).render(
        value_json=value_json, this={"state": state}, now=lambda: datetime.now(UTC),
        as_timestamp=lambda moment: moment.timestamp())


def test_the_drops_sensor_counts_losses_not_windows_carried_over() -> None:
    body = {topic.split("/")[3]: value for topic, value in configs(["cam0"]).items()}
    health = {"payload": {"drops": {"infer:shed:stale_window:cam0": 3, "mqtt:spool_full": 2,
                                    "infer:carried:cam0": 40}}}
    assert render(body["drops"]["value_template"], health) == "5"
    assert render(body["drops"]["value_template"], {"payload": {"drops": {}}}) == "0"


def test_templates_pick_the_right_fields_from_real_events() -> None:
    body = {topic.split("/")[3]: value for topic, value in configs(["mic0"]).items()}
    said = {"text": "coffee is ready", "confidence": 0.9, "start": 0.0, "end": 1.0}
    assert render(body["mic0_transcript"]["value_template"], said) == "coffee is ready"
    final = TranscriptEvent(device_id="kitchen", stream_id="mic0", seq=7, t_capture=1.0,
                            t_publish=time.time(), payload=Transcript(
                                final=True, text="coffee is ready", start=0, end=1,
                                confidence=0.9))
    partial = TranscriptEvent(device_id="kitchen", stream_id="mic0", seq=6, t_capture=0.5,
                              t_publish=time.time(), payload=Transcript(
                                  final=False, text="coffee", start=0, end=0.5))
    fired = json.loads(render(body["mic0_utterance"]["value_template"], final))
    assert fired["event_type"] in body["mic0_utterance"]["event_types"]
    assert fired["text"] == "coffee is ready" and fired["seq"] == 7
    assert fired["confidence"] == 0.9 and fired["time"] == final.t_publish
    assert render(body["mic0_utterance"]["value_template"], partial) == ""  # HA ignores ""
    # an old utterance (a restart, a spool delivering an outage's events) fires nothing
    old = msgspec.structs.replace(final, t_publish=time.time() - 3600)
    assert render(body["mic0_utterance"]["value_template"], old) == ""
    scene = SceneEvent(device_id="kitchen", stream_id="mic0", t_capture=1, payload=Scene(
        tags=[Tag("kitchen", 0.8), Tag("person", 0.6)]))
    assert render(body["mic0_scene"]["value_template"], scene) == "kitchen, person"
    emotion = EmotionEvent(device_id="kitchen", stream_id="mic0", t_capture=1, payload=Emotion(
        label="happy", scores={"happy": 0.7, "neutral": 0.3}, valence=0.6))
    assert render(body["mic0_emotion"]["value_template"], emotion) == "happy"
    attributes = json.loads(render(body["mic0_emotion"]["json_attributes_template"], emotion))
    assert attributes["valence"] == 0.6


async def test_discovery_is_published_and_removed_with_ha_remove(
        mosquitto: MosquittoBroker, tmp_path: Path, cli: Cli) -> None:
    config = {"url": mosquitto.url, "homeassistant": {"enabled": True}}
    async with MqttSink(MqttSinkConfig.model_validate(config), "kitchen", streams=["cam0"]):
        pass
    topic = "homeassistant/sensor/mmstream_kitchen/cam0_scene/config"
    published = await asyncio.to_thread(retained_payloads, mosquitto.port, topic)
    assert json.loads(published[0])["state_topic"] == "mmstream/kitchen/cam0/scene"
    assert len(await asyncio.to_thread(retained_payloads, mosquitto.port, "homeassistant/#")) == 14
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump({"device_id": "kitchen", "sources": [
        {"kind": "synthetic", "id": "cam0", "realtime": True}],  # paced: serves the web view
        "sinks": {"mqtt": config}}))
    republished = await asyncio.to_thread(cli, "ha", str(pipeline), timeout=60)
    assert "published 14 Home Assistant entities of kitchen" in republished.stderr
    for flag in ("--ha-remove", "--remove"):  # both spellings; the count agrees with publish
        removed = await asyncio.to_thread(cli, "ha", str(pipeline), flag, timeout=60)
        assert removed.returncode == 0, removed.stderr
        assert "removed 14 Home Assistant entities of kitchen" in removed.stderr
        assert await asyncio.to_thread(retained_payloads, mosquitto.port,
                                       "homeassistant/#") == []
    published = await asyncio.to_thread(
        cli, "ha", str(pipeline), "--set", "web.enabled=true",
        "--set", "web.public_url=https://edge.example/mmstream/", timeout=60)
    assert published.returncode == 0, published.stderr
    configs = await asyncio.to_thread(retained_payloads, mosquitto.port, topic)
    assert json.loads(configs[0])["device"]["configuration_url"] == (
        "https://edge.example/mmstream/")  # the device page links to the web view


@pytest.fixture
def password_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    if not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto_passwd is not installed")
    broker = password_broker_for(tmp_path, {"edge": "pw"})
    try:
        yield broker
    finally:
        broker.stop()


async def test_control_topic_pauses_and_sets_the_rate(password_broker: MosquittoBroker,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    control = PipelineControl()
    url = f"mqtt://edge:pw@127.0.0.1:{password_broker.port}"
    sink = MqttSink(MqttSinkConfig(url=url, control=True), "kitchen")
    sink.attached(AloneView(control))
    commander = paho.Client(paho.CallbackAPIVersion.VERSION2)
    commander.username_pw_set("edge", "pw")
    commander.connect("127.0.0.1", password_broker.port)
    commander.loop_start()

    async def send(command: dict | str, check: Callable[[], bool]) -> None:
        text = command if isinstance(command, str) else json.dumps(command)
        commander.publish("mmstream/kitchen/control", text, qos=1).wait_for_publish(5)
        await async_wait_until(check, 10, f"the effect of {command}")

    try:
        async with sink:
            assert sink.listening_for_control  # the broker's SUBACK came before the sink opened
            await send({"command": "pause"}, lambda: control.paused)
            await send({"command": "set_fps", "fps": 1.5}, lambda: control.fps == 1.5)
            with caplog.at_level(logging.WARNING):
                await send("not json", lambda: "rejected" in caplog.text)
            await send({"command": "resume"}, lambda: not control.paused)
            assert control.changes == 3
    finally:
        commander.loop_stop()
        commander.disconnect()


async def test_control_needs_an_authenticated_connection(mosquitto: MosquittoBroker) -> None:
    sink = MqttSink(MqttSinkConfig(url=mosquitto.url, control=True), "kitchen")
    sink.attached(AloneView(PipelineControl()))
    with pytest.raises(ConfigError, match="control needs an authenticated broker connection"):
        await sink.__aenter__()



async def test_oversized_and_deeply_nested_commands_are_rejected_while_events_flow(
        password_broker: MosquittoBroker, caplog: pytest.LogCaptureFixture) -> None:
    control = PipelineControl()
    url = f"mqtt://edge:pw@127.0.0.1:{password_broker.port}"
    sink = MqttSink(MqttSinkConfig(url=url, control=True, health_interval_s=0), "kitchen")
    sink.attached(AloneView(control))
    commander = paho.Client(paho.CallbackAPIVersion.VERSION2)
    commander.username_pw_set("edge", "pw")
    commander.connect("127.0.0.1", password_broker.port)
    commander.loop_start()

    async def produce() -> None:  # a run's events, one every few milliseconds
        seq = 0
        while True:
            seq += 1
            await sink.send(SceneEvent(device_id="kitchen", stream_id="cam0", seq=seq,
                                       t_capture=seq, payload=Scene(tags=[Tag("k", 0.5)])))
            await asyncio.sleep(0.005)

    def published_after(count: int) -> Callable[[], bool]:
        return lambda: sink.published >= count

    try:
        with caplog.at_level(logging.WARNING):
            async with sink:
                producer = asyncio.create_task(produce())
                try:
                    await async_wait_until(published_after(20), 10, "the first events")
                    for hostile in (b'{"command": "' + b"x" * 5_000_000 + b'"}', b"[" * 200_000,
                                    b"[" * 3000):  # 5 MB; too big and deep; small but deep
                        commander.publish("mmstream/kitchen/control", hostile,
                                          qos=1).wait_for_publish(10)
                    await async_wait_until(lambda: caplog.text.count("rejected") == 3, 20,
                                           "three rejections")
                    seen = sink.published
                    await async_wait_until(published_after(seen + 20), 10, "events after them")
                    commander.publish("mmstream/kitchen/control", json.dumps({"command": "pause"}),
                                      qos=1).wait_for_publish(5)
                    await async_wait_until(lambda: control.paused, 10, "the valid command")
                finally:
                    producer.cancel()
    finally:
        commander.loop_stop()
        commander.disconnect()
    rejections = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert "5000015 bytes, more than the 4096" in rejections[0]
    assert "200000 bytes" in rejections[1] and "nested too deeply" in rejections[2]
    assert all(len(message) < 300 for message in rejections)  # never the command itself
    assert control.changes == 1
