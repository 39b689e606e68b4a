"""Voice activity: the Silero VAD that faster-whisper ships, run incrementally on a stream.

`SileroVad` keeps the model's LSTM state and the 64-sample context between calls, so each new
chunk costs only its own 32 ms frames (the whole buffer is never re-run). `UtteranceSegmenter`
turns the per-frame speech probabilities into utterances with the same hysteresis as
faster-whisper's `get_speech_timestamps` (start above `threshold`, end after `min_silence`
below `neg_threshold`), live: it reports a start as soon as speech begins and an end as soon
as the silence is long enough. Speech longer than `max_speech` is cut at the latest pause
(or the least speech-like frame), never in the middle of a word.

With `pause_ms` set, it also reports the moment a silence inside speech has lasted that long (a
`Pause`): the caller may then end the utterance there (`end_at_pause`) — the transcription
stage does when what was said reads as a finished sentence — instead of waiting for all of
`min_silence`. Everything is counted in frames of audio, so a replay pauses at the same places.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from mmstream.errors import ModelError
from mmstream.media import AUDIO_RATE

FRAME = 512  # samples per VAD decision (32 ms at 16 kHz)
CONTEXT = 64  # samples of the previous frame the model sees with each frame
MIN_PAUSE_FRAMES = 3  # ~100 ms of silence is a pause a long utterance may be cut at


def vad_model_path() -> Path:
    from faster_whisper.utils import get_assets_path

    path = Path(get_assets_path()) / "silero_vad_v6.onnx"
    if not path.is_file():
        raise ModelError(f"the Silero VAD model is missing at {path} (reinstall faster-whisper)")
    return path


@lru_cache(maxsize=1)
def _session() -> object:
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 4
    return onnxruntime.InferenceSession(
        str(vad_model_path()), providers=["CPUExecutionProvider"], sess_options=opts)


class SileroVad:
    """Speech probability per 512-sample frame, carrying state across calls (one per stream)."""

    _lock = threading.Lock()  # one shared ONNX session; runs are short

    def __init__(self) -> None:
        self.session = _session()
        self.reset()

    def reset(self) -> None:
        self.h = np.zeros((1, 1, 128), dtype=np.float32)
        self.c = np.zeros((1, 1, 128), dtype=np.float32)
        self.context = np.zeros(CONTEXT, dtype=np.float32)
        self.pending = np.zeros(0, dtype=np.float32)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """Probabilities of every whole frame completed by `samples` (leftovers wait)."""
        audio = np.concatenate([self.pending, samples.astype(np.float32, copy=False)])
        frames = len(audio) // FRAME
        self.pending = audio[frames * FRAME:]
        if frames == 0:
            return np.zeros(0, dtype=np.float32)
        batch = audio[: frames * FRAME].reshape(frames, FRAME)
        contexts = np.concatenate([self.context[None, :], batch[:-1, -CONTEXT:]], axis=0)
        self.context = batch[-1, -CONTEXT:].copy()
        with self._lock:
            probs, self.h, self.c = self.session.run(  # type: ignore[attr-defined]
                None, {"input": np.concatenate([contexts, batch], axis=1), "h": self.h,
                       "c": self.c})
        return np.asarray(probs, dtype=np.float32).reshape(-1)


@dataclass(frozen=True)
class VadSettings:
    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_ms: int = 250
    min_silence_ms: int = 500
    speech_pad_ms: int = 200
    max_speech_s: float = 25.0
    pause_ms: int | None = None  # report a Pause once a silence in speech lasts this long
    check_ms: int | None = None  # ... and a Pause to check (`Pause.check`) once it lasts this
    loose_ms: int | None = None  # ... and a Pause to check loosely (`Pause.loose`) at this

    @property
    def low(self) -> float:
        return self.neg_threshold if self.neg_threshold is not None else max(
            self.threshold - 0.15, 0.01)

    def frames(self, ms: float) -> int:
        return round(ms * AUDIO_RATE / 1000 / FRAME)

    @property
    def pause_frames(self) -> int | None:
        """Silence frames after which a `Pause` is reported: at least `pause_ms` and at least
        the padding a final needs after the speech (so its audio is there), before the end."""
        return self._silence_frames(self.pause_ms)

    @property
    def check_frames(self) -> int | None:
        """Silence frames after which a `Pause` to check is reported (`check_ms`, likewise)."""
        return self._silence_frames(self.check_ms)

    @property
    def loose_frames(self) -> int | None:
        """Silence frames after which a `Pause` to check loosely is reported (`loose_ms`)."""
        return self._silence_frames(self.loose_ms)

    def _silence_frames(self, ms: int | None) -> int | None:
        if ms is None:
            return None
        ms = max(ms, self.speech_pad_ms)
        frames = -(-ms * AUDIO_RATE // (1000 * FRAME))  # whole frames, rounded up
        return frames if frames < self.frames(self.min_silence_ms) else None


@dataclass(frozen=True)
class Utterance:
    """Speech from sample `start` to sample `end` (stream sample indices, unpadded)."""

    start: int
    end: int
    cut: bool = False  # ended by the length limit at a pause, speech goes on after it


@dataclass(frozen=True)
class Pause:
    """Speech from sample `start` to `end` has been followed by silence: `pause_frames` of it,
    or `check_frames` of it (`check`: long enough to ask whether the speech ended there), or
    `loose_frames` of it (`loose`: so long that weaker evidence from the words will do)."""

    start: int
    end: int
    check: bool = False
    loose: bool = False


@dataclass
class UtteranceSegmenter:
    """Turns frame probabilities into utterances as they happen."""

    settings: VadSettings = field(default_factory=VadSettings)
    frame_index: int = 0  # next frame to decide
    start: int | None = None  # first frame of the ongoing speech
    silence_from: int | None = None  # first frame of the current silence inside speech
    pauses: list[tuple[int, int]] = field(default_factory=list)  # (from, to) frames in speech
    probs: list[float] = field(default_factory=list)  # of the ongoing speech, for cuts

    @property
    def in_speech(self) -> bool:
        return self.start is not None

    def speech_start_sample(self) -> int | None:
        return None if self.start is None else self.start * FRAME

    def speech_end_sample(self) -> int:
        """Where the ongoing speech ends so far: the current silence, or the last frame."""
        end = self.silence_from if self.silence_from is not None else self.frame_index
        return end * FRAME

    def push(self, probs: np.ndarray) -> list[Utterance]:
        """Feed frame probabilities; returns the utterances that ended with them (pauses are
        not reported: use `step` to act on them)."""
        done = [self.step(float(prob)) for prob in probs.tolist()]
        return [found for found in done if isinstance(found, Utterance)]

    def step(self, prob: float) -> Utterance | Pause | None:
        """Feed one frame's probability: an utterance that ended with it, a pause that reached
        `pause_frames` with it, or nothing."""
        found = self._step(prob)
        self.frame_index += 1
        return found

    def end_at_pause(self) -> Utterance | None:
        """End the ongoing speech at the start of its current silence (after a `Pause`)."""
        assert self.silence_from is not None
        return self._end(self.silence_from)

    def _step(self, prob: float) -> Utterance | Pause | None:
        cfg, i = self.settings, self.frame_index
        if self.start is None:
            if prob >= cfg.threshold:
                self.start, self.silence_from, self.pauses, self.probs = i, None, [], [prob]
            return None
        self.probs.append(prob)
        if prob >= cfg.threshold and self.silence_from is not None:
            if i - self.silence_from >= MIN_PAUSE_FRAMES:
                self.pauses.append((self.silence_from, i))
            self.silence_from = None
        elif prob < cfg.low and self.silence_from is None:
            self.silence_from = i
        if self.silence_from is not None and i + 1 - self.silence_from >= cfg.frames(
                cfg.min_silence_ms):
            return self._end(self.silence_from)
        if (self.silence_from is not None
                and self.silence_from - self.start >= cfg.frames(cfg.min_speech_ms)):
            silent = i + 1 - self.silence_from
            if silent == cfg.check_frames:
                return Pause(self.start * FRAME, self.silence_from * FRAME, check=True)
            if silent == cfg.loose_frames:
                return Pause(self.start * FRAME, self.silence_from * FRAME, loose=True)
            if silent == cfg.pause_frames:
                return Pause(self.start * FRAME, self.silence_from * FRAME)
        if i + 1 - self.start >= cfg.max_speech_s * AUDIO_RATE / FRAME:
            return self._cut()
        return None

    def _end(self, end_frame: int) -> Utterance | None:
        start, self.start, self.silence_from = self.start, None, None
        assert start is not None
        if (end_frame - start) < self.settings.frames(self.settings.min_speech_ms):
            return None  # a click or a cough: too short to transcribe
        return Utterance(start * FRAME, end_frame * FRAME)

    def _cut(self) -> Utterance:
        """Split over-long speech at its latest pause; speech continues after the cut."""
        assert self.start is not None
        start, half = self.start, self.start + (self.frame_index - self.start) // 2
        late_pauses = [p for p in self.pauses if p[0] >= half]
        if late_pauses:
            pause_from, pause_to = late_pauses[-1]
            cut, resume = pause_from, pause_to
        else:  # no pause: the least speech-like frame of the second half (a word boundary)
            tail = np.asarray(self.probs[half - start:], dtype=np.float32)
            smoothed = np.convolve(np.pad(tail, 1, mode="edge"), [0.25, 0.5, 0.25], "valid")
            cut = resume = half + int(np.argmin(smoothed))
        self.start, self.silence_from = resume, None
        self.pauses = [p for p in self.pauses if p[0] >= resume]
        self.probs = self.probs[resume - start:]
        return Utterance(start * FRAME, cut * FRAME, cut=True)

    def finish(self) -> Utterance | None:
        """End of stream: close the ongoing speech, if any."""
        if self.start is None:
            return None
        return self._end(self.speech_end_sample() // FRAME)
