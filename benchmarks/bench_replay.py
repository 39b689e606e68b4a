"""Record/replay benchmark: replay speed of a recording and the cost of recording live.

    python benchmarks/bench_replay.py --quick   # 20 s clip, 10 s live runs (~2 min)
    python benchmarks/bench_replay.py           # 60 s clip, 30 s live runs (~5 min)

- replay_x_realtime: a recording with speech (espeak-ng) and one 640x480 camera (the bundled
  clip, looped and scaled) replayed through the default pipeline (whisper tiny.en + window +
  fused model, frames at the default 2 fps), as fast as possible; media seconds / wall seconds,
  model loading included. Run twice: the outputs must be byte-identical. The same media file
  replayed directly gives `media_file_x_realtime`, and their ratio what the recording costs.
- record_overhead_pct: a live (paced) pipeline over the same kind of clip, with and without
  `record:`; process CPU seconds (all threads) with vs without. `recorder_cpu_per_media_s` is
  the recorder's own encode+write CPU per second of input, measured alone (steadier on a
  shared box than the difference of two live runs).
Prints one JSON object and writes benchmarks/results/replay[_quick].json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from mmstream.build import build_pipeline
from mmstream.config import FileSourceConfig, PipelineConfig, RecordConfig
from mmstream.recording.writer import RecordingFiles
from mmstream.replay.setup import ReplayOptions, replay_config, sample_clip
from mmstream.runtime.observer import PipelineObserver
from mmstream.sinks.recorder import RecorderSink
from mmstream.sources.media_file import decode_media

RESULTS = Path(__file__).parent / "results"
SENTENCES = ["Good morning, the coffee machine is warming up in the kitchen.",
             "I think somebody left the back door open again.",
             "The delivery should arrive before noon, please keep an eye on the porch.",
             "That was a wonderful dinner, thank you all for coming."]


def make_clip(seconds: float, folder: Path) -> Path:
    """Speech every few seconds over a looped, scaled camera clip: `seconds` long."""
    parts = []
    for index, sentence in enumerate(SENTENCES):
        wav = folder / f"s{index}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), sentence],
                       check=True, capture_output=True)
        parts.append(wav)
    speech = folder / "speech.wav"
    pad = "".join(f"[{i}:a]aresample=16000,apad=pad_dur=3[a{i}];" for i in range(len(parts)))
    joined = "".join(f"[a{i}]" for i in range(len(parts)))
    inputs = [arg for part in parts for arg in ("-i", str(part))]
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *inputs, "-filter_complex",
                    f"{pad}{joined}concat=n={len(parts)}:v=0:a=1,aloop=loop=-1:size=1920000",
                    "-t", str(seconds), "-ac", "1", str(speech)], check=True)
    clip = folder / "camera.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i",
                    str(sample_clip()), "-i", str(speech), "-map", "0:v:0", "-map", "1:a:0",
                    "-vf", "scale=640:480", "-r", "15", "-t", str(seconds), "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip)],
                   check=True)
    return clip


class ReadyClock(PipelineObserver):
    """When the pipeline was up (models loaded, sinks and sources open)."""

    def __init__(self) -> None:
        self.at: float | None = None

    def ready(self) -> None:
        self.at = time.perf_counter()


def timed_run(config: Any) -> tuple[float, float, Any, float]:
    """(wall s, process CPU s, report, wall s after start-up) of one in-process run."""
    pipeline, ready = build_pipeline(config), ReadyClock()
    pipeline.observers.append(ready)
    wall, cpu = time.perf_counter(), time.process_time()
    report = asyncio.run(pipeline.run())
    ended = time.perf_counter()
    return ended - wall, time.process_time() - cpu, report, ended - (ready.at or wall)


def config_for(media: Path, out: Path | None, *, analysis: bool = True,
               realtime: bool = False, record: Path | None = None) -> PipelineConfig:
    return replay_config(media, out=out, options=ReplayOptions(realtime=realtime),
                         record_to=record, analysis=analysis, stdout_by_default=False)


def bench_replay(clip: Path, seconds: float, folder: Path) -> dict[str, Any]:
    recording = folder / "rec.mcap"
    record_wall, *_ = timed_run(config_for(clip, None, analysis=False, record=recording))
    runs = []
    for run in range(2):
        out = folder / f"replay{run}.jsonl"
        wall, cpu, report, running = timed_run(config_for(recording, out))
        runs.append({"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                     "startup_s": round(wall - running, 2),
                     "x_realtime": round(seconds / wall, 2),
                     "x_realtime_after_startup": round(seconds / running, 2),
                     "events": dict(report.events)})
    identical = (folder / "replay0.jsonl").read_bytes() == (folder / "replay1.jsonl").read_bytes()
    media_wall, *_ = timed_run(config_for(clip, folder / "media.jsonl"))
    best = min(r["wall_s"] for r in runs)
    return {"clip_s": seconds, "recording_mb": round(recording.stat().st_size / 1e6, 2),
            "record_no_analysis_x_realtime": round(seconds / record_wall, 1),
            "replay_runs": runs, "replays_byte_identical": identical,
            "replay_x_realtime": round(seconds / best, 2),
            "replay_x_realtime_after_startup": max(r["x_realtime_after_startup"] for r in runs),
            "media_file_x_realtime": round(seconds / media_wall, 2),
            "replay_vs_media_file_wall_ratio": round(best / media_wall, 3)}


def bench_live_overhead(clip: Path, folder: Path) -> dict[str, Any]:
    """The same paced (live-like) run without and with the recorder, alternated twice."""
    cpu: dict[str, list[float]] = {"without": [], "with": []}
    for attempt in range(2):
        for mode in ("without", "with"):
            record = folder / f"live{attempt}.mcap" if mode == "with" else None
            _, used, *_ = timed_run(config_for(clip, folder / "live.jsonl",
                                               realtime=True, record=record))
            cpu[mode].append(used)
    base, rec = min(cpu["without"]), min(cpu["with"])
    return {"live_cpu_s_without": [round(c, 2) for c in cpu["without"]],
            "live_cpu_s_with": [round(c, 2) for c in cpu["with"]],
            "record_overhead_pct": round(100 * (rec - base) / base, 1)}


def bench_recorder_alone(clip: Path, seconds: float, folder: Path) -> dict[str, Any]:
    """Encode + write every input of the clip (as the recorder's thread would), timed."""
    items = list(decode_media(FileSourceConfig(id="cam0", path=clip)))
    sink = RecorderSink(RecordConfig(path=folder / "alone.mcap"), "bench")
    sink.files = RecordingFiles(sink.config, "bench")
    started = time.process_time()
    sink.files.open()
    for item in items:
        sink._write_input(item)  # the writer thread's work, without the thread
    sink.files.close()
    used = time.process_time() - started
    return {"recorder_cpu_per_media_s": round(used / seconds, 4),
            "recorder_inputs": len(items)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 s clip, 10 s live runs")
    args = parser.parse_args()
    seconds, live_s = (20.0, 10.0) if args.quick else (60.0, 30.0)
    with tempfile.TemporaryDirectory(prefix="mmstream-bench-replay-") as tmp:
        folder = Path(tmp)
        clip = make_clip(seconds, folder)
        (folder / "live").mkdir()
        live_clip = make_clip(live_s, folder / "live")
        result: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(), "gpu": False},
            "model": "whisper tiny.en (int8, CPU) + fused model (CPU), frames at 2 fps",
            **bench_replay(clip, seconds, folder),
            **bench_recorder_alone(clip, seconds, folder),
            "live_clip_s": live_s, **bench_live_overhead(live_clip, folder),
        }
    live_cpu_per_s = min(result["live_cpu_s_without"]) / live_s
    result["recorder_share_of_live_cpu_pct"] = round(
        100 * result["recorder_cpu_per_media_s"] / live_cpu_per_s, 2)
    result["targets"] = {"replay_x_realtime>=5": result["replay_x_realtime"] >= 5,
                         "record_overhead_pct<=10": result["record_overhead_pct"] <= 10}
    RESULTS.mkdir(exist_ok=True)
    name = "replay_quick.json" if args.quick else "replay.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
