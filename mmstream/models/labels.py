"""ImageNet-1k class names and the readable scene vocabulary built on top of them.

`IMAGENET_CLASSES` is the standard 1000-class order (index i is output i of the classifier).
`load_scene_vocabulary()` reads `data/scene_vocabulary.yaml` (or a user's file with the same
format, documented at the top of that file). Each tag is one or more *groups* of classes; a
group's evidence is its summed probability, and a tag's is its best group's, so a broad tag
(`vehicle`: cars, boats, sleds …) needs one kind of thing seen, not a little of everything.
Group membership is a 0/1 matrix [1000, n_groups], so a whole batch is one matrix product.
Each tag also has a publish threshold on that evidence (`calibrate` maps it to 0.5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mmstream.errors import ModelError

if TYPE_CHECKING:  # torch only where tensors are built: the ONNX run time reads names only
    import torch

DATA_DIR = Path(__file__).resolve().parent / "data"
CLASSES_FILE = DATA_DIR / "imagenet_classes.txt"
VOCABULARY_FILE = DATA_DIR / "scene_vocabulary.yaml"
NUM_CLASSES = 1000
DEFAULT_THRESHOLD = 0.2  # for tags whose vocabulary entry names no threshold
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


def calibrate(evidence: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Evidence [..., T] → calibrated scores: each tag's threshold maps to 0.5, 0 to 0, 1 to 1.

    Piecewise linear, so the order of a tag's scores is kept and scores of different tags
    compare: 0.5 is "just enough for this tag" whether it took 0.1 (`rocket`) or 0.6 (`animal`).
    """
    import torch

    t = thresholds.to(device=evidence.device, dtype=evidence.dtype).clamp(1e-6, 1 - 1e-6)
    below = 0.5 * evidence / t
    above = 0.5 + 0.5 * (evidence - t) / (1.0 - t)
    return torch.where(evidence < t, below, above).clamp(0.0, 1.0)


@dataclass(frozen=True)
class SceneVocabulary:
    """Readable tags over ImageNet classes.

    `groups[c, g] == 1` when class c belongs to group g, `group_tag[g]` is the tag of group g;
    `matrix[c, t] == 1` when class c counts for tag t through any of its groups.
    """

    tags: list[str]
    groups: torch.Tensor
    group_tag: torch.Tensor
    thresholds: torch.Tensor
    descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def matrix(self) -> torch.Tensor:
        return (self.groups @ self.group_membership() > 0).float()

    def group_membership(self) -> torch.Tensor:
        """[n_groups, n_tags] 0/1: which tag each group belongs to."""
        import torch

        out = torch.zeros(len(self.group_tag), len(self.tags))
        out[torch.arange(len(self.group_tag)), self.group_tag] = 1.0
        return out

    def scores(self, probs: torch.Tensor, above_chance: bool = False) -> torch.Tensor:
        """Class probabilities [B,1000] → tag evidence [B,n_tags]: best group's mass, ≤ 1.

        A featureless frame gives a near-uniform distribution, so a broad group scores its
        share of classes (`animal`, 398 classes, ≈ 0.4 on a grey frame). `above_chance`
        rescales to the lift over that share, (s - share) / (1 - share): 0 at chance, 1 when
        certain.
        """
        if probs.shape[-1] != self.groups.shape[0]:
            raise ValueError(f"expected [..., {self.groups.shape[0]}] probabilities, "
                             f"got {tuple(probs.shape)}")
        member = self.groups.to(device=probs.device, dtype=probs.dtype)
        return best_group(probs @ member, member.mean(dim=0), self.group_membership().to(
            device=probs.device, dtype=probs.dtype), above_chance)

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


def best_group(pooled: torch.Tensor, share: torch.Tensor, membership: torch.Tensor,
               above_chance: bool) -> torch.Tensor:
    """Group masses [B,G] → per tag the best of its groups [B,T], clipped to [0, 1]."""
    if above_chance:
        pooled = (pooled - share) / (1.0 - share).clamp_min(1e-6)
    pooled = pooled.clamp(0.0, 1.0)
    return (pooled[:, :, None] * membership[None]).amax(dim=1)


def _class_list(value: Any, names: dict[str, int], where: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ModelError(f"{where}: needs a non-empty 'classes' list")
    return sorted({i for item in value for i in _resolve(item, names, where)})


def _tag_groups(spec: Any, names: dict[str, int], where: str) -> list[list[int]]:
    """A tag's `classes` (one group) or `groups` (name → classes) as lists of indices."""
    if not isinstance(spec, dict):
        raise ModelError(f"{where}: needs a non-empty 'classes' list")
    if "groups" in spec:
        groups = spec["groups"]
        if "classes" in spec or not isinstance(groups, dict) or not groups:
            raise ModelError(f"{where}: give either 'classes' or a non-empty 'groups' mapping")
        return [_class_list(v, names, f"{where} group {k!r}") for k, v in groups.items()]
    return [_class_list(spec.get("classes"), names, where)]


def _threshold(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ModelError(f"{where}: threshold must be a number between 0 and 1, not {value!r}")
    return float(value)


def load_scene_vocabulary(path: str | Path | None = None) -> SceneVocabulary:
    """Read a vocabulary YAML (default: the bundled one) into a `SceneVocabulary`."""
    import torch

    source = Path(path) if path is not None else VOCABULARY_FILE
    try:
        doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ModelError(f"cannot read scene vocabulary {source}: {exc}") from exc
    entries = doc.get("tags") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ModelError(f"{source}: expected a non-empty 'tags:' mapping")
    default = _threshold(doc.get("default_threshold", DEFAULT_THRESHOLD),
                         f"{source}: default_threshold")
    names = _unique_name_index()
    tags = [str(t) for t in entries]
    columns: list[list[int]] = []
    group_tag: list[int] = []
    thresholds: list[float] = []
    descriptions: dict[str, str] = {}
    for index, (tag, spec) in enumerate(entries.items()):
        where = f"{source}: tag {tag!r}"
        for group in _tag_groups(spec, names, where):
            columns.append(group)
            group_tag.append(index)
        thresholds.append(_threshold(spec.get("threshold", default), where))
        descriptions[str(tag)] = str(spec.get("description", ""))
    groups = torch.zeros(NUM_CLASSES, len(columns))
    for column, members in enumerate(columns):
        groups[members, column] = 1.0
    return SceneVocabulary(tags=tags, groups=groups, group_tag=torch.tensor(group_tag),
                           thresholds=torch.tensor(thresholds), descriptions=descriptions)
