"""Camera source (OpenCV): a device index, /dev/videoN, an rtsp:// or http:// URL, or a video file.

A grabber thread grabs frames as fast as the camera delivers them, so the stream stays
current, and decodes (retrieves and converts) only the frame analysis asks for: `fps` times a
second the async side asks for the next frame, which the grabber hands over the moment it is
grabbed; each camera asks at its own phase of the second, so cameras do not queue behind each
other for analysis (sources/phase.py). Analysis gets the freshest frame there is (not one
that waited up to a frame interval, 40 ms at 25 fps, in a buffer), a slow analysis never
makes the camera lag (frames are skipped, never queued), and the frames nobody analyses cost
a grab, not a decode and a colour conversion (a JPEG decode, on an MJPEG camera).
`t_capture` is the wall-clock time the frame was grabbed.

When the camera cannot be opened, stops delivering frames for `read_timeout_s`, or its stream
breaks, the source raises `SourceError`; it is `restartable`, so the pipeline publishes a
`status` event ("reconnecting", with the reason) and reopens it with backoff
(`reconnect_min_s` doubling up to `reconnect_max_s`). A video file used as a camera is paced
at its own frame rate and ends at its end (or restarts, with `loop: true`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from mmstream.config import CameraSourceConfig
from mmstream.errors import SourceError
from mmstream.media import VideoFrame
from mmstream.paths import missing_reason
from mmstream.runtime.stage import Source
from mmstream.sources.phase import AnalysisGrid, next_camera_phase

log = logging.getLogger(__name__)
OPENCV_LOG_ENV = "OPENCV_LOG_LEVEL"  # set by a user who wants OpenCV's own lines back
FFMPEG_QUIET = "-8"  # AV_LOG_QUIET
FALLBACK_FILE_FPS = 25.0
POLL_S = 0.25  # how often a wait for the next frame looks whether the camera is still there


def quiet_opencv() -> None:
    """Keep OpenCV's and its FFmpeg's raw lines ("[ WARN:2@7.385] global cap_v4l.cpp:914 …",
    "[tcp @ 0x…] Connection refused") off the terminal: the SourceError says what is wrong,
    in words. OpenCV reads OPENCV_LOG_LEVEL only when it loads, so a user who set it keeps it;
    OPENCV_FFMPEG_LOGLEVEL is read at the first FFmpeg capture."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", FFMPEG_QUIET)
    if OPENCV_LOG_ENV not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


quiet_opencv()


def describe(url: int | str) -> str:
    return f"device {url}" if isinstance(url, int) else str(url)


def open_capture(config: CameraSourceConfig) -> cv2.VideoCapture:
    """Open the camera (blocking, bounded by open/read timeouts); SourceError if it fails."""
    url: int | str = config.url
    if isinstance(url, str) and url.isdigit():
        url = int(url)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(config.open_timeout_s * 1000),
              cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(config.read_timeout_s * 1000)]
    try:
        capture = cv2.VideoCapture(url, cv2.CAP_ANY, params)
    except cv2.error as exc:
        raise SourceError(f"camera '{config.id}': cannot open {describe(url)}: {exc}") from None
    if not capture.isOpened():
        capture.release()
        missing = missing_reason(Path(str(url))) if _looks_like_file(url) else None
        hint = f" ({missing})" if missing else ""
        raise SourceError(f"camera '{config.id}': cannot open {describe(url)}{hint}")
    if config.width:
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, config.width)
    if config.height:
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, config.height)
    return capture


def _looks_like_file(url: int | str) -> bool:
    return isinstance(url, str) and "://" not in url and not url.startswith("/dev/video")


