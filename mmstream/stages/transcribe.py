"""Streaming speech to text: VAD utterances, partial transcripts while they last, one final each.

Per stream, the Silero VAD (stages/vad.py) runs incrementally on the 16 kHz audio and marks
utterances. While someone speaks, the utterance so far is decoded every `partial_interval_s`
of source time and published as a `partial` transcript whose `stable_text` is the prefix two
consecutive passes agreed on (LocalAgreement-2); when the utterance ends (or is cut at a pause
for being too long) it is decoded once more, with word timestamps, and published as the
`final`. Everything is driven by source time, so a file replayed as fast as possible gives
the same events every time.

Whisper runs in a worker thread on one model shared by every stream of the stage. In a fast
replay each decode is awaited before the next item, so transcripts sit at the same place in
the output every time; live (and paced), decodes queue on a scheduler that batches what is
waiting (across microphones, batched on CUDA), each transcript is emitted the moment its
decode is done, and a stream that still has a partial in flight skips the next one, so a slow
CPU sheds partials, never finals. Audio chunks pass on unchanged for later stages.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmstream.audio.buffer import SampleBuffer
from mmstream.config import RunMode, TranscribeConfig
from mmstream.events import Transcript, TranscriptEvent, Word
from mmstream.media import AUDIO_RATE, AudioChunk, EndOfStream
from mmstream.models.numerics import pin_math_threads
from mmstream.models.whisper import (
    DecodeOptions,
    DecodeRequest,
    DecodeResult,
    WhisperDecoder,
    load_whisper,
    normalise_word,
    resolve_device,
)
from mmstream.runtime.stage import Item, Stage
from mmstream.stages.vad import (
    FRAME,
    SileroVad,
    Utterance,
    UtteranceSegmenter,
    VadSettings,
)

CONTEXT_CHARS = 200  # of previous finals given to whisper as its prompt
GAP_TOLERANCE_S = 0.25  # a jump in capture time larger than this starts a new timeline


class LocalAgreement:
    """Words two consecutive partial passes agree on become stable and stay stable."""

    def __init__(self) -> None:
        self.committed: list[str] = []
        self.previous: list[str] = []

    def update(self, words: list[str]) -> tuple[str, str]:
        """Take one pass's words; returns (text, stable prefix) for the partial."""
        agreed = 0
        for a, b in zip(self.previous, words, strict=False):
            if normalise_word(a) != normalise_word(b):
                break
            agreed += 1
        if agreed > len(self.committed) and _starts_with(words, self.committed):
            self.committed = words[:agreed]
        self.previous = words
        if _starts_with(words, self.committed):
            text_words = words
        else:  # this pass disagrees with what was promised stable: keep the promise
            text_words = self.committed + words[len(self.committed):]
        return " ".join(text_words), " ".join(self.committed)


def _clamped(words: list[Word], start: float, end: float) -> list[Word]:
    """Word times inside the utterance's speech (whisper's drift into the padding removed)."""
    out = []
    for word in words:
        a = min(max(word.start, start), end)
        out.append(Word(word.word, a, min(max(word.end, a), end), word.probability))
    return out


def _starts_with(words: list[str], prefix: list[str]) -> bool:
    return len(words) >= len(prefix) and all(
        normalise_word(a) == normalise_word(b) for a, b in zip(words, prefix, strict=False))


@dataclass
class _Job:
    """A decode in flight, and what its result becomes."""

    final: bool
    utterance_id: int
    start: float  # speech start (source time)
    end: float  # speech end so far (source time)
    covered_to: float  # end of the decoded audio: the event's t_capture
    result: asyncio.Future[DecodeResult]


@dataclass
class _Ahead:
    span: tuple[int, int, int, int]  # decoded audio [begin, end) and speech [start, end)
    result: asyncio.Future[DecodeResult]


@dataclass
class _Stream:
    t0: float  # source time of sample 0
    vad: SileroVad
    segmenter: UtteranceSegmenter
    buffer: SampleBuffer = field(default_factory=SampleBuffer)
    utterance_id: int = 0
    last_partial_at: int = 0  # sample index of the last partial's end
    partials_sent: int = 0  # partial events published for the current utterance
    agreement: LocalAgreement = field(default_factory=LocalAgreement)
    context: str = ""  # the stream's last final text(s): the prompt of the next decodes
    jobs: deque[_Job] = field(default_factory=deque)
    speculative: _Ahead | None = None  # live: the final's decode, started early

    @property
    def next_sample(self) -> int:
        return self.buffer.end

    def time(self, sample: int) -> float:
        return round(self.t0 + sample / AUDIO_RATE, 3)


