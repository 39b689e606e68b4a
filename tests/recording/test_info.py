"""`recording.info`: what a complete recording holds (damaged ones: test_damage.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmstream.recording.info import inspect_recording
from tests.recording.recording_helpers import record_synthetic


def test_info_counts_streams_and_events(tmp_path: Path) -> None:
    path = tmp_path / "rec.mcap"
    record_synthetic(path, streams=("camA", "camB"), duration_s=1.5)
    info = inspect_recording(path)
    counts = {c.topic: c.messages for c in info.channels}
    assert counts == {"/camA/audio": 15, "/camA/video": 7, "/camB/audio": 15, "/camB/video": 7}
    assert info.complete and not info.stopped
    assert info.duration_s == pytest.approx(1.4)
    assert info.metadata["mmstream.recording"]["device_id"] == "test"
