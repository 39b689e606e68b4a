"""Applies run-time control at the head of the analysis (runtime/control.py has the state).

While paused, media is dropped (and counted) instead of analysed; with `fps` set, video frames
are thinned to that rate. Everything else passes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from mmstream.media import AudioChunk, FrameSkipped, VideoFrame
from mmstream.runtime.control import PipelineControl
from mmstream.runtime.stage import Item, Stage


class ControlStage(Stage):
    """Drops media while paused and thins video to `control.fps`; everything else passes."""

    name = "control"

    def __init__(self, control: PipelineControl) -> None:
        self.control = control
        self.dropped: Counter[str] = Counter()
        self._last_frame: dict[str, float] = {}

    def drops(self) -> Mapping[str, int]:
        return self.dropped

    async def process(self, item: Item) -> None:
        if isinstance(item, VideoFrame | AudioChunk) and self.control.paused:
            self.dropped[f"paused:{type(item).__name__}"] += 1
            return
        if isinstance(item, VideoFrame) and self.control.fps is not None:
            last = self._last_frame.get(item.stream_id)
            if last is not None and item.t_capture - last < 1.0 / self.control.fps - 1e-6:
                self.dropped["rate:VideoFrame"] += 1
                await self.emit(FrameSkipped(item.stream_id, item.t_capture))
                return
            self._last_frame[item.stream_id] = item.t_capture
        await self.emit(item)
