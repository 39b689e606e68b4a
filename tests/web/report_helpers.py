"""Shared by the report tests: the CLI run as a user runs it, and what a drawn report page
must show (read from the page in the browser)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

from tests.web.pages import WatchedPage

# Per chart: pixels inside the plot area in a saturated colour (series are coloured; axes,
# grid and background are grey), so 0 means the chart drew no data.
COLOURED_PIXELS_JS = """() => window.mmstreamReport.charts.map((u) => {
  const {left, top, width, height} = u.bbox;
  const pixels = u.ctx.getImageData(left, top, width, height).data;
  let coloured = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    const [r, g, b, a] = [pixels[i], pixels[i + 1], pixels[i + 2], pixels[i + 3]];
    if (a > 200 && Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
  }
  return coloured;
})"""
ALL_CHARTS_DRAWN_JS = """() => document.querySelectorAll('[data-chart]').length
  === document.querySelectorAll('[data-chart] .uplot[data-drawn]').length"""
THUMBNAIL_WIDTHS_JS = """() => Array.from(document.querySelectorAll('#thumbnails img'),
                                            (img) => img.naturalWidth)"""


def mmstream(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, as the `cli` fixture runs it (usable in module fixtures)."""
    return subprocess.run([sys.executable, "-m", "mmstream", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=dict(os.environ))


def open_report(watched: WatchedPage, path: Path) -> None:
    """Load a report and wait until its charts are drawn and its images decoded."""
    watched.open(path)
    watched.page.wait_for_function(ALL_CHARTS_DRAWN_JS)
    watched.page.wait_for_function(
        "() => Array.from(document.images).every((img) => img.complete)")


def thumbnail_widths(watched: WatchedPage) -> list[int]:
    return watched.page.evaluate(THUMBNAIL_WIDTHS_JS)


def coloured_pixels(watched: WatchedPage) -> list[int]:
    return watched.page.evaluate(COLOURED_PIXELS_JS)
