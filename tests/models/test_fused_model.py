"""The fused model on real photos with the real weights; batching; the CUDA plan's logic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from skimage import data as skdata

from mmstream.config import InferConfig
from mmstream.errors import ModelError
from mmstream.events import Transcript
from mmstream.media import VideoFrame as Frame
from mmstream.media import Window
from mmstream.models.fused_model import FusedModel, WindowResult, plan_for

THRESHOLD = InferConfig().scene_threshold  # calibrated: each tag at its own threshold


@pytest.fixture(scope="module")
def model() -> FusedModel:
    return FusedModel(plan_for("cpu"))


def _window(image: np.ndarray | None, text: str = "", audio: np.ndarray | None = None
            ) -> Window:
    frame = Frame("s", 2.0, np.ascontiguousarray(image)) if image is not None else None
    said = (Transcript(final=True, text=text, start=0.5, end=1.5, confidence=0.9),) if text \
        else ()
    samples = audio if audio is not None else np.zeros(0, np.float32)
    return Window("s", 2.0, 0.0, 0, frame, samples, said, has_audio=audio is not None)


def _top_tags(result: WindowResult, k: int = 3) -> list[str]:
    ranked = sorted(result.scene.items(), key=lambda kv: -kv[1])
    return [tag for tag, score in ranked[:k] if score >= THRESHOLD]


PHOTOS = {
    "cat": skdata.chelsea(),
    "astronaut": skdata.astronaut(),
    "coffee": skdata.coffee(),
    "blank": np.full((240, 320, 3), 128, np.uint8),
}


@pytest.fixture(scope="module")
def photo_results(model: FusedModel) -> dict[str, WindowResult]:
    prepared = [model.prepare(_window(image)) for image in PHOTOS.values()]
    return dict(zip(PHOTOS, model.forward(prepared), strict=True))


@pytest.mark.slow
def test_scene_tags_of_real_photos(photo_results: dict[str, WindowResult]) -> None:
    assert "cat" in _top_tags(photo_results["cat"])
    assert "animal" in _top_tags(photo_results["cat"])
    assert _top_tags(photo_results["astronaut"])[0] == "person"  # from the face it found
    assert "drink" in _top_tags(photo_results["coffee"])
    assert _top_tags(photo_results["blank"]) == []  # no confident tag on a featureless frame
    assert photo_results["cat"].top_classes[0][0] in {"tabby", "tiger cat", "Egyptian cat"}


@pytest.mark.slow
def test_faces_give_emotion_and_no_face_is_absent(model: FusedModel,
                                                   photo_results: dict[str, WindowResult]
                                                   ) -> None:
    astronaut = photo_results["astronaut"]
    assert len(model.detector().detect(PHOTOS["astronaut"])) == 1  # exactly one face
    box = astronaut.prepared.face_box
    assert box is not None and 150 < box.x + box.w / 2 < 300  # her face, not elsewhere
    assert astronaut.present["face"] and 0.5 < astronaut.confidence["face"] <= 1
    assert abs(sum(astronaut.emotion.values()) - 1) < 1e-4
    assert astronaut.weights["face"] == pytest.approx(1.0)  # the only emotion source
    assert max(astronaut.emotion, key=astronaut.emotion.get) == "happy"  # she smiles
    for name in ("cat", "coffee", "blank"):
        result = photo_results[name]
        assert not result.present["face"] and result.weights["face"] == 0.0
        assert result.confidence["face"] == 0.0


@pytest.mark.slow
def test_text_and_face_are_fused_with_their_confidence(model: FusedModel) -> None:
    sad_text = "I feel so sad and lonely, I miss her and I cannot stop crying."
    face_only, both, text_only = model.forward([
        model.prepare(_window(PHOTOS["astronaut"])),
        model.prepare(_window(PHOTOS["astronaut"], sad_text)),
        model.prepare(_window(PHOTOS["blank"], sad_text)),
    ])
    assert text_only.present["text"] and not text_only.present["face"]
    assert max(text_only.emotion, key=text_only.emotion.get) == "sad"
    assert text_only.valence < -0.3
    assert 0 < both.weights["text"] < both.weights["face"]  # faces weigh more by default
    assert both.emotion["sad"] > face_only.emotion["sad"]  # but the words move the result
    assert both.valence < face_only.valence


@pytest.mark.slow
def test_batched_forward_equals_one_by_one(model: FusedModel) -> None:
    rng = np.random.default_rng(0)
    windows = [_window(PHOTOS["astronaut"], "what a wonderful day"),
               _window(PHOTOS["cat"]),
               _window(rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)),
               _window(None, "this is terrible", rng.standard_normal(32000).astype("f4") * .1),
               _window(PHOTOS["coffee"])]
    prepared = [model.prepare(w) for w in windows]
    batched = model.forward(prepared)
    single = [model.forward([p])[0] for p in prepared]
    for b, s in zip(batched, single, strict=True):
        assert b.present == s.present
        for field in ("emotion", "scene", "image_tags", "weights"):
            ours, theirs = getattr(b, field), getattr(s, field)
            assert max(abs(ours[k] - theirs[k]) for k in ours) < 1e-4, field
        assert abs(b.valence - s.valence) < 1e-4


def test_plan_resolution_for_cuda_and_cpu() -> None:
    cuda = plan_for("auto", cuda_available=True)
    assert cuda.device.type == "cuda" and cuda.autocast is torch.float16
    assert cuda.channels_last and cuda.pinned and cuda.non_blocking
    assert plan_for("cuda", "bf16", cuda_available=True).autocast is torch.bfloat16
    cpu = plan_for("auto", cuda_available=False)
    assert cpu.device.type == "cpu" and cpu.autocast is None and not cpu.pinned
    assert plan_for("cpu", "bf16", cuda_available=True).autocast is torch.bfloat16
    with pytest.raises(ModelError, match="no CUDA device"):
        plan_for("cuda", cuda_available=False)
    with pytest.raises(ModelError, match="fp16 needs CUDA"):
        plan_for("cpu", "fp16", cuda_available=False)


@pytest.mark.slow
def test_the_cuda_code_path_runs_on_cpu_with_reduced_precision(model: FusedModel) -> None:
    """channels_last + autocast (bf16 on CPU) — the CUDA path's layout/dtype logic, on CPU."""
    plan = dataclasses.replace(plan_for("cpu", "bf16"), channels_last=True)
    cpu_like_cuda = FusedModel(plan)
    windows = [_window(PHOTOS["cat"]), _window(PHOTOS["astronaut"]),
               _window(np.zeros((100, 100, 3), np.uint8))]  # two frame sizes in one batch
    reference = model.forward([model.prepare(w) for w in windows])
    reduced = cpu_like_cuda.forward([cpu_like_cuda.prepare(w) for w in windows])
    for ref, low in zip(reference, reduced, strict=True):
        assert ref.present == low.present
        assert max(abs(ref.scene[k] - low.scene[k]) for k in ref.scene) < 0.1
        assert max(abs(ref.emotion[k] - low.emotion[k]) for k in ref.emotion) < 0.1
    assert _top_tags(reduced[0])[:2] == _top_tags(reference[0])[:2]


