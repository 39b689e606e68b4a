"""Archive reprocessing benchmark: Ray with 1 and 2 workers vs. a single-process batch replay.

    python benchmarks/bench_ray.py --quick   # 4 files x 15 s (~3 min on 2 cores)
    python benchmarks/bench_ray.py           # 6 files x 30 s

The same folder of recordings-like media files (speech from espeak-ng over the bundled camera
clip looped and scaled to 640x480, see bench_replay.make_clip; each file a different length cut)
goes through the default pipeline (whisper tiny.en + window + fused model, deterministic) three
ways, in one run, with the same threads per process:

- single: `BatchRunner` in this process, 1 torch/CTranslate2 thread (the plain baseline);
- ray_1x1: `RayBatchRunner`, 1 worker x 1 thread;
- ray_2x1: `RayBatchRunner`, 2 workers x 1 thread.

Ray is started once beforehand (its start-up is reported, not counted); worker start-up and
model loading are counted, as the single process counts its own. Reports files/hour and
media-seconds per wall second for each, `speedup_2_workers` (ray_1x1 / ray_2x1 wall, target
>= 1.5) and `ray_overhead_pct` (ray_1x1 vs single, target < 15; `ray_overhead_per_file_pct`
leaves out the fixed start-up: the sum of the files' own wall times), and checks that every
way wrote byte-identical events. Prints one JSON object and writes
benchmarks/results/ray[_quick].json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_replay import make_clip

from mmstream.replay.batch import BatchRunner, FileResult
from mmstream.replay.on_ray import RayBatchRunner, RayOptions
from mmstream.replay.setup import ReplayPlan

RESULTS = Path(__file__).parent / "results"


def make_archive(folder: Path, files: int, seconds: float) -> list[Path]:
    """`files` inputs cut from one long clip at different offsets (different content)."""
    long_clip = make_clip(seconds * files, folder)
    archive = folder / "archive"
    archive.mkdir()
    paths = []
    for index in range(files):
        path = archive / f"cam{index}.mp4"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-ss", str(index * seconds),
                        "-i", str(long_clip), "-t", str(seconds), "-c", "copy", str(path)],
                       check=True)
        paths.append(path)
    return paths


def summarise(name: str, results: list[FileResult], wall: float) -> dict[str, Any]:
    media = sum(r.media_s for r in results)
    failed = [r.path for r in results if r.status != "ok"]
    if failed:
        raise SystemExit(f"{name}: failed inputs {failed}")
    return {"wall_s": round(wall, 2), "media_s": round(media, 1),
            "files_wall_s": round(sum(r.wall_s for r in results), 2),
            "media_s_per_s": round(media / wall, 2),
            "files_per_hour": round(len(results) * 3600 / wall, 1)}


def run_single(paths: list[Path], base: Path, out: Path) -> dict[str, Any]:
    runner = BatchRunner(paths, base, out,
                         ReplayPlan(cpu_fp32=True, threads=1).config_for)
    started, cpu = time.perf_counter(), time.process_time()
    results = asyncio.run(runner.run(asyncio.Event()))
    wall = time.perf_counter() - started
    # A "1 thread" pipeline still decodes, detects faces and runs the VAD on other threads:
    # the cores it really keeps busy bound what a second worker can add on this box.
    return {**summarise("single", results, wall),
            "cores_busy": round((time.process_time() - cpu) / wall, 2)}


def run_ray(paths: list[Path], base: Path, out: Path, workers: int) -> dict[str, Any]:
    runner = RayBatchRunner(paths, base, out, ReplayPlan(cpu_fp32=True),
                            RayOptions(workers=workers, threads=1))
    started = time.perf_counter()
    results = runner.run()
    return summarise(f"ray {workers}", results, time.perf_counter() - started)


def same_outputs(*folders: Path) -> bool:
    names = sorted(p.name for p in folders[0].glob("*.jsonl"))
    return all(sorted(p.name for p in f.glob("*.jsonl")) == names for f in folders) and all(
        (folders[0] / n).read_bytes() == (f / n).read_bytes() for f in folders for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 files x 15 s")
    args = parser.parse_args()
    files, seconds = (4, 15.0) if args.quick else (6, 30.0)
    import ray

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        folder = Path(tmp)
        paths = make_archive(folder, files, seconds)
        base = paths[0].parent
        started = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")
        ray_start_s = time.perf_counter() - started
        try:
            single = run_single(paths, base, folder / "single")
            ray_1 = run_ray(paths, base, folder / "ray1", 1)
            ray_2 = run_ray(paths, base, folder / "ray2", 2)
        finally:
            ray.shutdown()
        identical = same_outputs(folder / "single", folder / "ray1", folder / "ray2")
        shutil.rmtree(folder / "archive")
    result = {
        "benchmark": "ray",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "gpu": False,
                    "ray": ray.__version__},
        "model": "whisper tiny.en (int8, CPU) + fused model (CPU), frames at 2 fps, "
                 "deterministic",
        "files": files, "seconds_per_file": seconds, "ray_start_s": round(ray_start_s, 2),
        "single_1_thread": single, "ray_1_worker_x_1_thread": ray_1,
        "ray_2_workers_x_1_thread": ray_2,
        "speedup_2_workers": round(ray_1["wall_s"] / ray_2["wall_s"], 2),
        "ray_overhead_pct": round((ray_1["wall_s"] / single["wall_s"] - 1) * 100, 1),
        # without Ray's fixed costs (worker start, imports, model load): the files themselves
        "ray_overhead_per_file_pct": round(
            (ray_1["files_wall_s"] / single["files_wall_s"] - 1) * 100, 1),
        "outputs_identical": identical,
    }
    RESULTS.mkdir(exist_ok=True)
    name = "ray_quick.json" if args.quick else "ray.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
