"""What the store keeps of one event: the columns queries filter on, and its envelope."""

from __future__ import annotations

from typing import NamedTuple

from mmstream.events import (
    EmotionEvent,
    Event,
    FusedEvent,
    ModalityContribution,
    SceneEvent,
    Tag,
    TranscriptEvent,
    encode,
    event_type,
)
from mmstream.media import is_wall_clock

PERSON_TAGS = frozenset({"person", "face", "people"})


class EventRow(NamedTuple):  # a tuple: made for every event, ~10x cheaper than a dataclass
    t: float
    t_start: float
    t_end: float
    device: str
    stream: str
    type: str
    seq: int
    final: int | None
    text: str | None
    emotion: str | None
    valence: float | None
    person: int | None
    media_t: float
    body: bytes
    tags: tuple[str, ...] = ()
    source: str | None = None  # the recording that covers it (media_t: the offset into it)


def _labels(tags: list[Tag]) -> tuple[str, ...]:
    """Tag labels once each, in order (one or two tags a window: a loop beats dict.fromkeys)."""
    labels: list[str] = []
    for tag in tags:
        if tag.label not in labels:
            labels.append(tag.label)
    return tuple(labels)


def _face_seen(contributions: list[ModalityContribution]) -> bool:
    return any(c.modality == "face" and c.present for c in contributions)


def event_row(event: Event, anchor: float, window_s: float = 2.0) -> EventRow:
    """The row of one event. `anchor` turns a file's media seconds into epoch seconds (the
    wall time its run started); a live device's capture times are epoch seconds already.
    Scene and emotion events carry only their window's end: `window_s` is its length."""
    base = 0.0 if is_wall_clock(event.t_capture) else anchor
    t = base + event.t_capture
    start, end = t - window_s, t
    final = text = emotion = valence = person = None
    tags: tuple[str, ...] = ()
    if isinstance(event, TranscriptEvent):
        payload = event.payload
        start, end, final = base + payload.start, base + payload.end, int(payload.final)
        text = payload.text if payload.final and payload.text.strip() else None
    elif isinstance(event, SceneEvent):
        tags = _labels(event.payload.tags)
        person = int(bool(PERSON_TAGS.intersection(tags))
                     or _face_seen(event.payload.contributions))
    elif isinstance(event, EmotionEvent):
        emotion, valence = event.payload.label, event.payload.valence
    elif isinstance(event, FusedEvent):
        payload = event.payload
        start, end = base + payload.window_start, base + payload.window_end
        tags = _labels(payload.scene)
        emotion, valence = payload.emotion, payload.valence
        person = int(bool(PERSON_TAGS.intersection(tags)) or _face_seen(payload.contributions))
    return EventRow(t, start, end, event.device_id, event.stream_id, event_type(event),
                    event.seq, final, text, emotion, valence, person, event.t_capture,
                    encode(event), tags)
