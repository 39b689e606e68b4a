"""Headless Chromium for screenshots and browser tests of mmstream's pages.

Uses Playwright for Python (the dev extra) driving the distribution's Chromium
(`apt-get install chromium`), not a browser Playwright downloads. The flags keep Chromium
quiet on a closed network: without them it keeps trying to reach Google's services (updates,
sync, field trials) and floods the network with refused connections. A fresh profile
directory per launch means no state leaks between runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

CHROMIUM_ENV = "MMSTREAM_CHROMIUM"  # another Chromium binary than the distribution's
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
VIEWPORT = {"width": 1200, "height": 900}


def find_chromium() -> Path | None:
    """The Chromium to drive: $MMSTREAM_CHROMIUM, else the distribution's; None if absent."""
    named = os.environ.get(CHROMIUM_ENV)
    candidates = (named,) if named else CHROMIUM_CANDIDATES
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def missing_browser() -> str:
    """Why a browser cannot be launched here ("" when it can): for skips and script errors."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if find_chromium() is None:
        where = os.environ.get(CHROMIUM_ENV) or " or ".join(CHROMIUM_CANDIDATES)
        return f"no Chromium at {where} (apt-get install chromium)"
    return ""


@contextlib.contextmanager
def chromium_context() -> Iterator[BrowserContext]:
    """`with chromium_context() as context: page = context.new_page() ...`"""
    from playwright.sync_api import sync_playwright

    reason = missing_browser()
    if reason:
        raise RuntimeError(f"cannot start a browser: {reason}")
    profile = tempfile.mkdtemp(prefix="mmstream-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=str(find_chromium()), headless=True,
                args=list(CHROMIUM_FLAGS), viewport=VIEWPORT)  # type: ignore[arg-type]
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
