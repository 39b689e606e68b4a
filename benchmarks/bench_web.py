"""What the live view costs: CPU of the daemon with nobody watching and with one viewer.

Two measurements, both of a process's own CPU seconds (user + system) over the same input:

1. The web part alone, precisely: a process that runs only the live view (its state, server
   and update streams), fed at the pipeline's real rates by a timer (per stream and second:
   one analysed 320x320 frame of the sample clip, a scene, an emotion, a fused event and a
   transcript), measured for `--seconds` with no viewer and with one headless Chromium on the
   page (the browser's own processes are not counted: they are the viewer's).
2. The real daemon: `mmstream replay <the sample clip looped> --realtime`, with the web view
   disabled, enabled and unwatched, and enabled with one viewer; CPU seconds of the daemon
   process (its rusage). The models dominate; the differences sit within run-to-run noise.

JSON to benchmarks/results/web.json; the figures are in docs/deploy.md.

    python benchmarks/bench_web.py [--seconds 30] [--loops 4] [--skip-daemon]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from mmstream.events import (
    Emotion,
    EmotionEvent,
    Fused,
    FusedEvent,
    Scene,
    SceneEvent,
    Tag,
    Transcript,
    TranscriptEvent,
)
from mmstream.media import AnalysedFrame, FaceMark
from mmstream.replay.setup import sample_clip
from mmstream.web.browser import chromium_context

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "web.json"
WEB_URL = re.compile(r"web view on (http://\S+/)")


# ---- 1. the web part alone ------------------------------------------------------------------

def sample_frame() -> Any:
    import av

    with av.open(str(sample_clip())) as container:
        for decoded in container.decode(video=0):
            return decoded.to_ndarray(format="rgb24")
    raise RuntimeError("the sample clip has no video")


def second_of_news(stream: str, t: float, image: Any) -> tuple[AnalysedFrame, list[Any]]:
    """What one stream's pipeline hands the sinks in one second of a live run."""
    frame = AnalysedFrame(stream, t, image, t, (FaceMark(100, 60, 90, 110),),
                          (("person", 0.98),), "happy", 0.5)
    events = [
        TranscriptEvent(stream_id=stream, t_capture=t, payload=Transcript(
            final=int(t) % 4 == 3, text="the coffee is ready on the table", start=t - 1,
            end=t, utterance_id=int(t) // 4)),
        SceneEvent(stream_id=stream, t_capture=t, payload=Scene(tags=[Tag("person", 0.98)])),
        EmotionEvent(stream_id=stream, t_capture=t, payload=Emotion(
            label="happy", scores={"happy": 0.8}, valence=0.5)),
        FusedEvent(stream_id=stream, t_capture=t, payload=Fused(
            window_start=t - 2, window_end=t, scene=[Tag("person", 0.98)], emotion="happy")),
    ]
    return frame, events


async def serve_fed(seconds: float) -> None:
    """The live view alone, fed like a pipeline feeds it, on a free loopback port."""
    from mmstream.config import WebConfig
    from mmstream.web.live.server import WebServer
    from mmstream.web.live.view import LiveView

    view = LiveView(WebConfig(port=0), "bench")
    server = WebServer(view, "127.0.0.1", 0)
    await server.start()
    print(f"web view on {server.url}", file=sys.stderr, flush=True)
    image, started = sample_frame(), time.monotonic()
    tick = 0
    while time.monotonic() - started < seconds:
        tick += 1
        frame, events = second_of_news("kitchen", float(tick), image)
        for event in events:
            view.state.add_event(event)
        view.state.add_frame(frame)
        await asyncio.sleep(max(0.0, started + tick - time.monotonic()))
    await server.close()


def cpu_of(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def measure_fed(seconds: float, viewer: bool) -> dict[str, Any]:
    """CPU of the fed live view over `seconds` (after a warm-up), watched or not."""
    child = subprocess.Popen([sys.executable, __file__, "--serve-fed", str(seconds + 8)],
                             stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    url = WEB_URL.search(child.stderr.readline())
    assert url is not None, "the fed view did not start"
    process = psutil.Process(child.pid)
    with chromium_context() as context:
        page = context.new_page() if viewer else None
        if page is not None:
            page.goto(url.group(1), wait_until="load")
            page.wait_for_function("() => document.querySelector('.stream .frame img')"
                                   " && document.querySelector('.stream .frame img').naturalWidth")
        time.sleep(3)  # warm-up: imports done, first encodings made
        before, started = cpu_of(process), time.monotonic()
        time.sleep(seconds)
        used, wall = cpu_of(process) - before, time.monotonic() - started
        frames = page.evaluate("() => Number(document.querySelector('.stream .frame img')"
                               ".dataset.loaded)") if page is not None else 0
    child.wait(60)
    return {"viewer": viewer, "wall_s": round(wall, 1), "cpu_s": round(used, 3),
            "percent_of_a_core": round(100 * used / wall, 2), "pictures_shown": frames}


# ---- 2. the real daemon -----------------------------------------------------------------------

def looped_clip(folder: Path, loops: int) -> Path:
    out = folder / "looped.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", str(loops - 1), "-i",
                    str(sample_clip()), "-c", "copy", str(out)], check=True)
    return out


def run_daemon(clip: Path, folder: Path, *, web: bool, viewer: bool) -> dict[str, Any]:
    env = {**os.environ, "MMSTREAM_WEB__ENABLED": "true" if web else "false",
           "MMSTREAM_WEB__PORT": "0"}
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "mmstream", "replay", str(clip),
                              "--realtime", "--out", str(folder / "events.jsonl")],
                             cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    with chromium_context() if viewer else contextlib.nullcontext() as context:
        if context is not None:
            url = WEB_URL.search(child.stderr.readline())
            assert url is not None, "the daemon did not say where its web view is"
            context.new_page().goto(url.group(1), wait_until="load")
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"the replay failed: {child.stderr.read()}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"web": web, "viewer": viewer, "wall_s": round(time.monotonic() - started, 1),
            "cpu_s": round(cpu, 2)}


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--loops", type=int, default=4, help="sample clip repeats (8 s each)")
    parser.add_argument("--skip-daemon", action="store_true")
    parser.add_argument("--serve-fed", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fed:
        asyncio.run(serve_fed(args.serve_fed))
        return 0
    result: dict[str, Any] = {"machine": machine(), "web_part_alone": [
        measure_fed(args.seconds, viewer=False), measure_fed(args.seconds, viewer=True)]}
    print(json.dumps(result["web_part_alone"], indent=1), file=sys.stderr)
    if not args.skip_daemon:
        with tempfile.TemporaryDirectory(prefix="mmstream-bench-web-") as folder:
            clip = looped_clip(Path(folder), args.loops)
            result["daemon"] = [run_daemon(clip, Path(folder), web=web, viewer=viewer)
                                for web, viewer in ((False, False), (True, False), (True, True))]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
