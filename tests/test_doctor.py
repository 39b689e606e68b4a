"""`mmstream doctor` on this machine (no camera, no sound card) and against a real broker."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mmstream.demo_broker import MosquittoBroker
from tests.sinks.mqtt.helpers import password_broker

Cli = Callable[..., subprocess.CompletedProcess[str]]


def doctor_json(cli: Cli, *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    done = cli("doctor", "--json", *args, timeout=120)
    checks = {check["name"]: check for check in json.loads(done.stdout)["checks"]}
    return done.returncode, checks


def write_pipeline(tmp_path: Path, **sections: Any) -> Path:
    path = tmp_path / "pipeline.yaml"
    body = {"device_id": "kitchen", "sources": [{"kind": "synthetic"}],
            "stages": {"transcribe": {"enabled": False}}, **sections}
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A real mosquitto that accepts only user `edge` with password `s3cret`."""
    if not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto_passwd is not installed")
    broker = password_broker(tmp_path, {"edge": "s3cret"})
    try:
        yield broker
    finally:
        broker.stop()


def test_no_camera_no_audio_reported_but_not_needed(cli: Cli) -> None:
    code, checks = doctor_json(cli)
    cameras, audio = checks["cameras"], checks["audio devices"]
    has_camera = bool(list(Path("/dev").glob("video*")))
    if not has_camera:
        assert not cameras["ok"] and "no camera found" in cameras["detail"]
        assert "--device /dev/video0" in cameras["fix"]
    assert audio["ok"] or "audio" in audio["detail"]
    assert not cameras["needed"] and not audio["needed"]
    assert checks["python"]["ok"] and checks["torch"]["ok"]
    assert code == 0  # nothing this (absent) pipeline needs is missing

    table = cli("doctor", timeout=120)
    assert table.returncode == 0 and "cameras" in table.stdout and "ready" in table.stdout


def test_camera_pipeline_fails_without_a_camera(cli: Cli, tmp_path: Path) -> None:
    camera = {"kind": "camera", "id": "cam0", "url": 0}
    if list(Path("/dev").glob("video*")):
        pytest.skip("this machine has a camera")
    code, checks = doctor_json(cli, str(write_pipeline(tmp_path, sources=[camera])))
    assert code == 1 and checks["cameras"]["needed"] and not checks["cameras"]["ok"]
    assert checks["pipeline"]["ok"]  # a device that is not there yet is not a config error


def test_a_missing_media_file_is_not_ready(cli: Cli, tmp_path: Path) -> None:
    missing = {"kind": "file", "id": "clip", "path": str(tmp_path / "gone.mp4")}
    code, checks = doctor_json(cli, str(write_pipeline(tmp_path, sources=[missing])))
    assert code == 1 and not checks["pipeline"]["ok"]
    assert f"sources.0.path: no such file: {tmp_path / 'gone.mp4'}" in checks["pipeline"]["detail"]


def test_broker_credentials_and_unwritable_dirs_are_checked(
        cli: Cli, tmp_path: Path, auth_broker: MosquittoBroker) -> None:
    good = f"mqtt://edge:s3cret@127.0.0.1:{auth_broker.port}"
    out = tmp_path / "events" / "out.jsonl"
    code, checks = doctor_json(cli, str(write_pipeline(
        tmp_path, sinks={"mqtt": {"url": good}, "jsonl": {"path": str(out)}})))
    assert checks["mqtt broker"]["ok"] and "as edge: connected" in checks["mqtt broker"]["detail"]
    assert checks["write sinks.jsonl.path"]["ok"]
    assert "s3cret" not in json.dumps(checks)
    assert code == 0, checks

    bad = f"mqtt://edge:wrong@127.0.0.1:{auth_broker.port}"
    code, checks = doctor_json(cli, str(write_pipeline(
        tmp_path, sinks={"mqtt": {"url": bad}, "jsonl": {"path": "/proc/no-such/out.jsonl"}})))
    assert code == 1
    assert "refused" in checks["mqtt broker"]["detail"] and checks["mqtt broker"]["fix"]
    assert not checks["write sinks.jsonl.path"]["ok"] and checks["write sinks.jsonl.path"]["fix"]
    failed = {name for name, check in checks.items() if check["needed"] and not check["ok"]}
    assert failed == {"mqtt broker", "write sinks.jsonl.path"}


def test_the_onnx_cache_says_what_the_first_run_exports(cli: Cli, tmp_path: Path) -> None:
    cache = tmp_path / "onnx"
    done = cli("doctor", "--json", timeout=120, env={"MMSTREAM_ONNX_CACHE": str(cache)})
    check = next(c for c in json.loads(done.stdout)["checks"] if c["name"] == "onnx cache")
    assert check["ok"] and f"{cache}: 0 of 6 graphs exported" in check["detail"]
    assert "the first run exports image, face, pnet, rnet, onet, fusion" in check["detail"]
    assert done.returncode == 0
