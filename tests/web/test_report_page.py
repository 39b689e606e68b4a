"""Report and index pages in the browser, from a recording without analysis (no models)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SAMPLE_CLIP

from mmstream.web.report import IndexEntry, report_from_input, write_index
from tests.web.pages import WatchedPage
from tests.web.report_helpers import mmstream, open_report, thumbnail_widths


@pytest.fixture(scope="module")
def raw_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("raw") / "sample.mcap"
    # every frame the clip delivers (a compact recording keeps only the analysed ones)
    done = mmstream("record", str(SAMPLE_CLIP), "--out", str(path), "--no-analysis",
                    "--set", "record.video=all")
    assert done.returncode == 0, done.stderr
    return path


def test_frames_only_recording_shows_its_frames_and_says_what_is_missing(
        raw_recording: Path, tmp_path: Path, browser_page: WatchedPage,
        keep_screenshot: Callable[[WatchedPage, str], Path]) -> None:
    out = tmp_path / "report.html"
    summary = report_from_input(raw_recording, out)
    assert summary.events == 0 and summary.thumbnails == 17  # the clip's 17 frames at 2 fps

    open_report(browser_page, out)
    keep_screenshot(browser_page, "report-frames-only")
    page = browser_page.page
    assert thumbnail_widths(browser_page) == [160] * 17
    assert page.locator("[data-chart]").count() == 0
    timeline = page.inner_text("#timeline")
    assert "No scene tags in this input." in timeline and "No speech in this input." in timeline
    assert browser_page.other_requests() == [] and browser_page.errors == []


def test_thumbnails_are_spread_evenly_when_there_are_no_windows(
        raw_recording: Path, tmp_path: Path, browser_page: WatchedPage) -> None:
    out = tmp_path / "report.html"
    report_from_input(raw_recording, out, max_thumbnails=5)
    open_report(browser_page, out)
    captions = browser_page.page.locator("#thumbnails figcaption").all_inner_texts()
    assert captions == [f"{t:.1f} s · sample" for t in (0, 2, 4, 6, 8)]


def test_index_links_each_report_and_names_the_inputs_that_failed(
        raw_recording: Path, tmp_path: Path, browser_page: WatchedPage) -> None:
    (tmp_path / "reports").mkdir()
    summary = report_from_input(raw_recording, tmp_path / "reports" / "sample.html")
    index = tmp_path / "index.html"
    write_index([IndexEntry("sample.mcap", "reports/sample.html", summary),
                 IndexEntry("broken.mcap", error="broken.mcap: not an MCAP recording")], index)

    browser_page.open(index)
    page = browser_page.page
    rows = page.locator("#reports tbody tr").all_inner_texts()
    assert len(rows) == 2 and "8.0" in rows[0] and "not an MCAP recording" in rows[1]
    assert page.inner_text("header .sub") == "2 inputs, 1 without a report"
    page.click("text=sample.mcap")
    page.wait_for_url("**/reports/sample.html")
    page.wait_for_function("() => Array.from(document.images).every((img) => img.complete)")
    assert thumbnail_widths(browser_page) == [160] * 17
    linked = (tmp_path / "reports" / "sample.html").as_uri()
    assert browser_page.other_requests() == [linked] and browser_page.errors == []
