"""`mmstream run` as systemd runs it: READY, SIGHUP reload (good and bad file), SIGTERM drain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.daemon.test_sdnotify import NO_ANALYSIS, NotifyListener

PIPELINE = {
    "device_id": "first",
    "sources": [{"kind": "synthetic", "duration_s": 120, "realtime": True, "width": 32,
                 "height": 24}],
    "stages": NO_ANALYSIS,
    "sinks": {"jsonl": {"path": "-"}},
}


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[tuple[NotifyListener, str]]:
    path = str(tmp_path / "notify.sock")
    listener = NotifyListener(path)
    yield listener, path
    listener.close()


def test_run_reloads_on_sighup_and_drains_on_sigterm(
        tmp_path: Path, notify: tuple[NotifyListener, str]) -> None:
    received, socket_path = notify
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
