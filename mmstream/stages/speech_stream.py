"""What the transcription stage keeps per stream: the audio and its VAD, where the stream's
logic has got to, the decodes in flight and what they become (stages/transcribe.py)."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from mmstream.audio.buffer import SampleBuffer
from mmstream.events import Transcript
from mmstream.media import AUDIO_RATE
from mmstream.models.whisper import DecodeResult
from mmstream.stages.transcripts import LocalAgreement, clamped_words
from mmstream.stages.vad import SileroVad, UtteranceSegmenter

CONTEXT_CHARS = 200  # of previous finals given to whisper as its prompt


@dataclass
class DecodeJob:
    """A decode in flight, and what its result becomes."""

    final: bool
    utterance_id: int
    start: float  # speech start (source time)
    end: float  # speech end so far (source time)
    decided_at: float  # source time at which it was decided: the event's t_capture
    result: asyncio.Future[DecodeResult]


@dataclass
class EarlyFinal:
    span: tuple[int, int, int, int]  # decoded audio [begin, end) and speech [start, end)
    result: asyncio.Future[DecodeResult]


@dataclass
class HeardChunk:
    """A chunk's VAD probabilities, not all fed to the segmenter yet."""

    probs: np.ndarray
    end: int  # the sample index where the chunk ends
    index: int = 0  # the next probability to feed


@dataclass
class NewestPartial:
    """The newest partial of the ongoing speech: the reference of the sentence-end check."""

    speech_start: int
    span: tuple[int, int]  # decoded audio [begin, end)
    result: asyncio.Future[DecodeResult] | None  # None: skipped live (decoded if needed)


@dataclass
class SpeechStream:
    stream_id: str
    t0: float  # source time of sample 0
    vad: SileroVad
    segmenter: UtteranceSegmenter
    buffer: SampleBuffer = field(default_factory=SampleBuffer)
    heard: int = 0  # audio before this sample index has been segmented (and acted on)
    backlog: deque[HeardChunk] = field(default_factory=deque)
    verdict: asyncio.Future[bool] | None = None  # live: the sentence-end check awaited
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    utterance_id: int = 0
    newest_partial: NewestPartial | None = None
    last_submitted: int = -(10**12)  # sample index of the last partial decoded (live cadence)
    partials_sent: int = 0  # partial events published for the current utterance
    agreement: LocalAgreement = field(default_factory=LocalAgreement)
    context: str = ""  # the stream's last final text(s): the prompt of the next decodes
    finals: deque[asyncio.Future[DecodeResult]] = field(default_factory=deque)  # decided
    jobs: deque[DecodeJob] = field(default_factory=deque)
    speculative: EarlyFinal | None = None  # the final's decode, started at a pause
    progress_sent: float = -math.inf  # the last TextProgress of this stream

    def prompt(self) -> str:
        """The finals decided so far (all decoded by now: see stages/decode_queue.py)."""
        while self.finals and self.finals[0].done():
            decided = self.finals.popleft()
            if not decided.cancelled() and decided.exception() is None:
                self.context = (self.context + " " + decided.result().text).strip()
                self.context = self.context[-CONTEXT_CHARS:]
        return self.context

    def heard_to(self) -> float:
        """Every transcript decided at or before this source time has been emitted."""
        if self.jobs:  # decided, not yet out (a millisecond before: times are rounded to ms)
            return round(self.jobs[0].decided_at - 0.001, 3)
        return self.time(self.heard)

    def time(self, sample: int) -> float:
        return round(self.t0 + sample / AUDIO_RATE, 3)

    def final_transcript(self, job: DecodeJob, result: DecodeResult) -> Transcript | None:
        """The final of an utterance (None: no words, and no partial of it was published)."""
        sent, self.partials_sent, self.agreement = self.partials_sent, 0, LocalAgreement()
        if not result.text and not sent:
            return None  # silence or noise that whisper (rightly) found no words in
        return Transcript(
            final=True, text=result.text, start=job.start, end=job.end,
            language=result.language, confidence=result.confidence,
            words=clamped_words(result.words, job.start, job.end), stable_text=result.text,
            utterance_id=job.utterance_id)

    def partial_transcript(self, job: DecodeJob, result: DecodeResult,
                           promise_after_s: float) -> Transcript | None:
        """A partial; its words become stable once two passes over at least
        `promise_after_s` of speech agree on them (LocalAgreement-2)."""
        if not result.text:
            return None
        if job.decided_at - job.start < promise_after_s - 1e-6:
            # an early (ramp) partial: shown, but too little speech to promise words as
            # stable ("below." for a half-spoken "Hello", twice); and live may skip it, which
            # must not change what later partials say
            text, stable = result.text, " ".join(self.agreement.committed)
        else:
            text, stable = self.agreement.update(result.text.split())
        self.partials_sent += 1
        return Transcript(
            final=False, text=text, start=job.start, end=job.end, language=result.language,
            confidence=result.confidence, stable_text=stable, utterance_id=job.utterance_id)