class FrameGrabber(threading.Thread):
    """Grabs frames in a thread; `next_frame()` decodes and hands over the next one grabbed."""

    def __init__(self, capture: cv2.VideoCapture, config: CameraSourceConfig) -> None:
        super().__init__(name=f"camera-{config.id}", daemon=True)
        self.capture = capture
        self.config = config
        self.is_file = _looks_like_file(config.url) and Path(str(config.url)).is_file()
        file_fps = capture.get(cv2.CAP_PROP_FPS) if self.is_file else 0.0
        self.file_fps = file_fps if 0 < file_fps < 1000 else FALLBACK_FILE_FPS
        self.captured = 0
        self.skipped = 0  # frames grabbed that analysis did not ask for
        self.ended = False  # a video file reached its end
        self.error: str | None = None
        self.last_frame_at = time.monotonic()
        self._lock = threading.Lock()
        self._wanted: tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]] | None = None
        self._stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        try:
            while not self._stopping.is_set():
                if not self.capture.grab():
                    if self.is_file and self.config.loop and self.captured:
                        self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        started, self.captured = time.monotonic(), 0
                        continue
                    if self.is_file:
                        self.ended = True
                    else:
                        self.error = "the camera stopped delivering frames"
                    return
                self._grabbed(time.time())
                if self.is_file:  # a file plays at its own rate, like a camera would
                    delay = started + self.captured / self.file_fps - time.monotonic()
                    if delay > 0:
                        self._stopping.wait(delay)
        except cv2.error as exc:
            self.error = f"capture failed: {exc}"
        finally:
            self._hand_over(None)
            self.capture.release()

    def _grabbed(self, now: float) -> None:
        self.captured += 1
        self.last_frame_at = time.monotonic()
        with self._lock:
            wanted = self._wanted is not None
        if not wanted:
            self.skipped += 1
            return
        ok, frame = self.capture.retrieve()
        if ok and frame is not None:
            self._hand_over((now, frame))

    def _hand_over(self, found: tuple[float, np.ndarray] | None) -> None:
        with self._lock:
            wanted, self._wanted = self._wanted, None
        if wanted is not None:
            loop, future = wanted
            loop.call_soon_threadsafe(_resolve, future, found)

    def next_frame(self) -> asyncio.Future[tuple[float, np.ndarray] | None]:
        """The next frame grabbed, decoded (None if the grabber stops first)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            self._wanted = (loop, future)
        if not self.is_alive():
            self._hand_over(None)
        return future

    def stop(self) -> None:
        self._stopping.set()


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def to_rgb(frame: np.ndarray, width: int | None, height: int | None) -> np.ndarray:
    """OpenCV's BGR → RGB, resized when the camera ignored the requested size."""
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if width and height and (frame.shape[1], frame.shape[0]) != (width, height):
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class CameraSource(Source):
    """`async with CameraSource(cfg) as cam: async for frame in cam: ...`"""

    kind = "camera"
    restartable = True

    def __init__(self, config: CameraSourceConfig) -> None:
        super().__init__(config)
        self.grabber: FrameGrabber | None = None
        self.frames_yielded = 0
        # its place in each interval, kept across reconnects (cameras do not tick together)
        self.phase = next_camera_phase() if config.phase is None else config.phase

    async def __aenter__(self) -> CameraSource:
        capture = await asyncio.to_thread(open_capture, self.config)
        self.grabber = FrameGrabber(capture, self.config)
        self.grabber.start()
        log.info("%s opened %s", self.name, describe(self.config.url))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        grabber, self.grabber = self.grabber, None
        if grabber is not None:
            grabber.stop()
            # A read blocked on a dead network stream ends within read_timeout_s; the thread
            # is a daemon and releases the capture itself, so do not wait on it forever.
            await asyncio.to_thread(grabber.join, self.config.read_timeout_s + 1.0)

    async def __aiter__(self) -> AsyncIterator[VideoFrame]:  # type: ignore[override]
        if self.grabber is None:
            raise SourceError(f"{self.name}: iterate inside `async with`")
        grabber, cfg = self.grabber, self.config
        grid = AnalysisGrid(1.0 / cfg.fps, self.phase)
        tick: float | None = None
        while True:
            now = time.monotonic()
            tick = now if tick is None else grid.next_after(tick, now)  # the first one at once
            await asyncio.sleep(max(0.0, tick - now))
            asked = grabber.next_frame()
            done, _ = await asyncio.wait({asked}, timeout=POLL_S)
            while not done and grabber.is_alive() and (
                    time.monotonic() - grabber.last_frame_at <= cfg.read_timeout_s):
                done, _ = await asyncio.wait({asked}, timeout=POLL_S)
            taken = asked.result() if done else None
            if taken is not None:
                t, bgr = taken
                image = await asyncio.to_thread(to_rgb, bgr, cfg.width, cfg.height)
                yield VideoFrame(self.stream_id, t, image, self.frames_yielded)
                self.frames_yielded += 1
                continue
            asked.cancel()
            if grabber.ended:
                return
            if grabber.error is not None:
                raise SourceError(f"{self.name}: {describe(cfg.url)}: {grabber.error}")
            silent = time.monotonic() - grabber.last_frame_at
            if silent > cfg.read_timeout_s:
                raise SourceError(f"{self.name}: {describe(cfg.url)}: no frame for "
                                  f"{silent:.1f} s")
