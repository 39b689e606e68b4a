"""The history's sink: hands every published event (and now and then a small picture of an
analysed frame) to the writer thread. Never waits and never fails the pipeline: a store that
cannot be opened or written is said once (log, `health()`, the web view's health panel) and
the run goes on without it."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from mmstream.config import HistoryConfig, PipelineConfig
from mmstream.events import Event
from mmstream.history.store import Retention
from mmstream.history.writer import HistoryWriter
from mmstream.media import AnalysedFrame, MediaItem, VideoFrame, is_wall_clock
from mmstream.runtime.stage import Sink

log = logging.getLogger(__name__)
DAY_S = 86_400.0


def jpeg_thumbnail(image: np.ndarray, width: int, quality: int = 70) -> bytes | None:
    """A small JPEG of an RGB frame (made in the writer thread, never on the loop)."""
    import cv2

    height = max(1, round(image.shape[0] * width / max(image.shape[1], 1)))
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
    return encoded.tobytes() if ok else None


def replayed_file(config: PipelineConfig) -> str | None:
    """The file a replay reads (its results point into it), when there is exactly one."""
    paths = [getattr(s, "path", None) for s in config.sources]
    if len(paths) == 1 and paths[0] is not None and config.sources[0].kind != "camera":
        return str(Path(paths[0]).resolve())
    return None


class HistorySink(Sink):
    name = "history"
    wants_media = True  # analysed frames: the results' pictures

    def __init__(self, config: HistoryConfig, path: Path, *, window_s: float = 2.0,
                 source: str | None = None) -> None:
        self.config = config
        self.anchor = time.time()  # a file's media seconds count from here
        self.writer = HistoryWriter(
            path, Retention(config.max_age_days * DAY_S, int(config.max_mb * 1024 * 1024),
                            config.thumbnail_max_age_days * DAY_S),
            anchor=self.anchor, window_s=window_s,
            commit_interval_s=config.commit_interval_s, source=source)
        self._open = False
        self._last_picture: dict[str, float] = {}
        self._segments: list[tuple[Path, float]] | None = None
        self._segments_seen = 0

    def follow(self, segments: list[tuple[Path, float]]) -> None:
        """Point results into the daemon's own recording: `segments` is the recorder's list
        of (file, first recorded time), which grows as it rotates (RecorderSink.segments)."""
        self._segments = segments

    @classmethod
    def for_pipeline(cls, config: PipelineConfig) -> HistorySink:
        assert config.history.path is not None
        return cls(config.history, config.history.path,
                   window_s=config.stages.window.length_s, source=replayed_file(config))

    async def __aenter__(self) -> Self:
        try:
            await asyncio.to_thread(self.writer.open)
        except Exception as exc:
            problem = f"cannot write the history store {self.writer.path}: {exc} (history.path)"
            log.warning("%s; the run goes on without history", problem)
            self.writer.status.state, self.writer.status.problem = "off", problem
            return self
        self.writer.start()
        self._open = True
        return self

    async def send(self, event: Event) -> None:
        if self._open:
            # inputs are recorded as they come in, ahead of the events: in a fast replay the
            # recorder may have rotated several times before the first event
            while self._segments is not None and self._segments_seen < len(self._segments):
                self.writer.segment_started(*self._segments[self._segments_seen])
                self._segments_seen += 1
            self.writer.submit(event)

    async def send_media(self, item: MediaItem) -> None:
        if not (self._open and self.config.thumbnails):
            return
        if not isinstance(item, AnalysedFrame | VideoFrame):
            return
        last = self._last_picture.get(item.stream_id)
        if last is not None and item.t_capture - last < self.config.thumbnail_interval_s:
            return
        self._last_picture[item.stream_id] = item.t_capture
        base = 0.0 if is_wall_clock(item.t_capture) else self.anchor
        image, width = item.image, self.config.thumbnail_width
        self.writer.submit_picture((item.stream_id, base + item.t_capture,
                                    lambda: jpeg_thumbnail(image, width)))

    def health(self) -> dict[str, Any]:
        return self.writer.health()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._open:
            self._open = False
            await asyncio.to_thread(self.writer.close)
