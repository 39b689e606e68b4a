"""`mmstream run` as systemd runs it: READY, SIGHUP reload (good and bad file), SIGTERM drain."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.notify_listener import NotifyListener, reload_then_stop
from tests.pipelines import NO_ANALYSIS

PIPELINE = {
    "device_id": "first",
    "sources": [{"kind": "synthetic", "duration_s": 120, "realtime": True, "width": 32,
                 "height": 24}],
    "stages": NO_ANALYSIS,
    "sinks": {"jsonl": {"path": "-"}},
}


def test_run_reloads_on_sighup_and_drains_on_sigterm(
        tmp_path: Path, notify_socket: tuple[NotifyListener, str]) -> None:
    received, socket_path = notify_socket
    pipeline_file = tmp_path / "pipeline.yaml"
    pipeline_file.write_text(yaml.safe_dump(PIPELINE))
    env = {**os.environ, "NOTIFY_SOCKET": socket_path, "WATCHDOG_USEC": "2000000"}
    daemon = subprocess.Popen([sys.executable, "-m", "mmstream", "--log-format", "json", "run",
                               str(pipeline_file)], cwd=REPO, env=env, text=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert "device first" in received.wait_for("READY=1", timeout=60)

        pipeline_file.write_text("device_id: [not, valid\n")
        daemon.send_signal(signal.SIGHUP)
        assert "reload rejected" in received.wait_for("reload rejected")

        pipeline_file.write_text(yaml.safe_dump({**PIPELINE, "device_id": "second"}))
        mark = len(received.texts())
        daemon.send_signal(signal.SIGHUP)
        received.wait_for("RELOADING=1", after=mark)
        assert "device second" in received.wait_for("READY=1", after=mark)

        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert daemon.returncode == 0, stderr
    received.wait_for("STOPPING=1")
    assert "reload rejected" in stderr and '"level": "error"' in stderr  # logged as JSON


@pytest.mark.slow
def test_a_reload_keeps_every_event_and_seq_goes_on(
        sample_clip: Path, tmp_path: Path, notify_socket: tuple[NotifyListener, str]) -> None:
    received, socket_path = notify_socket
    out = tmp_path / "events.jsonl"
    pipeline_file = tmp_path / "pipeline.yaml"
    pipeline_file.write_text(yaml.safe_dump({
        "device_id": "hup", "sources": [{"kind": "file", "id": "cam", "path": str(sample_clip),
                                         "realtime": True}],
        "stages": {"transcribe": {"enabled": False}}, "sinks": {"jsonl": {"path": str(out)}}}))
    daemon = subprocess.Popen([sys.executable, "-m", "mmstream", "run", str(pipeline_file)],
                              cwd=REPO, env={**os.environ, "NOTIFY_SOCKET": socket_path},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def lines() -> list[dict]:
        return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []

    stderr = reload_then_stop(daemon, received, lambda: len(lines()))
    assert daemon.returncode == 0, stderr
    events = lines()
    times = [e["t_capture"] for e in events]
    restarts = sum(b < a - 1 for a, b in itertools.pairwise(times))
    assert restarts == 1, "the file holds the first run's events and the reloaded run's"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
