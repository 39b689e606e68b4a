"""Synthetic events for the history's tests and benchmark (benchmarks/bench_history.py): a
device's day at any size, with sentences, scene tags and emotions that queries can find."""

from __future__ import annotations

import random
from collections.abc import Iterator

from mmstream.events import (
    Emotion,
    EmotionEvent,
    Event,
    Fused,
    FusedEvent,
    Scene,
    SceneEvent,
    Tag,
    Transcript,
    TranscriptEvent,
)

WORDS = ("package door coffee table kitchen parcel delivery window garden light music dinner "
         "meeting phone keys dog cat children school car rain weather morning evening "
         "doctor letter bread milk garage heating").split()
TAGS = ("person", "dog", "cat", "car", "package", "bicycle", "tv", "cup")
EMOTIONS = ("neutral", "happy", "sad", "angry", "surprise", "fear", "disgust")


def synthetic_events(count: int, *, start: float, streams: int = 4, seed: int = 1,
                     device_id: str = "bench", step_s: float = 1.0) -> Iterator[Event]:
    """`count` events, one window per stream every `step_s` (scene, emotion, fused), a final
    transcript every few windows; epoch times from `start`. A year of a device at a realistic
    size: `step_s` spreads the windows (a device publishes when something happens)."""
    rng = random.Random(seed)
    made, second = 0, 0
    seq: dict[str, int] = {}

    def stamp(stream: str) -> int:
        seq[stream] = seq.get(stream, 0) + 1
        return seq[stream]

    while made < count:
        for n in range(streams):
            stream = f"cam{n}"
            t = start + second * step_s
            tags = [Tag(rng.choice(TAGS), 0.8)] + ([Tag("person", 0.9)] if rng.random() < .3
                                                   else [])
            emotion = rng.choice(EMOTIONS)
            batch: list[Event] = [
                SceneEvent(device_id=device_id, stream_id=stream, t_capture=t,
                           seq=stamp(stream), payload=Scene(tags=tags)),
                EmotionEvent(device_id=device_id, stream_id=stream, t_capture=t,
                             seq=stamp(stream), payload=Emotion(
                                 label=emotion, scores={emotion: 0.7}, valence=0.1)),
                FusedEvent(device_id=device_id, stream_id=stream, t_capture=t,
                           seq=stamp(stream), payload=Fused(
                               window_start=t - 2, window_end=t, scene=tags, emotion=emotion,
                               valence=0.1)),
            ]
            if rng.random() < 0.25:
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10)))
                batch.append(TranscriptEvent(
                    device_id=device_id, stream_id=stream, t_capture=t, seq=stamp(stream),
                    payload=Transcript(final=True, text=text.capitalize() + ".",
                                       start=t - 1.5, end=t - 0.2)))
            yield from batch[: count - made]
            made += len(batch)
            if made >= count:
                return
        second += 1
