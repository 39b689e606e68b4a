"""End to end: replaying the sample clip gives scene, emotion and fused events, deterministically;
four cameras share forward passes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mmstream.build import build_pipeline
from mmstream.config import load_pipeline
from mmstream.events import EMOTIONS, Event, decode
from mmstream.runtime.stage import Sink
from mmstream.stages.infer import InferStage

REPO = Path(__file__).resolve().parents[2]


class Keep(Sink):
    name = "keep"

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def send(self, event: Event) -> None:
        self.events.append(event)


def _events(path: Path) -> list[Any]:
    return [decode(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_replay_of_the_sample_gives_scene_emotion_and_fused_events(
        cli: Any, sample_clip: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (first, second):
        result = cli("replay", str(sample_clip), "--out", str(out))
        assert result.returncode == 0, result.stderr
    assert first.read_bytes() == second.read_bytes()  # same file -> same events, byte for byte
    events = _events(first)
    by_type: dict[str, list[Any]] = {}
    for event in events:
        by_type.setdefault(type(event).__struct_config__.tag, []).append(event)
    assert {"transcript", "scene", "emotion", "fused"} <= set(by_type)
    scene, emotion, fused = by_type["scene"], by_type["emotion"], by_type["fused"]
    assert len(fused) >= 6 and len(scene) == len(fused)  # one per window, every window has video
    assert all(s.payload.tags[0].label == "person" for s in scene)  # the astronaut's face
    assert all(s.payload.model.startswith("mmstream-fused/1") for s in scene)
    face = [c for e in emotion for c in e.payload.contributions if c.modality == "face"]
    assert face and all(c.present and c.label for c in face)
    labels = [e.payload.label for e in emotion]
    assert labels.count("happy") > len(labels) / 2  # she smiles and says she is happy
    for e in emotion:
        assert set(e.payload.scores) == set(EMOTIONS)
        assert abs(sum(e.payload.scores.values()) - 1) < 1e-3
        weights = [c.weight for c in e.payload.contributions if c.present]
        assert abs(sum(weights) - 1) < 1e-3
    spoken = [f for f in fused if "happy" in f.payload.transcript]
    assert spoken and all("text" in f.payload.modalities for f in spoken)
    text = next(c for c in next(e for e in emotion if e.t_capture == spoken[0].t_capture)
                .payload.contributions if c.modality == "text")
    assert text.present and text.label == "happy" and text.weight > 0
    # Events of a window carry the window's end as capture time, in stream order.
    assert [f.t_capture for f in fused] == sorted(f.t_capture for f in fused)
    assert all(f.payload.window_end == f.t_capture for f in fused)


@pytest.mark.slow
def test_silent_video_without_faces_publishes_no_emotion(cli: Any, tmp_path: Path) -> None:
    import subprocess

    clip = tmp_path / "grey.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=c=gray:s=160x120:r=5:d=3", "-f", "lavfi", "-i",
                    "anullsrc=r=16000:cl=mono", "-t", "3", "-shortest", str(clip)], check=True)
    out = tmp_path / "grey.jsonl"
    result = cli("replay", str(clip), "--out", str(out), "--set", "stages.transcribe.enabled=0")
    assert result.returncode == 0, result.stderr
    events = _events(out)
    fused = [e for e in events if type(e).__struct_config__.tag == "fused"]
    assert fused and not [e for e in events if type(e).__struct_config__.tag == "emotion"]
    for event in fused:
        assert event.payload.emotion is None and event.payload.valence is None
        assert event.payload.modalities == ["image"]  # no face, no voice, no words
        assert not [c for c in event.payload.contributions if c.modality != "image"
                    and c.present]
        assert event.payload.scene == []


@pytest.mark.slow
async def test_four_cameras_are_batched_together() -> None:
    config = load_pipeline(REPO / "pipelines" / "multi-camera.yaml",
                           sets=["sinks.jsonl=null", "runtime.overload.enabled=false"])
    keep = Keep()
    pipeline = build_pipeline(config, extra_sinks=[keep])
    infer = next(s for s in pipeline.stages if isinstance(s, InferStage))
    report = await pipeline.run()
    assert report.events["scene"] >= 4 * 5
    streams = {e.stream_id for e in keep.events if type(e).__struct_config__.tag == "fused"}
    assert streams == {"cam0", "cam1", "cam2", "cam3"}
    assert infer.batcher is not None
    sizes = infer.batcher.batch_sizes
    assert max(sizes) >= 3, sizes  # windows of several cameras in one forward pass
    assert sum(n * c for n, c in sizes.items()) == report.events["fused"]


def test_multi_camera_pipeline_file_is_valid() -> None:
    config = load_pipeline(REPO / "pipelines" / "multi-camera.yaml")
    assert len(config.sources) >= 4 and all(s.kind == "camera" for s in config.sources)
    assert all(Path(str(s.url)).is_file() for s in config.sources)  # relative to the file
    assert config.stages.infer.max_batch >= 4
    assert json.loads(json.dumps(config.model_dump(mode="json")))["device_id"] == "multicam"
