"""Microphone source (PortAudio via sounddevice): live audio as 16 kHz mono AudioChunks.

The device is chosen by index or by (part of) its name and captured at its own rate and
channel count; a soxr streaming resampler turns that into the pipeline's 16 kHz mono. The
PortAudio callback runs on PortAudio's real-time thread and only copies the block into a ring
buffer and wakes the event loop (`call_soon_threadsafe`); everything else happens on the loop.
`t_capture` is wall-clock time derived from the sample count since the first block, so chunks
are contiguous and a lost stretch shows as a gap.

Input overflows (PortAudio's `input_overflow` flag) and frames the ring had to drop are
counted and reported as `status` "degraded" events (at most one per `status_interval_s`).
When the device stops delivering audio for `read_timeout_s`, its stream ends, or it cannot
be opened, the source raises `SourceError`; it is `restartable`, so the pipeline publishes a
`status` "reconnecting" event and reopens it with backoff. A device list that changed (a
USB microphone plugged back in) is re-read before reopening.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from mmstream.audio.resample import MonoResampler
from mmstream.audio.ring import CaptureRing
from mmstream.config import MicrophoneSourceConfig
from mmstream.errors import SourceError
from mmstream.events import Status, StatusEvent
from mmstream.media import AUDIO_RATE, AudioChunk
from mmstream.runtime.stage import Source

log = logging.getLogger(__name__)
CHUNK_SAMPLES = AUDIO_RATE // 10  # 100 ms, like the file source
POLL_S = 0.25  # how often a silent wait checks whether the stream has ended
CLOCK_SLIP_S = 1.0  # re-anchor timestamps when capture falls this far behind the wall clock
_streams_lock = threading.Lock()
_open_streams = 0  # PortAudio may only be re-initialised while no stream is open


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    hostapi: str
    channels: int
    default_rate: float
    is_default: bool


def list_input_devices() -> list[InputDevice]:
    """Every device PortAudio can capture from (blocking: call from a thread)."""
    import sounddevice as sd

    default_in = sd.default.device[0] if sd.default.device else -1
    hostapis = sd.query_hostapis()
    return [InputDevice(d["index"], d["name"], hostapis[d["hostapi"]]["name"],
                        d["max_input_channels"], float(d["default_samplerate"]),
                        d["index"] == default_in)
            for d in sd.query_devices() if d["max_input_channels"] > 0]


def _refresh_devices() -> None:
    """Re-read the device list (PortAudio only scans at start), if no stream is open."""
    import sounddevice as sd

    with _streams_lock:
        if _open_streams == 0:
            sd._terminate()
            sd._initialize()


def find_input_device(spec: int | str | None, source: str) -> InputDevice:
    """The device `spec` names; SourceError listing the inputs when there is no such one."""
    for attempt in range(2):
        devices = list_input_devices()
        found = _match(devices, spec)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(f"{d.index}: {d.name}" for d in found)
            raise SourceError(f"{source}: device {spec!r} is ambiguous ({names}); use an index")
        if attempt == 0:
            _refresh_devices()
    wanted = "no default input device" if spec is None else f"no input device {spec!r}"
    names = ", ".join(f"{d.index}: {d.name}" for d in devices) or "none"
    raise SourceError(f"{source}: {wanted} (inputs: {names}; see `mmstream devices`)")


def _match(devices: list[InputDevice], spec: int | str | None) -> list[InputDevice]:
    if spec is None:
        return [d for d in devices if d.is_default][:1]
    if isinstance(spec, int) or spec.isdigit():
        return [d for d in devices if d.index == int(spec)]
    exact = [d for d in devices if d.name == spec]
    return exact or [d for d in devices if spec.lower() in d.name.lower()]


class Capture:
    """One open PortAudio input stream and what its callback hands over."""

    def __init__(self, config: MicrophoneSourceConfig, device: InputDevice,
                 loop: asyncio.AbstractEventLoop, name: str) -> None:
        self.device = device
        self.rate = int(config.sample_rate or device.default_rate)
        self.channels = min(config.channels, device.channels)
        self.ring = CaptureRing(int(config.ring_s * self.rate), self.channels)
        self.ready = asyncio.Event()
        self.loop = loop
        self.name = name
        self.overflows = 0
        self.finished = threading.Event()
        self.first_block_wall: float | None = None
        self._wake_pending = False
        self.stream: Any = None
        self._open(config)

    def _open(self, config: MicrophoneSourceConfig) -> None:
        import sounddevice as sd

        global _open_streams
        try:
            self.stream = sd.InputStream(
                device=self.device.index, samplerate=self.rate, channels=self.channels,
                dtype="float32", blocksize=config.blocksize, latency=config.latency,
                callback=self._callback, finished_callback=self.finished.set)
            self.stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            if self.stream is not None:
                self.stream.close(ignore_errors=True)
            raise SourceError(f"{self.name}: cannot open '{self.device.name}' at "
                              f"{self.rate} Hz x{self.channels}: {exc}") from None
        with _streams_lock:
            _open_streams += 1

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's real-time thread: copy, count, wake the loop; nothing else.
        if status.input_overflow:
            self.overflows += 1
        if self.first_block_wall is None:
            self.first_block_wall = time.time() - frames / self.rate
        self.ring.write(indata)
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self.loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop is closing
                pass

    def _wake(self) -> None:
        self._wake_pending = False
        self.ready.set()

    def close(self, wait_s: float = 2.0) -> None:
        """Stop the stream; a device stuck in a read may not let go, so never wait long."""
        stream, self.stream = self.stream, None
        if stream is None:
            return

        def stop() -> None:
            global _open_streams
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            finally:
                with _streams_lock:
                    _open_streams -= 1

        closer = threading.Thread(target=stop, name=f"{self.name}-close", daemon=True)
        closer.start()
        closer.join(wait_s)
        if closer.is_alive():
            log.warning("%s: the device did not close within %.1fs; leaving it", self.name,
                        wait_s)


class MicrophoneSource(Source):
    """`async with MicrophoneSource(cfg) as mic: async for chunk in mic: ...`"""

    kind = "microphone"
    restartable = True

    def __init__(self, config: MicrophoneSourceConfig) -> None:
        super().__init__(config)
        self.capture: Capture | None = None
        self.opened = 0
        self.overflows_reported = 0
        self.ring_drops_reported = 0

    async def __aenter__(self) -> MicrophoneSource:
        loop = asyncio.get_running_loop()
        device = await asyncio.to_thread(find_input_device, self.config.device, self.name)
        self.capture = await asyncio.to_thread(Capture, self.config, device, loop, self.name)
        self.opened += 1
        log.info("%s opened '%s' at %d Hz x%d", self.name, device.name, self.capture.rate,
                 self.capture.channels)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        capture, self.capture = self.capture, None
        if capture is not None:
            await asyncio.to_thread(capture.close)

    async def __aiter__(self) -> AsyncIterator[AudioChunk | StatusEvent]:  # type: ignore[override]
        capture = self.capture
        if capture is None:
            raise SourceError(f"{self.name}: iterate inside `async with`")
        yield self._status("online", f"capturing from '{capture.device.name}'", capture)
        resample = MonoResampler(capture.rate)
        pending = np.zeros(0, dtype=np.float32)
        t_next: float | None = None  # wall time of pending[0]
        last_status = time.monotonic()
        while True:
            block = await self._next_block(capture)
            if t_next is None:
                assert capture.first_block_wall is not None
                t_next = capture.first_block_wall
            mono = resample(block) if len(block) < capture.rate else await asyncio.to_thread(
                resample, block)
            pending = np.concatenate([pending, mono])
            t_next = self._reanchor(t_next, len(pending))
            while len(pending) >= CHUNK_SAMPLES:
                yield AudioChunk(self.stream_id, round(t_next, 6), pending[:CHUNK_SAMPLES].copy())
                pending = pending[CHUNK_SAMPLES:]
                t_next += CHUNK_SAMPLES / AUDIO_RATE
            if time.monotonic() - last_status >= self.config.status_interval_s:
                last_status = time.monotonic()
                event = self._overflow_status(capture)
                if event is not None:
                    yield event

    async def _next_block(self, capture: Capture) -> np.ndarray:
        """Wait for captured frames; SourceError when the device is gone or falls silent."""
        waited = 0.0
        while True:
            if len(capture.ring):
                block, _dropped = capture.ring.read()  # lost frames: _reanchor skips them
                return block
            if capture.finished.is_set():
                raise SourceError(f"{self.name}: '{capture.device.name}' stopped (device gone?)")
            if waited >= self.config.read_timeout_s:
                raise SourceError(f"{self.name}: no audio from '{capture.device.name}' for "
                                  f"{waited:.1f} s (device gone?)")
            capture.ready.clear()
            try:
                await asyncio.wait_for(capture.ready.wait(), POLL_S)
            except TimeoutError:
                waited += POLL_S

    @staticmethod
    def _reanchor(t_next: float, pending: int) -> float:
        """Keep timestamps on the wall clock when capture lags it (lost audio, clock drift)."""
        expected_end = t_next + pending / AUDIO_RATE
        slip = time.time() - expected_end
        return t_next + slip if slip > CLOCK_SLIP_S else t_next

    def _overflow_status(self, capture: Capture) -> StatusEvent | None:
        overflows, ring = capture.overflows, capture.ring.dropped_total
        if overflows == self.overflows_reported and ring == self.ring_drops_reported:
            return None
        self.overflows_reported, self.ring_drops_reported = overflows, ring
        return self._status("degraded", f"input overflow: {overflows} blocks, "
                            f"{ring} frames dropped by the capture ring", capture,
                            drops={"input_overflow": overflows, "ring_overflow_frames": ring})

    def _status(self, state: Any, message: str, capture: Capture,
                drops: dict[str, int] | None = None) -> StatusEvent:
        details = {"device": capture.device.name, "rate": capture.rate,
                   "channels": capture.channels, "opened": self.opened}
        return StatusEvent(stream_id=self.stream_id, t_capture=time.time(), payload=Status(
            state=state, message=f"{self.name}: {message}", drops=drops or {}, details=details))
