"""The public event contract: every message mmstream publishes is one of these.

One msgspec definition serves validation, JSON encoding and the published JSON Schema
(`mmstream schema`, checked in as `mmstream/schema/events.schema.json`). Stages create events
with `seq=0`; the pipeline's sequencer stamps `seq` and `t_publish` just before the sinks, so
`seq` is monotonic per stream in publish order.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

SCHEMA_VERSION = "mmstream.event/1"

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class Word(msgspec.Struct, frozen=True):
    word: str
    start: float
    end: float
    probability: float


class Transcript(msgspec.Struct, frozen=True):
    """Speech recognised in one utterance; partials precede the final of the same utterance."""

    final: bool
    text: str
    start: float
    end: float
    language: str = "en"
    confidence: float = 0.0
    words: list[Word] = []
    stable_text: str = ""  # prefix agreed by consecutive partial passes
    utterance_id: int = 0


class Tag(msgspec.Struct, frozen=True):
    label: str
    score: float


class Scene(msgspec.Struct, frozen=True):
    tags: list[Tag]
    model: str = ""
    top_classes: list[Tag] = []  # raw classifier classes behind the tags
    contributions: list[ModalityContribution] = []  # which modalities gave the tags
    carried: bool = False  # the frame did not change: image and face results carried over


class ModalityContribution(msgspec.Struct, frozen=True):
    """What one modality said and how much it weighed; `present=False` means masked."""

    modality: Literal["face", "voice", "text", "image", "audio"]
    present: bool
    weight: float = 0.0
    confidence: float = 0.0
    label: str | None = None
    scores: dict[str, float] = {}


class Emotion(msgspec.Struct, frozen=True):
    label: str
    scores: dict[str, float]
    valence: float
    confidence: float = 0.0
    contributions: list[ModalityContribution] = []
    model: str = ""
    carried: bool = False  # the face's result carried over from the last analysed frame


class Fused(msgspec.Struct, frozen=True):
    """The combined result of one fusion window."""

    window_start: float
    window_end: float
    scene: list[Tag] = []
    emotion: str | None = None
    valence: float | None = None
    transcript: str = ""
    modalities: list[str] = []
    model: str = ""
    contributions: list[ModalityContribution] = []  # per modality: present, weight, why
    emotion_confidence: float = 0.0
    carried: bool = False  # image and face inputs carried over; voice and text are the window's


class Status(msgspec.Struct, frozen=True):
    state: Literal["online", "degraded", "reconnecting", "error", "offline", "stopped"]
    message: str = ""
    drops: dict[str, int] = {}
    lag_s: float = 0.0
    details: dict[str, Any] = {}


class Envelope(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    schema: str = SCHEMA_VERSION
    device_id: str = ""
    stream_id: str
    seq: int = 0
    t_capture: float
    t_publish: float = 0.0


class TranscriptEvent(Envelope, frozen=True, kw_only=True, tag="transcript"):
    payload: Transcript


class SceneEvent(Envelope, frozen=True, kw_only=True, tag="scene"):
    payload: Scene


class EmotionEvent(Envelope, frozen=True, kw_only=True, tag="emotion"):
    payload: Emotion


class FusedEvent(Envelope, frozen=True, kw_only=True, tag="fused"):
    payload: Fused


class StatusEvent(Envelope, frozen=True, kw_only=True, tag="status"):
    payload: Status


Event = TranscriptEvent | SceneEvent | EmotionEvent | FusedEvent | StatusEvent
EVENT_TYPES: tuple[str, ...] = ("transcript", "scene", "emotion", "fused", "status")

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def event_type(event: Event) -> str:
    return type(event).__struct_config__.tag  # type: ignore[return-value]


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes | str) -> Event:
    """Parse and validate one JSON envelope; raises msgspec.ValidationError with the path."""
    return _decoder.decode(data)


def json_schema() -> dict[str, Any]:
    return msgspec.json.schema(Event)


def stamped(event: Event, *, device_id: str, seq: int, t_publish: float) -> Event:
    return msgspec.structs.replace(event, device_id=device_id, seq=seq, t_publish=t_publish)
