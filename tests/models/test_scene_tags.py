"""Published scene tags of real photos: the real weights, the bundled vocabulary and thresholds,
and the stage's own publishing (`InferStage.events_for` with default settings)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata

from mmstream.config import LIVE, FileSourceConfig, InferConfig
from mmstream.events import SceneEvent
from mmstream.media import VideoFrame, Window
from mmstream.models.fused_model import FusedModel, WindowResult, plan_for
from mmstream.sources.media_file import decode_media
from mmstream.stages.infer import InferStage


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(image[..., None], 3, axis=2) if image.ndim == 2
                                else image)


PHOTOS = {
    "astronaut": skdata.astronaut(),
    "cameraman": _rgb(skdata.camera()),
    "cat": skdata.chelsea(),
    "coffee": skdata.coffee(),
    "motorcycle": skdata.stereo_motorcycle()[0],
    # The launch pad photo framed on the rocket (its middle 427 px square), as a camera would.
    "rocket": np.ascontiguousarray(skdata.rocket()[:, 106:533]),
    "grey": np.full((480, 640, 3), 128, np.uint8),
}


Published = dict[str, dict[str, float]]


def _window(image: np.ndarray) -> Window:
    return Window("cam", 1.0, 0.0, 0, VideoFrame("cam", 1.0, image), np.zeros(0, np.float32),
                  (), has_audio=False)


def _published(stage: InferStage, result: WindowResult) -> dict[str, float]:
    scene = next(e.payload for e in stage.events_for(result) if isinstance(e, SceneEvent))
    return {t.label: t.score for t in scene.tags}


@pytest.fixture(scope="module", params=["mtcnn", "haar"])
def published(request: pytest.FixtureRequest) -> Published:
    """Photo name → published {tag: score}, with either face detector."""
    model = FusedModel(plan_for("cpu"), face_detector=request.param)
    stage = InferStage(InferConfig(face_detector=request.param), policy=LIVE, model=model)
    return {name: _published(stage, model.forward([model.prepare(_window(image))])[0])
            for name, image in PHOTOS.items()}


@pytest.mark.slow
def test_the_astronaut_is_a_person_not_a_vehicle(published: Published) -> None:
    astronaut = published["astronaut"]
    assert "person" in astronaut and astronaut["person"] >= 0.5
    assert not {"vehicle", "sports", "aircraft"} & set(astronaut)


@pytest.mark.slow
def test_animals_drinks_and_vehicles(published: Published) -> None:
    assert {"cat", "animal"} <= set(published["cat"])
    assert "drink" in published["coffee"]
    assert {"vehicle", "motorcycle"} <= set(published["motorcycle"])
    assert "bicycle" not in published["motorcycle"]
    assert "rocket" in published["rocket"] and "aircraft" not in published["rocket"]
    assert published["grey"] == {}


@pytest.mark.slow
def test_every_published_score_clears_the_calibrated_threshold(published: Published) -> None:
    scores = [s for tags in published.values() for s in tags.values()]
    assert scores and min(scores) >= InferConfig().scene_threshold


@pytest.mark.slow
def test_a_half_hidden_face_is_a_person_with_the_default_detector() -> None:
    """The photographer behind his camera: MTCNN (the default) finds his face."""
    model = FusedModel(plan_for("cpu"))
    stage = InferStage(InferConfig(), policy=LIVE, model=model)
    result = model.forward([model.prepare(_window(PHOTOS["cameraman"]))])[0]
    assert result.present["face"]
    assert "person" in _published(stage, result)


@pytest.mark.slow
def test_the_demo_clip_is_tagged_person_and_nothing_else(sample_clip: Path) -> None:
    """What a new user sees first: the astronaut portrait, zoomed and compressed to 320 px,
    where ImageNet's top guess is "bobsled" at 50-60%."""
    model = FusedModel(plan_for("cpu"))
    stage = InferStage(InferConfig(), policy=LIVE, model=model)
    frames = [item.image for item in decode_media(FileSourceConfig(path=str(sample_clip),
                                                                   audio=False, fps=2.0))
              if isinstance(item, VideoFrame)]
    assert len(frames) >= 10
    results = model.forward([model.prepare(_window(frame)) for frame in frames])
    assert [set(_published(stage, r)) for r in results] == [{"person"}] * len(frames)
