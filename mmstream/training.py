"""Fine-tune the fusion (gates, projections, heads, voice/text calibration) on labelled windows.

The encoders stay frozen: every labelled window is cut from its media file, prepared and
encoded once, then only `FusionModel` is trained on the cached expert outputs, which takes
seconds on a CPU. The label format (JSON Lines, one window per line) is documented in
docs/models.md:

    {"media": "clips/kitchen.mp4", "start": 12.0, "end": 14.0,
     "emotion": "happy", "valence": 0.6, "scene": ["person", "kitchen"],
     "text": "what was said in the window (optional)"}

`media` is relative to the labels file; `emotion`, `valence` and `scene` are each optional
(a window teaches only what it is labelled with); `scene` lists the tags present, every other
vocabulary tag counts as absent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmstream.config import FileSourceConfig
from mmstream.errors import ConfigError
from mmstream.events import EMOTIONS, Transcript
from mmstream.media import AUDIO_RATE, AudioChunk, VideoFrame, Window
from mmstream.models.fused_model import FusedModel
from mmstream.models.fusion import FusionInputs, FusionModel, save_checkpoint

LABEL_KEYS = {"media", "start", "end", "emotion", "valence", "scene", "text", "stream"}
FRAME_RATE = 5.0  # frames decoded per second of media when cutting windows


@dataclass(frozen=True)
class Label:
    media: Path
    start: float
    end: float
    emotion: str | None = None
    valence: float | None = None
    scene: tuple[str, ...] | None = None
    text: str = ""
    line: int = 0


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")


def _label(record: Any, folder: Path, where: str, tags: list[str], line: int) -> Label:
    if not isinstance(record, dict):
        raise _fail(where, "each line must be a JSON object")
    unknown = set(record) - LABEL_KEYS
    if unknown:
        raise _fail(where, f"unknown keys {sorted(unknown)} (known: {sorted(LABEL_KEYS)})")
    if not isinstance(record.get("media"), str):
        raise _fail(where, "'media' (path of the media file) is required")
    media = Path(record["media"]).expanduser()
    media = media if media.is_absolute() else folder / media
    if not media.is_file():
        raise _fail(where, f"media file not found: {media}")
    start, end = record.get("start"), record.get("end")
    if not isinstance(start, int | float) or not isinstance(end, int | float) or end <= start:
        raise _fail(where, "'start' and 'end' must be numbers (seconds) with end > start")
    emotion = record.get("emotion")
    if emotion is not None and emotion not in EMOTIONS:
        raise _fail(where, f"unknown emotion {emotion!r} (one of {', '.join(EMOTIONS)})")
    valence = record.get("valence")
    if valence is not None and (not isinstance(valence, int | float) or abs(valence) > 1):
        raise _fail(where, "'valence' must be a number in [-1, 1]")
    scene = record.get("scene")
    if scene is not None:
        if not isinstance(scene, list) or not all(isinstance(t, str) for t in scene):
            raise _fail(where, "'scene' must be a list of tag names")
        missing = [t for t in scene if t not in tags]
        if missing:
            raise _fail(where, f"scene tags {missing} are not in the vocabulary")
    if emotion is None and valence is None and scene is None:
        raise _fail(where, "labels nothing: give at least one of emotion, valence, scene")
    return Label(media, float(start), float(end), emotion,
                 None if valence is None else float(valence),
                 None if scene is None else tuple(scene), str(record.get("text") or ""), line)


def read_labels(path: Path, tags: list[str]) -> list[Label]:
    """Parse and check a labels file; errors name the file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read labels file {path}: {exc.strerror}") from None
    labels = []
    for number, text in enumerate(lines, 1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _fail(where, f"not valid JSON ({exc.msg})") from None
        labels.append(_label(record, path.parent, where, tags, number))
    if not labels:
        raise ConfigError(f"{path}: no labelled windows")
    return labels


def cut_windows(labels: list[Label]) -> list[Window]:
    """Decode each media file once and cut the labelled windows out of it."""
    from mmstream.sources.media_file import decode_media

    windows: list[Window | None] = [None] * len(labels)
    for media in sorted({label.media for label in labels}):
        items = list(decode_media(FileSourceConfig(path=media, fps=FRAME_RATE)))
        frames = [i for i in items if isinstance(i, VideoFrame)]
        chunks = [i for i in items if isinstance(i, AudioChunk)]
        audio = np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, "f4")
        t0 = chunks[0].t_capture if chunks else 0.0
        for i, label in enumerate(labels):
            if label.media != media:
                continue
            frame = next((f for f in reversed(frames) if f.t_capture <= label.end), None)
            lo = max(0, round((label.start - t0) * AUDIO_RATE))
            clip = audio[lo: max(lo, round((label.end - t0) * AUDIO_RATE))]
            said = (Transcript(final=True, text=label.text, start=label.start, end=label.end),
                    ) if label.text else ()
            windows[i] = Window("train", label.end, label.start, i, frame, clip, said,
                                has_audio=bool(chunks))
    return [w for w in windows if w is not None]


