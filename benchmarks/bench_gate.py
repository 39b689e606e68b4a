"""Change-gating benchmark: what a carried window saves, and how many windows a camera mix carries.

    python benchmarks/bench_gate.py            # ~1-2 min on a 2-core CPU

Figures that do not depend on how busy the box is (a shared box skews wall-clock time, not
counts, and CPU time much less than latency):

- cost: CPU milliseconds (process time, one thread) of one window, prepare (face detection,
  prosody, text) + forward at batch 1, analysed afresh and carried over from the window before
  it; alternating rounds on the same real windows (the sample clip's frames, 2 s of its audio
  and a sentence), median per round. `ratio`: fresh / carried. Also the gate's own decision
  (64x48 grey copy + compare) per window. Per runtime (`--runtime`, both by default, one after
  the other in one run): `onnx`, the run-time path on a CPU (fused_onnx.py, no torch), and
  `torch` (fused_model.py with `image_runtime: torch`, as on CUDA).
- mix: the windows the gate carries on each kind of camera of `bench_runtime.py --streams --mix
  still` (a still scene with 3 s of movement every 30 s, the moving sample), decided by the
  gate on the clips' frames at one window a second over 120 s; and, from the costs, the CPU
  time per camera-second and the share of an all-moving camera's cost a camera of the mix takes.

Prints one JSON object and writes it to benchmarks/results/gate.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_infer import sample_windows
from runtime_models import MOVING_EVERY, camera_clip, still_camera_clips

from mmstream.config import ChangeGateConfig, FileSourceConfig
from mmstream.media import VideoFrame, Window
from mmstream.models.fused_onnx import load_fused_model
from mmstream.models.numerics import pin_math_threads
from mmstream.sources.media_file import decode_media
from mmstream.stages.change_gate import ChangeGate

RESULTS = Path(__file__).parent / "results"


def cpu_ms(fn: Callable[[], Any], count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        fn()
    return (time.process_time() - started) / count * 1e3


def window_costs(rounds: int, per_round: int, runtime: str) -> dict[str, Any]:
    pin_math_threads()
    model = load_fused_model(device="cpu", threads=1,
                             image_runtime="torch" if runtime == "torch" else "auto")
    windows = sample_windows(per_round + 1)
    reference = model.prepare(windows[0])
    model.forward([reference])  # encoded: later windows may carry from it

    def fresh() -> None:
        for w in windows[1:]:
            model.forward([model.prepare(w)])

    def carried() -> None:
        for w in windows[1:]:
            model.forward([model.prepare(w, reference)])

    gate = ChangeGate(ChangeGateConfig())

    def decide() -> None:
        for w in windows[1:]:
            gate.carry(w)

    fresh(), carried()  # warm-up: detector set-up, kernel choice
    costs: dict[str, list[float]] = {"fresh": [], "carried": [], "gate": []}
    for _ in range(rounds):  # alternating, so a busy moment of the box hits both alike
        costs["fresh"].append(cpu_ms(fresh, 1) / per_round)
        costs["carried"].append(cpu_ms(carried, 1) / per_round)
        costs["gate"].append(cpu_ms(decide, 1) / per_round)
    med = {k: statistics.median(v) for k, v in costs.items()}
    return {"fresh_ms": round(med["fresh"], 2), "carried_ms": round(med["carried"], 2),
            "gate_ms": round(med["gate"], 3), "ratio": round(med["fresh"] / med["carried"], 1),
            "rounds": {k: [round(x, 2) for x in v] for k, v in costs.items()}}


def carried_fraction(clip: Path, seconds: float) -> float:
    """One window a second over `seconds` of the clip, looped (as the camera source does)."""
    frames = [i for i in decode_media(FileSourceConfig(path=clip, fps=2.0))
              if isinstance(i, VideoFrame)]
    period = frames[-1].t_capture + 0.5
    gate = ChangeGate(ChangeGateConfig())
    decided = []
    for n in range(1, int(seconds) + 1):
        at = n % period
        frame = [f for f in frames if f.t_capture <= at + 1e-6][-1]
        decided.append(gate.carry(Window("cam", float(n), n - 2.0, n, frame)))
    return sum(decided) / len(decided)


def carried_share(seconds: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-gate-"))
    still = [carried_fraction(c, seconds) for c in still_camera_clips(folder)]
    moving = carried_fraction(camera_clip(folder), seconds)
    still_share = (MOVING_EVERY - 1) / MOVING_EVERY
    carried = still_share * float(np.mean(still)) + (1 - still_share) * moving
    return {"seconds": seconds, "still_camera_carried": [round(x, 3) for x in still],
            "moving_camera_carried": round(moving, 3), "mix_carried": round(carried, 3)}


def mix_cost(costs: dict[str, Any], carried: float) -> dict[str, Any]:
    per_window = (1 - carried) * costs["fresh_ms"] + carried * costs["carried_ms"] \
        + costs["gate_ms"]
    return {"mix_cpu_ms_per_camera_s": round(per_window, 1),
            "moving_cpu_ms_per_camera_s": round(costs["fresh_ms"] + costs["gate_ms"], 1),
            "mix_camera_share_of_moving": round(per_window / (costs["fresh_ms"]
                                                              + costs["gate_ms"]), 3)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--windows", type=int, default=16, help="windows per round and kind")
    parser.add_argument("--mix-s", type=float, default=120.0, help="seconds of each camera")
    parser.add_argument("--runtime", choices=("onnx", "torch", "both"), default="both",
                        help="onnx: the run-time path on a CPU; torch: fused_model.py")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default results/)")
    options = parser.parse_args()
    runtimes = ["onnx", "torch"] if options.runtime == "both" else [options.runtime]
    costs = {r: window_costs(options.rounds, options.windows, r) for r in runtimes}
    share = carried_share(options.mix_s)
    outcome = {"benchmark": "gate", "cost": costs, "mix": share
               | {r: mix_cost(c, share["mix_carried"]) for r, c in costs.items()}}
    target = options.out or RESULTS / "gate.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(outcome, indent=2) + "\n")
    print(json.dumps(outcome))
