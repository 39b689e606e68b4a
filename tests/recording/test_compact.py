"""Compact recordings (the default): H.264 video of the analysed frames, AAC audio.

Chunks come back with their capture times and lengths, frames with their indices, each file
starts with a keyframe, a replay may start mid-GOP, and a replay of the sample clip's compact
recording gives the live run's sentences, tags and labels (scores within docs/replay.md's
tolerance)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmstream.media import AudioChunk, VideoFrame
from mmstream.recording import format as fmt
from mmstream.recording.info import inspect_recording
from mmstream.recording.reader import RecordingReader
from tests.conftest import SAMPLE_SENTENCES, words_of
from tests.recording.recording_helpers import inputs_only, record_synthetic, replay_items

COMPACT = {"frame_format": "h264", "audio_format": "aac"}
TAG_SCORE_TOLERANCE = 0.01  # docs/replay.md, "Compact recordings"
EMOTION_SCORE_TOLERANCE = 0.25


def _split(items: list[Any]) -> tuple[list[VideoFrame], list[AudioChunk]]:
    inputs = inputs_only(items)
    return ([i for i in inputs if isinstance(i, VideoFrame)],
            [i for i in inputs if isinstance(i, AudioChunk)])


def _video_messages(path: Path) -> list[fmt.CompressedVideo]:
    with RecordingReader(path) as reader:
        return [fmt.video_decoder.decode(m.data) for m in reader.messages(kinds=("video",))]


def test_every_frame_and_chunk_comes_back_close(tmp_path: Path) -> None:
    exact, compact = tmp_path / "exact.mcap", tmp_path / "compact.mcap"
    record_synthetic(exact, duration_s=3.0, frame_format="png", audio_format="f32")
    record_synthetic(compact, duration_s=3.0, video="all", **COMPACT)
    want_frames, want_audio = _split(replay_items(exact)[0])
    got_frames, got_audio = _split(replay_items(compact)[0])
    assert [(f.t_capture, f.index) for f in got_frames] == [
        (f.t_capture, f.index) for f in want_frames]
    assert all(np.abs(g.image.astype(int) - w.image.astype(int)).mean() < 6
               for g, w in zip(got_frames, want_frames, strict=True))
    assert [(c.t_capture, len(c.samples)) for c in got_audio] == [
        (c.t_capture, len(c.samples)) for c in want_audio]
    heard = np.concatenate([c.samples for c in got_audio])
    said = np.concatenate([c.samples for c in want_audio])
    assert np.corrcoef(heard, said)[0, 1] > 0.95
    channels = {c.kind: c for c in inspect_recording(compact).channels}
    assert (channels["video"].schema, channels["video"].detail) == (fmt.VIDEO_SCHEMA, "h264")
    assert channels["audio"].schema == fmt.AAC_SCHEMA
    assert channels["audio"].detail.startswith("aac")
    assert channels["video"].bytes_per_hour > 0 and channels["audio"].bytes_per_hour > 0


def test_keyframes_at_least_every_two_seconds(tmp_path: Path) -> None:
    path = tmp_path / "keys.mcap"
    record_synthetic(path, duration_s=5.0, video="all", **COMPACT)
    keys = [m.t_capture for m in _video_messages(path) if m.keyframe]
    assert keys[0] == 0.0
    assert all(b - a <= 2.0 + 1e-9 for a, b in itertools.pairwise(keys))
    assert len(keys) >= 3


def test_analysed_keeps_the_frame_each_window_uses(tmp_path: Path) -> None:
    every, analysed = tmp_path / "every.mcap", tmp_path / "analysed.mcap"
    record_synthetic(every, duration_s=4.0, video="all", **COMPACT)
    record_synthetic(analysed, duration_s=4.0, video="analysed", **COMPACT)  # hop 1 s, length 2 s
    frames = [f.t_capture for f in _split(replay_items(every)[0])[0]]

    def window_end(t: float) -> int:
        return math.ceil(t - 2.0 - 1e-6)

    want = [t for n, t in enumerate(frames) if n in (0, len(frames) - 1)
            or window_end(frames[n + 1]) > window_end(t)]
    assert [m.t_capture for m in _video_messages(analysed)] == want
    assert [f.t_capture for f in _split(replay_items(analysed)[0])[0]] == want


def test_each_rotated_file_starts_with_a_keyframe_and_replays_alone(tmp_path: Path) -> None:
    path = tmp_path / "rot.mcap"
    record_synthetic(path, duration_s=3.5, video="all", rotate_s=1.0, **COMPACT)
    files = sorted(tmp_path.glob("rot-*.mcap"))
    assert len(files) >= 3
    for file in files:
        messages = _video_messages(file)
        assert messages[0].keyframe, file
        frames, audio = _split(replay_items(file)[0])
        assert [f.index for f in frames] == [m.index for m in messages]
        assert audio


def test_a_replay_starting_mid_gop_decodes_from_the_keyframe_before(tmp_path: Path) -> None:
    path = tmp_path / "mid.mcap"
    record_synthetic(path, duration_s=3.0, video="all", **COMPACT)
    frames, audio = _split(replay_items(path, start_s=1.3)[0])
    assert 1.3 <= frames[0].t_capture < 1.5  # 5 fps
    assert [f.index for f in frames] == list(range(frames[0].index, frames[-1].index + 1))
    assert audio[0].t_capture >= 1.3 - 1e-9


def _labels(path: Path) -> dict[tuple[str, float], dict[str, Any]]:
    found = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event["type"] in ("scene", "emotion"):
            found[(event["type"], event["t_capture"])] = event["payload"]
    return found


@pytest.mark.slow
def test_a_compact_recording_of_the_sample_replays_like_the_clip(cli: Any, sample_clip: Path,
                                                                  tmp_path: Path) -> None:
    rec, live, replayed = tmp_path / "rec.mcap", tmp_path / "live.jsonl", tmp_path / "r.jsonl"
    made = cli("record", str(sample_clip), "--out", str(rec), "--events", str(live))
    assert made.returncode == 0, made.stderr
    result = cli("replay", str(rec), "--out", str(replayed))
    assert result.returncode == 0, result.stderr
    finals = [e["payload"]["text"] for e in map(json.loads, replayed.read_text().splitlines())
              if e["type"] == "transcript" and e["payload"]["final"]]
    assert [words_of(t) for t in finals] == [words_of(s) for s in SAMPLE_SENTENCES]
    want, got = _labels(live), _labels(replayed)
    assert sorted(got) == sorted(want) and len(got) >= 8
    for key, payload in want.items():
        if key[0] == "scene":
            assert [t["label"] for t in got[key]["tags"]] == [t["label"] for t in
                                                             payload["tags"]] == ["person"]
            assert all(abs(a["score"] - b["score"]) <= TAG_SCORE_TOLERANCE
                       for a, b in zip(got[key]["tags"], payload["tags"], strict=True))
        else:
            assert got[key]["label"] == payload["label"]
            assert all(abs(got[key]["scores"][k] - v) <= EMOTION_SCORE_TOLERANCE
                       for k, v in payload["scores"].items())
