"""Home Assistant gets the whole device, tested in a real Home Assistant 2024.1.6: onboarded and
given the MQTT integration through its REST API, mmstream replaying the sample clip in real
time to a mosquitto that needs passwords. Every entity exists; the camera returns a JPEG;
"person present" and "speech active" turn on and off with the clip; the analysis switch
pauses the device (its windows stop) and resumes it; the transcript carries confidence, start
and end; an utterance fires the event entity; Home Assistant logs no MQTT warning."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from mmstream.demo_broker import MosquittoBroker
from tests.conftest import REPO, wait_until
from tests.homeassistant.home_assistant import HomeAssistant, copy_log, home_assistant_venv
from tests.sinks.mqtt.helpers import password_broker

pytestmark = pytest.mark.slow
USERS = {"kitchen": "device-pw", "homeassistant": "ha-pw"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeAssistant]:
    venv = home_assistant_venv()
    if venv is None:
        pytest.skip("Home Assistant is not installed (.ci/run makes its virtualenv in "
                    "~/.cache/mmstream/home-assistant; or set MMSTREAM_HA_VENV)")
    home = HomeAssistant(venv, tmp_path_factory.mktemp("home-assistant"))
    home.start()
    try:
        home.onboard()
        yield home
    finally:
        home.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    broker = password_broker(tmp_path, USERS)
    yield broker
    broker.stop()


class States(threading.Thread):
    """Polls Home Assistant's states, keeping each binary sensor's sequence of states."""

    def __init__(self, home: HomeAssistant) -> None:
        super().__init__(daemon=True)
        self.home, self.seen, self.stop = home, {}, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            for entity_id, state in self.home.states().items():
                if entity_id.startswith("binary_sensor."):
                    history = self.seen.setdefault(entity_id, [])
                    if not history or history[-1] != state["state"]:
                        history.append(state["state"])


class Windows:
    """The device's fused events and health, as a subscriber sees them."""

    def __init__(self, port: int) -> None:
        self.fused: list[float] = []
        self.health: dict[str, Any] = {}
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.username_pw_set("homeassistant", USERS["homeassistant"])
        self.client.on_connect = lambda c, *_: c.subscribe(
            [("mmstream/kitchen/+/fused", 1), ("mmstream/kitchen/health", 1)])
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, _c: Any, _u: Any, message: Any) -> None:
        event = json.loads(message.payload)
        if message.topic.endswith("/health"):
            self.health = event["payload"]
        else:
            self.fused.append(event["t_capture"])

    def paused_frames(self) -> int:
        return int(self.health.get("drops", {}).get("control:paused:VideoFrame", 0))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def kitchen_clip(sample: Path, folder: Path) -> Path:
    """The sample clip three times (a face, two sentences each time), then 8 s of an empty
    grey room in silence: someone is there and speaks, then nobody is."""
    clip = folder / "kitchen.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", "2", "-i", str(sample),
                    "-f", "lavfi", "-i", "color=c=gray:s=320x320:r=10:d=8", "-f", "lavfi",
                    "-i", "anullsrc=r=16000:cl=mono:d=8", "-filter_complex",
                    "[0:v][0:a][1:v][2:a]concat=n=2:v=1:a=1[v][a]", "-map", "[v]", "-map",
                    "[a]", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    str(clip)], check=True)
    return clip