class DecodeScheduler:
    """Runs decode requests of every stream on the shared decoder, batching what waits."""

    def __init__(self, decoder: WhisperDecoder, max_batch: int) -> None:
        self.decoder = decoder
        self.max_batch = max_batch
        self._queue: deque[tuple[DecodeRequest, asyncio.Future[DecodeResult]]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, request: DecodeRequest) -> asyncio.Future[DecodeResult]:
        future: asyncio.Future[DecodeResult] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        self._wakeup.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="whisper-decode")
        return future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = [self._queue.popleft()
                         for _ in range(min(self.max_batch, len(self._queue)))]
                batch = [(request, future) for request, future in batch if not future.done()]
                if not batch:  # all cancelled: partials overtaken by their final
                    continue
                try:
                    results = await asyncio.to_thread(self.decoder.decode,
                                                      [request for request, _ in batch])
                except Exception as exc:  # hand the failure to whoever waits on it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class TranscribeStage(Stage):
    name = "transcribe"

    def __init__(self, config: TranscribeConfig, *, mode: RunMode = "fast") -> None:
        self.config = config
        self.deterministic = mode == "fast"
        self.vad_settings = VadSettings(
            threshold=config.vad_threshold, neg_threshold=config.vad_neg_threshold,
            min_speech_ms=config.min_speech_ms, min_silence_ms=config.min_silence_ms,
            speech_pad_ms=config.speech_pad_ms, max_speech_s=config.max_utterance_s)
        self.pad = config.speech_pad_ms * AUDIO_RATE // 1000
        self.model: Any = None
        self.scheduler: DecodeScheduler | None = None
        self.streams: dict[str, _Stream] = {}
        self.skipped: Counter[str] = Counter()  # partials skipped while the decoder was busy
        self._emitting = asyncio.Lock()  # a stream's transcripts go out in decode order

    def drops(self) -> Mapping[str, int]:
        return self.skipped

    @property
    def model_version(self) -> str | None:
        return f"whisper:{self.config.model}"

    async def open(self) -> None:
        cfg = self.config
        pin_math_threads()
        self.model = await asyncio.to_thread(
            load_whisper, cfg.model, cfg.device, cfg.compute_type, cfg.cpu_threads)
        options = DecodeOptions(
            language=cfg.language, beam_size=cfg.beam_size, initial_prompt=cfg.initial_prompt,
            hotwords=cfg.hotwords, no_speech_threshold=cfg.no_speech_threshold,
            logprob_threshold=cfg.logprob_threshold, max_repeats=cfg.max_repeats,
            compression_ratio_threshold=cfg.compression_ratio_threshold)
        decoder = WhisperDecoder(self.model, options, resolve_device(cfg.device))
        self.scheduler = DecodeScheduler(decoder, cfg.max_batch)
        await asyncio.to_thread(SileroVad)  # load the VAD session before audio arrives

    async def close(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.close()

    async def process(self, item: Item) -> None:
        if isinstance(item, AudioChunk):
            await self._audio(item)
        elif isinstance(item, EndOfStream):
            await self._finish(item.stream_id)
        await self._emit_ready()
        await self.emit(item)

    async def finish(self) -> None:
        for stream_id in list(self.streams):
            await self._finish(stream_id)

    async def _audio(self, chunk: AudioChunk) -> None:
        state = self.streams.get(chunk.stream_id)
        if state is not None and abs(
                state.time(state.next_sample) - chunk.t_capture) > GAP_TOLERANCE_S:
            await self._finish(chunk.stream_id)  # e.g. a microphone reopened
            state = None
        if state is None:
            state = self._new_stream(chunk)
        state.buffer.append(chunk.samples)
        probs = await asyncio.to_thread(state.vad, chunk.samples)
        for utterance in state.segmenter.push(probs):
            await self._final(chunk.stream_id, state, utterance)
        if not self.deterministic:
            self._speculate(state)
        if self.config.partials and self._partial_due(state):
            await self._partial(chunk.stream_id, state)
        self._trim(state)

    def _new_stream(self, chunk: AudioChunk) -> _Stream:
        state = _Stream(chunk.t_capture, SileroVad(), UtteranceSegmenter(self.vad_settings))
        self.streams[chunk.stream_id] = state
        return state

    def _partial_due(self, state: _Stream) -> bool:
        start = state.segmenter.speech_start_sample()
        interval = self.config.partial_interval_s * AUDIO_RATE
        return (start is not None and state.next_sample - start >= interval
                and state.next_sample - state.last_partial_at >= interval)

    async def _partial(self, stream_id: str, state: _Stream) -> None:
        start = state.segmenter.speech_start_sample()
        assert start is not None
        state.last_partial_at = state.next_sample
        if not self.deterministic and any(not job.final for job in state.jobs):
            self.skipped["partial_skipped_busy"] += 1
            return
        begin = max(start - self.pad, state.buffer.start)
        await self._submit(state, final=False, begin=begin, end=state.next_sample,
                           speech=(start, state.segmenter.speech_end_sample()))

    async def _final(self, stream_id: str, state: _Stream, utterance: Utterance) -> None:
        self._cancel_partials(state)
        begin = max(utterance.start - self.pad, state.buffer.start)
        end = utterance.end if utterance.cut else min(utterance.end + self.pad, state.next_sample)
        ahead, state.speculative, early = state.speculative, None, None
        if ahead is not None:
            if ahead.span == (begin, end, utterance.start, utterance.end):
                early = ahead.result  # the very same audio, already decoding
            else:
                ahead.result.cancel()
        await self._submit(state, final=True, begin=begin, end=end,
                           speech=(utterance.start, utterance.end), early=early)
        state.utterance_id += 1
        state.agreement = LocalAgreement()
        state.last_partial_at = utterance.end

    def _speculate(self, state: _Stream) -> None:
        """Live: start the final's decode once a silence holds its padding, not after all of
        `min_silence_ms`. Its audio is exactly what the final would decode, so if the silence
        does end the utterance the result is the same, just earlier; if speech resumes, it is
        dropped."""
        seg, ahead = state.segmenter, state.speculative
        start = seg.speech_start_sample()
        if start is None or seg.silence_from is None:
            if ahead is not None:
                ahead.result.cancel()
                state.speculative = None
            return
        speech_end = seg.silence_from * FRAME
        span = (max(start - self.pad, state.buffer.start), speech_end + self.pad, start,
                speech_end)
        too_short = speech_end - start < self.vad_settings.frames(
            self.vad_settings.min_speech_ms) * FRAME
        if (ahead is not None and ahead.span == span) or too_short or (
                state.next_sample < speech_end + self.pad):
            return
        if ahead is not None:
            ahead.result.cancel()
        assert self.scheduler is not None
        self._cancel_partials(state)
        state.speculative = _Ahead(span, self.scheduler.submit(
            self._request(state, span[0], span[1], final=True)))

    @staticmethod
    def _cancel_partials(state: _Stream) -> None:
        for job in state.jobs:  # a partial still queued would only delay the final
            if not job.final:
                job.result.cancel()

    def _request(self, state: _Stream, begin: int, end: int, final: bool) -> DecodeRequest:
        return DecodeRequest(state.buffer.slice(begin, end), state.t0 + begin / AUDIO_RATE,
                             final, state.context)

    async def _submit(self, state: _Stream, *, final: bool, begin: int, end: int,
                      speech: tuple[int, int],
                      early: asyncio.Future[DecodeResult] | None = None) -> None:
        assert self.scheduler is not None
        result = early or self.scheduler.submit(self._request(state, begin, end, final))
        job = _Job(final, state.utterance_id, state.time(speech[0]), state.time(speech[1]),
                   state.time(end), result)
        state.jobs.append(job)
        if self.deterministic:
            await job.result
        else:
            self.in_background(self._emit_when_decoded(job))

    async def _emit_when_decoded(self, job: _Job) -> None:
        """Live: a transcript goes out the moment its decode is done, not with the next chunk."""
        await asyncio.wait({job.result})  # (a partial overtaken by its final is cancelled)
        await self._emit_ready()

    async def _emit_ready(self) -> None:
        async with self._emitting:
            for event in self._ready_events():
                await self.emit(event)

    def _trim(self, state: _Stream) -> None:
        start = state.segmenter.speech_start_sample()
        keep_from = (start if start is not None else state.next_sample) - self.pad
        state.buffer.trim_before(keep_from)

    def _ready_events(self) -> list[TranscriptEvent]:
        """Events of finished decodes, in submission order per stream."""
        events = []
        for stream_id, state in self.streams.items():
            while state.jobs and state.jobs[0].result.done():
                event = self._event(stream_id, state, state.jobs.popleft())
                if event is not None:
                    events.append(event)
        return events

    def _event(self, stream_id: str, state: _Stream, job: _Job) -> TranscriptEvent | None:
        if job.result.cancelled():
            return None
        result = job.result.result()
        if job.final:
            if not result.text and not state.partials_sent:
                return None  # silence or noise that whisper (rightly) found no words in
            state.partials_sent = 0
            state.context = (state.context + " " + result.text).strip()[-CONTEXT_CHARS:]
            payload = Transcript(
                final=True, text=result.text, start=job.start, end=job.end,
                language=result.language, confidence=result.confidence,
                words=_clamped(result.words, job.start, job.end), stable_text=result.text,
                utterance_id=job.utterance_id)
        else:
            if job.utterance_id != state.utterance_id or not result.text:
                return None  # its utterance already ended: the final says it better
            agreement = state.agreement
            text, stable = agreement.update(result.text.split())
            state.partials_sent += 1
            payload = Transcript(
                final=False, text=text, start=job.start, end=job.end,
                language=result.language, confidence=result.confidence, stable_text=stable,
                utterance_id=job.utterance_id)
        return TranscriptEvent(stream_id=stream_id, t_capture=job.covered_to, payload=payload)

    async def _finish(self, stream_id: str) -> None:
        """End of a stream's timeline: close the utterance, wait for its decodes, emit all."""
        state = self.streams.get(stream_id)
        if state is None:
            return
        utterance = state.segmenter.finish()
        if utterance is not None:
            await self._final(stream_id, state, utterance)
        for job in list(state.jobs):
            await asyncio.wait({job.result})
        await self._emit_ready()
        del self.streams[stream_id]
