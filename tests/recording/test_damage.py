"""Damaged recordings: cut at random offsets, SIGKILLed mid-write, corrupt chunks, not MCAP."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcap.reader import make_reader

from mmstream.errors import DAMAGED_INPUT_EXIT, SourceError
from mmstream.events import StatusEvent
from mmstream.media import VideoFrame
from mmstream.recording.info import inspect_recording
from tests.conftest import REPO, wait_until
from tests.recording.recording_helpers import (
    IMAGE_FORMAT_SETS,
    inputs_only,
    record_synthetic,
    replay_items,
)

CHUNK_KB = 16


@pytest.fixture(scope="module")
def full_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "full.mcap"
    record_synthetic(path, duration_s=3.0, chunk_kb=CHUNK_KB)
    return path


def chunk_spans(path: Path) -> list[tuple[int, int]]:
    with path.open("rb") as file:
        summary = make_reader(file).get_summary()
    assert summary is not None
    return [(c.chunk_start_offset, c.chunk_start_offset + c.chunk_length)
            for c in summary.chunk_indexes]


def status_of(items: list[Any]) -> StatusEvent:
    (status,) = [item for item in items if isinstance(item, StatusEvent)]
    return status


def test_cut_at_random_offsets_replays_every_complete_chunk(full_recording: Path,
                                                            tmp_path: Path) -> None:
    data = full_recording.read_bytes()
    full = inputs_only(replay_items(full_recording)[0])
    spans = chunk_spans(full_recording)
    assert len(spans) >= 4, "the test needs several chunks"
    cuts = sorted(random.Random(7).sample(range(spans[0][1] + 1, spans[-1][1]), 5))
    previous = 0
    for cut in cuts:
        path = tmp_path / f"cut{cut}.mcap"
        path.write_bytes(data[:cut])
        items, _ = replay_items(path)
        got = inputs_only(items)
        complete_chunks = sum(end <= cut for _, end in spans)
        status = status_of(items)
        assert status.payload.state == "degraded" and "cut short" in status.payload.message
        details = status.payload.details
        assert details["complete_chunks"] >= min(complete_chunks, len(spans))
        assert details["stopped_at_byte"] <= cut and details["file_size"] == cut
        assert 0 < len(got) <= len(full) and len(got) >= previous
        for g, w in zip(got, full, strict=False):  # a prefix, byte for byte the same
            assert (g.stream_id, g.t_capture) == (w.stream_id, w.t_capture)
        previous = len(got)


def test_cut_before_the_first_chunk_is_a_clear_error(full_recording: Path,
                                                     tmp_path: Path) -> None:
    first_chunk_end = chunk_spans(full_recording)[0][1]
    for cut in (8, 40, first_chunk_end - 1):
        path = tmp_path / f"cut{cut}.mcap"
        path.write_bytes(full_recording.read_bytes()[:cut])
        with pytest.raises(SourceError, match=rf"no video or audio .* at byte \d+ of {cut}"):
            replay_items(path)


def test_corrupt_chunk_stops_there_and_keeps_what_came_before(full_recording: Path,
                                                              tmp_path: Path) -> None:
    data = bytearray(full_recording.read_bytes())
    spans = chunk_spans(full_recording)
    start, end = spans[2]
    data[(start + end) // 2] ^= 0xFF
    path = tmp_path / "flipped.mcap"
    path.write_bytes(bytes(data))
    items, _ = replay_items(path)
    status = status_of(items)
    assert status.payload.details["stopped_at_byte"] == start
    assert "chunk record" in status.payload.message
    assert status.payload.details["complete_chunks"] == 2
    info = inspect_recording(path)
    assert not info.complete and f"at byte {start}" in info.stopped


def test_random_bytes_named_mcap_give_a_clear_error(cli: Any, tmp_path: Path) -> None:
    noise = tmp_path / "noise.mcap"
    noise.write_bytes(random.Random(3).randbytes(4096))
    for command in (["replay", str(noise)], ["info", str(noise)]):
        result = cli(*command, timeout=60)
        assert result.returncode == 1
        assert result.stderr.strip() == (f"error: {noise}: not an MCAP recording (the file does "
                                          "not start with the MCAP magic bytes)")
    magic_then_noise = tmp_path / "magic.mcap"
    magic_then_noise.write_bytes(b"\x89MCAP0\r\n" + random.Random(4).randbytes(4096))
    with pytest.raises(SourceError, match="no video or audio to replay"):
        replay_items(magic_then_noise)


def test_recording_sigkilled_mid_write_is_readable(cli: Any, tmp_path: Path) -> None:
    pipeline = tmp_path / "live.yaml"
    pipeline.write_text(yaml.safe_dump({
        "device_id": "killed", "sources": [{"kind": "synthetic", "id": "cam0", "duration_s": 120,
                                            "fps": 10, "realtime": True}]}))
    out = tmp_path / "killed.mcap"
    process = subprocess.Popen(
        [sys.executable, "-m", "mmstream", "record", str(pipeline), "--out", str(out),
         "--no-analysis", "--set", "record.flush_interval_s=0.2", "--set", "record.chunk_kb=64",
         *IMAGE_FORMAT_SETS],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: _has_chunks(out, 3), 60, "three complete chunks on disk")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    items, _ = replay_items(out)
    frames = [i for i in inputs_only(items) if isinstance(i, VideoFrame)]
    assert len(frames) >= 3
    assert [f.index for f in frames] == list(range(len(frames))), "no gaps before the cut"
    assert "ends before its summary" in status_of(items).payload.message
    shown = cli("info", str(out), "--json", timeout=60)
    assert shown.returncode == DAMAGED_INPUT_EXIT, shown.stderr
    report = json.loads(shown.stdout)
    assert report["complete"] is False and report["chunks"] >= 3
    assert {c["topic"]: c["messages"] for c in report["channels"]}["/cam0/video"] == len(frames)


def _has_chunks(path: Path, count: int) -> bool:
    if not path.exists() or os.path.getsize(path) == 0:
        return False
    try:
        return inspect_recording(path).chunks >= count
    except SourceError:
        return False
