"""Pause/resume analysis and change its frame rate at run time.

`PipelineControl` is a small shared state that sources and stages may read; the MQTT sink
updates it from `<prefix>/<device>/control` (opt-in, only over an authenticated connection).
`ControlStage` applies it at the head of the pipeline: while paused, media is dropped (and
counted) instead of analysed; with `fps` set, video frames are thinned to that rate.

Commands (JSON): {"command": "pause"}, {"command": "resume"},
{"command": "set_fps", "fps": 1.0} ({"fps": null} goes back to every frame).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from mmstream.media import AudioChunk, VideoFrame
from mmstream.runtime.stage import Stage

MAX_FPS = 120.0


@dataclass
class PipelineControl:
    paused: bool = False
    fps: float | None = None  # analysed video frames per second; None: all that arrive
    changes: int = field(default=0, compare=False)

    def snapshot(self) -> dict[str, Any]:
        return {"paused": self.paused, "fps": self.fps, "changes": self.changes}

    def apply(self, payload: bytes | str) -> str:
        """Apply one command; returns what changed, raises ValueError for a bad command."""
        try:
            message = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"not JSON: {payload[:80]!r}") from None
        if not isinstance(message, dict) or not isinstance(message.get("command"), str):
            raise ValueError('expected {"command": "pause" | "resume" | "set_fps", ...}')
        command = message["command"]
        if command in ("pause", "resume"):
            self.paused = command == "pause"
        elif command == "set_fps":
            self.fps = self._checked_fps(message.get("fps"))
        else:
            raise ValueError(f"unknown command {command!r} (pause, resume, set_fps)")
        self.changes += 1
        return f"{command}: paused={self.paused}, fps={self.fps}"

    @staticmethod
    def _checked_fps(value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"fps must be a number or null, got {value!r}")
        if not 0 < value <= MAX_FPS:
            raise ValueError(f"fps must be in (0, {MAX_FPS:g}], got {value}")
        return float(value)


class ControlStage(Stage):
    """Drops media while paused and thins video to `control.fps`; everything else passes."""

    name = "control"

    def __init__(self, control: PipelineControl) -> None:
        self.control = control
        self.drops: Counter[str] = Counter()
        self._last_frame: dict[str, float] = {}

    async def process(self, item: Any) -> AsyncIterator[Any]:
        if isinstance(item, VideoFrame | AudioChunk) and self.control.paused:
            self.drops[f"paused:{type(item).__name__}"] += 1
            return
        if isinstance(item, VideoFrame) and self.control.fps is not None:
            last = self._last_frame.get(item.stream_id)
            if last is not None and item.t_capture - last < 1.0 / self.control.fps - 1e-6:
                self.drops["rate:VideoFrame"] += 1
                return
            self._last_frame[item.stream_id] = item.t_capture
        yield item
