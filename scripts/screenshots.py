#!/usr/bin/env python
"""Make the docs' screenshot of a report: docs/img/report.png.

Records the bundled sample clip with every analysis (real models, about 15 s on a 2-core
CPU), writes its report and photographs it in headless Chromium, launched exactly as the
browser tests launch it (mmstream/web/browser.py: the distribution's Chromium driven by
Playwright, offline flags, a fresh profile). Needs the dev extra and `apt-get install chromium`.

    python scripts/screenshots.py                 # -> docs/img/report.png
    python scripts/screenshots.py --out /tmp/report.png
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mmstream.replay.setup import sample_clip  # noqa: E402  (needs the repo on sys.path)
from mmstream.web.browser import chromium_context, missing_browser  # noqa: E402
from mmstream.web.report import report_from_input  # noqa: E402

DRAWN_JS = """() => document.querySelectorAll('[data-chart]').length > 0
  && document.querySelectorAll('[data-chart]').length
     === document.querySelectorAll('[data-chart] .uplot[data-drawn]').length
  && Array.from(document.images).every((img) => img.complete)"""


def record_sample(folder: Path) -> Path:
    recording = folder / "sample.mcap"
    subprocess.run([sys.executable, "-m", "mmstream", "record", str(sample_clip()), "--out",
                    str(recording)], cwd=REPO, check=True)
    return recording


def photograph(page_path: Path, out: Path) -> None:
    with chromium_context() as context:
        page = context.new_page()
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        page.wait_for_function(DRAWN_JS)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "report.png")
    args = parser.parse_args()
    reason = missing_browser()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="mmstream-screenshot-") as folder:
        recording = record_sample(Path(folder))
        with contextlib.chdir(folder):  # the page names its input as a user would: sample.mcap
            report_from_input(Path(recording.name), Path("report.html"))
        photograph(Path(folder) / "report.html", args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
