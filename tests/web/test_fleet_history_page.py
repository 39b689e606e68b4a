"""`mmstream serve --db`: the History page over the fleet's PostgreSQL store in Chromium, the
sample clip replayed into it as one device beside another device's words; the device filter
narrows the moments; the daemon's access rules hold (mmstream/web/history/fleet.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from mmstream.errors import ConfigError
from mmstream.events import Transcript, TranscriptEvent
from mmstream.fleet.pg_store import PgStore
from mmstream.history.rows import event_row
from mmstream.web.history.fleet import FleetServer
from tests.conftest import REPO, SAMPLE_CLIP, SAMPLE_ENDINGS, wait_until, words_of
from tests.fleet.conftest import pg_url, postgres_server  # noqa: F401  (fixtures)
from tests.fleet.postgres import PASSWORD, PostgresServer
from tests.web.pages import WatchedPage
from tests.web.server_thread import LoopThread

PORCH_SENTENCE = "The coffee is cold on the porch."
TOKEN = "a-token-of-sixteen-or-more"


class FleetThread(LoopThread):
    """`mmstream serve --db`'s server on an event loop of its own, for a browser to visit."""

    def __init__(self, url: str, token: str | None = None) -> None:
        super().__init__(FleetServer(url, "127.0.0.1", 0, token))


def porch_words(url: str) -> None:
    """Another device, a stream of the same name, words of the same search."""
    now = time.time()
    store = PgStore(url)
    store.open()
    store.write([event_row(TranscriptEvent(
        device_id="porch", stream_id="sample", seq=1, t_capture=now - 60,
        payload=Transcript(final=True, text=PORCH_SENTENCE, start=now - 63, end=now - 61)),
        0.0)])
    store.close()


@pytest.fixture(scope="module")
def fleet(postgres_server: PostgresServer) -> Iterator[FleetThread]:  # noqa: F811
    url = postgres_server.new_database()
    done = subprocess.run([sys.executable, "-m", "mmstream", "replay", str(SAMPLE_CLIP),
                           "--db", url, "--set", "device_id=kitchen"], capture_output=True,
                          text=True, timeout=600, cwd=REPO, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    porch_words(url)
    server = FleetThread(url)
    yield server
    server.close()


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        return error.code, json.loads(body) if body.startswith(b"{") else {}


@pytest.mark.slow
def test_the_page_finds_the_clips_sentence_and_the_device_filter_narrows_it(
        fleet: FleetThread, browser_page: WatchedPage) -> None:
    page = browser_page.page
    page.goto(f"{fleet.url}/", wait_until="load")  # `/` leads to the page
    page.wait_for_selector("body[data-state=ready]")
    assert page.locator("#live-link").count() == 0  # no pipeline here: no live view
    page.fill("input[name=q]", "coffee")
    page.click("button[type=submit]")
    wait_until(lambda: page.locator(".moment").count() == 2, what="both devices' moments")
    page.fill("input[name=device]", "kitchen")
    page.click("button[type=submit]")
    wait_until(lambda: "device=kitchen" in page.url, what="the address to carry the device")
    wait_until(lambda: page.locator(".moment").count() == 1, what="the kitchen's moment only")
    shown = page.locator(".moment").first.inner_text()
    assert SAMPLE_ENDINGS[-1] in " ".join(words_of(shown)) and "kitchen" in shown
    assert PORCH_SENTENCE not in page.locator("#results").inner_text()
    assert not browser_page.errors


@pytest.mark.slow
def test_the_api_filters_by_device_and_answers_loopback_names_only(fleet: FleetThread) -> None:
    status, body = _get(f"{fleet.url}/api/search?q=coffee&device=porch")
    assert status == 200
    assert [m["text"] for m in body["moments"]] == [PORCH_SENTENCE]  # type: ignore[index]
    status, body = _get(f"{fleet.url}/api/search?q=coffee&device=kitchen")
    assert [words_of(m["text"]) for m in body["moments"]] == [  # type: ignore[index]
        words_of("The coffee is ready on the table.")]
    status, _ = _get(f"{fleet.url}/api/streams", {"Host": "fleet.example.com"})
    assert status == 403  # a rebinding name for a loopback-only server


def test_a_token_is_needed_on_every_request_when_set(pg_url: str) -> None:  # noqa: F811
    porch_words(pg_url)
    server = FleetThread(pg_url, token=TOKEN)
    try:
        assert _get(f"{server.url}/api/streams")[0] == 401
        status, body = _get(f"{server.url}/api/search?q=coffee",
                            {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and len(body["moments"]) == 1  # type: ignore[arg-type]
        assert _get(f"{server.url}/api/streams?token={TOKEN}")[0] == 200
    finally:
        server.close()
    with pytest.raises(ConfigError, match="reachable from other machines"):
        FleetServer(pg_url, "0.0.0.0", 0)
    with pytest.raises(ConfigError, match="16 or more"):
        FleetServer(pg_url, "127.0.0.1", 0, token="short")


def test_a_wrong_password_is_one_line_and_never_shown(cli, pg_url: str) -> None:  # noqa: F811
    done = cli("serve", "--db", pg_url.replace(PASSWORD, "wrong-pass"), "--port", "0")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "wrong-pass" not in done.stderr
    done = cli("serve", "--db", pg_url, "--host", "0.0.0.0", "--port", "0")
    assert done.returncode == 2 and "MMSTREAM_WEB__TOKEN" in done.stderr
