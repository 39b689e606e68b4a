"""A real capture device without hardware, for tests and benchmarks on a headless box.

ALSA's `file` plugin with an `infile` is a capture device that PortAudio lists and sounddevice
opens like any microphone. Here its infile is a FIFO this process writes into, paced at the
speaking rate, so the "microphone" delivers audio in real time (the plugin's `null` slave has
no clock of its own). The plugin pads a short read with silence, so audio is written in whole
periods: open the device with `blocksize=period`.

The consumer must see the device in `$HOME/.asoundrc` before PortAudio starts, i.e. run it in
a process whose HOME is `home` (set before sounddevice is imported). `pause()` stalls the
device (reads block, as on a dead USB link); `remove()` takes it away altogether.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

import numpy as np


class VirtualMic:
    def __init__(self, home: Path, name: str = "vmic", rate: int = 16000,
                 period: int = 1024) -> None:
        self.home = Path(home)
        self.name = name
        self.rate = rate
        self.period = period
        self.fifo = self.home / f"{name}.fifo"
        self._fd: int | None = None
        self._clips: queue.Queue[np.ndarray] = queue.Queue()
        self._paused = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._thread: threading.Thread | None = None
        self.periods_written = 0
        self.periods_lost = 0  # written while nobody read and the FIFO was full
        self.clip_started: list[float] = []  # wall time each played clip began to be written
        if period * 2 > 4096:
            raise ValueError("period must be <= 2048 frames (one atomic FIFO write)")

    @property
    def device(self) -> str:
        """The name PortAudio lists (the `plug` layer on top of the raw file device)."""
        return f"{self.name}_plug"

    def asoundrc(self) -> str:
        raw = (f'pcm.{self.name} {{ type file; slave.pcm "null"; file "/dev/null"; '
               f'infile "{self.fifo}"; format "raw" }}\n')
        plug = (f'pcm.{self.name}_plug {{ type plug; slave {{ pcm "{self.name}"; '
                f'format S16_LE; rate {self.rate}; channels 1 }} }}\n')
        return raw + plug

    def install(self) -> VirtualMic:
        """Create the FIFO and the device and start delivering audio (silence until `play`)."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.fifo.exists():
            self.fifo.unlink()
        os.mkfifo(self.fifo)
        # Held read-write: PortAudio's device scan can open the FIFO without blocking, and a
        # pause blocks the reader instead of ending its file.
        self._fd = os.open(self.fifo, os.O_RDWR)
        os.set_blocking(self._fd, False)  # nobody reading: audio is lost, as from a real mic
        (self.home / ".asoundrc").write_text(self.asoundrc())
        self._stopping.clear()
        self._paused.clear()
        self._thread = threading.Thread(target=self._feed, name=f"{self.name}-feed", daemon=True)
        self._thread.start()
        return self

    def play(self, samples: np.ndarray) -> None:
        """Queue float samples in [-1, 1] (mono, at `rate`) to be 'spoken' into the mic."""
        self._idle.clear()
        self._clips.put(np.asarray(samples, dtype=np.float32))

    def wait_played(self, timeout: float) -> bool:
        """Block until every queued clip has been delivered."""
        return self._idle.wait(timeout)

    def pause(self) -> None:
        """Stop delivering: the reader blocks, like a device whose link died."""
        self._paused.set()

    def remove(self) -> None:
        """The device vanishes: no longer configured, and its FIFO ends."""
        self._stop_thread()
        (self.home / ".asoundrc").write_text("")
        if self._fd is not None:
            os.close(self._fd)  # a blocked reader gets end-of-file and lets go
            self._fd = None
        self.fifo.unlink(missing_ok=True)

    def _stop_thread(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _feed(self) -> None:
        silence = np.zeros(self.period, dtype=np.int16)
        pending = np.zeros(0, dtype=np.int16)
        started, written = time.monotonic(), 0
        while not self._stopping.is_set():
            if self._paused.is_set():
                time.sleep(0.05)
                started, written = time.monotonic(), 0
                continue
            if len(pending) < self.period:
                pending = np.concatenate([pending, self._next_clip()])
            if len(pending) >= self.period:
                block, pending = pending[:self.period], pending[self.period:]
            else:
                block = silence
                if not len(pending):
                    self._idle.set()
            try:  # one period <= PIPE_BUF bytes: written whole or not at all
                os.write(self._fd, block.astype("<i2").tobytes())  # type: ignore[arg-type]
            except BlockingIOError:
                self.periods_lost += 1
            written += 1
            self.periods_written += 1
            delay = started + written * self.period / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def _next_clip(self) -> np.ndarray:
        try:
            clip = self._clips.get_nowait()
        except queue.Empty:
            return np.zeros(0, dtype=np.int16)
        self.clip_started.append(time.time())
        clip = np.clip(clip, -1.0, 1.0)
        whole = -(-len(clip) // self.period) * self.period  # end on a whole period
        return np.pad((clip * 32767).astype(np.int16), (0, whole - len(clip)))

    def close(self) -> None:
        self.remove()
