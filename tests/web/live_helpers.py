"""Helpers for the live view's tests: a view fed by hand, an SSE reader, the daemon's URL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO, Any

import aiohttp
import numpy as np
from conftest import REPO, wait_until

from mmstream.events import Emotion, EmotionEvent, Transcript, TranscriptEvent
from mmstream.media import AnalysedFrame, FaceMark

WEB_URL = re.compile(r"web view on (http://\S+/)")


def frame(stream: str = "cam", t: float = 1.0, width: int = 320, height: int = 240
          ) -> AnalysedFrame:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:, : width // 2] = (200, 40, 40)  # a picture with content: red left, black right
    return AnalysedFrame(stream, t, image, t, (FaceMark(40, 30, 60, 80),),
                         (("person", 0.9), ("kitchen", 0.4)), "happy", 0.6)


def transcript(text: str, final: bool, utterance: int = 0, stream: str = "cam",
               t: float = 1.0, seq: int = 1) -> TranscriptEvent:
    return TranscriptEvent(stream_id=stream, t_capture=t, seq=seq,
                           payload=Transcript(final=final, text=text, start=t - 1, end=t,
                                              utterance_id=utterance))


def emotion(t: float, label: str = "happy", valence: float = 0.5, stream: str = "cam"
            ) -> EmotionEvent:
    return EmotionEvent(stream_id=stream, t_capture=t,
                        payload=Emotion(label=label, scores={label: 1.0}, valence=valence))


async def sse_messages(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The `update` messages of an open `/updates` response, decoded."""
    data: list[str] = []
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("data: "):
            data.append(line[len("data: "):])
        elif not line and data:
            yield json.loads("\n".join(data))
            data = []


@dataclass
class StderrWatch:
    """Collects a subprocess's stderr on a thread, so a test can wait for a line."""

    stream: IO[str]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.stream:
            self.lines.append(line)

    def web_url(self) -> str | None:
        found = WEB_URL.search("".join(self.lines))
        return found.group(1) if found else None

    @property
    def text(self) -> str:
        return "".join(self.lines)


def stop(process: subprocess.Popen[str], timeout: float = 60) -> int:
    """SIGTERM (the daemon drains) and the exit code; killed if it does not end in time."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@dataclass
class Daemon:
    """A `mmstream` command running in a subprocess, with its stderr and its web address."""

    process: subprocess.Popen[str]
    stderr: StderrWatch
    url: str

    def status(self) -> dict[str, Any]:
        """The view's /status (viewers, frames per stream, reloads)."""
        with urllib.request.urlopen(self.url + "status", timeout=10) as response:
            return json.loads(response.read())

    def viewers(self) -> int | None:
        try:
            return int(self.status()["viewers"])
        except OSError:
            return None


def start_daemon(*args: str, env: dict[str, str] | None = None) -> Daemon:
    """Start `python -m mmstream ARGS` and wait for its `web view on …` line."""
    process = subprocess.Popen([sys.executable, "-m", "mmstream", *args], cwd=REPO, text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, **(env or {})})
    assert process.stderr is not None
    watch = StderrWatch(process.stderr)

    def address() -> str | None:
        if process.poll() is not None:
            raise AssertionError(f"mmstream {' '.join(args)} exited: {watch.text}")
        return watch.web_url()

    try:
        url = wait_until(address, 120, "the daemon's `web view on` line")
    except BaseException:
        stop(process)
        raise
    return Daemon(process, watch, url)
