"""Durable by default: `mmstream run` spools on disk in its state directory, starts while its
broker is unreachable, and delivers every event once and in order when the broker comes —
also after being killed (SIGKILL) in the middle of the outage."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmstream.demo_broker import MosquittoBroker
from tests.conftest import REPO, wait_until
from tests.notify_listener import NotifyListener
from tests.sinks.mqtt.helpers import Subscriber

pytestmark = pytest.mark.slow


def spooled(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def test_run_starts_before_its_broker_and_loses_nothing(
        sample_clip: Path, tmp_path: Path, notify_socket: tuple[NotifyListener, str]) -> None:
    listener, socket_path = notify_socket
    broker = MosquittoBroker()
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump({
        "device_id": "dur",
        "sources": [{"kind": "file", "id": "cam", "path": str(sample_clip), "realtime": True}],
        "stages": {"transcribe": {"enabled": False}},
        "sinks": {"mqtt": {"url": broker.url, "reconnect_max_s": 0.5}}}))
    state = tmp_path / "state"
    env = {**os.environ, "STATE_DIRECTORY": str(state), "NOTIFY_SOCKET": socket_path}
    spool = state / "dur.spool.db"

    def daemon() -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "mmstream", "run", str(pipeline)],
                                cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)

    broker.start()  # once, so the subscriber's persistent session exists before the outage
    with Subscriber(broker.port, "mmstream/dur/+/+", client_id="durable-test"):
        broker.stop()
    try:
        # 1. the broker is down at start: READY all the same, events wait on disk
        first = daemon()
        listener.wait_for("READY=1", timeout=120)
        wait_until(lambda: spooled(spool) >= 3, 120, "events in the on-disk spool")
        # 2. killed mid-outage: what is on disk stays there
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        kept = spooled(spool)
        assert kept >= 3
        # 3. restarted, still no broker; then the broker comes
        second = daemon()
        wait_until(lambda: spooled(spool) > kept, 120, "the restarted run spooling too")
        broker.start()
        with Subscriber(broker.port, "mmstream/dur/+/+", client_id="durable-test") as sub:
            _, stderr = second.communicate(timeout=180)
            assert second.returncode == 0, stderr
            published = sum(int(n) for n in re.findall(r"(\d+) \w+[,;]", stderr.split("done:")[1]))
            total = kept + published
            assert sub.wait_for(lambda m: len(sub.events()) >= total, 60), (
                len(sub.events()), total)
            seqs = [seq for seq, _ in sub.events()]
    finally:
        broker.stop()
    # every event once, in order; the SIGKILL shows as one jump (the restart numbers on past
    # the block of seqs the spool had reserved), never as a reused seq
    assert seqs == sorted(set(seqs)) and len(seqs) == total, "every event once, in order"
    assert seqs[:kept] == list(range(1, kept + 1))
    assert seqs[kept:] == list(range(seqs[kept], seqs[kept] + total - kept))
    assert spooled(spool) == 0
    warnings = [line for line in stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "events wait in the spool" in warnings[0], warnings
