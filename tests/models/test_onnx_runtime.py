"""The fused model in ONNX Runtime gives what the torch path gives, model by model and end to
end, on real inputs: the sample's frames, the astronaut's face, real speech and its text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data as skdata

from mmstream.config import FileSourceConfig
from mmstream.events import Transcript
from mmstream.media import AudioChunk, VideoFrame, Window
from mmstream.models import onnx_models
from mmstream.models.efficientnet_lite import load_efficientnet_lite0, preprocess_images
from mmstream.models.face_align import face_crop
from mmstream.models.face_detect import FaceBox
from mmstream.models.folding import optimise_for_inference
from mmstream.models.fused_model import FusedModel, face_embed_and_logits, plan_for
from mmstream.models.fused_onnx import OnnxFusedModel, load_fused_model
from mmstream.models.fused_windows import WindowResult
from mmstream.models.mini_xception import load_mini_xception, preprocess_faces
from mmstream.models.mtcnn import MtcnnDetector
from mmstream.models.mtcnn_nets import TorchMtcnn, load_mtcnn_nets
from mmstream.models.onnx_cache import GraphInputs, load_graphs
from mmstream.replay.setup import sample_clip
from mmstream.sources.media_file import decode_media

SPEECH = Path(__file__).resolve().parents[1] / "data" / "speech"
TOLERANCE = 1e-4


def _sample_frames(count: int = 4) -> list[np.ndarray]:
    items = decode_media(FileSourceConfig(path=sample_clip(), fps=1.0))
    return [item.image for item in items if isinstance(item, VideoFrame)][:count]


def _speech(name: str) -> np.ndarray:
    items = decode_media(FileSourceConfig(path=SPEECH / f"{name}.flac"))
    return np.concatenate([i.samples for i in items if isinstance(i, AudioChunk)])


@pytest.fixture(scope="module")
def graphs() -> dict[str, bytes]:
    return load_graphs(["image", "face", "pnet", "rnet", "onet", "fusion"], GraphInputs())


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    # The sample (320x320), a 640x480 camera frame of it, and a photo with a face (512x512).
    sample = _sample_frames()
    import cv2

    return [*sample, cv2.resize(sample[0], (640, 480)), skdata.astronaut()]


def test_frames_are_prepared_as_torch_prepares_them(frames: list[np.ndarray]) -> None:
    for frame in frames:
        torch_input = preprocess_images(torch.from_numpy(frame[None])).numpy()
        assert np.abs(onnx_models.preprocess_frames([frame]) - torch_input).max() < TOLERANCE


@pytest.mark.slow
def test_image_encoder(graphs: dict[str, bytes], frames: list[np.ndarray]) -> None:
    encoder = optimise_for_inference(load_efficientnet_lite0())
    x = onnx_models.preprocess_frames(frames)
    with torch.inference_mode():
        embed, logits = (t.numpy() for t in encoder.forward_both(torch.from_numpy(x)))
    session = onnx_models.make_session(graphs["image"], threads=2)
    got_embed, got_logits = session.run(None, {"x": x})
    assert np.abs(got_embed - embed).max() < 1e-3 * np.abs(embed).max()
    assert np.abs(got_logits - logits).max() < 1e-3 * np.abs(logits).max()
    assert (got_logits.argmax(1) == logits.argmax(1)).all()


def test_face_detector_and_emotion_net(graphs: dict[str, bytes],
                                       frames: list[np.ndarray]) -> None:
    by_torch = MtcnnDetector(nets=TorchMtcnn(load_mtcnn_nets()))
    by_onnx = MtcnnDetector(nets=onnx_models.OnnxMtcnn(graphs))
    found = 0
    for frame in frames:
        want, got = by_torch.detect(frame), by_onnx.detect(frame)
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            assert max(abs(a.x - b.x), abs(a.y - b.y), abs(a.w - b.w), abs(a.h - b.h)) <= 1
            assert a.probability == pytest.approx(b.probability, abs=TOLERANCE)
        found += len(got)
    assert found >= 1  # the astronaut's face at least
    # mini-Xception on the real face crops, and on a frame's middle as a face-less crop
    faces = [face_crop(frame, box) for frame in frames for box in by_onnx.detect(frame)]
    crops = np.stack([*faces, face_crop(frames[0], FaceBox(96, 96, 128, 128, 1.0))])
    model = load_mini_xception()
    with torch.inference_mode():
        want = [t.numpy() for t in face_embed_and_logits(model, preprocess_faces(crops))]
    session = onnx_models.make_session(graphs["face"], threads=1)
    got = session.run(None, {"x": onnx_models.preprocess_faces(crops)})
    for a, b in zip(got, want, strict=True):
        assert np.abs(a - b).max() < TOLERANCE


def _windows(frames: list[np.ndarray]) -> list[Window]:
    speech = _speech("agent-newlocation")
    said = (Transcript(final=True, text="I am so happy, thank you!", start=0.2, end=1.5,
                       confidence=0.9),)
    windows = [Window("cam", 2.0, 0.0, i, VideoFrame("cam", 2.0, frame), speech[:32000],
                      said if i % 2 else (), has_audio=True) for i, frame in enumerate(frames)]
    windows.append(Window("mic", 2.0, 0.0, 0, None, speech[-32000:], said, has_audio=True))
    return windows


def _close(a: WindowResult, b: WindowResult) -> None:
    assert a.present == b.present
    box, other = a.prepared.face_box, b.prepared.face_box
    assert (box is None) == (other is None)
    if box is not None and other is not None:  # landmarks and probability to float rounding
        assert (box.x, box.y, box.w, box.h) == (other.x, other.y, other.w, other.h)
        assert np.allclose(box.landmarks, other.landmarks, atol=1e-3)
        assert box.score == pytest.approx(other.score, abs=TOLERANCE)
    assert [c for c, _ in a.top_classes] == [c for c, _ in b.top_classes]
    for field in ("emotion", "confidence", "weights", "expert_valence", "scene", "image_tags",
                  "scene_weights", "scene_evidence"):
        mine, theirs = getattr(a, field), getattr(b, field)
        assert mine.keys() == theirs.keys()
        assert all(abs(mine[k] - theirs[k]) < 1e-3 for k in mine), field
    assert a.valence == pytest.approx(b.valence, abs=1e-3)


@pytest.mark.slow
def test_the_whole_model_gives_what_torch_gives(frames: list[np.ndarray]) -> None:
    by_torch = FusedModel(plan_for("cpu", image_runtime="torch"))
    by_onnx = load_fused_model(device="cpu")
    assert isinstance(by_onnx, OnnxFusedModel) and by_onnx.version == by_torch.version
    windows = _windows(frames)
    want = by_torch.forward([by_torch.prepare(w) for w in windows])
    got = by_onnx.forward([by_onnx.prepare(w) for w in windows])
    for a, b in zip(got, want, strict=True):
        _close(a, b)
    assert any(r.present["face"] for r in got) and any(r.present["text"] for r in got)
    assert any(r.present["voice"] for r in got)


def test_settings_that_need_torch_get_torch() -> None:
    assert isinstance(load_fused_model(device="cpu", image_runtime="torch"), FusedModel)
