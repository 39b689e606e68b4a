"""One readable line per event, for the demo and for subscribers watching a terminal."""

from __future__ import annotations

from mmstream.events import (
    EmotionEvent,
    Event,
    FusedEvent,
    SceneEvent,
    StatusEvent,
    TranscriptEvent,
    event_type,
)


def _tags(tags: list, limit: int = 4) -> str:
    return ", ".join(f"{t.label} {t.score:.2f}" for t in tags[:limit]) or "-"


def describe(event: Event) -> str:
    head = f"{event.t_capture:8.2f}s {event.device_id}/{event.stream_id} #{event.seq:<4} "
    kind = event_type(event)
    match event:
        case TranscriptEvent(payload=p):
            state = "final  " if p.final else "partial"
            return f"{head}{kind} {state} [{p.start:.1f}-{p.end:.1f}] \"{p.text}\""
        case SceneEvent(payload=p):
            return f"{head}{kind} {_tags(p.tags)}"
        case EmotionEvent(payload=p):
            present = [c.modality for c in p.contributions if c.present]
            return (f"{head}{kind} {p.label} ({p.scores.get(p.label, 0):.2f}) "
                    f"valence {p.valence:+.2f} from {'+'.join(present) or 'nothing'}")
        case FusedEvent(payload=p):
            return (f"{head}{kind} [{p.window_start:.1f}-{p.window_end:.1f}] scene: "
                    f"{_tags(p.scene, 3)}; emotion: {p.emotion or '-'}")
        case StatusEvent(payload=p):
            return f"{head}{kind} {p.state} {p.message}"
    return f"{head}{kind}"
