"""`flush_interval_s` bounds what a cut loses in *recorded* time on every path: a media file
recorded as fast as possible (seconds of media in a fraction of a wall second) and a live
pipeline. A cut recording is described and replayed as far as it is readable, and both say
so with a non-zero exit code (errors.DAMAGED_INPUT_EXIT)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from mcap.reader import make_reader

from mmstream.build import build_pipeline
from mmstream.config import validate_pipeline
from mmstream.errors import DAMAGED_INPUT_EXIT
from mmstream.events import StatusEvent, decode
from tests.recording.recording_helpers import NO_ANALYSIS, NO_ANALYSIS_SETS, synthetic_sources

FLUSH_S = 1.0
SLACK_S = 0.5  # a chunk closes with the first message past the interval (2 fps video)


def chunks_of(path: Path) -> list[tuple[int, float, float]]:
    """(end offset, first and last recorded second) of every chunk."""
    with path.open("rb") as file:
        summary = make_reader(file).get_summary()
    assert summary is not None
    return [(c.chunk_start_offset + c.chunk_length, c.message_start_time / 1e9,
             c.message_end_time / 1e9) for c in summary.chunk_indexes]


def test_a_cut_file_recording_loses_at_most_one_flush_interval(cli: Any, sample_clip: Path,
                                                              tmp_path: Path) -> None:
    rec = tmp_path / "talk.mcap"
    made = cli("record", str(sample_clip), "--out", str(rec), "--no-analysis",
               "--set", f"record.flush_interval_s={FLUSH_S}")
    assert made.returncode == 0, made.stderr
    chunks = chunks_of(rec)
    assert len(chunks) >= 6, chunks  # 8 s of media: a chunk per second, not one for all
    assert all(last - first <= FLUSH_S + SLACK_S for _, first, last in chunks), chunks
    data, duration = rec.read_bytes(), chunks[-1][2] - chunks[0][1]
    for fraction in (0.3, 0.5, 0.8):
        cut, size = tmp_path / f"cut{fraction}.mcap", int(len(data) * fraction)
        cut.write_bytes(data[:size])
        info = cli("info", str(cut), "--json", timeout=60)
        assert info.returncode == DAMAGED_INPUT_EXIT, info.stderr
        found = json.loads(info.stdout)
        assert not found["complete"] and "read up to" in found["stopped"]
        # the recording had reached the start of the chunk the cut falls in
        reached = next(first for end, first, _ in chunks if end > size)
        readable = max(c["last_ns"] for c in found["channels"] if c["last_ns"]) / 1e9
        assert readable >= reached - FLUSH_S - SLACK_S, (fraction, readable, reached)
        assert readable >= fraction * duration - 2 * (FLUSH_S + SLACK_S), (fraction, readable)
        text = cli("info", str(cut), timeout=60)
        assert text.returncode == DAMAGED_INPUT_EXIT and "CUT SHORT" in text.stdout

    out = tmp_path / "half.jsonl"
    half = tmp_path / "cut0.5.mcap"
    replayed = cli("replay", str(half), "--out", str(out), *NO_ANALYSIS_SETS)
    assert replayed.returncode == DAMAGED_INPUT_EXIT, replayed.stderr
    assert "damaged input" in replayed.stderr and str(out) in replayed.stderr
    events = [decode(line) for line in out.read_bytes().splitlines()]
    statuses = [e for e in events if isinstance(e, StatusEvent)]
    assert [s.payload.state for s in statuses] == ["degraded"]
    assert "cut short" in statuses[0].payload.message


def test_a_live_recording_closes_a_chunk_every_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "live.mcap"
    config = validate_pipeline({
        "device_id": "test", "sources": synthetic_sources(("cam0",), 3.0, realtime=True),
        "stages": NO_ANALYSIS, "record": {"path": str(path), "flush_interval_s": FLUSH_S}})
    asyncio.run(build_pipeline(config).run())
    chunks = chunks_of(path)
    assert len(chunks) >= 3, chunks
    assert all(last - first <= FLUSH_S + SLACK_S for _, first, last in chunks), chunks
