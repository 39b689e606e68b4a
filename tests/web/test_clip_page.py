"""/clip on the live view's server: a moment of the daemon's segments as mp4, played in
Chromium from the History page's "play"; nothing recorded then is a 404 with one line."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.history.helpers import written_store
from tests.recording.recording_helpers import door_transcript, record_door
from tests.web.pages import WatchedPage
from tests.web.test_history_page import ServerThread

T0 = 1_796_652_000.0  # 2026-12-07T14:00:00Z


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    folder = tmp_path_factory.mktemp("clips")
    record_door(folder / "recs", T0, 12)
    store = folder / "door.history.db"
    written_store(store, [door_transcript(T0)])
    server = ServerThread(store)
    server.server.view.record_dir = folder / "recs"
    yield server
    server.close()


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_clip_answers_an_mp4_of_the_moment_or_one_line(served: ServerThread,
                                                       tmp_path: Path) -> None:
    status, kind, body = _get(f"{served.url}/clip?stream=door&from={T0 + 2}&to=%2B4s")
    assert (status, kind) == (200, "video/mp4")
    (tmp_path / "c.mp4").write_bytes(body)
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                            "-of", "csv=p=0", str(tmp_path / "c.mp4")], capture_output=True,
                           text=True, check=True)
    assert 4.0 <= float(probe.stdout) <= 6.1  # from the keyframe at or before `from`
    status, kind, body = _get(f"{served.url}/clip?stream=door&from={T0 + 7200}&to=%2B4s")
    assert status == 404 and "no recording of stream 'door'" in json.loads(body)["error"]
    status, kind, body = _get(f"{served.url}/clip?stream=door&from=soon&to=%2B4s")
    assert status == 400 and "'soon'" in json.loads(body)["error"]
    status, _, body = _get(f"{served.url}/clip/available?stream=door&from={T0 + 4}&to={T0 + 7}")
    assert json.loads(body) == {"available": True}


def test_the_history_page_plays_a_moment_from_the_recordings(
        served: ServerThread, browser_page: WatchedPage) -> None:
    page = browser_page.page
    page.goto(f"{served.url}/history?q=door", wait_until="load")
    page.wait_for_selector("body[data-state=ready]")
    page.locator(".moment").first.click()
    page.wait_for_selector("#moment button.play")
    page.evaluate("""() => { window.played = [];
        new MutationObserver(() => { const v = document.querySelector('#moment video');
          if (v && !v.dataset.watched) { v.dataset.watched = '1';
            for (const e of ['playing', 'ended', 'error'])
              v.addEventListener(e, () => window.played.push(e)); } })
        .observe(document.getElementById('moment'), {childList: true, subtree: true}); }""")
    page.click("#moment button.play")
    wait_until(lambda: "ended" in page.evaluate("window.played"), limit_s=60,
               what="the clip to play to its end in Chromium")
    assert "error" not in page.evaluate("window.played")
    assert page.evaluate("document.querySelector('#moment video').currentTime") > 4
    assert not browser_page.errors

