"""Run-time control of a pipeline: pause/resume analysis and change its frame rate.

`PipelineControl` is a small shared state: the pipeline holds it (observers read it through
their `PipelineView`), the MQTT sink updates it from `<prefix>/<device>/control` (opt-in, only
over an authenticated connection), and `stages/control.py` applies it at the head of the
analysis.

Commands (JSON): {"command": "pause"}, {"command": "resume"},
{"command": "set_fps", "fps": 1.0} ({"fps": null} goes back to every frame).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_FPS = 120.0
MAX_COMMAND_BYTES = 4096  # a command is a few dozen bytes; more is refused before parsing


def _shown(value: Any) -> str:
    """A bit of a bad command for its error message, never the whole of it."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}..."


@dataclass
class PipelineControl:
    paused: bool = False
    fps: float | None = None  # analysed video frames per second; None: all that arrive
    changes: int = field(default=0, compare=False)

    def snapshot(self) -> dict[str, Any]:
        return {"paused": self.paused, "fps": self.fps, "changes": self.changes}

    def apply(self, payload: bytes | str) -> str:
        """Apply one command; returns what changed, raises ValueError for a bad command."""
        if len(payload) > MAX_COMMAND_BYTES:
            raise ValueError(f"{len(payload)} bytes, more than the {MAX_COMMAND_BYTES} a "
                             "command may have")
        try:
            message = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"not JSON: {_shown(payload)}") from None
        except RecursionError:  # [[[[... : deeper than the parser goes
            raise ValueError("not a command: nested too deeply") from None
        if not isinstance(message, dict) or not isinstance(message.get("command"), str):
            raise ValueError('expected {"command": "pause" | "resume" | "set_fps", ...}')
        command = message["command"]
        if command in ("pause", "resume"):
            self.paused = command == "pause"
        elif command == "set_fps":
            self.fps = self._checked_fps(message.get("fps"))
        else:
            raise ValueError(f"unknown command {_shown(command)} (pause, resume, set_fps)")
        self.changes += 1
        return f"{command}: paused={self.paused}, fps={self.fps}"

    @staticmethod
    def _checked_fps(value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"fps must be a number or null, got {_shown(value)}")
        if not 0 < value <= MAX_FPS:
            raise ValueError(f"fps must be in (0, {MAX_FPS:g}], got {value}")
        return float(value)
