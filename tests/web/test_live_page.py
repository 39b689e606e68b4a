"""The live view in a real browser while the real daemon runs the sample clip through every
model: a picture and the transcript as it forms, updates that keep coming, a viewer who
leaves, a reload (SIGHUP) the page lives through."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import SAMPLE_CLIP, SAMPLE_ENDINGS, SAMPLE_SENTENCES, wait_until, words_of

from tests.web.live_helpers import Daemon, start_daemon, stop
from tests.web.pages import WatchedPage

pytestmark = pytest.mark.slow  # real models, a clip played in real time

# the stream's picture has arrived (a frame number above `after`) and decoded
FRAME_LOADED_JS = """(after) => {
  const img = document.querySelector('.stream .frame img');
  return img !== null && img.complete && img.naturalWidth > 0
    && Number(img.dataset.loaded || 0) > after ? Number(img.dataset.loaded) : false;
}"""
# the spread of the picture's red channel: 0 for an empty or uniform image
PICTURE_CONTRAST_JS = """() => {
  const img = document.querySelector('.stream .frame img');
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let low = 255, high = 0;
  for (let i = 0; i < data.length; i += 4) {
    low = Math.min(low, data[i]); high = Math.max(high, data[i]);
  }
  return high - low;
}"""
FINAL_SHOWN_JS = """(text) => Array.from(document.querySelectorAll('.stream .lines li.final'))
  .some((li) => li.querySelector('.text').textContent.includes(text))"""
LINES_JS = """() => Array.from(document.querySelectorAll('.stream .lines li'),
  (li) => [li.className, li.querySelector('.text').textContent])"""
EVENT_ROWS_JS = """() => Array.from(document.querySelectorAll('.stream .events tbody tr'),
  (tr) => tr.dataset.type + ' ' + tr.cells[2].textContent)"""
CHART_DRAWN_JS = "() => document.querySelector('.stream .mood .uplot[data-drawn]') !== null"


def frame_loaded(watched: WatchedPage, after: int = 0, timeout_s: float = 90) -> int:
    handle = watched.page.wait_for_function(FRAME_LOADED_JS, arg=after, timeout=timeout_s * 1000)
    return int(handle.json_value())


@pytest.fixture
def looped_clip(tmp_path: Path) -> Path:
    """The sample clip four times over (32 s): long enough to watch, reload and watch again."""
    out = tmp_path / "looped.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", "3", "-i",
                    str(SAMPLE_CLIP), "-c", "copy", str(out)], check=True)
    return out


@pytest.fixture
def running() -> Iterator[list[Daemon]]:
    """Daemons a test starts; stopped (SIGTERM) at its end whatever happened."""
    daemons: list[Daemon] = []
    yield daemons
    for daemon in daemons:
        stop(daemon.process)


def test_live_page_of_a_realtime_replay_shows_the_picture_and_the_transcript_as_it_forms(
        tmp_path: Path, browser_page: WatchedPage, running: list[Daemon],
        keep_screenshot: Callable[[WatchedPage, str], Path]) -> None:
    events = tmp_path / "events.jsonl"
    daemon = start_daemon("replay", str(SAMPLE_CLIP), "--realtime", "--out", str(events))
    running.append(daemon)
    page = browser_page.page
    page.goto(daemon.url, wait_until="load")

    first = frame_loaded(browser_page)
    assert page.evaluate(PICTURE_CONTRAST_JS) > 50  # a camera picture, not a blank box
    page.wait_for_function("() => document.querySelector('.stream .lines li') !== null")
    frame_loaded(browser_page, after=first)  # it keeps updating
    said = SAMPLE_SENTENCES[0]
    page.wait_for_function(FINAL_SHOWN_JS, arg=SAMPLE_ENDINGS[0], timeout=90_000)
    page.wait_for_function(CHART_DRAWN_JS)
    keep_screenshot(browser_page, "live-replay")

    lines = page.evaluate(LINES_JS)
    assert any(kind == "final" and words_of(text) == words_of(said) for kind, text in lines)
    assert not any(kind == "partial" and said.startswith(text.rstrip(".")[:10])
                   for kind, text in lines)  # the final replaced its partials
    rows = page.evaluate(EVENT_ROWS_JS)
    assert any(row.startswith("transcript partial: ") for row in rows)  # partials were shown
    assert any(row.startswith("emotion ") for row in rows)
    assert page.inner_text("#connection") == "live"
    assert page.locator("#health-sources").inner_text().startswith("file:sample")
    assert browser_page.errors == []
    assert all(url.startswith(daemon.url) for url in browser_page.requests)  # nothing else

    assert daemon.process.wait(120) == 0
    # the replay's end reached the page before the daemon exited: ended, not unreachable
    page.wait_for_function("() => document.getElementById('connection').dataset.state"
                           " === 'ended'")  # not 'unreachable': the end came before the close
    assert page.inner_text("#connection") == "run ended"
    assert page.evaluate("() => document.querySelector('.stream .frame img').naturalWidth") > 0
    finals = [json.loads(line)["payload"]["text"] for line in events.read_text().splitlines()
              if '"final":true' in line]
    assert [words_of(f) for f in finals] == [words_of(s) for s in SAMPLE_SENTENCES]


def test_a_closed_page_costs_nothing_and_an_open_one_lives_through_a_reload(
        tmp_path: Path, looped_clip: Path, browser_page: WatchedPage, running: list[Daemon],
        keep_screenshot: Callable[[WatchedPage, str], Path]) -> None:
    pipeline = tmp_path / "kitchen.yaml"
    pipeline.write_text(f"device_id: kitchen-box\nsources:\n  - kind: file\n    id: kitchen\n"
                        f"    path: {looped_clip}\n    realtime: true\n"
                        f"sinks:\n  jsonl:\n    path: {tmp_path / 'events.jsonl'}\n")
    daemon = start_daemon("run", str(pipeline))
    running.append(daemon)

    leaving = browser_page.page.context.new_page()
    leaving.goto(daemon.url, wait_until="load")
    leaving.wait_for_function(FRAME_LOADED_JS, arg=0, timeout=90_000)
    assert daemon.viewers() == 1
    leaving.close()
    wait_until(lambda: daemon.viewers() == 0, 30, "the closed page's update stream to end")

    page = browser_page.page
    page.goto(daemon.url, wait_until="load")
    frame_loaded(browser_page)
    before = daemon.status()["streams"]["kitchen"]["frames"]
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(lambda: daemon.status()["reloads"] == 1, 60, "the reload")
    frame_loaded(browser_page, after=before)  # pictures of the new pipeline, same page
    page.wait_for_function("() => document.getElementById('mode').textContent"
                           ".includes('reloaded 1×')")
    # the reloaded pipeline loads its models first ("loading models…"), then is live again
    page.wait_for_function("() => document.getElementById('connection').dataset.state"
                           " === 'live'", timeout=90_000)
    assert page.inner_text("#connection") == "live" and daemon.viewers() == 1
    keep_screenshot(browser_page, "live-reload")
    assert browser_page.errors == []
    assert stop(daemon.process) == 0
