"""Streaming speech to text: VAD utterances, partial transcripts while they last, one final each.

Per stream, the Silero VAD (stages/vad.py) runs incrementally on the 16 kHz audio and marks
utterances. While someone speaks, the utterance so far is decoded every `partial_interval_s`
of source time and published as a `partial` transcript whose `stable_text` is the prefix two
consecutive passes agreed on (LocalAgreement-2); when the utterance ends (or is cut at a pause
for being too long) it is decoded once more, with word timestamps, and published as the
`final`. Everything is driven by source time, so a file replayed as fast as possible gives
the same events every time.

A transcript's `t_capture` is when it was decided, on the source's clock (a partial: the end
of the audio it covers; a final: when the pause that ended its utterance was heard), and after
the transcripts the stage emits `TextProgress` (everything decided by then is out), so a
window downstream holds exactly what had been recognised by its end.

Whisper runs in a worker thread on one model shared by every stream of the stage, through a
`DecodeQueue` (stages/decode_queue.py) that builds each request's prompt when it runs. In a
fast replay each decode is awaited before the next item, so transcripts sit at the same place
in the output every time; live (and paced), each transcript is emitted the moment its decode is
done, a final's decode starts as soon as the pause holds its padding (speculatively), and a
stream that still has a partial in flight skips the next one, so a slow CPU sheds partials,
never finals — the one way a live run's transcripts can differ from a replay's. Audio chunks
pass on unchanged for later stages.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmstream.audio.buffer import SampleBuffer
from mmstream.config import RunMode, TranscribeConfig
from mmstream.events import Transcript, TranscriptEvent
from mmstream.media import AUDIO_RATE, AudioChunk, EndOfStream, TextProgress
from mmstream.models.numerics import pin_math_threads
from mmstream.models.whisper import (
    DecodeOptions,
    DecodeRequest,
    DecodeResult,
    WhisperDecoder,
    load_whisper,
    resolve_device,
)
from mmstream.runtime import metrics
from mmstream.runtime.stage import Item, Stage
from mmstream.stages.decode_queue import DecodeQueue
from mmstream.stages.transcripts import LocalAgreement, clamped_words
from mmstream.stages.vad import (
    FRAME,
    SileroVad,
    Utterance,
    UtteranceSegmenter,
    VadSettings,
)

CONTEXT_CHARS = 200  # of previous finals given to whisper as its prompt
GAP_TOLERANCE_S = 0.25  # a jump in capture time larger than this starts a new timeline


@dataclass
class _Job:
    """A decode in flight, and what its result becomes."""

    final: bool
    utterance_id: int
    start: float  # speech start (source time)
    end: float  # speech end so far (source time)
    decided_at: float  # source time at which it was decided: the event's t_capture
    result: asyncio.Future[DecodeResult]


@dataclass
class _Ahead:
    span: tuple[int, int, int, int]  # decoded audio [begin, end) and speech [start, end)
    result: asyncio.Future[DecodeResult]


@dataclass
class _Stream:
    stream_id: str
    t0: float  # source time of sample 0
    vad: SileroVad
    segmenter: UtteranceSegmenter
    buffer: SampleBuffer = field(default_factory=SampleBuffer)
    utterance_id: int = 0
    last_partial_at: int = 0  # sample index of the last partial's end
    partials_sent: int = 0  # partial events published for the current utterance
    agreement: LocalAgreement = field(default_factory=LocalAgreement)
    context: str = ""  # the stream's last final text(s): the prompt of the next decodes
    finals: deque[asyncio.Future[DecodeResult]] = field(default_factory=deque)  # decided
    jobs: deque[_Job] = field(default_factory=deque)
    speculative: _Ahead | None = None  # live: the final's decode, started early
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
        return self.time(self.next_sample)

    @property
    def next_sample(self) -> int:
        return self.buffer.end

    def time(self, sample: int) -> float:
        return round(self.t0 + sample / AUDIO_RATE, 3)


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
        self.decodes: DecodeQueue | None = None
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
        with metrics.timed_model_load("whisper"):
            self.model = await asyncio.to_thread(
                load_whisper, cfg.model, cfg.device, cfg.compute_type, cfg.cpu_threads)
        options = DecodeOptions(
            language=cfg.language, beam_size=cfg.beam_size, initial_prompt=cfg.initial_prompt,
            hotwords=cfg.hotwords, no_speech_threshold=cfg.no_speech_threshold,
            logprob_threshold=cfg.logprob_threshold, max_repeats=cfg.max_repeats,
            compression_ratio_threshold=cfg.compression_ratio_threshold)
        decoder = WhisperDecoder(self.model, options, resolve_device(cfg.device))
        self.decodes = DecodeQueue(decoder, cfg.max_batch)
        await asyncio.to_thread(SileroVad)  # load the VAD session before audio arrives

    async def close(self) -> None:
        if self.decodes is not None:
            await self.decodes.close()

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
        state = _Stream(chunk.stream_id, chunk.t_capture, SileroVad(),
                        UtteranceSegmenter(self.vad_settings))
        self.streams[chunk.stream_id] = state
        return state

    def _partial_due(self, state: _Stream) -> bool:
        """Every `partial_interval_s` of speech, until a pause holds the speech's padding (the
        final is on its way then; live, its decode starts right there)."""
        seg = state.segmenter
        start = seg.speech_start_sample()
        interval = self.config.partial_interval_s * AUDIO_RATE
        pausing = seg.silence_from is not None and (
            state.next_sample >= seg.silence_from * FRAME + self.pad)
        return (start is not None and not pausing and state.next_sample - start >= interval
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
        state.speculative = _Ahead(span, self._decode(state, span[0], span[1], final=True))

    def _decode(self, state: _Stream, begin: int, end: int, final: bool
                ) -> asyncio.Future[DecodeResult]:
        """Queue the decode of samples [begin, end); its prompt is taken when it runs."""
        assert self.decodes is not None
        audio, offset = state.buffer.slice(begin, end), state.t0 + begin / AUDIO_RATE
        return self.decodes.submit(state.stream_id, lambda: DecodeRequest(
            audio, offset, final, state.prompt()))

    async def _submit(self, state: _Stream, *, final: bool, begin: int, end: int,
                      speech: tuple[int, int],
                      early: asyncio.Future[DecodeResult] | None = None) -> None:
        result = early or self._decode(state, begin, end, final)
        # t_capture is when the transcript was decided, on the source's clock: a partial at the
        # end of the audio it covers, a final when the pause that ends its utterance was heard
        job = _Job(final, state.utterance_id, state.time(speech[0]), state.time(speech[1]),
                   state.time(state.next_sample), result)
        state.jobs.append(job)
        if final:
            state.finals.append(result)
        if self.deterministic:
            await job.result
        else:
            self.in_background(self._emit_when_decoded(job))

    async def _emit_when_decoded(self, job: _Job) -> None:
        """Live: a transcript goes out the moment its decode is done, not with the next chunk."""
        await asyncio.wait({job.result})
        await self._emit_ready()

    async def _emit_ready(self) -> None:
        """Transcripts whose decodes are done, in order, then how far they are complete."""
        async with self._emitting:
            for event in self._ready_events():
                await self.emit(event)
            for stream_id, state in list(self.streams.items()):
                heard_to = state.heard_to()
                if heard_to > state.progress_sent:
                    state.progress_sent = heard_to
                    await self.emit(TextProgress(stream_id, heard_to))

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
            sent, state.partials_sent, state.agreement = state.partials_sent, 0, LocalAgreement()
            if not result.text and not sent:
                return None  # silence or noise that whisper (rightly) found no words in
            payload = Transcript(
                final=True, text=result.text, start=job.start, end=job.end,
                language=result.language, confidence=result.confidence,
                words=clamped_words(result.words, job.start, job.end), stable_text=result.text,
                utterance_id=job.utterance_id)
        else:
            if not result.text:
                return None
            agreement = state.agreement
            text, stable = agreement.update(result.text.split())
            state.partials_sent += 1
            payload = Transcript(
                final=False, text=text, start=job.start, end=job.end,
                language=result.language, confidence=result.confidence, stable_text=stable,
                utterance_id=job.utterance_id)
        return TranscriptEvent(stream_id=stream_id, t_capture=job.decided_at, payload=payload)

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
