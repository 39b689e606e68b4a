"""`mmstream record` / `replay rec.mcap` / `info`: recordings replay to identical events."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mmstream.config import FileSourceConfig
from mmstream.events import TranscriptEvent, decode
from mmstream.sources.media_file import decode_media
from tests.recording.recording_helpers import (
    IMAGE_FORMAT_SETS,
    NO_ANALYSIS_SETS,
    record_synthetic,
)


def events_of(path: Path) -> list[Any]:
    return [decode(line) for line in path.read_bytes().splitlines()]


@pytest.mark.slow
def test_real_media_recording_replays_to_identical_events(cli: Any, sample_clip: Path,
                                                          tmp_path: Path) -> None:
    rec, original = tmp_path / "rec.mcap", tmp_path / "original.jsonl"
    made = cli("record", str(sample_clip), "--out", str(rec), "--events", str(original),
               *IMAGE_FORMAT_SETS)  # every frame, as images: counted against the decode
    assert made.returncode == 0, made.stderr
    info = json.loads(cli("info", str(rec), "--json", timeout=60).stdout)
    assert {"foxglove.CompressedImage", "foxglove.RawAudio", "mmstream.event/1"} <= set(
        info["schemas"])
    counts = {c["topic"]: c["messages"] for c in info["channels"]}
    decoded = Counter(type(item).__name__ for item in decode_media(
        FileSourceConfig(id="sample", path=sample_clip)))
    assert counts["/sample/video"] == decoded["VideoFrame"]
    assert counts["/sample/audio"] == decoded["AudioChunk"]
    written = Counter(type(e).__struct_config__.tag for e in events_of(original))
    assert {t: counts[f"/sample/events/{t}"] for t in written} == dict(written)

    outputs = []
    for run, extra in enumerate(([], ["--deterministic"])):  # the old name of --cpu-fp32
        out = tmp_path / f"replay{run}.jsonl"
        result = cli("replay", str(rec), "--out", str(out), *extra)
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1], "replaying a recording twice gives byte-identical events"
    finals = " ".join(e.payload.text for e in events_of(tmp_path / "replay0.jsonl")
                      if isinstance(e, TranscriptEvent))
    assert "kitchen" in finals.lower() and "coffee" in finals.lower()
    recorded_vs_written = cli("diff", str(rec), str(original), timeout=60)
    assert recorded_vs_written.returncode == 0, recorded_vs_written.stdout


@pytest.mark.slow
def test_two_stream_synthetic_recording_replays_identically(cli: Any, tmp_path: Path) -> None:
    rec = tmp_path / "two.mcap"
    record_synthetic(rec, streams=("camA", "camB"), duration_s=4.0)
    outputs = []
    for run in range(2):
        out = tmp_path / f"run{run}.jsonl"
        result = cli("replay", str(rec), "--out", str(out),
                     "--set", "stages.transcribe.enabled=false")
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    events = events_of(tmp_path / "run0.jsonl")
    for stream in ("camA", "camB"):
        seqs = [e.seq for e in events if e.stream_id == stream]
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 4
        assert {type(e).__struct_config__.tag for e in events if e.stream_id == stream} >= {
            "scene", "fused"}
    assert all(e.t_publish == e.t_capture for e in events), "recording clock, not wall clock"


def test_bad_replay_options_fail_clearly(cli: Any, sample_clip: Path, tmp_path: Path) -> None:
    rec = tmp_path / "two.mcap"
    record_synthetic(rec, streams=("camA", "camB"), duration_s=0.5)
    unknown = cli("replay", str(rec), "--streams", "camA,nope", *NO_ANALYSIS_SETS, timeout=60)
    assert unknown.returncode == 1
    assert f"error: {rec}: no stream nope to replay (recorded: camA, camB)" in unknown.stderr
    media = cli("replay", str(sample_clip), "--speed", "2", timeout=60)
    assert media.returncode == 2 and "work on .mcap recordings" in media.stderr


def test_info_describes_a_recording_in_words(cli: Any, tmp_path: Path) -> None:
    rec = tmp_path / "rec.mcap"
    record_synthetic(rec, streams=("camA",), duration_s=1.0)
    shown = cli("info", str(rec), timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"{rec}: ") and lines[0].endswith(" MB, complete")
    assert "recorded by mmstream" in lines[1] and "on device test" in lines[1]
    assert "schemas: foxglove.CompressedImage, foxglove.RawAudio" in lines
    (video,) = [line for line in lines if line.strip().startswith("/camA/video")]
    assert " 5 msgs" in video and "jpeg" in video and video.endswith("[foxglove.CompressedImage]")
