#!/usr/bin/env python
"""Make the docs' screenshots: a report (docs/img/report.png) and the live view (live.png).

Report: records the bundled sample clip with every analysis (real models, about 15 s on a
2-core CPU), writes its report and photographs it. Live view: replays the clip (twice over) in
real time with `mmstream replay --realtime`, opens the page the daemon serves and photographs
it once both sentences are on it. Both in headless Chromium, launched exactly as the browser
tests launch it (mmstream/web/browser.py: the distribution's Chromium driven by Playwright,
offline flags, a fresh profile). Needs the dev extra and `apt-get install chromium`.

    python scripts/screenshots.py                 # -> docs/img/report.png, docs/img/live.png
    python scripts/screenshots.py --only live --out-dir /tmp
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
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


def report_screenshot(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="mmstream-screenshot-") as folder:
        recording = record_sample(Path(folder))
        with contextlib.chdir(folder):  # the page names its input as a user would: sample.mcap
            report_from_input(Path(recording.name), Path("report.html"))
        photograph(Path(folder) / "report.html", out)


LIVE_READY_JS = """(sentences) => {
  const finals = Array.from(document.querySelectorAll('.stream .lines li.final .text'),
                            (el) => el.textContent.trim());
  const img = document.querySelector('.stream .frame img');
  return sentences.every((s) => finals.includes(s)) && img && img.naturalWidth > 0
    && document.querySelector('.stream .mood .uplot[data-drawn]') !== null;
}"""
SENTENCES = ["Hello from the kitchen camera. I am very happy today.",
             "The coffee is ready on the table."]


def live_screenshot(out: Path) -> None:
    """The page of a realtime replay, photographed while it runs, with both sentences on it."""
    with tempfile.TemporaryDirectory(prefix="mmstream-screenshot-") as folder:
        clip = Path(folder) / "kitchen.mp4"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", "1", "-i",
                        str(sample_clip()), "-c", "copy", str(clip)], check=True)
        daemon = subprocess.Popen(
            [sys.executable, "-m", "mmstream", "replay", str(clip), "--realtime", "--out",
             str(Path(folder) / "events.jsonl"), "--set", "device_id=kitchen-box"],
            cwd=REPO, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "MMSTREAM_WEB__PORT": "0"})
        try:
            url = _web_url(daemon)
            with chromium_context() as context:
                page = context.new_page()
                page.goto(url, wait_until="load")
                page.wait_for_function(LIVE_READY_JS, arg=SENTENCES, timeout=120_000)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=True)
        finally:
            daemon.terminate()
            daemon.wait(60)


def _web_url(daemon: subprocess.Popen[str]) -> str:
    """The address on the daemon's `web view on …` line (it prints it before loading models)."""
    assert daemon.stderr is not None
    deadline = time.monotonic() + 120
    for line in daemon.stderr:
        found = re.search(r"web view on (http://\S+/)", line)
        if found:
            return found.group(1)
        if time.monotonic() > deadline:
            break
    raise RuntimeError("the replay never said where its web view is")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--only", choices=("report", "live"), help="make just one of them")
    args = parser.parse_args()
    reason = missing_browser()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    makers = {"report": report_screenshot, "live": live_screenshot}
    for name, make in makers.items():
        if args.only in (None, name):
            make(args.out_dir / f"{name}.png")
            print(f"wrote {args.out_dir / f'{name}.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
