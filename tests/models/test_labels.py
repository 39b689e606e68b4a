"""Scene vocabulary groups, per-tag thresholds and calibration (no model weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmstream.errors import ModelError
from mmstream.models.labels import IMAGENET_CLASSES, calibrate, load_scene_vocabulary

INDEX = {name: i for i, name in enumerate(IMAGENET_CLASSES)}


def _probs(mass: dict[str, float]) -> torch.Tensor:
    """A [1,1000] distribution: the named classes get their mass, the rest share what is left."""
    probs = torch.full((1, 1000), (1.0 - sum(mass.values())) / (1000 - len(mass)))
    for name, value in mass.items():
        probs[0, INDEX[name]] = value
    return probs


def test_calibration_maps_each_threshold_to_one_half() -> None:
    evidence = torch.tensor([[0.0, 0.1, 0.2, 0.6, 1.0], [0.05, 0.2, 0.4, 0.8, 0.34]])
    thresholds = torch.tensor([0.2, 0.2, 0.2, 0.34, 0.34])
    scores = calibrate(evidence, thresholds)
    assert scores[0].tolist() == pytest.approx([0.0, 0.25, 0.5, 0.5 + 0.5 * 0.26 / 0.66, 1.0])
    assert float(scores[1, 4]) == pytest.approx(0.5)
    assert torch.all(scores[1, :3] == calibrate(evidence[1, :3], thresholds[:3]))
    grid = torch.linspace(0, 1, 101)
    assert torch.all(calibrate(grid, torch.full((101,), 0.37)).diff() > 0)  # order kept


def test_broad_tags_take_their_best_group_not_the_sum() -> None:
    """The astronaut portrait's ImageNet guesses: 30% bobsled, a football helmet, a go-kart."""
    vocab = load_scene_vocabulary()
    probs = _probs({"bobsled": 0.30, "football helmet": 0.08, "go-kart": 0.05,
                    "barbell": 0.04, "punching bag": 0.02})
    evidence = dict(zip(vocab.tags, vocab.scores(probs, above_chance=True)[0].tolist(),
                        strict=True))
    # The football helmet alone (ball games), not + barbell + punching bag (gym); "bobsled"
    # is a person in a padded suit to ImageNet and counts for neither tag.
    assert evidence["sports"] == pytest.approx(0.08, abs=0.01)
    assert evidence["vehicle"] == pytest.approx(0.05, abs=0.01)  # the go-kart
    published = calibrate(vocab.scores(probs, above_chance=True), vocab.thresholds)[0]
    assert not any(float(s) >= 0.5 for t, s in zip(vocab.tags, published, strict=True)
                   if t in {"sports", "vehicle"})
    # A motorcycle: its group carries it.
    bike = vocab.scores(_probs({"moped": 0.49, "motor scooter": 0.33}), above_chance=True)[0]
    assert float(bike[vocab.tags.index("vehicle")]) > 0.8
    assert float(bike[vocab.tags.index("motorcycle")]) > 0.8
    assert float(bike[vocab.tags.index("bicycle")]) < 0.01


def test_bundled_vocabulary_has_thresholds_and_the_new_tags() -> None:
    vocab = load_scene_vocabulary()
    assert {"rocket", "screen", "kitchen", "door", "motorcycle"} <= set(vocab.tags)
    assert vocab.thresholds.shape == (len(vocab.tags),)
    assert bool(((vocab.thresholds >= 0.2) & (vocab.thresholds < 1)).all())
    rocket = vocab.matrix[:, vocab.tags.index("rocket")].nonzero().flatten().tolist()
    assert [IMAGENET_CLASSES[i] for i in rocket] == ["missile", "projectile", "space shuttle"]
    aircraft = vocab.matrix[:, vocab.tags.index("aircraft")]
    assert float(aircraft[rocket].sum()) == 0  # a rocket is not an aeroplane
    assert int(vocab.group_tag.max()) == len(vocab.tags) - 1
    assert float(vocab.matrix[INDEX["bobsled"]].sum()) == 0


def test_user_vocabulary_groups_and_thresholds(tmp_path: Path) -> None:
    path = tmp_path / "vocab.yaml"
    path.write_text(
        "default_threshold: 0.3\n"
        "tags:\n"
        "  pets:\n    threshold: 0.6\n    groups:\n      cats: [tabby, '282-285']\n"
        "      dogs: ['151-268']\n"
        "  coffee:\n    classes: [espresso]\n",
        encoding="utf-8",
    )
    vocab = load_scene_vocabulary(path)
    assert vocab.tags == ["pets", "coffee"]
    assert vocab.thresholds.tolist() == pytest.approx([0.6, 0.3])
    assert vocab.group_tag.tolist() == [0, 0, 1]
    assert vocab.matrix[:, 0].sum() == 5 + 118
    probs = torch.zeros(1, 1000)
    probs[0, [281, 151, 967]] = torch.tensor([0.4, 0.3, 0.1])  # a cat and a dog: best, not sum
    assert vocab.scores(probs).tolist() == [[pytest.approx(0.4), pytest.approx(0.1)]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("tags:\n  x:\n    threshold: 1.5\n    classes: [tabby]\n", "threshold must be"),
        ("tags:\n  x:\n    threshold: true\n    classes: [tabby]\n", "threshold must be"),
        ("default_threshold: 0\ntags:\n  x:\n    classes: [tabby]\n", "threshold must be"),
        ("tags:\n  x:\n    classes: [tabby]\n    groups: {a: [tabby]}\n", "either 'classes'"),
        ("tags:\n  x:\n    groups: {}\n", "either 'classes'"),
        ("tags:\n  x:\n    groups: {a: []}\n", "group 'a': needs a non-empty"),
    ],
)
def test_bad_groups_and_thresholds_name_the_problem(tmp_path: Path, body: str,
                                                    message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ModelError, match=message):
        load_scene_vocabulary(path)
