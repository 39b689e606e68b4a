"""Coalescing: unchanged tags are not republished every frame; changes and heartbeats are."""

from __future__ import annotations

from typing import Any

from mmstream.config.sinks import CoalesceConfig
from mmstream.events import (
    Emotion,
    EmotionEvent,
    Scene,
    SceneEvent,
    Tag,
    Transcript,
    TranscriptEvent,
)
from mmstream.runtime.harness import run_stage
from mmstream.stages.coalesce import CoalesceStage


def scene(t: float, **scores: float) -> SceneEvent:
    return SceneEvent(stream_id="cam0", t_capture=t,
                      payload=Scene(tags=[Tag(label, s) for label, s in scores.items()]))


def emotion(t: float, label: str, valence: float) -> EmotionEvent:
    return EmotionEvent(stream_id="cam0", t_capture=t,
                        payload=Emotion(label=label, scores={label: 1.0}, valence=valence))


async def passed(stage: CoalesceStage, events: list[Any]) -> list[float]:
    return [out.t_capture for out in await run_stage(stage, events)]


async def test_a_30_fps_camera_with_a_steady_scene_publishes_only_heartbeats() -> None:
    stage = CoalesceStage(CoalesceConfig(enabled=True, max_interval_s=10))
    frames = [scene(i / 30, kitchen=0.8 + 0.01 * (i % 3), person=0.6) for i in range(30 * 25)]
    assert await passed(stage, frames) == [0.0, 10.0, 20.0]
    assert stage.coalesced == len(frames) - 3


async def test_changes_pass_once_the_min_interval_is_over() -> None:
    stage = CoalesceStage(CoalesceConfig(enabled=True, min_interval_s=1.0, hysteresis=0.1))
    events = [scene(0.0, kitchen=0.8), scene(0.5, kitchen=0.8, person=0.7),  # too soon
              scene(1.2, kitchen=0.8, person=0.7),  # the change, once allowed
              scene(2.5, kitchen=0.85, person=0.7),  # inside the hysteresis: no news
              scene(3.0, kitchen=0.5, person=0.7)]  # a real move
    assert await passed(stage, events) == [0.0, 1.2, 3.0]


async def test_emotion_changes_and_streams_are_followed_separately() -> None:
    stage = CoalesceStage(CoalesceConfig(enabled=True, min_interval_s=0.0))
    events = [emotion(0, "neutral", 0.0), emotion(0.1, "neutral", 0.05),
              emotion(0.2, "happy", 0.6), scene(0.2, kitchen=0.9), emotion(0.3, "happy", 0.9)]
    assert await passed(stage, events) == [0, 0.2, 0.2, 0.3]


async def test_transcripts_always_pass() -> None:
    stage = CoalesceStage(CoalesceConfig(enabled=True))
    same = [TranscriptEvent(stream_id="mic0", t_capture=t / 10, payload=Transcript(
        final=False, text="hello", start=0, end=1)) for t in range(5)]
    assert len(await passed(stage, same)) == 5
