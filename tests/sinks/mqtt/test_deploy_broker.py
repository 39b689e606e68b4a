"""deploy/mosquitto (TLS + passwords + ACLs) run for real: devices publish only as themselves,
Home Assistant reads everything and may send control commands."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from mmstream.config import MqttSinkConfig
from mmstream.demo_broker import free_port, wait_for_port
from mmstream.events import Transcript, TranscriptEvent
from mmstream.runtime.control import PipelineControl
from mmstream.runtime.harness import AloneView
from mmstream.sinks.mqtt import MqttSink
from tests.conftest import REPO, async_wait_until
from tests.sinks.mqtt.certs import Authority

DEPLOY = REPO / "deploy" / "mosquitto"
USERS = {"kitchen": "kitchen-pw", "homeassistant": "ha-pw"}
pytestmark = pytest.mark.skipif(not shutil.which("mosquitto_passwd"),
                                reason="mosquitto_passwd is not installed")


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[tuple[int, Authority]]:
    """The shipped config with its paths moved into tmp_path and its ports on loopback."""
    authority = Authority(tmp_path)
    server = authority.issue("server", ["127.0.0.1"])
    passwd = tmp_path / "passwd"
    for user, password in USERS.items():
        flags = ["-b", "-c"] if not passwd.exists() else ["-b"]
        subprocess.run(["mosquitto_passwd", *flags, str(passwd), user, password], check=True,
                       capture_output=True)
    shutil.copy(DEPLOY / "acl", tmp_path / "acl")
    port, local = free_port(), free_port()
    text = (DEPLOY / "mosquitto.conf").read_text()
    text = text.replace("/etc/mosquitto/mmstream/certs/ca.crt", str(authority.ca_file))
    text = text.replace("/etc/mosquitto/mmstream/certs/server.crt", str(server.cert))
    text = text.replace("/etc/mosquitto/mmstream/certs/server.key", str(server.key))
    text = text.replace("/etc/mosquitto/mmstream/", f"{tmp_path}/")
    text = text.replace("/var/lib/mosquitto/", f"{tmp_path}/")
    text = text.replace("listener 8883", f"listener {port} 127.0.0.1")
    text = text.replace("listener 1883 127.0.0.1", f"listener {local} 127.0.0.1")
    text = re.sub(r"log_dest syslog", f"log_dest file {tmp_path}/mosquitto.log", text)
    if os.geteuid() == 0:  # as root mosquitto would drop to a user that cannot read tmp_path
        text += "user root\n"
    config = tmp_path / "mosquitto.conf"
    config.write_text(text)
    process = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port, authority
    finally:
        process.terminate()
        process.wait(10)


def sink(port: int, authority: Authority, device: str, user: str = "kitchen",
         control: PipelineControl | None = None) -> MqttSink:
    mqtt = MqttSink(MqttSinkConfig.model_validate({
        "url": f"mqtts://{user}:{USERS[user]}@127.0.0.1:{port}", "protocol": "5",
        "tls": {"ca_file": authority.ca_file}, "control": control is not None,
        "homeassistant": {"enabled": True}}), device, streams=["mic0"])
    mqtt.attached(AloneView(control))
    return mqtt


def event(device: str, seq: int = 1) -> TranscriptEvent:
    return TranscriptEvent(device_id=device, stream_id="mic0", seq=seq, t_capture=0.0,
                           payload=Transcript(final=True, text="hello", start=0, end=1))


async def test_devices_publish_as_themselves_and_home_assistant_controls_them(
        deployed: tuple[int, Authority]) -> None:
    port, authority = deployed
    seen: list[str] = []
    subscribed = threading.Event()
    ha = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    ha.username_pw_set("homeassistant", USERS["homeassistant"])
    ha.tls_set(ca_certs=str(authority.ca_file))
    ha.on_message = lambda _c, _u, message: seen.append(message.topic)
    ha.on_subscribe = lambda *_: subscribed.set()
    ha.connect("127.0.0.1", port)
    ha.subscribe([("mmstream/#", 1), ("homeassistant/#", 1)])
    ha.loop_start()
    control = PipelineControl()
    barrier = "mmstream/garage/control"  # HA may write it and reads it back
    try:
        assert await asyncio.to_thread(subscribed.wait, 10), "Home Assistant not subscribed"
        async with sink(port, authority, "kitchen", control=control) as kitchen:
            assert kitchen.listening_for_control  # the broker's SUBACK came before the sink opened
            await kitchen.send(event("kitchen"))
            ha.publish("mmstream/kitchen/control", b'{"command": "pause"}', qos=1)
            await async_wait_until(lambda: control.paused, 10, "the pause command")
        async with sink(port, authority, "garage") as impostor:  # user kitchen, device garage
            await impostor.send(event("garage"))
        # the broker handles messages in order: once HA's own message on a topic it reads
        # comes back, whatever the impostor got through would have reached HA before it
        ha.publish(barrier, b"barrier", qos=1)
        await async_wait_until(lambda: barrier in seen, 10, "the barrier message back at HA")
    finally:
        ha.loop_stop()
        ha.disconnect()
    assert control.paused  # Home Assistant's command reached the device
    assert "mmstream/kitchen/mic0/transcript" in seen
    assert "homeassistant/sensor/mmstream_kitchen/mic0_transcript/config" in seen
    assert kitchen.published == 1 and kitchen.stats.rejected == 0
    assert [topic for topic in seen if "garage" in topic] == [barrier]  # the ACL kept it out
    assert impostor.stats.rejected == 1  # and said so (MQTT 5 PUBACK: not authorized)
