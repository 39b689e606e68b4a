"""Coalescing: scene, emotion and fused events whose tags did not change are not republished.

A 30 fps camera would otherwise publish 30 scene events a second saying the same thing. Per
(stream, type), an event goes on when its tags changed — a label appeared or went, or a score
moved by more than `hysteresis` — and at least `min_interval_s` passed since the last one of
that stream and type; an unchanged state is still republished every `max_interval_s`, so a
subscriber that joins late learns it. Time is the events' capture time, so a replay coalesces
the same way every run.

It is a stage at the end of the pipeline, before `seq` is stamped, so subscribers still see
gapless `seq` (a gap always means a lost event). Transcripts and status events always pass.
"""

from __future__ import annotations

from typing import Any

from mmstream.config.sinks import CoalesceConfig
from mmstream.events import EmotionEvent, FusedEvent, SceneEvent, Tag, event_type
from mmstream.runtime.stage import Item, Stage

Signature = dict[str, float]  # label -> score: what "the same tags" compares


def _tag_scores(tags: list[Tag], min_score: float) -> Signature:
    return {tag.label: tag.score for tag in tags if tag.score >= min_score}


def signature(event: Any, min_score: float = 0.0) -> Signature | None:
    """What must change for the event to be news; None for events that always pass."""
    if isinstance(event, SceneEvent):
        return _tag_scores(event.payload.tags, min_score)
    if isinstance(event, EmotionEvent):
        return {f"emotion:{event.payload.label}": 1.0, "valence": event.payload.valence}
    if isinstance(event, FusedEvent):
        scores = _tag_scores(event.payload.scene, min_score)
        if event.payload.emotion is not None:
            scores[f"emotion:{event.payload.emotion}"] = 1.0
        if event.payload.valence is not None:
            scores["valence"] = event.payload.valence
        return scores
    return None


def changed(before: Signature, after: Signature, hysteresis: float) -> bool:
    if before.keys() != after.keys():
        return True
    return any(abs(after[key] - before[key]) > hysteresis for key in after)


class CoalesceStage(Stage):
    name = "coalesce"

    def __init__(self, config: CoalesceConfig) -> None:
        self.config = config
        self.coalesced = 0  # events held back because nothing changed (not drops)
        self._last: dict[tuple[str, str], tuple[float, Signature]] = {}

    async def process(self, item: Item) -> None:
        if self.should_publish(item):
            await self.emit(item)
        else:
            self.coalesced += 1

    def should_publish(self, item: Item) -> bool:
        cfg = self.config
        current = signature(item, cfg.min_score)
        if current is None:
            return True
        key = (item.stream_id, event_type(item))
        last = self._last.get(key)
        if last is not None:
            since = item.t_capture - last[0]
            if since < cfg.max_interval_s:
                if not changed(last[1], current, cfg.hysteresis) or since < cfg.min_interval_s:
                    return False
        self._last[key] = (item.t_capture, current)
        return True
