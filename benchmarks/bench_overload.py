"""Overload benchmark: N live cameras + one speech stream at 1x, 2x, 5x and 10x what the box
can analyse; does the daemon degrade (shed video) instead of falling behind?

For each load, a real pipeline (camera sources reading a 640x480 clip at 2 fps, a file source
with speech played in real time, transcription, windows, the fused model, an MQTT sink) runs
for `--seconds` against a real mosquitto, and a subscriber notes when each event arrives.
Reported per load: camera window capture -> subscriber latency, p50/p99 over the whole run and
over its last third; what was shed, by reason; finals delivered vs sentences spoken
and how long each waited beyond the quickest transcript (decode + queueing); peak RSS
and RSS at the steady state of the 1x run. The box's capacity (cameras it analyses at 2 fps)
is measured first, with the same models. JSON to benchmarks/results/overload.json.

    python benchmarks/bench_overload.py [--seconds 30] [--loads 1,2,5,10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as paho

from mmstream.build import build_pipeline
from mmstream.config import load_pipeline
from mmstream.demo_broker import MosquittoBroker
from mmstream.events import decode
from mmstream.replay.setup import sample_clip

RESULTS = Path(__file__).parent / "results"
SENTENCES = ["The parcel is on the porch next to the blue door.",
             "Please remind me to water the plants tomorrow morning.",
             "The kettle has boiled and the tea is ready now.",
             "Somebody left the garage light on again tonight."]
WINDOW_HOP_S = 1.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0


def make_media(folder: Path, seconds: float) -> tuple[Path, Path, int]:
    """A 640x480 2 fps camera clip (a camera at 2 fps, as in the issue), and a speech clip (a
    sentence every 5 s) lasting `seconds`; returns them and the number of sentences spoken."""
    camera = folder / "camera2fps.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(sample_clip()), "-vf",
                    "scale=640:480", "-r", "2", "-c:v", "libx264", "-preset", "ultrafast",
                    "-an", str(camera)], check=True)
    padded, spoken = [], 0
    while 5.0 * (spoken + 1) <= seconds:  # a sentence (~3 s) in every 5 s
        wav = folder / f"s{spoken}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav),
                        SENTENCES[spoken % len(SENTENCES)]], check=True, capture_output=True)
        padded.append(wav.with_suffix(".5s.wav"))
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-af",
                        "apad=whole_dur=5", "-ar", "16000", "-ac", "1", str(padded[-1])],
                       check=True)
        spoken += 1
    listing = folder / "speech.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in padded))
    speech = folder / "speech.wav"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i",
                    str(listing), "-c", "copy", str(speech)], check=True)
    return camera, speech, spoken


class Arrivals:
    """A subscriber noting (stream, type, t_capture, arrival wall time) of every event."""

    def __init__(self, port: int) -> None:
        self.rows: list[tuple[str, str, float, float, bool]] = []
        self.subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe("bench/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        parts = message.topic.split("/")
        if len(parts) != 4:
            return
        event = decode(message.payload)
        final = bool(getattr(event.payload, "final", False))
        self.rows.append((parts[2], parts[3], event.t_capture, time.time(), final))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def run_load(cameras: int, seconds: float, camera: Path, speech: Path,
                   broker: MosquittoBroker) -> dict[str, Any]:
    arrivals = Arrivals(broker.port)
    sources: list[dict[str, Any]] = [
        {"kind": "camera", "id": f"cam{i}", "url": str(camera), "loop": True, "fps": 2.0}
        for i in range(cameras)]
    sources.append({"kind": "file", "id": "speech", "path": str(speech), "realtime": True})
    config = load_pipeline(None, base={
        "device_id": "bench", "sources": sources,
        "sinks": {"mqtt": {"url": broker.url, "prefix": "bench", "spool": {"path": "memory"},
                           "health_interval_s": 0}}})
    pipeline = build_pipeline(config)
    stop = asyncio.Event()
    rss: list[float] = []

    async def sample_rss() -> None:
        while not stop.is_set():
            rss.append(rss_mb())
            await asyncio.sleep(0.5)

    started = time.time()
    sampler = asyncio.create_task(sample_rss())
    running = asyncio.create_task(pipeline.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    report = await running
    await sampler
    await asyncio.sleep(1.0)  # the last messages
    arrivals.close()
    third = started + 2 * seconds / 3
    windows = [(at - t, at) for stream, kind, t, at, _ in arrivals.rows
               if stream.startswith("cam") and kind == "scene"]
    whole = [lag for lag, _ in windows]
    last = [lag for lag, at in windows if at >= third]
    # A final's t_capture is when the pause that ended it was heard, on the file's clock (0 at
    # its start); the smallest arrival - t_capture of any transcript stands for the file's
    # start on the wall clock, so a final's lag is what it waited beyond the quickest one
    # (decode + queueing behind other work; an underestimate by that one's own ~0.1-0.2 s).
    speech = [(at - t, t, final) for stream, kind, t, at, final in arrivals.rows
              if stream == "speech" and kind == "transcript"]
    start = min((offset for offset, _, _ in speech), default=0.0)
    each_final = [(t, offset - start) for offset, t, final in speech if final]
    final_lags = [lag for _, lag in each_final]
    finals = len(final_lags)
    return {
        "cameras": cameras, "seconds": seconds, "windows_received": len(whole),
        "window_to_subscriber_s": {
            "p50": round(statistics.median(whole), 3) if whole else None,
            "p99": round(percentile(whole, 99), 3) if whole else None,
            "last_third_p50": round(statistics.median(last), 3) if last else None,
            "last_third_p99": round(percentile(last, 99), 3) if last else None},
        "shed": {k: v for k, v in report.drops.items() if v},
        "finals_delivered": finals,
        "final_lag_beyond_quickest_transcript_s": {
            "p50": round(statistics.median(final_lags), 3) if final_lags else None,
            "max": round(max(final_lags), 3) if final_lags else None,
            "each_at_file_time": [(round(t, 2), round(lag, 3)) for t, lag in each_final]},
        "rss_mb": {"median": round(statistics.median(rss), 1) if rss else None,
                   "peak": round(max(rss), 1) if rss else None},
    }


async def capacity(camera: Path, broker: MosquittoBroker, seconds: float) -> int:
    """Cameras at 2 fps this box analyses: from the windows a run with many cameras gets."""
    probe = await run_load(12, seconds, camera, camera, broker)
    per_camera = 1.0 / WINDOW_HOP_S
    return max(1, round(probe["windows_received"] / seconds / per_camera))


async def main(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-overload-"))
    camera, speech, spoken = make_media(folder, args.seconds)
    broker = MosquittoBroker()
    broker.start()
    try:
        able = args.capacity or await capacity(camera, broker, min(args.seconds, 20.0))
        loads = []
        for load in args.loads:
            result = await run_load(max(1, round(able * load)), args.seconds, camera, speech,
                                    broker)
            result.update(load=load, sentences_spoken=spoken)
            loads.append(result)
            print(json.dumps(result), flush=True)
    finally:
        broker.stop()
    return {"benchmark": "overload",
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                       f"{platform.python_version()}",
            "capacity_cameras_2fps": able, "loads": loads,
            "peak_rss_mb_process": round(peak_rss_mb(), 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--loads", type=lambda s: [float(x) for x in s.split(",")],
                        default=[1.0, 2.0, 5.0, 10.0])
    parser.add_argument("--capacity", type=int, default=0,
                        help="cameras the box analyses at 2 fps (default: measure it)")
    found = asyncio.run(main(parser.parse_args()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "overload.json").write_text(json.dumps(found, indent=2) + "\n")
    print(json.dumps(found, indent=2))
