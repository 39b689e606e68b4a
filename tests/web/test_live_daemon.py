"""The live view of the real daemon, without models (a synthetic source): a port in use stops
it at start, and an open page finds a restarted daemon again by itself."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from conftest import SAMPLE_CLIP

from tests.web.live_helpers import start_daemon, stop
from tests.web.pages import WatchedPage

CONNECTION_JS = "(state) => document.getElementById('connection').dataset.state === state"


def synthetic_pipeline(tmp_path: Path) -> Path:
    path = tmp_path / "synthetic.yaml"
    path.write_text("device_id: bench\nsources:\n  - kind: synthetic\n    duration_s: 600\n"
                    "    realtime: true\n    width: 64\n    height: 48\n"
                    "stages:\n  transcribe: {enabled: false}\n  window: {enabled: false}\n"
                    "  infer: {enabled: false}\n"
                    f"sinks:\n  jsonl:\n    path: {tmp_path / 'events.jsonl'}\n")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_web_port_in_use_stops_the_daemon_at_start_naming_port_and_setting(
        cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("replay", str(SAMPLE_CLIP), "--realtime", "--out", "-",
                   env={"MMSTREAM_WEB__PORT": str(port)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: web.port {port}: address already in use on 127.0.0.1")
    assert "MMSTREAM_WEB__PORT" in done.stderr


def test_an_open_page_reconnects_by_itself_to_a_restarted_daemon(
        tmp_path: Path, browser_page: WatchedPage,
        keep_screenshot: Callable[[WatchedPage, str], Path]) -> None:
    pipeline, port = synthetic_pipeline(tmp_path), free_port()
    env = {"MMSTREAM_WEB__PORT": str(port)}
    first = start_daemon("run", str(pipeline), env=env)
    try:
        page = browser_page.page
        page.goto(first.url, wait_until="load")
        page.wait_for_function(CONNECTION_JS, arg="live")
        page.wait_for_function("() => document.querySelector('#health-sources .state-ok')")
        assert stop(first.process) == 0
        page.wait_for_function(CONNECTION_JS, arg="unreachable")  # stopped, no end message
    finally:
        stop(first.process)
    second = start_daemon("run", str(pipeline), env=env)
    try:
        assert second.url == first.url
        page.wait_for_function(CONNECTION_JS, arg="live", timeout=60_000)
        assert second.viewers() == 1
        keep_screenshot(browser_page, "live-reconnected")
    finally:
        assert stop(second.process) == 0


def test_with_a_token_the_page_carries_it_to_its_own_requests(
        tmp_path: Path, browser_page: WatchedPage) -> None:
    token = "a-token-for-this-test-only"
    daemon = start_daemon("run", str(synthetic_pipeline(tmp_path)),
                          env={"MMSTREAM_WEB__TOKEN": token})
    try:
        assert "(token required)" in daemon.stderr.text and token not in daemon.stderr.text
        page = browser_page.page
        refused = page.request.get(daemon.url)
        assert refused.status == 401 and refused.body() == b""
        page.goto(f"{daemon.url}?token={token}", wait_until="load")
        page.wait_for_function(CONNECTION_JS, arg="live")
        page.wait_for_function("() => document.querySelector('#health-sources .state-ok')")
        updates = [url for url in browser_page.requests if "/updates" in url]
        assert updates and all(url.endswith(f"?token={token}") for url in updates)
    finally:
        assert stop(daemon.process) == 0
