"""The History page in Chromium, served by the live view's server on a store the sample clip
was replayed into: it finds a sentence, shows the day's timeline, a click opens the moment.
The JSON API under it answers the same queries and refuses bad ones in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmstream.config import WebConfig
from mmstream.web.live.server import WebServer
from mmstream.web.live.view import LiveView
from tests.conftest import REPO, SAMPLE_CLIP, SAMPLE_SENTENCES, wait_until
from tests.web.pages import WatchedPage
from tests.web.server_thread import LoopThread


class ServerThread(LoopThread):
    """The live view's web server, with a history store, for a browser to visit."""

    def __init__(self, store: Path) -> None:
        view = LiveView(WebConfig(port=0), "kitchen")
        view.history_path = store
        super().__init__(WebServer(view, "127.0.0.1", 0))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    store = tmp_path_factory.mktemp("history") / "kitchen.history.db"
    done = subprocess.run([sys.executable, "-m", "mmstream", "replay", str(SAMPLE_CLIP),
                           "--history", str(store), "--out", str(store.with_suffix(".jsonl"))],
                          capture_output=True, text=True, timeout=300, cwd=REPO,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    server = ServerThread(store)
    yield server
    server.close()


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
def test_the_api_answers_queries_and_refuses_bad_ones(served: ServerThread) -> None:
    status, body = _get(f"{served.url}/api/search?q=tables&tag=person")
    assert status == 200
    assert [m["text"] for m in body["moments"]] == [SAMPLE_SENTENCES[-1]]  # type: ignore[index]
    status, body = _get(f"{served.url}/api/search?q=x&since=someday")
    assert status == 400 and "30m, 2h" in str(body["error"])
    status, body = _get(f"{served.url}/api/timeline")
    assert status == 200 and body["streams"]


@pytest.mark.slow
def test_the_page_finds_a_sentence_shows_the_day_and_opens_a_moment(
        served: ServerThread, browser_page: WatchedPage) -> None:
    page = browser_page.page
    page.goto(f"{served.url}/history?q=coffee", wait_until="load")
    page.wait_for_selector("body[data-state=ready]")
    moments = page.locator(".moment")
    assert moments.count() == 1 and SAMPLE_SENTENCES[-1] in moments.first.inner_text()
    assert page.locator("input[name=q]").input_value() == "coffee"
    speech = page.locator(".segment.speech")
    assert speech.count() == len(SAMPLE_SENTENCES)  # the day's timeline: every sentence
    assert page.locator(".segment.tag").count() >= 1
    assert page.locator(".segment.emotion").count() >= 1
    speech.first.click()
    wait_until(lambda: page.locator("#moment .moment-text").count() == 1,
               what="the moment opened from the timeline")
    assert page.locator("#moment .moment-text").inner_text() == SAMPLE_SENTENCES[0]
    moments.first.click()
    assert page.locator("#moment .moment-text").inner_text() == SAMPLE_SENTENCES[-1]
    assert "mmstream replay" in page.locator("#moment code").inner_text()
    page.fill("input[name=q]", "kitchen")
    page.click("button[type=submit]")
    wait_until(lambda: "q=kitchen" in page.url, what="the address to carry the query")
    wait_until(lambda: SAMPLE_SENTENCES[0] in page.locator("#results").inner_text(),
               what="the new search's results")
    assert not browser_page.errors
