"""`mmstream train`: labelled windows -> a fusion checkpoint that run/replay load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from mmstream.errors import ConfigError
from mmstream.events import decode
from mmstream.models.fused_model import FusedModel, plan_for
from mmstream.models.labels import load_scene_vocabulary
from mmstream.training import cut_windows, read_labels

TAGS = load_scene_vocabulary().tags


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def labelled(tmp_path: Path, sample_clip: Path) -> Path:
    shutil.copy(sample_clip, tmp_path / "clip.mp4")
    rows = [{"media": "clip.mp4", "start": s, "end": s + 2, "emotion": "surprise",
             "valence": -0.3, "scene": ["person", "kitchen"]} for s in range(6)]
    rows.append({"media": "clip.mp4", "start": 0, "end": 2, "emotion": "surprise",
                 "text": "oh wow I did not expect that"})
    return _write(tmp_path / "labels.jsonl", ["# my kitchen, labelled by hand", *rows])


@pytest.mark.slow
def test_train_writes_a_checkpoint_that_replay_uses(cli: Any, labelled: Path,
                                                    sample_clip: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "fusion.pt"
    result = cli("train", str(labelled), "--out", str(ckpt), "--epochs", "60")
    assert result.returncode == 0, result.stderr
    assert "training on 7 labelled windows" in result.stderr
    version = result.stdout.strip().rsplit("fusion:", 1)[1].rstrip(")")
    out = tmp_path / "events.jsonl"
    result = cli("replay", str(sample_clip), "--out", str(out), "--set",
                 f"stages.infer.checkpoint={ckpt}", "--set", "stages.transcribe.enabled=0")
    assert result.returncode == 0, result.stderr
    events = [decode(line) for line in out.read_text().splitlines()]
    fused = [e for e in events if type(e).__struct_config__.tag == "fused"]
    assert fused and all(e.payload.model.endswith(f"fusion:{version}") for e in fused)
    # Untrained, she is happy; fine-tuned on "surprise" + "kitchen", the model says so.
    assert sum(e.payload.emotion == "surprise" for e in fused) > len(fused) / 2
    assert all("kitchen" in [t.label for t in e.payload.scene] for e in fused)


@pytest.mark.slow
def test_training_moves_the_model_towards_the_labels(labelled: Path, tmp_path: Path) -> None:
    from mmstream.training import train_fusion

    model = FusedModel(plan_for("cpu"))
    labels = read_labels(labelled, model.fusion.tags)
    prepared = [model.prepare(w) for w in cut_windows(labels)]
    before = model.forward(prepared)
    report = train_fusion(model, labels, tmp_path / "f.pt", epochs=40)
    after = model.forward(prepared)
    assert report.loss_after < report.loss_before / 2
    assert report.emotion_accuracy_before == 0.0 and report.emotion_accuracy_after == 1.0
    assert all(a.emotion["surprise"] > b.emotion["surprise"] + 0.3
               for a, b in zip(after, before, strict=True))
    reloaded = FusedModel(plan_for("cpu"), checkpoint=str(tmp_path / "f.pt"))
    again = reloaded.forward(prepared)
    assert all(abs(a.emotion["surprise"] - b.emotion["surprise"]) < 1e-5
               for a, b in zip(again, after, strict=True))


@pytest.mark.parametrize(("row", "message"), [
    ('{"media": "clip.mp4", "start": 0, "end": 2, "emotion": "joy"}', "unknown emotion 'joy'"),
    ('{"media": "missing.mp4", "start": 0, "end": 2, "emotion": "sad"}', "media file not found"),
    ('{"media": "clip.mp4", "start": 3, "end": 2, "emotion": "sad"}', "end > start"),
    ('{"media": "clip.mp4", "start": 0, "end": 2, "scene": ["unicorn"]}', "not in the vocab"),
    ('{"media": "clip.mp4", "start": 0, "end": 2}', "labels nothing"),
    ('{"media": "clip.mp4", "start": 0, "end": 2, "mood": "sad"}', "unknown keys"),
    ('{"media": "clip.mp4", "start": 0, ', "not valid JSON"),
])
def test_bad_labels_name_the_line(tmp_path: Path, sample_clip: Path, row: str,
                                  message: str) -> None:
    shutil.copy(sample_clip, tmp_path / "clip.mp4")
    good = '{"media": "clip.mp4", "start": 0, "end": 2, "emotion": "sad"}'
    path = _write(tmp_path / "labels.jsonl", [good, row])
    with pytest.raises(ConfigError, match=f"labels.jsonl:2: .*{message}"):
        read_labels(path, TAGS)


def test_train_cli_reports_bad_labels_in_one_line(cli: Any, tmp_path: Path) -> None:
    path = _write(tmp_path / "labels.jsonl", ['{"start": 0}'])
    result = cli("train", str(path), "--out", str(tmp_path / "x.pt"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {path}:1: 'media' (path of the media file) is required")
    assert not (tmp_path / "x.pt").exists()