@dataclass
class TrainReport:
    windows: int
    epochs: int
    loss_before: float
    loss_after: float
    emotion_accuracy_before: float | None
    emotion_accuracy_after: float | None
    version: str = ""
    history: list[float] = field(default_factory=list)


def _targets(labels: list[Label], tags: list[str]) -> dict[str, torch.Tensor]:
    emotion = torch.tensor([EMOTIONS.index(x.emotion) if x.emotion else -1 for x in labels])
    valence = torch.tensor([x.valence if x.valence is not None else math.nan for x in labels])
    scene = torch.full((len(labels), len(tags)), math.nan)
    for row, label in enumerate(labels):
        if label.scene is not None:
            scene[row] = torch.tensor([float(t in label.scene) for t in tags])
    return {"emotion": emotion, "valence": valence, "scene": scene}


def fusion_loss(model: FusionModel, inputs: FusionInputs, targets: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, float | None]:
    """Emotion cross-entropy + valence MSE + scene BCE over the labelled, observable rows."""
    out = model(inputs)
    has_emotion = out.expert_mask.any(dim=1)
    terms = []
    rows = (targets["emotion"] >= 0) & has_emotion
    accuracy = None
    if rows.any():
        log_p = out.emotion_probs[rows].clamp_min(1e-6).log()
        terms.append(F.nll_loss(log_p, targets["emotion"][rows]))
        accuracy = float((log_p.argmax(-1) == targets["emotion"][rows]).float().mean())
    rows = ~targets["valence"].isnan() & has_emotion
    if rows.any():
        terms.append(F.mse_loss(out.valence[rows], targets["valence"][rows]))
    scene_known = ~targets["scene"].isnan() & inputs.image_mask[:, None]
    if scene_known.any():
        terms.append(F.binary_cross_entropy(out.scene_scores[scene_known].clamp(1e-6, 1 - 1e-6),
                                            targets["scene"][scene_known]))
    if not terms:
        raise ConfigError("no labelled window has the modality its label needs "
                          "(emotion needs a face, a voice or text; scene needs a frame)")
    return torch.stack(terms).sum(), accuracy


def train_fusion(model: FusedModel, labels: list[Label], out: Path, *, epochs: int = 100,
                 lr: float = 0.01, seed: int = 0,
                 progress: Callable[[int, float], None] | None = None) -> TrainReport:
    """Fit `model.fusion` to the labels and write the checkpoint to `out`."""
    torch.manual_seed(seed)
    windows = cut_windows(labels)
    prepared = [model.prepare(w) for w in windows]
    with torch.inference_mode():
        encoded, _ = model.encode(prepared)
    # Inference tensors cannot take part in autograd: copy them out once.
    inputs = FusionInputs(**{k: v.clone() for k, v in vars(encoded).items()}).to("cpu")
    targets = _targets(labels, model.fusion.tags)
    fusion = model.fusion.to("cpu").train()
    optimiser = torch.optim.Adam(fusion.parameters(), lr=lr, weight_decay=1e-4)
    with torch.no_grad():
        before, acc_before = fusion_loss(fusion, inputs, targets)
    history = []
    for epoch in range(epochs):
        optimiser.zero_grad()
        loss, _ = fusion_loss(fusion, inputs, targets)
        loss.backward()
        optimiser.step()
        history.append(float(loss.detach()))
        if progress is not None:
            progress(epoch + 1, history[-1])
    fusion.eval()
    with torch.no_grad():
        after, acc_after = fusion_loss(fusion, inputs, targets)
    report = TrainReport(len(windows), epochs, float(before), float(after), acc_before,
                         acc_after, history=history)
    meta = {"windows": report.windows, "epochs": epochs, "lr": lr, "seed": seed,
            "loss_before": report.loss_before, "loss_after": report.loss_after,
            "labels": sorted({str(x.media.name) for x in labels})}
    report.version = save_checkpoint(fusion, out, meta)
    model.fusion = fusion.to(model.plan.device)
    return report
