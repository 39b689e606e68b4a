"""Camera source for real: a video file as a camera, an HTTP MJPEG camera served by ffmpeg that
is killed and restarted, and a camera URL that never answers."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmstream.config import CameraSourceConfig
from mmstream.errors import SourceError
from mmstream.events import Event, StatusEvent
from mmstream.media import VideoFrame
from mmstream.runtime.pipeline import Pipeline
from mmstream.runtime.stage import Sink
from mmstream.sources.camera import CameraSource

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "mmstream" / "assets" / "sample.mp4"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _red_clip(path: Path, seconds: float = 1.0, fps: int = 10) -> Path:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c=red:s=160x120:r={fps}:d={seconds}", "-pix_fmt", "yuv420p",
                    str(path)], check=True)
    return path


class Collector(Sink):
    name = "collector"
    wants_media = True

    def __init__(self) -> None:
        self.frames: list[VideoFrame] = []
        self.statuses: list[StatusEvent] = []
        self.changed = asyncio.Event()

    async def send(self, event: Event) -> None:
        if isinstance(event, StatusEvent):
            self.statuses.append(event)
            self.changed.set()

    async def send_media(self, item: Any) -> None:
        if isinstance(item, VideoFrame):
            self.frames.append(item)
            self.changed.set()

    async def until(self, condition: Any, limit_s: float = 30.0) -> None:
        deadline = time.monotonic() + limit_s
        while not condition():
            self.changed.clear()
            remaining = deadline - time.monotonic()
            assert remaining > 0, "timed out waiting for the camera"
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                continue


async def test_a_video_file_works_as_a_camera(tmp_path: Path) -> None:
    clip = _red_clip(tmp_path / "red.mp4", seconds=1.0)
    cfg = CameraSourceConfig(id="filecam", url=str(clip), fps=5, width=80, height=60)
    started = time.monotonic()
    async with CameraSource(cfg) as camera:
        frames = [frame async for frame in camera]
    elapsed = time.monotonic() - started
    assert 0 < len(frames) <= 10  # the newest at each 5 fps tick of the 10 captured, no repeats
    assert elapsed >= 0.8  # paced at the file's own rate, like a camera
    first = frames[0]
    assert first.stream_id == "filecam" and first.image.shape == (60, 80, 3)
    red, green, blue = first.image.reshape(-1, 3).mean(axis=0)
    assert red > 200 and green < 60 and blue < 60  # RGB order, not OpenCV's BGR
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(b.t_capture > a.t_capture for a, b in itertools.pairwise(frames))
    assert abs(first.t_capture - time.time()) < 10  # wall-clock capture time


class CountingCapture:
    """A VideoCapture that counts the frames decoded (retrieved) and grabbed."""

    def __init__(self, capture: Any) -> None:
        self.capture, self.grabbed, self.retrieved = capture, 0, 0

    def grab(self) -> bool:
        self.grabbed += 1
        return bool(self.capture.grab())

    def retrieve(self) -> tuple[bool, Any]:
        self.retrieved += 1
        return self.capture.retrieve()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.capture, name)


async def test_only_the_frames_analysed_are_decoded_and_they_are_fresh(tmp_path: Path) -> None:
    """A 25 fps camera analysed at 4 fps: every frame is grabbed (the stream stays current),
    only the one analysis asks for is decoded, and it is grabbed after it was asked for."""
    clip = _red_clip(tmp_path / "clip25.mp4", seconds=3.0, fps=25)
    asked: list[float] = []
    async with CameraSource(CameraSourceConfig(url=str(clip), fps=4)) as camera:
        assert camera.grabber is not None
        counting = CountingCapture(camera.grabber.capture)
        camera.grabber.capture = counting  # type: ignore[assignment]
        grabber, frames = camera.grabber, []
        next_frame = grabber.next_frame

        def asking() -> Any:
            asked.append(time.time())
            return next_frame()

        grabber.next_frame = asking  # type: ignore[method-assign]
        async for frame in camera:
            frames.append(frame)
            if len(frames) == 6:
                break
    assert counting.retrieved == len(frames)
    assert counting.grabbed >= 4 * len(frames)  # ~6 grabbed per frame analysed
    assert all(f.t_capture >= t for f, t in zip(frames, asked, strict=False))


async def test_a_looping_file_camera_keeps_going(tmp_path: Path) -> None:
    clip = _red_clip(tmp_path / "short.mp4", seconds=0.5)
    cfg = CameraSourceConfig(url=str(clip), fps=10, loop=True)
    frames: list[VideoFrame] = []
    async with CameraSource(cfg) as camera:
        async for frame in camera:
            frames.append(frame)
            if len(frames) == 12:  # more than the clip holds at this rate
                break
    assert len(frames) == 12


async def test_a_camera_that_cannot_be_opened_gives_a_clear_error() -> None:
    url = f"http://127.0.0.1:{_free_port()}/cam.mjpg"
    with pytest.raises(SourceError, match=f"camera 'cam0': cannot open {url}"):
        async with CameraSource(CameraSourceConfig(url=url, open_timeout_s=3)):
            pass
    with pytest.raises(SourceError, match="no such file"):
        async with CameraSource(CameraSourceConfig(url="/no/such/clip.mp4")):
            pass


async def test_a_failing_camera_url_is_retried_with_status_events() -> None:
    url = f"http://127.0.0.1:{_free_port()}/cam.mjpg"
    cfg = CameraSourceConfig(id="door", url=url, open_timeout_s=2)
    sink = Collector()
    pipeline = Pipeline([CameraSource(cfg)], [], [sink], device_id="t",
                        restart_backoff=(0.1, 0.3))
    stop = asyncio.Event()
    run = asyncio.create_task(pipeline.run(stop))
    try:
        await sink.until(lambda: len(sink.statuses) >= 3)
    finally:
        stop.set()
        await asyncio.wait_for(run, 30)
    status = sink.statuses[0]
    assert status.stream_id == "door" and status.payload.state == "reconnecting"
    assert f"cannot open {url}" in status.payload.message
    assert [s.payload.details["attempt"] for s in sink.statuses[:3]] == [1, 2, 3]


@pytest.fixture
def mjpeg_server() -> Iterator[Any]:
    """Serve the sample clip as an HTTP MJPEG camera; `.start()` / `.kill()` it at will."""

    class Server:
        def __init__(self) -> None:
            self.port = _free_port()
            self.url = f"http://127.0.0.1:{self.port}/cam.mjpg"
            self.process: subprocess.Popen[bytes] | None = None

        def start(self) -> None:
            self.process = subprocess.Popen(
                ["ffmpeg", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(SAMPLE),
                 "-an", "-f", "mpjpeg", "-listen", "1", self.url],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def kill(self) -> None:
            if self.process is not None and self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)

    server = Server()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.slow
async def test_a_network_camera_that_dies_is_reported_and_reconnected(mjpeg_server: Any) -> None:
    mjpeg_server.start()
    cfg = CameraSourceConfig(id="ipcam", url=mjpeg_server.url, fps=5, read_timeout_s=2,
                             open_timeout_s=3)
    sink = Collector()
    pipeline = Pipeline([CameraSource(cfg)], [], [sink], device_id="t",
                        restart_backoff=(0.2, 0.5))
    stop = asyncio.Event()
    run = asyncio.create_task(pipeline.run(stop))
    try:
        await sink.until(lambda: len(sink.frames) >= 5)
        mjpeg_server.kill()
        await sink.until(lambda: any(s.payload.state == "reconnecting" for s in sink.statuses))
        frames_when_lost = len(sink.frames)
        mjpeg_server.start()
        await sink.until(lambda: len(sink.frames) >= frames_when_lost + 5)
    finally:
        stop.set()
        await asyncio.wait_for(run, 30)
    lost = next(s for s in sink.statuses if s.payload.state == "reconnecting")
    assert lost.stream_id == "ipcam" and mjpeg_server.url in lost.payload.message
    after = sink.frames[frames_when_lost:]
    assert after and all(f.stream_id == "ipcam" for f in after)
    assert after[0].t_capture > lost.t_capture  # frames again, after the reconnect
    assert np.asarray(after[-1].image).shape == (320, 320, 3)


def test_a_camera_that_is_not_there_is_named_by_mmstream_not_by_opencv_log_lines() -> None:
    """OpenCV's "[ WARN:0@0.02] global cap_v4l.cpp:914 …" and FFmpeg's "[tcp @ 0x…]" lines
    stay off the terminal; the SourceError is what a user reads."""
    script = (
        "import asyncio, sys\n"
        "from mmstream.config import CameraSourceConfig\n"
        "from mmstream.errors import SourceError\n"
        "from mmstream.sources.camera import CameraSource\n"
        "async def main():\n"
        "    for url in sys.argv[1:]:\n"
        "        try:\n"
        "            async with CameraSource(CameraSourceConfig(url=url, open_timeout_s=2)):\n"
        "                pass\n"
        "        except SourceError as exc:\n"
        "            print(exc)\n"
        "asyncio.run(main())\n")
    missing = ["/dev/video63", "63", f"http://127.0.0.1:{_free_port()}/cam.mjpg",
               f"rtsp://127.0.0.1:{_free_port()}/stream"]
    done = subprocess.run([sys.executable, "-c", script, *missing], capture_output=True,
                          text=True, timeout=120, cwd=REPO,
                          env={k: v for k, v in os.environ.items() if k != "OPENCV_LOG_LEVEL"})
    assert done.returncode == 0, done.stderr
    errors = done.stdout.splitlines()
    assert len(errors) == len(missing)
    named = [url if not url.isdigit() else f"device {url}" for url in missing]
    for url, error in zip(named, errors, strict=True):
        assert error.startswith(f"camera 'cam0': cannot open {url}"), error
    assert done.stderr == ""  # no "[ WARN:…] global cap_v4l.cpp", no "[tcp @ 0x…]"
