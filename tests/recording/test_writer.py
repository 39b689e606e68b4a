"""`recording.writer`: rotation keeps every message, each file complete on its own, and a
rebuilt pipeline never overwrites the recording so far."""

from __future__ import annotations

from pathlib import Path

from mmstream.recording.info import inspect_recording
from tests.recording.recording_helpers import record_synthetic


def test_rotation_by_size_and_time_keeps_every_message(tmp_path: Path) -> None:
    record_synthetic(tmp_path / "size.mcap", duration_s=3.0, chunk_kb=16, rotate_mb=0.005,
                     frame_format="png")
    record_synthetic(tmp_path / "time.mcap", duration_s=3.0, rotate_s=1.0)
    for stem, least in (("size", 3), ("time", 3)):
        files = sorted(tmp_path.glob(f"{stem}*.mcap"))
        assert len(files) >= least, files
        assert [f.name for f in files[:2]] == [f"{stem}-000.mcap", f"{stem}-001.mcap"]
        total = 0
        for file in files:
            info = inspect_recording(file)
            assert info.complete, file
            total += sum(c.messages for c in info.channels)
        assert total == 45  # 15 frames + 30 chunks, each in exactly one file
    spans = [inspect_recording(f).duration_s for f in sorted(tmp_path.glob("time*.mcap"))]
    assert max(spans) < 1.0


def test_a_rebuilt_pipeline_continues_in_a_new_file(tmp_path: Path) -> None:
    """A SIGHUP reload builds the pipeline again: the recording so far must survive."""
    path = tmp_path / "live.mcap"
    record_synthetic(path, streams=("first",), duration_s=0.5)
    record_synthetic(path, streams=("second",), duration_s=0.5)
    assert {c.stream_id for c in inspect_recording(path).channels} == {"first"}
    reloaded = tmp_path / "live-001.mcap"
    assert {c.stream_id for c in inspect_recording(reloaded).channels} == {"second"}
