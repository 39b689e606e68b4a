"""ControlStage: what the control topic's commands do to the media (see
tests/sinks/mqtt/test_homeassistant_control.py for the topic itself)."""

from __future__ import annotations

import numpy as np
import pytest

from mmstream.media import AudioChunk, EndOfStream, FrameSkipped, VideoFrame
from mmstream.runtime.control import PipelineControl
from mmstream.runtime.harness import StageHarness
from mmstream.stages.control import ControlStage


async def test_control_stage_drops_media_while_paused_and_thins_video() -> None:
    control = PipelineControl()
    stage = ControlStage(control)
    frame = lambda t: VideoFrame("cam0", t, np.zeros((2, 2, 3), np.uint8))  # noqa: E731
    chunk = AudioChunk("cam0", 0.0, np.zeros(160, np.float32))
    async with StageHarness(stage) as harness:
        through = harness.feed
        control.apply(b'{"command": "pause"}')
        assert await through(frame(0.0)) == [] and await through(chunk) == []
        end = EndOfStream("cam0", 1.0)
        assert await through(end) == [end]  # the stream still ends properly
        control.apply(b'{"command": "resume"}')
        control.apply(b'{"command": "set_fps", "fps": 2}')
        passed = [(t, await through(frame(round(float(t), 3)))) for t in np.arange(0, 2, 0.1)]
    kept = [t for t, out in passed if isinstance(out[0], VideoFrame)]
    assert [round(float(t), 1) for t in kept] == [0.0, 0.5, 1.0, 1.5]
    # the others go on as marks that video moved on (windows still close on time)
    assert all(isinstance(out[0], FrameSkipped) for t, out in passed if t not in kept)
    assert stage.drops() == {"paused:VideoFrame": 1, "paused:AudioChunk": 1,
                             "rate:VideoFrame": 16}
    with pytest.raises(ValueError, match="fps must be"):
        control.apply(b'{"command": "set_fps", "fps": -1}')
