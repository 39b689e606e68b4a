"""The live view's model: what the page shows, owned by the daemon across reloads.

`LiveView` keeps the streams' state (state.py) and the health panel (health.py), hands each
pipeline run a sink that feeds them (sink.py), and makes the pictures: a stream's newest
analysed frame is encoded (mmstream/snapshot.py) only when a viewer asks for it, in a thread,
and at most `frame_fps` times a second whoever asks; in between every viewer gets the same
bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mmstream.config import PipelineConfig, WebConfig
from mmstream.snapshot import render_snapshot
from mmstream.web.live.health import HealthPanel
from mmstream.web.live.sink import LiveSink
from mmstream.web.live.state import LiveState

# loading: the daemon is up, the pipeline is loading its models and opening its sources;
# live: it runs; ended: it finished by itself (a file played out), and the daemon is exiting.
Phase = Literal["loading", "live", "ended"]


@dataclass
class _Picture:
    frame_no: int = 0
    jpeg: bytes = b""
    encoded_at: float = float("-inf")  # monotonic
    lock: asyncio.Lock | None = None


class LiveView:
    def __init__(self, config: WebConfig, device_id: str = "") -> None:
        self.config = config
        self.device_id = device_id
        self.state = LiveState(config)
        self.health = HealthPanel()
        self.viewers = 0  # open update streams (the page's EventSource), for /status
        self.phase: Phase = "loading"
        self._no_viewers = asyncio.Event()
        self._no_viewers.set()
        self._generation = 0
        self._pictures: dict[str, _Picture] = {}
        self.history_path: Path | None = None  # the store the History page searches
        self.record_dir: Path | None = None  # the segments /clip cuts moments from

    def sink_for(self, config: PipelineConfig, reloads: int = 0) -> LiveSink:
        """The sink of one pipeline run (a reload gets a new one; the view goes on)."""
        self.config, self.device_id = config.web, config.device_id
        self.history_path = config.history.path if config.history.enabled else None
        self.record_dir = config.record.dir if config.record is not None else None
        self.state.limits = config.web
        self.health.mode, self.health.reloads = config.mode, reloads
        self._generation += 1
        self.set_phase("loading")
        return LiveSink(self, self.state, self.health, self._generation,
                        list(dict.fromkeys(source.id for source in config.sources)))

    def set_phase(self, phase: Phase) -> None:
        if phase != self.phase:
            self.phase = phase
            self.state.touch()  # wakes the viewers, whose next message says so

    def viewer_joined(self) -> None:
        self.viewers += 1
        self._no_viewers.clear()

    def viewer_left(self) -> None:
        self.viewers -= 1
        if self.viewers == 0:
            self._no_viewers.set()

    async def end(self, grace_s: float) -> None:
        """The run finished: tell every open page (their streams send what is left and an
        `ended` message, then close), waiting for them at most `grace_s`."""
        self.set_phase("ended")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_viewers.wait(), grace_s)

    @property
    def frame_interval_s(self) -> float:
        return 1.0 / self.config.frame_fps

    async def picture(self, stream_id: str) -> bytes | None:
        """The stream's newest analysed frame as JPEG with its overlay (None: no frame yet)."""
        state = self.state.streams.get(stream_id)
        if state is None or state.frame is None:
            return None
        picture = self._pictures.setdefault(stream_id, _Picture())
        if picture.lock is None:
            picture.lock = asyncio.Lock()
        async with picture.lock:  # viewers asking at once share one encoding
            stale = picture.frame_no != state.frame_no
            due = time.monotonic() - picture.encoded_at >= self.frame_interval_s
            if stale and (due or not picture.jpeg):
                frame, frame_no = state.frame, state.frame_no
                picture.jpeg = await asyncio.to_thread(render_snapshot, frame)
                picture.frame_no, picture.encoded_at = frame_no, time.monotonic()
        return picture.jpeg
