"""Change gating's carry-over on both runtimes (ONNX Runtime and torch): a carried window
skips face detection, the image encoder and the face net, takes its reference's face and image
results, in the same batch or a later one, and the fusion still runs on its own voice and text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from skimage import data as skdata

from mmstream.config import FileSourceConfig
from mmstream.events import Transcript
from mmstream.media import AudioChunk, VideoFrame, Window
from mmstream.models.fused_onnx import OnnxFusedModel, load_fused_model
from mmstream.models.fused_windows import FusedRunner, WindowResult
from mmstream.sources.media_file import decode_media

pytestmark = pytest.mark.slow
SPEECH = Path(__file__).resolve().parents[1] / "data" / "speech"
HAPPY = (Transcript(final=True, text="I am so happy, thank you!", start=0.2, end=1.5,
                    confidence=0.9),)


class _Counted:
    """Delegates to `inner`, counting the rows its encoder call (`method`) is given."""

    def __init__(self, inner: Any, method: str, rows: list[int], arg: int) -> None:
        self.inner, self.rows = inner, rows

        def call(*args: Any, **kwargs: Any) -> Any:
            rows.append(len(args[arg]) if arg >= 0 else len(next(iter(args[1].values()))))
            return getattr(inner, method)(*args, **kwargs)

        setattr(self, method, call)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _count_encoder_rows(model: FusedRunner) -> list[int]:
    rows: list[int] = []
    if isinstance(model, OnnxFusedModel):
        model.image = _Counted(model.image, "run", rows, -1)  # type: ignore[assignment]
    else:
        model.image_encoder = _Counted(model.image_encoder,  # type: ignore[attr-defined]
                                       "forward_both", rows, 0)
    return rows


def _speech() -> np.ndarray:
    items = decode_media(FileSourceConfig(path=SPEECH / "agent-newlocation.flac"))
    return np.concatenate([i.samples for i in items if isinstance(i, AudioChunk)])


def _window(i: int, frame: np.ndarray, audio: np.ndarray, said: tuple[Transcript, ...]
            ) -> Window:
    t = 2.0 + i
    return Window("cam", t, t - 2.0, i, VideoFrame("cam", t, frame), audio, said,
                  has_audio=True)


def _no_detector() -> Any:
    raise AssertionError("a carried window ran face detection")


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_a_carried_window_reuses_its_references_face_and_image_results(runtime: str) -> None:
    model = load_fused_model(device="cpu", image_runtime="auto" if runtime == "onnx"
                             else "torch")
    assert isinstance(model, OnnxFusedModel) == (runtime == "onnx")
    face, speech = skdata.astronaut(), _speech()
    # counted from the start: ONNX Runtime encodes a fresh frame in `prepare`, beside the
    # face detection; torch in `forward`
    rows = _count_encoder_rows(model)
    reference = model.prepare(_window(0, face, speech[:32000], ()))
    assert reference.face_crop is not None and not reference.carried
    model.detector = _no_detector  # type: ignore[method-assign]
    # the same frame again, in the same batch and in a later one, with other audio and text
    same_batch = model.prepare(_window(1, face.copy(), speech[-32000:], HAPPY), reference)
    later = model.prepare(_window(2, face.copy(), speech[:32000], HAPPY), same_batch)
    assert same_batch.carried and later.carried
    assert same_batch.face_box is reference.face_box and later.face_box is reference.face_box

    first: list[WindowResult] = model.forward([reference, same_batch])
    second = model.forward([later])
    assert rows == [1]  # only the reference's frame went through the image encoder
    assert same_batch.carry_from is None and later.carry_from is None  # sources released
    mine, carried_here, carried_later = first[0], first[1], second[0]
    for result in (carried_here, carried_later):  # the fusion's batch may round differently
        assert result.image_tags == pytest.approx(mine.image_tags, abs=1e-5)
        assert result.top_classes == mine.top_classes and result.top_classes
        assert result.expert_emotion["face"] == pytest.approx(mine.expert_emotion["face"],
                                                              abs=1e-5)
        assert result.present["image"] and result.present["face"]
    # its own voice and text went through the fusion afresh
    assert carried_here.present["text"] and not mine.present["text"]
    assert carried_here.expert_emotion["voice"] != mine.expert_emotion["voice"]
    assert carried_later.expert_emotion["voice"] == pytest.approx(
        mine.expert_emotion["voice"], abs=1e-5)  # the same audio as the reference
    assert carried_here.emotion != mine.emotion


def test_carrying_gives_what_analysing_the_same_frame_afresh_gives() -> None:
    model = load_fused_model(device="cpu")
    face, speech = skdata.astronaut(), _speech()
    windows = [_window(0, face, speech[:32000], ()), _window(1, face, speech[-32000:], HAPPY)]
    fresh = model.forward([model.prepare(w) for w in windows])
    reference = model.prepare(windows[0])
    gated = model.forward([reference, model.prepare(windows[1], reference)])
    for a, b in zip(gated, fresh, strict=True):
        assert [c for c, _ in a.top_classes] == [c for c, _ in b.top_classes]
        for field in ("emotion", "scene", "image_tags", "weights"):
            mine, theirs = getattr(a, field), getattr(b, field)
            assert all(abs(mine[k] - theirs[k]) < 1e-4 for k in mine), field
