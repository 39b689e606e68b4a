"""What a replay runs: options reach the recording source, the run mode and the settings
`--cpu-fp32` forces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmstream.build import overload_active
from mmstream.config import RecordingSourceConfig
from mmstream.errors import ConfigError
from mmstream.replay.setup import ReplayOptions, replay_config, replay_source


def test_replay_options_reach_the_recording_source(tmp_path: Path) -> None:
    rec = tmp_path / "r.mcap"
    source = replay_source(rec, ReplayOptions(speed=4.0, start=1.0, end=2.5, streams=("camA",)))
    assert source == RecordingSourceConfig(id="r", path=rec, speed=4.0, start_s=1.0, end_s=2.5,
                                           streams=["camA"])
    assert replay_source(rec, ReplayOptions(realtime=True)).speed == 1.0
    paced = replay_config(rec, options=ReplayOptions(realtime=True))
    assert paced.mode == "paced" and overload_active(paced)
    fast = replay_config(rec, cpu_fp32=True)
    assert fast.mode == "fast" and not overload_active(fast)
    assert fast.stages.infer.device == "cpu" and fast.stages.infer.precision == "fp32"
    expected = "r.mcap: --end (2.0) must be after --start (8.0)"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        replay_source(rec, ReplayOptions(start=8.0, end=2.0))
