"""A window's analysis as events: what the fused model said becomes `scene`, `emotion` and
`fused` payloads (and, live, the analysed frame for sinks that show a picture).

- `scene` (when the window has a frame): fused tag scores ≥ `scene_threshold`, top k, and the
  raw ImageNet classes behind them;
- `emotion` (when a face, a voice or text is present — never guessed from nothing): label,
  7 scores, valence, confidence;
- `fused`: the window's combined result; absent modalities are listed as such.

Each says `carried: true` when the window's frame did not change since the last analysed one
and its image and face results were carried over (stages/change_gate.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mmstream.config import InferConfig
from mmstream.events import Emotion as EmotionPayload
from mmstream.events import (
    EmotionEvent,
    Envelope,
    Fused,
    FusedEvent,
    ModalityContribution,
    Scene,
    SceneEvent,
    Tag,
)
from mmstream.media import AnalysedFrame, FaceMark
from mmstream.models.fused_windows import MODALITIES, WindowResult

EMOTION_SOURCES = ("face", "voice", "text")


def _r(value: float) -> float:
    return round(float(value), 4)


class WindowEvents:
    """Turns one WindowResult into its events, with the stage's publishing settings."""

    def __init__(self, config: InferConfig, model_version: str) -> None:
        self.config, self.version = config, model_version

    def events_for(self, result: WindowResult) -> list[Envelope]:
        window = result.prepared.window
        stream, t = window.stream_id, window.t_capture
        events: list[Envelope] = []
        scene = self._scene(result) if result.present["image"] else None
        if scene is not None:
            events.append(SceneEvent(stream_id=stream, t_capture=t, payload=scene))
        emotion = self._emotion(result) if self._has_emotion(result) else None
        if emotion is not None:
            events.append(EmotionEvent(stream_id=stream, t_capture=t, payload=emotion))
        events.append(FusedEvent(stream_id=stream, t_capture=t, payload=self._fused(
            result, scene, emotion)))
        return events

    @staticmethod
    def _has_emotion(result: WindowResult) -> bool:
        return any(result.present[m] for m in EMOTION_SOURCES)

    def _tags(self, scores: dict[str, float]) -> list[Tag]:
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [Tag(name, _r(score)) for name, score in ranked[: self.config.scene_top_k]
                if score >= self.config.scene_threshold]

    def _scene(self, result: WindowResult) -> Scene:
        image_tags = self._tags(result.image_tags)
        contributions = [ModalityContribution(
            modality="image", present=True, weight=_r(result.scene_weights["image"]),
            confidence=_r(max(result.image_tags.values(), default=0.0)),
            label=image_tags[0].label if image_tags else None,
            scores={t.label: t.score for t in image_tags})]
        face = result.present["face"]
        contributions.append(ModalityContribution(
            modality="face", present=face, weight=_r(result.scene_weights["face"]),
            confidence=_r(result.confidence["face"]), label="person" if face else None,
            scores={"person": _r(result.face_person)} if face else {}))
        return Scene(tags=self._tags(result.scene), model=self.version,
                     top_classes=[Tag(n, _r(s)) for n, s in result.top_classes],
                     contributions=contributions, carried=result.prepared.carried)

    def _emotion(self, result: WindowResult) -> EmotionPayload:
        scores = {k: _r(v) for k, v in result.emotion.items()}
        label = max(scores, key=lambda k: (scores[k], k))
        # Overall confidence: the top probability, discounted by how sure the sources were.
        doubt = math.prod(1.0 - result.confidence[m] for m in EMOTION_SOURCES
                          if result.present[m])
        return EmotionPayload(label=label, scores=scores, valence=_r(result.valence),
                              confidence=_r(max(result.emotion.values()) * (1.0 - doubt)),
                              contributions=self._emotion_contributions(result),
                              model=self.version, carried=result.prepared.carried)

    @staticmethod
    def _emotion_contributions(result: WindowResult) -> list[ModalityContribution]:
        found = []
        for m in EMOTION_SOURCES:
            present = result.present[m]
            own = result.expert_emotion[m]
            found.append(ModalityContribution(
                modality=m, present=present, weight=_r(result.weights[m]) if present else 0.0,
                confidence=_r(result.confidence[m]) if present else 0.0,
                label=max(own, key=lambda k: (own[k], k)) if present else None,
                scores={k: _r(v) for k, v in own.items()} if present else {}))
        return found

    def _fused(self, result: WindowResult, scene: Scene | None,
               emotion: EmotionPayload | None) -> Fused:
        window = result.prepared.window
        contributions = list(emotion.contributions) if emotion is not None else [
            ModalityContribution(modality=m, present=False) for m in EMOTION_SOURCES]
        image = scene.contributions[0] if scene is not None else ModalityContribution(
            modality="image", present=False)
        return Fused(
            window_start=window.t_start, window_end=window.t_capture,
            scene=scene.tags if scene is not None else [],
            emotion=emotion.label if emotion is not None else None,
            valence=emotion.valence if emotion is not None else None,
            transcript=window.text,
            modalities=[m for m in MODALITIES if result.present[m]],
            model=self.version,
            contributions=[image, *contributions],
            emotion_confidence=emotion.confidence if emotion is not None else 0.0,
            carried=result.prepared.carried,
        )


def analysed_frame(result: WindowResult, events: Sequence[Envelope]) -> AnalysedFrame:
    """The window's frame with what its analysis found on it (see media.AnalysedFrame)."""
    window, face = result.prepared.window, result.prepared.face_box
    assert window.frame is not None
    faces = (FaceMark(face.x, face.y, face.w, face.h, tuple(face.landmarks or ())),) if face else ()
    scene = next((e.payload for e in events if isinstance(e, SceneEvent)), None)
    emotion = next((e.payload for e in events if isinstance(e, EmotionEvent)), None)
    return AnalysedFrame(
        window.stream_id, window.t_capture, window.frame.image, window.frame.t_capture, faces,
        tuple((t.label, t.score) for t in scene.tags) if scene else (),
        emotion.label if emotion else None, emotion.valence if emotion else None)
