"""ImageNet-1k class names and the readable scene vocabulary built on top of them.

`IMAGENET_CLASSES` is the standard 1000-class order (index i is output i of the classifier).
`load_scene_vocabulary()` reads `data/scene_vocabulary.yaml` (or a user's file with the same
format, documented at the top of that file) into a 0/1 membership matrix [1000, n_tags], so
tag scores for a whole batch are one matrix product.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from mmstream.errors import ModelError

DATA_DIR = Path(__file__).resolve().parent / "data"
CLASSES_FILE = DATA_DIR / "imagenet_classes.txt"
VOCABULARY_FILE = DATA_DIR / "scene_vocabulary.yaml"
NUM_CLASSES = 1000
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def _read_classes(path: Path = CLASSES_FILE) -> list[str]:
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    if len(names) != NUM_CLASSES:
        raise ModelError(f"{path}: expected {NUM_CLASSES} class names, found {len(names)}")
    return names


# A 15 kB text file: cheap enough to read at import, and every user needs it.
IMAGENET_CLASSES: list[str] = _read_classes()


def _unique_name_index() -> dict[str, int]:
    """Class name → index for names that occur once ("crane"/"maillot" occur twice)."""
    counts: dict[str, int] = {}
    for name in IMAGENET_CLASSES:
        counts[name] = counts.get(name, 0) + 1
    return {n: i for i, n in enumerate(IMAGENET_CLASSES) if counts[n] == 1}


def _resolve(item: Any, names: dict[str, int], where: str) -> list[int]:
    """One `classes` entry (index, "a-b" range, or class name) → class indices."""
    if isinstance(item, bool):  # bool is an int subclass; `true` in YAML is a mistake
        raise ModelError(f"{where}: invalid class entry {item!r}")
    if isinstance(item, int):
        indices = [item]
    elif isinstance(item, str) and (match := _RANGE.match(item)):
        lo, hi = int(match.group(1)), int(match.group(2))
        if lo > hi:
            raise ModelError(f"{where}: empty range {item!r}")
        indices = list(range(lo, hi + 1))
    elif isinstance(item, str) and item in names:
        indices = [names[item]]
    else:
        raise ModelError(f"{where}: unknown or ambiguous ImageNet class {item!r}")
    bad = [i for i in indices if not 0 <= i < NUM_CLASSES]
    if bad:
        raise ModelError(f"{where}: class index out of range 0..{NUM_CLASSES - 1}: {bad[0]}")
    return indices


@dataclass(frozen=True)
class SceneVocabulary:
    """Readable tags over ImageNet classes: `matrix[c, t] == 1` when class c counts for tag t."""

    tags: list[str]
    matrix: torch.Tensor
    descriptions: dict[str, str] = field(default_factory=dict)

    def scores(self, probs: torch.Tensor, above_chance: bool = False) -> torch.Tensor:
        """Class probabilities [B,1000] → tag scores [B,n_tags]: summed member mass, ≤ 1.

        A featureless frame gives a near-uniform distribution, so a broad tag scores its share
        of classes (`animal`, 398 classes, ≈ 0.4 on a grey frame). `above_chance` rescales
        to the lift over that share, (s - share) / (1 - share): 0 at chance, 1 when certain.
        """
        if probs.shape[-1] != self.matrix.shape[0]:
            raise ValueError(f"expected [..., {self.matrix.shape[0]}] probabilities, "
                             f"got {tuple(probs.shape)}")
        member = self.matrix.to(device=probs.device, dtype=probs.dtype)
        scores = probs @ member
        if above_chance:
            share = member.mean(dim=0)
            scores = (scores - share) / (1.0 - share).clamp_min(1e-6)
        return scores.clamp_(0.0, 1.0)

    def top(self, scores: torch.Tensor, k: int = 5, threshold: float = 0.0
            ) -> list[list[tuple[str, float]]]:
        """Per row, up to k (tag, score) pairs with score ≥ threshold, best first."""
        k = min(k, len(self.tags))
        values, indices = scores.float().cpu().topk(k, dim=-1)
        return [
            [(self.tags[i], float(v)) for v, i in zip(vrow.tolist(), irow.tolist(), strict=True)
             if v >= threshold]
            for vrow, irow in zip(values, indices, strict=True)
        ]


def load_scene_vocabulary(path: str | Path | None = None) -> SceneVocabulary:
    """Read a vocabulary YAML (default: the bundled one) into a `SceneVocabulary`."""
    source = Path(path) if path is not None else VOCABULARY_FILE
    try:
        doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ModelError(f"cannot read scene vocabulary {source}: {exc}") from exc
    entries = doc.get("tags") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ModelError(f"{source}: expected a non-empty 'tags:' mapping")
    names = _unique_name_index()
    tags = [str(t) for t in entries]
    matrix = torch.zeros(NUM_CLASSES, len(tags))
    descriptions: dict[str, str] = {}
    for column, (tag, spec) in enumerate(entries.items()):
        where = f"{source}: tag {tag!r}"
        classes = spec.get("classes") if isinstance(spec, dict) else None
        if not isinstance(classes, list) or not classes:
            raise ModelError(f"{where}: needs a non-empty 'classes' list")
        for item in classes:
            matrix[_resolve(item, names, where), column] = 1.0
        descriptions[str(tag)] = str(spec.get("description", ""))
    return SceneVocabulary(tags=tags, matrix=matrix, descriptions=descriptions)