def test_home_assistant_gets_the_whole_device(home: HomeAssistant, broker: MosquittoBroker,
                                              sample_clip: Path, tmp_path: Path) -> None:
    home.add_mqtt(broker.port, "homeassistant", USERS["homeassistant"])
    states, windows = States(home), Windows(broker.port)
    states.start()
    device = subprocess.Popen(
        [sys.executable, "-m", "mmstream", "replay", str(kitchen_clip(sample_clip, tmp_path)),
         "--realtime", "--ha", "--mqtt", f"mqtt://kitchen:{USERS['kitchen']}@127.0.0.1:"
         f"{broker.port}", "--out", str(tmp_path / "events.jsonl"), "--set", "device_id=kitchen",
         "--set", "sinks.mqtt.control=true", "--set", "sinks.mqtt.health_interval_s=1",
         "--set", "sinks.mqtt.homeassistant.presence_hold_s=2"],
        cwd=REPO, stderr=(tmp_path / "device.log").open("w"))
    try:
        check_entities(home)
        check_the_switch_pauses_and_resumes(home, windows)
        # the empty grey room at the end: nobody there, nobody speaking, the device still on
        wait_until(lambda: home.entity("binary_sensor", "_person_present")["state"] == "off",
                   60, "person present turning off in the empty room")
        assert home.entity("binary_sensor", "_speech_active")["state"] == "off"
        device.wait(180)
        assert device.returncode == 0, (tmp_path / "device.log").read_text()
    except BaseException:
        copy_log(home, tmp_path)
        raise
    finally:
        states.stop.set()
        windows.close()
        if device.poll() is None:
            device.kill()
    person = next(v for k, v in states.seen.items() if k.endswith("_person_present"))
    speech = next(v for k, v in states.seen.items() if k.endswith("_speech_active"))
    assert person[person.index("on"):].index("off") > 0, person  # on with the face, then off
    assert speech.count("on") >= 2 and "off" in speech[speech.index("on"):], speech
    mqtt_problems = [line for line in home.log().splitlines()
                     if ("WARNING" in line or "ERROR" in line) and "mqtt" in line.lower()]
    assert mqtt_problems == []


def check_entities(home: HomeAssistant) -> None:
    expected = [("camera", "_camera"), ("binary_sensor", "_person_present"),
                ("binary_sensor", "_speech_active"), ("sensor", "_transcript"),
                ("event", "_utterance"), ("sensor", "_scene"), ("sensor", "_emotion"),
                ("sensor", "_summary"), ("switch", "_analysis"),
                ("number", "_analysed_frame_rate"), ("sensor", "_lag"), ("sensor", "_drops"),
                ("sensor", "_spool_depth"), ("sensor", "_mqtt_reconnects"),
                ("sensor", "_model_load_time"), ("sensor", "_cpu")]
    wait_until(lambda: all(home.entity(*which) for which in expected), 60,
               f"every entity in Home Assistant: {expected}")
    wait_until(lambda: home.entity("binary_sensor", "_person_present")["state"] == "on", 60,
               "the astronaut's face: person present")
    camera = home.entity("camera", "_camera")
    wait_until(lambda: home.camera_image(camera["entity_id"])[:2] == b"\xff\xd8", 30,
               "a JPEG from the camera entity")
    said = wait_until(lambda: (s := home.entity("sensor", "_transcript")) and
                      "kitchen camera" in s["state"].lower() and s, 60, "the first sentence")
    assert 0 < said["attributes"]["confidence"] <= 1
    assert said["attributes"]["start"] < said["attributes"]["end"]
    fired = wait_until(lambda: (e := home.entity("event", "_utterance")) and
                       e["attributes"].get("event_type") == "utterance" and e, 60,
                       "an utterance event")
    assert fired["attributes"]["text"] and fired["attributes"]["stream_id"] == "kitchen"
    assert home.entity("switch", "_analysis")["state"] == "on"


def check_the_switch_pauses_and_resumes(home: HomeAssistant, windows: Windows) -> None:
    switch = home.entity("switch", "_analysis")["entity_id"]
    home.service("switch", "turn_off", entity_id=switch)
    wait_until(lambda: home.entity("switch", "_analysis")["state"] == "off", 30,
               "the switch showing the device paused")
    before = len(windows.fused)
    paused_already = windows.paused_frames()
    wait_until(lambda: windows.paused_frames() >= paused_already + 6, 30,
               "3 s of video dropped while paused")
    assert len(windows.fused) <= before + 2  # the windows in flight, then nothing
    home.service("switch", "turn_on", entity_id=switch)
    wait_until(lambda: home.entity("switch", "_analysis")["state"] == "on", 30, "resumed")
    resumed = len(windows.fused)
    wait_until(lambda: len(windows.fused) >= resumed + 2, 30, "windows again after resuming")
