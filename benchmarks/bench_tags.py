"""Tag benchmark: are the published scene tags ones a person would agree with?

    python benchmarks/bench_tags.py                      # both face detectors, ~1.5 min on 2 cores
    python benchmarks/bench_tags.py --detectors mtcnn    # one detector
    python benchmarks/bench_tags.py --calibrate          # + per-tag thresholds by the rule

The photos and their labels are in benchmarks/tag_set.yaml (where each comes from, its
licence, the right tags, the acceptable ones; every other tag is wrong). Each photo goes
through the real fused model (`FusedModel.prepare` + `forward`) and the real publishing code
(`InferStage.events_for`, default `stages.infer` settings), per face detector.

Reports, per detector:
- `tags`: per-tag precision/recall, the recall of all right tags, the share of photos with at
  least one wrong tag published, which photos got which wrong tags and missed which right ones;
- `faces`: faces found / labelled, false faces, and the detector's ms per 640x480 frame
  (median over the photos resized to 640x480, best of 3 runs each);
- `ms_per_frame`: the whole model, prepare + forward of one 640x480 window (same statistic);
- `loo`: the same tag numbers with leave-one-out thresholds: each photo judged with the
  thresholds the rule picks from the *other* photos. This is the honest estimate of how the
  bundled thresholds generalise; the in-sample numbers cannot show a wrong tag by construction.
- with --calibrate, `thresholds`: what the rule picks from the whole set (paste into
  mmstream/models/data/scene_vocabulary.yaml).

The threshold rule (documented in docs/models.md): a tag's threshold is the highest score it
reached on a photo where it is wrong, plus MARGIN, never below FLOOR nor above CEILING.

Writes benchmarks/results/tags.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this checkout's mmstream, not an installed one
from tag_photos import LabelledPhoto, faces_matched, load_photo, load_tag_set, tag_scores  # noqa: E402

from mmstream.config import LIVE, InferConfig  # noqa: E402
from mmstream.events import SceneEvent  # noqa: E402
from mmstream.media import VideoFrame, Window  # noqa: E402
from mmstream.models.fused_model import FusedModel, WindowResult, plan_for  # noqa: E402
from mmstream.stages.infer import InferStage  # noqa: E402

RESULTS = HERE / "results"
MARGIN = 0.05
FLOOR = 0.2  # the old global scene_threshold: per-tag thresholds only ever raise the bar
CEILING = 0.95
FRAME = (640, 480)


def _window(image: np.ndarray) -> Window:
    frame = VideoFrame("bench", 1.0, np.ascontiguousarray(image))
    return Window("bench", 1.0, 0.0, 0, frame, np.zeros(0, np.float32), (), has_audio=False)


def _model(detector: str) -> FusedModel:
    try:
        from mmstream.models.faces import make_face_detector
    except ImportError:  # before the detector choice existed: Haar only
        return FusedModel(plan_for("cpu"))
    return FusedModel(plan_for("cpu"), detector=lambda: make_face_detector(detector))


def _best_ms(run: Any, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000.0)
    return min(times)


def published_tags(stage: InferStage, result: WindowResult) -> set[str]:
    scene = [e for e in stage.events_for(result) if isinstance(e, SceneEvent)]
    return {t.label for t in scene[0].payload.tags} if scene else set()


def evidence(result: WindowResult) -> dict[str, float]:
    """Every tag's score before any per-tag threshold."""
    return dict(getattr(result, "scene_evidence", None) or result.scene)


def thresholds_by_rule(scores: dict[str, dict[str, float]], photos: list[LabelledPhoto],
                       vocabulary: list[str]) -> dict[str, float]:
    """Highest score of a tag where it is wrong, + MARGIN, clamped to [FLOOR, CEILING]."""
    out = {}
    for tag in vocabulary:
        worst = max((scores[p.id][tag] for p in photos if tag in p.wrong(vocabulary)),
                    default=0.0)
        out[tag] = round(min(CEILING, max(FLOOR, worst + MARGIN)), 2)
    return out


def leave_one_out(scores: dict[str, dict[str, float]], photos: list[LabelledPhoto],
                  vocabulary: list[str], top_k: int) -> dict[str, Any]:
    published = {}
    for photo in photos:
        others = [p for p in photos if p.id != photo.id]
        limits = thresholds_by_rule(scores, others, vocabulary)
        ranked = sorted(((s, t) for t, s in scores[photo.id].items() if s >= limits[t]),
                        reverse=True)
        published[photo.id] = {t for _, t in ranked[:top_k]}
    return tag_scores(published, photos, vocabulary)


def run_detector(name: str, photos: list[LabelledPhoto], images: dict[str, np.ndarray],
                 calibrate: bool) -> dict[str, Any]:
    model = _model(name)
    stage = InferStage(InferConfig(), policy=LIVE, model=model)
    vocabulary = list(model.fusion.tags)
    published: dict[str, set[str]] = {}
    scores: dict[str, dict[str, float]] = {}
    found = false = 0
    detect_ms, frame_ms = [], []
    for photo in photos:
        image = images[photo.id]
        result = model.forward([model.prepare(_window(image))])[0]
        published[photo.id] = published_tags(stage, result)
        scores[photo.id] = evidence(result)
        boxes = [(b.x, b.y, b.w, b.h) for b in model.detector().detect(image)]
        hits, misses = faces_matched(boxes, photo.faces)
        found, false = found + hits, false + misses
        small = cv2.resize(image, FRAME, interpolation=cv2.INTER_AREA)
        detect_ms.append(_best_ms(lambda s=small: model.detector().detect(s)))
        frame_ms.append(_best_ms(lambda s=small: model.forward([model.prepare(_window(s))])))
    report = {
        "tags": tag_scores(published, photos, vocabulary),
        "published": {k: sorted(v) for k, v in published.items()},
        "faces": {"present": sum(len(p.faces) for p in photos), "found": found,
                  "false": false, "ms_per_640x480": round(statistics.median(detect_ms), 1)},
        "ms_per_frame": round(statistics.median(frame_ms), 1),
        "loo": leave_one_out(scores, photos, vocabulary, InferConfig().scene_top_k),
        "scores": {k: {t: round(s, 3) for t, s in v.items() if s >= 0.05}
                   for k, v in scores.items()},
    }
    if calibrate:
        report["thresholds"] = thresholds_by_rule(scores, photos, vocabulary)
    return report


def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine()
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")),
                platform.machine())


def main(args: argparse.Namespace) -> dict[str, Any]:
    photos = load_tag_set()
    images = {p.id: load_photo(p) for p in photos}
    report: dict[str, Any] = {
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "photos": len(photos),
        "rule": {"margin": MARGIN, "floor": FLOOR, "ceiling": CEILING},
    }
    for name in args.detectors.split(","):
        report[name] = run_detector(name, photos, images, args.calibrate)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detectors", default="haar,mtcnn",
                        help="comma-separated face detectors to compare (haar, mtcnn)")
    parser.add_argument("--calibrate", action="store_true",
                        help="also print the per-tag thresholds the rule picks from the set")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default results/)")
    arguments = parser.parse_args()
    result = main(arguments)
    target = arguments.out or RESULTS / "tags.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
