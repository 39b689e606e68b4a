"""Change gating with the real models, through the real CLI: a still clip with one moment of
movement is analysed afresh at that moment and carries results elsewhere, with the labels a run
without gating gives; a replay of a live run carries the same windows; a camera that moves all
the time is never carried; the torch path (`image_runtime: torch`) carries as ONNX Runtime
(the default on a CPU) does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mmstream.events import EmotionEvent, Event, FusedEvent, SceneEvent, decode
from tests.stages.still_clips import still_clip

pytestmark = pytest.mark.slow
NO_SPEECH = ("--set", "stages.transcribe.enabled=false")
GATE_OFF = ("--set", "stages.infer.change_gate.enabled=false")
# 4 s still, 3 s of the sample moving, 4 s still again; windows end at 2, 3, ... 10, 10.5 s
PARTS = (("still", 4.0), ("moving", 3.0), ("still", 4.0))
FRESH = [2.0, 5.0, 6.0, 7.0]  # the first; frames 5 and 6 s in move; at 7 s the still is back
CARRIED = [3.0, 4.0, 8.0, 9.0, 10.0, 10.5]
SCORE_TOLERANCE = 0.002  # as tests/replay/test_replay_equals_live.py: batches differ live


@pytest.fixture(scope="module")
def still(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return still_clip(tmp_path_factory.mktemp("gate") / "still.mp4", PARTS)


def replay(cli: Any, clip: Path, out: Path, *args: str) -> tuple[list[Event], str]:
    done = cli("replay", str(clip), "--out", str(out), *NO_SPEECH, *args)
    assert done.returncode == 0, done.stderr
    return [decode(line) for line in out.read_bytes().splitlines()], done.stderr


def by_window(events: list[Event], kind: type) -> dict[float, Any]:
    return {e.t_capture: e.payload for e in events if isinstance(e, kind)}


def carried_windows(events: list[Event]) -> list[float]:
    return sorted(t for t, p in by_window(events, FusedEvent).items() if p.carried)


def test_a_still_clip_is_analysed_at_its_movement_and_carried_elsewhere(
        cli: Any, still: Path, tmp_path: Path) -> None:
    gated, said = replay(cli, still, tmp_path / "gated.jsonl")
    every, _ = replay(cli, still, tmp_path / "every.jsonl", *GATE_OFF)
    fused = by_window(gated, FusedEvent)
    assert sorted(fused) == sorted(FRESH + CARRIED)
    assert carried_windows(gated) == CARRIED and not carried_windows(every)
    for kind in (SceneEvent, EmotionEvent):  # every event of a window says the same
        assert sorted(t for t, p in by_window(gated, kind).items() if p.carried) == CARRIED
    assert "; 6 carried over (frame unchanged" in said and "0 dropped" in said

    # A carried window says what its reference (the last fresh window before it) said: no
    # audio here, so the image and face results are all there is.
    scenes, emotions = by_window(gated, SceneEvent), by_window(gated, EmotionEvent)
    for t in CARRIED:
        reference = max(f for f in FRESH if f < t)
        assert scenes[t].tags == scenes[reference].tags
        assert scenes[t].top_classes == scenes[reference].top_classes
        assert emotions[t].scores == emotions[reference].scores
        assert fused[t].contributions == fused[reference].contributions

    # Gating changes no label: analysing every window afresh gives the same tags and emotions.
    all_scenes, all_emotions = by_window(every, SceneEvent), by_window(every, EmotionEvent)
    assert all_scenes.keys() == scenes.keys()
    for t in scenes:
        assert [tag.label for tag in scenes[t].tags] == [tag.label for tag in all_scenes[t].tags]
        assert emotions[t].label == all_emotions[t].label


def test_a_replay_of_a_live_run_carries_the_same_windows(
        cli: Any, still: Path, tmp_path: Path) -> None:
    rec, live_out = tmp_path / "live.mcap", tmp_path / "live.jsonl"
    live = cli("record", str(still), "--realtime", "--out", str(rec), "--events", str(live_out),
               "--set", "record.frame_format=png", *NO_SPEECH)
    assert live.returncode == 0, live.stderr
    live_events = [decode(line) for line in live_out.read_bytes().splitlines()]
    fast_events, _ = replay(cli, rec, tmp_path / "fast.jsonl")
    assert carried_windows(live_events) == carried_windows(fast_events) == CARRIED
    for kind in (SceneEvent, EmotionEvent, FusedEvent):
        live_kind, fast_kind = by_window(live_events, kind), by_window(fast_events, kind)
        assert live_kind.keys() == fast_kind.keys()
        for t, payload in live_kind.items():
            assert payload.carried == fast_kind[t].carried
    live_scenes, fast_scenes = by_window(live_events, SceneEvent), by_window(fast_events,
                                                                             SceneEvent)
    live_emotions = by_window(live_events, EmotionEvent)
    fast_emotions = by_window(fast_events, EmotionEvent)
    for t in live_scenes:
        assert [x.label for x in live_scenes[t].tags] == [y.label for y in fast_scenes[t].tags]
        for x, y in zip(live_scenes[t].tags, fast_scenes[t].tags, strict=True):
            assert x.score == pytest.approx(y.score, abs=SCORE_TOLERANCE)
        assert live_emotions[t].label == fast_emotions[t].label


def test_a_camera_that_moves_all_the_time_is_never_carried(
        cli: Any, sample_clip: Path, tmp_path: Path) -> None:
    events, said = replay(cli, sample_clip, tmp_path / "sample.jsonl")
    fused = by_window(events, FusedEvent)
    # The video ends at 8.1 s, the audio at 8.192 s: the last, short window sees the very frame
    # the window before it analysed, and only it carries. Every other window moved.
    assert len(fused) >= 8 and carried_windows(events) == [max(fused)] == [8.192]
    assert [t for e in events if isinstance(e, SceneEvent | EmotionEvent | FusedEvent)
            and e.payload.carried for t in [e.t_capture]] == [8.192] * 3
    assert "; 1 carried over (frame unchanged" in said


def test_the_torch_path_carries_the_same_windows_as_onnx_runtime(
        cli: Any, still: Path, tmp_path: Path) -> None:
    by_onnx, _ = replay(cli, still, tmp_path / "onnx.jsonl")  # the default on a CPU
    by_torch, _ = replay(cli, still, tmp_path / "torch.jsonl",
                         "--set", "stages.infer.image_runtime=torch")
    assert carried_windows(by_torch) == carried_windows(by_onnx) == CARRIED
    for kind in (SceneEvent, EmotionEvent):
        onnx_kind, torch_kind = by_window(by_onnx, kind), by_window(by_torch, kind)
        assert onnx_kind.keys() == torch_kind.keys()
        for t, payload in torch_kind.items():
            assert payload.carried == onnx_kind[t].carried
    torch_scenes, onnx_scenes = by_window(by_torch, SceneEvent), by_window(by_onnx, SceneEvent)
    for t in torch_scenes:
        assert [x.label for x in torch_scenes[t].tags] == [y.label for y in onnx_scenes[t].tags]
        for x, y in zip(torch_scenes[t].tags, onnx_scenes[t].tags, strict=True):
            assert x.score == pytest.approx(y.score, abs=SCORE_TOLERANCE)
    torch_emotions = by_window(by_torch, EmotionEvent)
    onnx_emotions = by_window(by_onnx, EmotionEvent)
    assert all(torch_emotions[t].label == onnx_emotions[t].label for t in torch_emotions)
