"""The microphone path for real: an ALSA capture device fed from the test, opened by PortAudio.

The pipeline runs as `mmstream run` in a subprocess whose HOME holds the virtual device's
.asoundrc (ALSA reads it when PortAudio starts). The device is paced in real time by the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import REPO

from mmstream.audio.ring import CaptureRing
from tests.conftest import wait_until
from tests.speech_clips import conversation
from tests.virtual_mic import VirtualMic
from tests.word_errors import word_error_rate

RATE = 22050  # the device's own rate: the source resamples it to 16 kHz
SENTENCE = "Turn on the lights in the living room."


@pytest.fixture
def vmic(tmp_path: Path) -> Iterator[VirtualMic]:
    mic = VirtualMic(tmp_path / "home", rate=RATE, period=1024).install()
    yield mic
    mic.close()


def mic_pipeline(tmp_path: Path, mic: VirtualMic, **source: Any) -> Path:
    config = {
        "device_id": "test",
        "sources": [{"kind": "microphone", "id": "mic0", "device": mic.device, "channels": 2,
                     "blocksize": mic.period, "read_timeout_s": 1.0, "reconnect_min_s": 0.3,
                     "reconnect_max_s": 0.6, **source}],
        "stages": {"window": {"enabled": False}},
        "sinks": {"jsonl": {"path": "-"}},
    }
    path = tmp_path / "mic.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Running:
    """`mmstream run` in a subprocess with the virtual device's HOME; events read from stdout."""

    def __init__(self, pipeline: Path, home: Path) -> None:
        self.log = pipeline.parent / "stderr.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mmstream", "run", str(pipeline)], cwd=REPO,
            env={**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True)
        self._events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self._events.append(json.loads(line))

    def events(self) -> list[dict[str, Any]]:
        return list(self._events)

    def wait_for(self, found: Callable[[list[dict[str, Any]]], bool],
                 timeout: float = 60) -> list[dict[str, Any]]:
        def seen() -> list[dict[str, Any]] | None:
            assert self.proc.poll() is None, self.log.read_text()
            events = self.events()
            return events if found(events) else None

        return wait_until(seen, timeout, "the events the test waits for")

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode, self.log.read_text()


def statuses(events: list[dict[str, Any]], state: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "status" and e["payload"]["state"] == state]


def final_texts(events: list[dict[str, Any]]) -> list[str]:
    return [e["payload"]["text"] for e in events
            if e["type"] == "transcript" and e["payload"]["final"]]


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    audio, _ = conversation(tmp_path_factory.mktemp("mic"), [SENTENCE], gap_s=1.0, lead_s=0.3,
                            rate=RATE)
    return audio


def test_devices_lists_the_virtual_microphone(vmic: VirtualMic) -> None:
    result = subprocess.run([sys.executable, "-m", "mmstream", "devices", "--json"], cwd=REPO,
                            env={**os.environ, "HOME": str(vmic.home)}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    devices = json.loads(result.stdout)
    mine = [d for d in devices if d["name"] == vmic.device]
    assert mine and mine[0]["default_rate"] == RATE and mine[0]["channels"] >= 1


@pytest.mark.slow
def test_speech_into_the_microphone_is_transcribed(tmp_path: Path, vmic: VirtualMic,
                                                   speech: np.ndarray) -> None:
    run = Running(mic_pipeline(tmp_path, vmic), vmic.home)
    try:
        events = run.wait_for(lambda ev: bool(statuses(ev, "online")))
        online = statuses(events, "online")[0]["payload"]["details"]
        assert online["rate"] == RATE and online["channels"] == 2
        vmic.play(speech)
        events = run.wait_for(lambda ev: bool(final_texts(ev)))
    finally:
        code, output = run.stop()
    assert code == 0, output
    assert word_error_rate(SENTENCE, final_texts(events)[0]) <= 0.2, final_texts(events)
    transcripts = [e for e in events if e["type"] == "transcript"]
    assert all(abs(e["t_capture"] - time.time()) < 120 for e in transcripts), "wall-clock time"
    seqs = [e["seq"] for e in run.events() if e["stream_id"] == "mic0"]
    assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.slow
def test_a_vanished_microphone_reports_and_reconnects(tmp_path: Path, vmic: VirtualMic,
                                                      speech: np.ndarray) -> None:
    run = Running(mic_pipeline(tmp_path, vmic), vmic.home)
    try:
        run.wait_for(lambda ev: bool(statuses(ev, "online")))
        vmic.pause()  # the link dies: no more audio
        run.wait_for(lambda ev: bool(statuses(ev, "reconnecting")))
        vmic.remove()  # ... and the device is gone: reopening fails until it is back
        run.wait_for(lambda ev: len(statuses(ev, "reconnecting")) >= 3)
        vmic.install()
        run.wait_for(lambda ev: len(statuses(ev, "online")) >= 2)
        vmic.play(speech)
        events = run.wait_for(lambda ev: bool(final_texts(ev)))
    finally:
        code, output = run.stop()
    assert code == 0, output
    reconnecting = statuses(events, "reconnecting")
    assert "no audio" in reconnecting[0]["payload"]["message"]
    assert any(vmic.device in e["payload"]["message"] for e in reconnecting[1:])
    assert word_error_rate(SENTENCE, final_texts(events)[0]) <= 0.2


def test_unknown_device_is_reported_with_the_inputs_there_are(tmp_path: Path,
                                                              vmic: VirtualMic) -> None:
    run = Running(mic_pipeline(tmp_path, vmic, device="no-such-mic"), vmic.home)
    try:
        events = run.wait_for(lambda ev: bool(statuses(ev, "reconnecting")))
    finally:
        code, output = run.stop()
    message = statuses(events, "reconnecting")[0]["payload"]["message"]
    assert "no-such-mic" in message and vmic.device in message
    assert code == 0, output


def test_capture_ring_counts_what_does_not_fit() -> None:
    ring = CaptureRing(frames=1000, channels=2)
    block = np.arange(1200, dtype=np.float32).reshape(600, 2)
    assert ring.write(block) == 0 and ring.write(block) == 200
    data, dropped = ring.read()
    assert dropped == 200 and ring.dropped_total == 200 and len(data) == 1000
    np.testing.assert_array_equal(data[:600], block)  # the oldest audio is kept whole
    assert ring.write(block) == 0 and len(ring) == 600  # wrapped around the end
    np.testing.assert_array_equal(ring.read()[0], block)
