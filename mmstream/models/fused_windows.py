"""What the fused model takes and gives per window, shared by its two runtimes (torch in
fused_model.py, ONNX Runtime in fused_onnx.py) and free of torch: the per-window CPU work
(`prepare_window`), change gating's carry-over of encoder outputs (`carry_over`) and the
plain-Python result of one row of a batch (`window_result`)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mmstream.events import EMOTIONS
from mmstream.media import Window
from mmstream.models import prosody, text_affect
from mmstream.models.face_align import face_crop
from mmstream.models.face_detect import FaceBox
from mmstream.models.faces import FaceFinder, face_confidence
from mmstream.models.speedups import at_nice, thread_nice

MODEL_NAME = "mmstream-fused/1"
MODALITIES: tuple[str, ...] = ("image", "face", "voice", "text")
EMOTION_MODALITIES: tuple[str, ...] = ("face", "voice", "text")
SCENE_MODALITIES: tuple[str, ...] = ("image", "face", "voice", "text")
FUSION_OUTPUTS: tuple[str, ...] = (
    "emotion_probs", "valence", "emotion_weights", "expert_probs", "expert_valence",
    "expert_conf", "expert_mask", "scene_scores", "image_tag_scores", "scene_weights",
    "face_person", "scene_evidence")


@dataclass
class PreparedWindow:
    """A window after the per-window CPU work, ready to batch.

    A *carried* window (change gating, stages/change_gate.py) reuses the face and the
    encoder outputs of `carry_from`, an earlier window of its stream whose frame looked the
    same; only its voice and text are its own, and the fusion runs on them afresh."""

    window: Window
    frame: np.ndarray | None = None
    face_box: FaceBox | None = None
    face_crop: np.ndarray | None = None
    face_conf: float = 0.0
    voice: prosody.ProsodyFeatures | None = None
    text: text_affect.TextFeatures | None = None
    carried: bool = False
    carry_from: PreparedWindow | None = None  # until encoded; then released
    # set by `carry_over` for windows carried later: image embed + probs, face embed + logits
    # (rows of torch tensors or numpy arrays, as the runtime made them)
    image_outputs: tuple[Any, ...] | None = None
    # the image encoder's outputs (embed, class probabilities), made beside the face
    # detection (ONNX runtime; None: made in `forward`, batched)
    image_encoded: tuple[np.ndarray, np.ndarray] | None = None


@dataclass
class WindowResult:
    """Everything the fused model said about one window (plain Python values)."""

    prepared: PreparedWindow
    emotion: dict[str, float]
    valence: float
    present: dict[str, bool]
    confidence: dict[str, float]
    weights: dict[str, float]  # emotion gate weights of face, voice, text
    expert_emotion: dict[str, dict[str, float]]  # each modality's own distribution
    expert_valence: dict[str, float]
    scene: dict[str, float]  # calibrated fused tag scores: ≥ 0.5 clears the tag's threshold
    image_tags: dict[str, float]  # the same for what the image alone said
    scene_weights: dict[str, float]
    face_person: float
    top_classes: list[tuple[str, float]] = field(default_factory=list)
    scene_evidence: dict[str, float] = field(default_factory=dict)  # before calibration


class FusedRunner(Protocol):
    """What the infer stage needs of a fused model, whichever runtime runs it."""

    modalities: frozenset[str]

    @property
    def version(self) -> str: ...
    @property
    def device_name(self) -> str: ...
    def prepare(self, window: Window, carry_from: PreparedWindow | None = None
                ) -> PreparedWindow: ...
    def forward(self, batch: Sequence[PreparedWindow]) -> list[WindowResult]: ...


class DetectorPerThread:
    """A face finder per thread, made on first use: `prepare` runs in several threads at once
    and a detector keeps state between its calls."""

    def __init__(self, make: Callable[[], FaceFinder]) -> None:
        self._make = make
        self._local = threading.local()

    def __call__(self) -> FaceFinder:
        found = getattr(self._local, "detector", None)
        if found is None:
            found = self._local.detector = self._make()
        return found


def prepare_window(window: Window, modalities: Collection[str],
                   detector: Callable[[], FaceFinder],
                   carry_from: PreparedWindow | None = None, *,
                   alongside: Executor | None = None,
                   encode_image: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None
                   = None) -> PreparedWindow:
    """Face detection and the grey face crop, prosody of the audio, affect of the text.
    `carry_from`: an earlier window of the stream whose face and image outputs this one
    reuses (no face detection here, no encoders in `forward`). With `alongside`, the
    prosody and the image encoder's outputs (`encode_image`) are made on that thread while
    the face is sought: the window is ready sooner when a core is free (capture -> MQTT)."""
    prepared = PreparedWindow(window)
    frame = window.frame.image if window.frame is not None else None
    if frame is not None and "image" in modalities:
        prepared.frame = frame
    voice: Future[prosody.ProsodyFeatures] | None = None
    picture: Future[tuple[np.ndarray, np.ndarray]] | None = None
    if alongside is not None:
        nice = thread_nice()  # the side thread works at the caller's (vision's) priority
        if window.has_audio and "voice" in modalities:
            voice = alongside.submit(at_nice, nice, prosody.prosody_features, window.audio)
        if prepared.frame is not None and carry_from is None and encode_image is not None:
            picture = alongside.submit(at_nice, nice, encode_image, prepared.frame)
    if frame is not None and carry_from is not None:
        prepared.carried, prepared.carry_from = True, carry_from
        prepared.face_box, prepared.face_crop = carry_from.face_box, carry_from.face_crop
        prepared.face_conf = carry_from.face_conf
    elif frame is not None and "face" in modalities:
        faces = detector().detect(frame)
        if faces:  # the largest face speaks for the window
            prepared.face_box = faces[0]
            prepared.face_crop = face_crop(frame, faces[0])
            prepared.face_conf = face_confidence(faces[0])
    if voice is not None:
        prepared.voice = voice.result()
    elif window.has_audio and "voice" in modalities:
        prepared.voice = prosody.prosody_features(window.audio)
    if picture is not None:
        prepared.image_encoded = picture.result()
    if "text" in modalities:
        confidences = [t.confidence for t in window.transcripts if t.confidence > 0]
        asr = float(np.mean(confidences)) if confidences else None
        prepared.text = text_affect.text_features(window.text, asr)
    return prepared


def encoder_rows(batch: Sequence[PreparedWindow]) -> tuple[list[int], list[int]]:
    """The rows the image encoder and the face net run on: carried rows skip both."""
    frames = [i for i, p in enumerate(batch) if p.frame is not None and not p.carried]
    faces = [i for i, p in enumerate(batch) if p.face_crop is not None and not p.carried]
    return frames, faces


def carry_over(batch: Sequence[PreparedWindow], outputs: Sequence[Any],
               keep: Callable[[Any], Any]) -> None:
    """Fresh rows keep their encoder `outputs` (a later window may carry them; `keep` copies
    a row out of its batch: `Tensor.clone` or `np.copy`); carried rows get those of the window
    they carry from, in this batch or an earlier one (a stream's windows reach the model in
    order)."""
    for carried in (False, True):
        for i, p in enumerate(batch):
            if p.frame is None or p.carried != carried:
                continue
            if p.carry_from is not None:
                source = p.carry_from.image_outputs
                assert source is not None, "carried from a window that was never encoded"
                for values, row in zip(outputs, source, strict=True):
                    values[i] = row
                p.carry_from = None  # release the source window (its frame and audio)
            p.image_outputs = tuple(keep(values[i]) for values in outputs)


def window_result(prepared: PreparedWindow, out: Any, i: int, top: list[tuple[str, float]],
                  tags: Sequence[str]) -> WindowResult:
    """Row i of the fusion's outputs (`FUSION_OUTPUTS` as attributes: CPU tensors or numpy
    arrays, both have `tolist`) as plain values."""
    def named(values: Any, names: Sequence[str]) -> dict[str, float]:
        return {k: float(v) for k, v in zip(names, values.tolist(), strict=True)}

    return WindowResult(
        prepared=prepared,
        emotion=named(out.emotion_probs[i], EMOTIONS),
        valence=float(out.valence[i]),
        present={m: bool(v) for m, v in zip(EMOTION_MODALITIES,
                                             out.expert_mask[i].tolist(), strict=True)}
        | {"image": prepared.frame is not None},
        confidence=named(out.expert_conf[i], EMOTION_MODALITIES),
        weights=named(out.emotion_weights[i], EMOTION_MODALITIES),
        expert_emotion={m: named(out.expert_probs[i, j], EMOTIONS)
                        for j, m in enumerate(EMOTION_MODALITIES)},
        expert_valence=named(out.expert_valence[i], EMOTION_MODALITIES),
        scene=named(out.scene_scores[i], tags),
        image_tags=named(out.image_tag_scores[i], tags),
        scene_weights=named(out.scene_weights[i], SCENE_MODALITIES),
        face_person=float(out.face_person[i]),
        top_classes=top,
        scene_evidence=named(out.scene_evidence[i], tags),
    )


def checkpoint_version(path: Path) -> str:
    """A fusion checkpoint's version id: the sha256 prefix of the file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
