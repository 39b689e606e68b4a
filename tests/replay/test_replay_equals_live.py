"""A recording of a real-time run, replayed as fast as possible, gives what the live run
published: the same transcripts, the same windows with the same labels and scores."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from mmstream.events import EmotionEvent, Event, FusedEvent, SceneEvent, TranscriptEvent, decode

pytestmark = pytest.mark.slow
SCORE_TOLERANCE = 0.002  # lossless recording: only the batches' composition differs


def events_of(path: Path) -> list[Event]:
    return [decode(line) for line in path.read_bytes().splitlines()]


def transcripts(events: list[Event]) -> list[tuple[float, bool, str, float, float]]:
    return [(e.t_capture, e.payload.final, e.payload.text, e.payload.start, e.payload.end)
            for e in events if isinstance(e, TranscriptEvent)]


def dropped(stderr: str, reason: str) -> int:
    """What the run's `done:` line counts for a drop reason (summed over streams)."""
    return sum(int(n) for n in re.findall(rf"{reason}\S* (\d+)", stderr))


def by_window(events: list[Event], kind: type) -> dict[float, Any]:
    return {e.t_capture: e.payload for e in events if isinstance(e, kind)}


def test_a_fast_replay_of_a_realtime_recording_gives_the_live_events(
        cli: Any, sample_clip: Path, tmp_path: Path) -> None:
    rec, live_out, fast_out = (tmp_path / name for name in ("r.mcap", "live.jsonl", "f.jsonl"))
    live = cli("record", str(sample_clip), "--realtime", "--out", str(rec), "--events",
               str(live_out), "--set", "record.frame_format=png", "--set",
               "record.audio_format=f32")
    assert live.returncode == 0, live.stderr
    fast = cli("replay", str(rec), "--out", str(fast_out))
    assert fast.returncode == 0, fast.stderr
    live_events, fast_events = events_of(live_out), events_of(fast_out)

    # Live, on a loaded CPU, a partial is skipped while whisper is busy with the previous one,
    # and a window goes without the text whisper has not finished: the only ways the live
    # events may differ, and the run counts them. Everything else must be equal.
    skipped = dropped(live.stderr, "partial_skipped")  # busy or slow (the live cadence)
    late = dropped(live.stderr, "text_not_waited_for")
    said_live, said_fast = transcripts(live_events), transcripts(fast_events)
    assert set(said_live) <= set(said_fast)
    extra = set(said_fast) - set(said_live)
    assert all(not final for _, final, *_ in extra) and len(extra) <= skipped
    assert [t for t in said_live if t[1]] == [t for t in said_fast if t[1]]  # every final
    assert any("kitchen camera" in text for _, _, text, *_ in said_live)

    for kind in (SceneEvent, EmotionEvent, FusedEvent):
        assert by_window(live_events, kind).keys() == by_window(fast_events, kind).keys()
    live_fused, fast_fused = by_window(live_events, FusedEvent), by_window(fast_events, FusedEvent)
    same_text = [t for t in live_fused if live_fused[t].transcript == fast_fused[t].transcript]
    extra_texts = {text for _, _, text, *_ in extra}
    for t in set(live_fused) - set(same_text):  # each difference has its counted cause
        assert late or any(text in fast_fused[t].transcript for text in extra_texts), t
    assert len(live_fused) >= 7  # one window a second over the 8 s clip
    for t in same_text:
        a, b = live_fused[t], fast_fused[t]
        assert a.emotion == b.emotion
        assert [tag.label for tag in a.scene] == [tag.label for tag in b.scene]
        assert a.valence == pytest.approx(b.valence, abs=SCORE_TOLERANCE)
        scene_a = by_window(live_events, SceneEvent)[t]
        scene_b = by_window(fast_events, SceneEvent)[t]
        for x, y in zip(scene_a.tags, scene_b.tags, strict=True):
            assert x.score == pytest.approx(y.score, abs=SCORE_TOLERANCE)
        emotion_a = by_window(live_events, EmotionEvent)[t]
        emotion_b = by_window(fast_events, EmotionEvent)[t]
        for label, score in emotion_a.scores.items():
            assert score == pytest.approx(emotion_b.scores[label], abs=SCORE_TOLERANCE)
