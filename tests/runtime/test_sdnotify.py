"""systemd notify protocol over a real AF_UNIX datagram socket standing in for systemd's."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from pathlib import Path
from typing import Any

from mmstream.config import validate_pipeline
from mmstream.daemon import Service
from mmstream.media import VideoFrame
from mmstream.runtime.observer import PipelineObserver
from mmstream.runtime.pipeline import Pipeline
from mmstream.runtime.sdnotify import Notifier
from mmstream.runtime.stage import Stage
from mmstream.sources.synthetic import SyntheticSource
from tests.notify_listener import NotifyListener
from tests.pipelines import NO_ANALYSIS, synthetic_config


# every analysis stage off: these tests are about the daemon's plumbing, not the models
def test_notify_reaches_a_path_socket(notify_socket: tuple[NotifyListener, str]) -> None:
    received, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.ready("warming up") and notifier.watchdog() and notifier.stopping()
    received.wait_for("STOPPING=1")
    assert received.texts()[:2] == ["READY=1\nSTATUS=warming up", "WATCHDOG=1"]


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"mmstream-test-{uuid.uuid4().hex}"
    received = NotifyListener(b"\0" + name.encode())
    try:
        assert Notifier({"NOTIFY_SOCKET": f"@{name}"}).status("hello")
        assert received.wait_for("STATUS=hello") == "STATUS=hello"
    finally:
        received.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.ready() and notifier.sent == []


def test_watchdog_interval_is_half_the_systemd_timeout() -> None:
    assert Notifier({"WATCHDOG_USEC": "4000000"}).watchdog_interval_s == 2.0
    assert Notifier({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
                    ).watchdog_interval_s == 2.0
    assert Notifier({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}).watchdog_interval_s is None
    assert Notifier({}).watchdog_interval_s is None


async def test_service_sends_ready_watchdog_and_stopping(
        tmp_path: Path, notify_socket: tuple[NotifyListener, str]) -> None:
    received, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    service = Service(synthetic_config(tmp_path, 30.0), notifier=notifier)
    running = asyncio.create_task(service.run())
    ready = await asyncio.to_thread(received.wait_for, "READY=1")
    assert "STATUS=running: device t1; sources synthetic:synth0" in ready
    await asyncio.to_thread(received.wait_for, "WATCHDOG=1", 10.0, received.texts().index(ready))
    service.stop()
    await asyncio.wait_for(running, 20)
    await asyncio.to_thread(received.wait_for, "STOPPING=1")
    assert sum(text == "WATCHDOG=1" for text in received.texts()) >= 1


BLOCKED_S = 0.6  # longer than the watchdog period below (0.1 s): pings must stop


class BlockingStage(Stage):
    """Blocks the event loop once (a bug a watchdog exists to catch)."""

    name = "blocker"

    def __init__(self) -> None:
        self.blocked = False

    async def process(self, item: Any) -> None:
        if isinstance(item, VideoFrame) and item.index == 3 and not self.blocked:
            self.blocked = True
            time.sleep(BLOCKED_S)  # noqa: ASYNC251 - the bug under test: blocks the loop
        await self.emit(item)


async def test_a_blocked_loop_stops_the_watchdog_pings(
        tmp_path: Path, notify_socket: tuple[NotifyListener, str]) -> None:
    received, path = notify_socket
    config = synthetic_config(tmp_path, 2.0)

    def builder(cfg: Any, observers: list[PipelineObserver], sinks: list[Any]) -> Pipeline:
        return Pipeline([SyntheticSource(cfg.sources[0])], [BlockingStage()], sinks,
                        device_id=cfg.device_id, observers=observers)

    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    await asyncio.wait_for(Service(config, builder=builder, notifier=notifier).run(), 30)
    pings = [at for at, text in received.messages if text == "WATCHDOG=1"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    assert len(pings) >= 5
    assert max(gaps) >= 0.5  # no ping while the loop was blocked: systemd would restart us


async def test_ready_with_an_unplugged_camera_and_reconnecting_status(
        tmp_path: Path, notify_socket: tuple[NotifyListener, str]) -> None:
    """An absent camera at boot must not keep systemd waiting for READY (it would kill and
    restart the daemon in a loop): the daemon is up and says the camera is reconnecting."""
    received, path = notify_socket
    out = tmp_path / "out.jsonl"
    config = validate_pipeline({
        "device_id": "t2",
        "sources": [{"kind": "camera", "id": "door", "url": str(tmp_path / "video99"),
                     "open_timeout_s": 1},
                    {"kind": "synthetic", "id": "synth0", "duration_s": 30.0,
                     "realtime": True, "width": 32, "height": 24}],
        "stages": NO_ANALYSIS,
        "sinks": {"jsonl": {"path": str(out)}},
        "web": {"port": 0},
    })
    service = Service(config, notifier=Notifier({"NOTIFY_SOCKET": path}))
    running = asyncio.create_task(service.run())
    try:
        await asyncio.to_thread(received.wait_for, "READY=1")
    finally:
        service.stop()
        await asyncio.wait_for(running, 20)
    statuses = [line for line in out.read_text().splitlines() if '"reconnecting"' in line]
    assert statuses and '"door"' in statuses[0] and "cannot open" in statuses[0]
