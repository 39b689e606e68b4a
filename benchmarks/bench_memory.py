"""Peak memory (RSS) of mmstream: a whole replay of one camera + microphone, and what each part
adds (imports, each model, a forward pass).

    PYTHONPATH=. python benchmarks/bench_memory.py --out benchmarks/results/memory.json

`replays`: the peak RSS of `mmstream replay` (the kernel's ru_maxrss of the child, as
`/usr/bin/time -v` reports it) of the bundled sample (320x320) and of a talk clip made here
(the sample's video at 640x480 looped under 17 s of real speech from tests/data/speech: one
camera + one speaking microphone, every model busy). Each clip is replayed once first so the
ONNX cache is warm: a cold start's export runs in a child process of its own (`cold_export`).

`parts`: one child process takes each step in turn and reports its RSS after the step and
the peak so far (VmRSS, VmHWM); the step's cost is the difference to the step before. Steps the
mmstream under test does not have (the ONNX runtime before it existed) are skipped, so
compare_trees.py can run this against a base commit:

    python benchmarks/compare_trees.py --base <commit> --rounds 1 -- benchmarks/bench_memory.py

Figures on a shared, busy 2-core box are steady (memory, not time); a replay's peak moves by a
few MB from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SPEECH = REPO / "tests" / "data" / "speech"
SAMPLE = REPO / "mmstream" / "assets" / "sample.mp4"


def make_talk(into: Path) -> Path:
    """The sample's video at 640x480, looped under the three speech recordings (0.8 s gaps)."""
    clip, speech = into / "talk.mp4", into / "talk.wav"
    if clip.exists():
        return clip
    names = ("agent-newlocation", "invalid", "queue-periodic-announce")
    inputs = [a for n in names for a in ("-i", str(SPEECH / f"{n}.flac"))]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-f", "lavfi", "-t", "0.8", "-i",
                    "anullsrc=r=16000:cl=mono", "-filter_complex",
                    "[0][3][1][3][2]concat=n=5:v=0:a=1[a]", "-map", "[a]", str(speech)],
                   check=True)
    seconds = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                              "-of", "csv=p=0", str(speech)], capture_output=True, text=True,
                             check=True).stdout.strip()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(SAMPLE),
                    "-i", str(speech), "-map", "0:v", "-map", "1:a", "-t", seconds,
                    "-vf", "scale=640:480", "-c:v", "libx264", "-preset", "veryfast",
                    "-c:a", "aac", str(clip)], check=True)
    return clip


def peak_of(command: list[str], env: dict[str, str], cwd: str) -> dict[str, Any]:
    """Peak RSS (MB) of a command, from `/usr/bin/time -v`. Run outside the checkout: `python
    -m` puts the working folder first on sys.path, before the PYTHONPATH under test."""
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True,
                          env=env, cwd=cwd, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip()[-400:]}")
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return {"peak_rss_mb": round(kb / 1024, 1)}


def replay_peaks(clips: dict[str, Path], cache: Path, extra: list[str]) -> dict[str, Any]:
    env = {**os.environ, "MMSTREAM_ONNX_CACHE": str(cache)}
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, clip in clips.items():
            command = [sys.executable, "-m", "mmstream", "replay", str(clip), "-o",
                       f"{folder}/{name}.jsonl", *extra]
            first = peak_of(command, env, folder)  # fills the ONNX cache when it is cold
            found[name] = peak_of(command, env, folder) | {
                "first_run_peak_rss_mb": first["peak_rss_mb"]}
    return found


# ---- the parts, in a child ------------------------------------------------------------------
def _rss() -> dict[str, float]:
    status = Path("/proc/self/status").read_text()
    values = {k: int(re.search(rf"{k}:\s+(\d+) kB", status).group(1)) / 1024
              for k in ("VmRSS", "VmHWM")}
    return {"rss_mb": round(values["VmRSS"], 1), "peak_mb": round(values["VmHWM"], 1)}


def _parts(torch_path: bool) -> list[dict[str, Any]]:
    import importlib.util

    steps: list[dict[str, Any]] = [{"step": "python", **_rss()}]

    def step(name: str, action: Any) -> Any:
        result = action()
        steps.append({"step": name, **_rss()})
        return result

    step("import numpy, cv2, av", lambda: __import__("cv2") and __import__("av"))
    step("import onnxruntime", lambda: __import__("onnxruntime"))
    step("import ctranslate2, faster_whisper", lambda: __import__("faster_whisper"))
    from mmstream.models.whisper import load_whisper

    step("whisper tiny.en loaded (int8)", lambda: load_whisper())
    from mmstream.stages import vad

    step("silero VAD session", vad._session)
    import numpy as np

    from mmstream.media import AUDIO_RATE, VideoFrame, Window

    if importlib.util.find_spec("mmstream.models.fused_onnx") and not torch_path:
        from mmstream.models.fused_onnx import load_fused_model

        model = step("fused model built (ONNX Runtime)", lambda: load_fused_model())
    else:
        step("import torch", lambda: __import__("torch"))
        from mmstream.models.fused_model import FusedModel, plan_for

        model = step("fused model built (torch)", lambda: FusedModel(plan_for("cpu")))
    rng = np.random.default_rng(0)
    frame = VideoFrame("cam", 0.0, rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
    window = Window("cam", 2.0, 0.0, 0, frame, rng.normal(0, 0.1, 2 * AUDIO_RATE)
                    .astype(np.float32), has_audio=True)
    prepared = step("one window prepared (faces, prosody)", lambda: model.prepare(window))
    step("forward, batch of 1", lambda: model.forward([prepared]))
    step("forward, batch of 16", lambda: model.forward([prepared] * 16))
    steps.append({"step": "torch imported", "value": "torch" in sys.modules})
    return steps


def parts(cache: Path, torch_path: bool) -> list[dict[str, Any]]:
    env = {**os.environ, "MMSTREAM_ONNX_CACHE": str(cache)}
    flag = ["--torch-path"] if torch_path else []
    done = subprocess.run([sys.executable, __file__, "--parts-child", *flag], capture_output=True,
                          text=True, env=env, cwd=tempfile.gettempdir(), check=False)
    if done.returncode != 0:
        raise SystemExit(f"parts failed: {done.stderr.strip()[-600:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/memory.json")
    parser.add_argument("--cache", type=Path, default=None,
                        help="ONNX cache (default: a fresh folder under /tmp, kept for reuse)")
    parser.add_argument("--parts-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--torch-path", action="store_true",
                        help="parts: build the torch FusedModel instead")
    parser.add_argument("--set", action="append", default=[], help="replay --set overrides")
    args = parser.parse_args()
    if args.parts_child:
        print(json.dumps(_parts(args.torch_path)))
        return
    cache = args.cache or Path(tempfile.gettempdir()) / "mmstream-bench-onnx"
    work = Path(tempfile.gettempdir()) / "mmstream-bench-memory"
    work.mkdir(exist_ok=True)
    clips = {"sample": SAMPLE, "talk": make_talk(work)}
    extra = [a for s in args.set for a in ("--set", s)]
    report = {"replays": replay_peaks(clips, cache, extra),
              "parts": parts(cache, args.torch_path), "set": args.set}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
