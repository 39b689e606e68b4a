"""Reports of the sample clip, made from real model output and looked at in a real browser."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SAMPLE_CLIP, SAMPLE_ENDINGS, SAMPLE_SENTENCES, words_of

from tests.web.pages import WatchedPage
from tests.web.report_helpers import coloured_pixels, mmstream, open_report, thumbnail_widths

pytestmark = pytest.mark.slow  # one recording of the clip through every model


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sample clip recorded with every analysis: (recording, its events as JSONL)."""
    folder = tmp_path_factory.mktemp("recorded")
    recording, events = folder / "sample.mcap", folder / "events.jsonl"
    done = mmstream("record", str(SAMPLE_CLIP), "--out", str(recording), "--events",
                    str(events))
    assert done.returncode == 0, done.stderr
    return recording, events


def test_report_of_a_recording_shows_speech_timeline_and_frames_offline(
        recorded: tuple[Path, Path], tmp_path: Path, browser_page: WatchedPage,
        keep_screenshot: Callable[[WatchedPage, str], Path]) -> None:
    recording, events = recorded
    out = tmp_path / "report.html"
    done = mmstream("report", str(recording), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stderr

    open_report(browser_page, out)
    keep_screenshot(browser_page, "report-sample-recording")
    page = browser_page.page
    final_rows = page.locator("#transcripts tr.final td:nth-child(3)").all_inner_texts()
    assert [words_of(row) for row in final_rows] == [words_of(s) for s in SAMPLE_SENTENCES]
    for ending in SAMPLE_ENDINGS:
        assert page.locator("#speech-track .utterance", has_text=ending).is_visible()
    # scene tags, emotion and valence: each chart drew data in its plot area
    assert page.locator("[data-chart]").count() == 3
    assert all(pixels > 200 for pixels in coloured_pixels(browser_page))
    widths = thumbnail_widths(browser_page)
    assert widths and all(width == 160 for width in widths)
    counts = Counter(json.loads(line)["type"] for line in events.read_text().splitlines())
    shown = ", ".join(f"{counts[kind]} {kind}" for kind in ("transcript", "scene", "emotion",
                                                             "fused"))
    assert f"{sum(counts.values())}: {shown}" in page.inner_text("#event-counts")
    assert counts["scene"] == counts["fused"] == 8  # one window a second over the 8.2 s clip
    assert "mmstream-fused/1" in page.inner_text("#summary")
    assert browser_page.other_requests() == [] and browser_page.requests == browser_page.opened
    assert browser_page.errors == []


def test_charts_and_speech_track_share_one_time_axis(recorded: tuple[Path, Path],
                                                     tmp_path: Path,
                                                     browser_page: WatchedPage) -> None:
    out = tmp_path / "report.html"
    assert mmstream("report", str(recorded[0]), "--out", str(out)).returncode == 0
    open_report(browser_page, out)
    plot_lefts, lane = browser_page.page.evaluate("""() => [
      window.mmstreamReport.charts.map((u) =>
        u.over.getBoundingClientRect().left),
      document.querySelector('#speech-track .track-lane').getBoundingClientRect().toJSON()]""")
    chart = browser_page.page.evaluate("""() => {
      const u = window.mmstreamReport.charts[0];
      const box = u.over.getBoundingClientRect();
      return {left: box.left, right: box.right, x5: box.left + u.valToPos(5, 'x')};
    }""")
    assert all(abs(left - lane["left"]) <= 1 for left in plot_lefts)
    assert abs(chart["right"] - lane["right"]) <= 1
    # the last sentence starts at 5.06 s: its box starts where 5 s is on the charts
    second = browser_page.page.locator(".utterance", has_text=SAMPLE_ENDINGS[-1])
    box = second.bounding_box()
    assert box is not None and abs(box["x"] - chart["x5"]) < 0.02 * lane["width"]
    # hovering one chart shows the same time on the others
    over = browser_page.page.locator("[data-chart=scene] .u-over").bounding_box()
    assert over is not None
    browser_page.page.mouse.move(over["x"] + over["width"] / 2, over["y"] + over["height"] / 2)
    # (the time under each chart's cursor: the scene chart has points at each window's start
    # and end, the others one a window, so their data indices differ)
    cursors = browser_page.page.evaluate(
        "() => window.mmstreamReport.charts.map((u) => u.posToVal(u.cursor.left, 'x'))")
    assert all(t is not None for t in cursors) and max(cursors) - min(cursors) < 0.05, cursors


def test_report_of_an_events_file_takes_thumbnails_from_the_media(
        recorded: tuple[Path, Path], tmp_path: Path, browser_page: WatchedPage) -> None:
    _, events = recorded
    without, with_media = tmp_path / "bare.html", tmp_path / "media.html"
    assert mmstream("report", str(events), "--out", str(without)).returncode == 0
    done = mmstream("report", str(events), "--out", str(with_media), "--media",
                    str(SAMPLE_CLIP))
    assert done.returncode == 0, done.stderr

    open_report(browser_page, without)
    assert thumbnail_widths(browser_page) == []
    assert "--media" in browser_page.page.inner_text("#thumbnails")  # says where frames come from
    open_report(browser_page, with_media)
    captions = browser_page.page.locator("#thumbnails figcaption").all_inner_texts()
    # the frames the windows saw: one per window end (2..9 s), the last frame (8 s) once
    assert captions == [f"{t}.0 s · sample" for t in range(2, 9)]
    assert all(width == 160 for width in thumbnail_widths(browser_page))
    page = browser_page.page
    assert page.locator("#transcripts tr.partial").first.is_hidden()
    page.check("#show-partials")
    assert page.locator("#transcripts tr.partial").first.is_visible()
    assert browser_page.other_requests() == [] and browser_page.errors == []


def test_replay_writes_a_report_beside_its_events(tmp_path: Path) -> None:
    events, report = tmp_path / "events.jsonl", tmp_path / "report.html"
    done = mmstream("replay", str(SAMPLE_CLIP), "--out", str(events), "--report", str(report))
    assert done.returncode == 0, done.stderr
    html = report.read_text()
    assert all(ending in html for ending in SAMPLE_ENDINGS)
    assert html.count('<img src="data:image/jpeg;base64,') == 7
    assert "<title>sample.mp4 · mmstream report</title>" in html


@pytest.mark.slow
def test_a_batch_replay_writes_a_report_per_input_and_an_index(
        tmp_path: Path, browser_page: WatchedPage) -> None:
    inputs, out = tmp_path / "inputs", tmp_path / "results"
    inputs.mkdir()
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(SAMPLE_CLIP), "-t", "4",
                    "-c", "copy", str(inputs / "door.mp4")], check=True)
    (inputs / "broken.mp4").write_bytes(SAMPLE_CLIP.read_bytes()[:3000])
    done = mmstream("replay", str(inputs), "--out", str(out), "--report", str(out / "index.html"))
    assert done.returncode == 3, done.stderr  # one input failed, the other finished
    assert f"wrote {out / 'index.html'}: 1 reports of 2 inputs" in done.stderr
    assert sorted(p.name for p in out.glob("*.html")) == ["door.mp4.html", "index.html"]
    browser_page.open(out / "index.html")
    page = browser_page.page
    assert "broken.mp4" in page.inner_text("body")  # the failure is listed, with its reason
    page.click("a[href='door.mp4.html']")
    page.wait_for_selector("#transcripts")
    assert "Hello from the kitchen camera" in page.inner_text("#transcripts")
    assert browser_page.errors == []
