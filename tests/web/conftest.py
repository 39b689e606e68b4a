"""Browser fixtures for tests of mmstream's pages (reports now, the live view later).

`browser_page` is a fresh tab in one headless Chromium per test module (the distribution's
Chromium driven by Playwright, launched as mmstream.web.browser launches it for the docs'
screenshots). It records every request the page makes and every console error, so a test can
require that a page loads nothing from the network and runs without script errors. Tests
skip, saying why, where Playwright or Chromium is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mmstream.web.browser import chromium_context, missing_browser
from tests.web.pages import WatchedPage

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

ARTIFACTS_ENV = "MMSTREAM_ARTIFACTS"  # a folder where screenshots are kept after the run


@pytest.fixture(scope="module")  # not longer: Playwright's sync API keeps an event loop
def browser_context() -> Iterator[BrowserContext]:  # running, and asyncio.run would refuse
    reason = missing_browser()
    if reason:
        pytest.skip(f"browser tests need Playwright and Chromium: {reason}")
    with chromium_context() as context:
        yield context


@pytest.fixture
def browser_page(browser_context: BrowserContext) -> Iterator[WatchedPage]:
    page = browser_context.new_page()
    watched = WatchedPage(page)
    page.on("request", lambda request: watched.requests.append(request.url))
    page.on("console", lambda message: watched.errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: watched.errors.append(f"uncaught: {error}"))
    try:
        yield watched
    finally:
        page.close()


@pytest.fixture
def keep_screenshot(tmp_path: Path) -> Callable[[WatchedPage, str], Path]:
    """Screenshot the whole page under the test's tmp dir, and into $MMSTREAM_ARTIFACTS."""

    def keep(watched: WatchedPage, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        watched.page.screenshot(path=str(path), full_page=True)
        artifacts = os.environ.get(ARTIFACTS_ENV)
        if artifacts:
            Path(artifacts).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(artifacts) / path.name)
        return path

    return keep