@pytest.mark.slow
def test_inference_optimised_encoder_gives_the_same_outputs() -> None:
    from mmstream.models.efficientnet_lite import load_efficientnet_lite0
    from mmstream.models.folding import optimise_for_inference

    reference = load_efficientnet_lite0()
    optimised = optimise_for_inference(load_efficientnet_lite0())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in optimised.modules())
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want, got = reference.forward_both(x), optimised.forward_both(x)
    assert torch.allclose(want[0], got[0], atol=1e-4)
    assert torch.allclose(want[1], got[1], atol=1e-3)


@pytest.mark.slow
def test_the_onnx_runtime_encoder_gives_the_torch_outputs() -> None:
    """On CPU the image encoder runs in ONNX Runtime (models/onnx_encoder.py): the same
    embedding and class probabilities as the torch module it was exported from."""
    from mmstream.models.efficientnet_lite import load_efficientnet_lite0
    from mmstream.models.folding import optimise_for_inference
    from mmstream.models.onnx_encoder import OnnxImageEncoder

    encoder = optimise_for_inference(load_efficientnet_lite0())
    onnx = OnnxImageEncoder(encoder)
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = encoder.forward_both(x)
    got = onnx.forward_both(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(want[0], got[0], atol=1e-4)
    assert torch.allclose(torch.softmax(want[1], -1), torch.softmax(got[1], -1), atol=1e-5)
    assert plan_for("auto", cuda_available=False).onnx_image
    assert not plan_for("auto", image_runtime="torch", cuda_available=False).onnx_image
    assert not plan_for("cpu", "bf16").onnx_image  # autocast is torch's
    with pytest.raises(ModelError, match="onnx runs on CPU"):
        plan_for("auto", image_runtime="onnx", cuda_available=True)


def test_keep_freed_memory_is_applied_on_glibc() -> None:
    import platform

    from mmstream.models.speedups import keep_freed_memory

    assert keep_freed_memory() is (platform.libc_ver()[0] == "glibc")
