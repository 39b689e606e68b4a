"""The recording source: streams merged in time order, stream and time selection, paced
replays shed like live input (by the run policy), bad options named."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmstream.config import validate_pipeline
from mmstream.errors import ConfigError
from mmstream.media import EndOfStream, VideoFrame
from mmstream.runtime.pipeline import Pipeline
from mmstream.sources.recording import RecordingSource
from tests.recording.recording_helpers import inputs_only, record_synthetic, replay_items


def test_two_streams_replay_merged_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "rec.mcap"
    record_synthetic(path, streams=("camA", "camB"), duration_s=1.0)
    items, source = replay_items(path)
    got = inputs_only(items)
    times = [item.t_capture for item in got]
    assert times == sorted(times) and {i.stream_id for i in got} == {"camA", "camB"}
    ends = [i for i in items if isinstance(i, EndOfStream)]
    assert len(ends) == 1 and {ends[0].stream_id, source.stream_id} == {"camA", "camB"}, (
        "one end marker from the source, the other from the runner")
    only_b, _ = replay_items(path, streams=["camB"])
    assert {i.stream_id for i in inputs_only(only_b)} == {"camB"}
    cut, _ = replay_items(path, start_s=0.3, end_s=0.6)
    assert {round(i.t_capture, 3) for i in inputs_only(cut)} == {0.3, 0.4, 0.5}


def test_replayed_frames_are_frames_and_the_run_policy_decides_whether_they_are_shed(
        tmp_path: Path) -> None:
    rec = tmp_path / "r.mcap"
    record_synthetic(rec, duration_s=0.4)
    for options, sheds in (({}, False), ({"speed": 20.0}, True)):  # fast, paced
        frames = [i for i in inputs_only(replay_items(rec, **options)[0])
                  if isinstance(i, VideoFrame)]
        assert frames and all(type(f) is VideoFrame and f.droppable for f in frames)
        config = validate_pipeline({"sources": [{"kind": "recording", "path": str(rec),
                                                 **options}]})
        pipeline = Pipeline([RecordingSource(config.sources[0])], [], [],  # type: ignore[arg-type]
                            device_id="t", policy=config.policy)
        assert [channel.sheds for channel in pipeline.channels] == [sheds]


def test_a_bad_time_range_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"sources\.0\.recording\.end_s"):
        validate_pipeline({"sources": [{"kind": "recording", "path": "r.mcap", "end_s": -1}]})
