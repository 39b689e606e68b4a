"""Shared fixtures: a real MQTT broker on loopback and real media made with espeak-ng/ffmpeg."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from mmstream.demo_broker import AmqttBroker, MosquittoBroker
from tests.notify_listener import NotifyListener

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
SAMPLE_CLIP = REPO / "mmstream" / "assets" / "sample.mp4"
WEB_PORT_ENV = "MMSTREAM_WEB__PORT"
SAMPLE_SENTENCES = (  # the sample clip's finals: each sentence ends at its pause (300 ms)
    "Hello from the kitchen camera.",
    "I am very happy today.",
    "The coffee is ready on the table.",
)
# words of each final that stand for it on a page (whisper may write "camera, I am" on one CPU
# and "camera. I am" on another: compare words, not punctuation)
SAMPLE_ENDINGS = tuple(" ".join(s.rstrip(".").split()[-3:]) for s in SAMPLE_SENTENCES)


def words_of(text: str) -> list[str]:
    """The words as people read them: case and punctuation aside."""
    return [w for w in (x.strip(".,!?;:").lower() for x in text.split()) if w]


def wait_until(condition: Callable[[], T], limit_s: float = 30.0, what: str = "the condition",
               poll_s: float = 0.02) -> T:
    """Wait for a real signal: `condition()` returning something truthy (which is returned).

    Fails after `limit_s` seconds naming `what`: a bound on a hang, not a speed check.
    """
    deadline = time.monotonic() + limit_s
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s:g} s waiting for {what}")
        time.sleep(poll_s)
    return found


async def async_wait_until(condition: Callable[[], T], limit_s: float = 30.0,
                           what: str = "the condition", poll_s: float = 0.02) -> T:
    """`wait_until` for coroutines: yields to the event loop between checks."""
    deadline = time.monotonic() + limit_s
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s:g} s waiting for {what}")
        await asyncio.sleep(poll_s)
    return found


@pytest.fixture(scope="session", autouse=True)
def private_state_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`mmstream run` keeps its MQTT spool in the user's state directory: the tests (and the
    commands they start) get one of their own, so no run sees events spooled by another.
    The live view of every command they start listens on a free port (the daemon says which
    on stderr), never on the fixed default that a running daemon or another test may hold."""
    names = ("XDG_STATE_HOME", "STATE_DIRECTORY", WEB_PORT_ENV)
    saved = {name: os.environ.get(name) for name in names}
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    os.environ.pop("STATE_DIRECTORY", None)
    os.environ[WEB_PORT_ENV] = "0"
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[NotifyListener, str]]:
    """A systemd notify socket (its listener and its path, for NOTIFY_SOCKET)."""
    path = str(tmp_path / "notify.sock")
    listener = NotifyListener(path)
    yield listener, path
    listener.close()


@pytest.fixture
def broker() -> Iterator[MosquittoBroker | AmqttBroker]:
    """A real mosquitto on 127.0.0.1 and a free port (amqtt only when mosquitto is absent)."""
    instance: MosquittoBroker | AmqttBroker
    if shutil.which("mosquitto"):
        instance = MosquittoBroker()
    else:
        warnings.warn("mosquitto not on PATH: falling back to amqtt", stacklevel=1)
        instance = AmqttBroker()
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def mosquitto() -> Iterator[MosquittoBroker]:
    """Tests that kill and restart the broker need the real mosquitto."""
    if not shutil.which("mosquitto"):
        pytest.skip("mosquitto is not installed")
    instance = MosquittoBroker()
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


def speak(text: str, path: Path, rate: int = 16000, speed: int = 150) -> Path:
    """Synthesize speech with espeak-ng into a mono WAV at `rate` Hz."""
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(speed), "-w", str(raw), text],
                   check=True, capture_output=True)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(raw), "-ac", "1", "-ar",
                    str(rate), str(path)], check=True)
    raw.unlink()
    return path


@pytest.fixture
def sample_clip() -> Path:
    return SAMPLE_CLIP


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real `mmstream` CLI in a subprocess (as a user would), bounded in time."""

    def run(*args: str, timeout: float = 240, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mmstream", *args], capture_output=True,
                              text=True, timeout=timeout, cwd=REPO,
                              env={**os.environ, **(env or {})})

    return run


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs (a disk that fills): mounted here, unmounted after the test.
    Mounting needs root (or CAP_SYS_ADMIN); without it the test is skipped, saying so."""
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
