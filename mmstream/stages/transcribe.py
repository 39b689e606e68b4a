"""Streaming speech to text: VAD utterances, partial transcripts while they last, one final each.

Per stream, the Silero VAD (stages/vad.py) runs incrementally on the 16 kHz audio and marks
utterances. While someone speaks, the utterance so far is decoded `first_partial_s` of speech
after it began and then every `partial_interval_s` of source time, and published as a `partial`
transcript whose `stable_text` is the prefix two consecutive passes agreed on (LocalAgreement-2;
only passes over at least `partial_interval_s` of speech: the early ones of `partial_ramp` are
shown, never promised).
An utterance ends at a pause of `min_silence_ms`, or already after `sentence_end_ms` when the
final's decode of the speech before the pause reads as a finished sentence that keeps the words
of its newest partial (`transcripts.finished_sentence`); it is decoded once more, with word
timestamps, and published as the `final`. Everything is driven by source time and by decodes of
fixed audio, so a file replayed as fast as possible gives the same events every time.

A transcript's `t_capture` is when it was decided, on the source's clock (a partial: the end
of the audio it covers; a final: when the pause that ended its utterance was heard), and after
the transcripts the stage emits `TextProgress` (everything decided by then is out), so a
window downstream holds exactly what had been recognised by its end.

Whisper runs in a worker thread on one model shared by every stream of the stage, through a
`DecodeQueue` (stages/decode_queue.py) that builds each request's prompt when it runs. In a
fast replay each decode is awaited before the next item, so transcripts sit at the same place
in the output every time. Live (and paced), each transcript is emitted the moment its decode is
done, and a stream's audio waits (in order, while other items pass on) at a pause whose
sentence check is still decoding, so the check ends the same utterances as in a replay. Live, a
stream that still has a partial in flight skips the next one, and so does one whose partials
come faster than twice their measured decode time (a slow CPU sheds partials, never finals) —
the one way a live run's transcripts can differ from a replay's. Audio chunks pass on unchanged
for later stages.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from typing import Any

from mmstream.config import RunPolicy, TranscribeConfig
from mmstream.events import TranscriptEvent
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
from mmstream.stages.speech_stream import (
    DecodeJob,
    EarlyFinal,
    HeardChunk,
    NewestPartial,
    SpeechStream,
)
from mmstream.stages.transcripts import finished_sentence
from mmstream.stages.vad import (
    FRAME,
    Pause,
    SileroVad,
    Utterance,
    UtteranceSegmenter,
    VadSettings,
)

GAP_TOLERANCE_S = 0.25  # a jump in capture time larger than this starts a new timeline
CADENCE = 2.0  # live: partials at most every CADENCE x their decode time (half the decoder)


class TranscribeStage(Stage):
    name = "transcribe"

    def __init__(self, config: TranscribeConfig, *, policy: RunPolicy) -> None:
        self.config = config
        # results by count: each decode is awaited before the next item (the same bytes every
        # run); when ready: each transcript goes out the moment its decode is done
        self.by_count = not policy.results_when_ready
        # Pauses are where a final's decode starts. Live, as soon as the pause holds the
        # speech's padding, so the final is there sooner (the same decode a replay makes later);
        # in every mode at `sentence_end_ms`, where the sentence check needs it.
        self.vad_settings = VadSettings(
            threshold=config.vad_threshold, neg_threshold=config.vad_neg_threshold,
            min_speech_ms=config.min_speech_ms, min_silence_ms=config.min_silence_ms,
            speech_pad_ms=config.speech_pad_ms, max_speech_s=config.max_utterance_s,
            pause_ms=None if self.by_count else config.speech_pad_ms,
            check_ms=config.sentence_end_ms, loose_ms=config.loose_sentence_end_ms)
        self.pad = config.speech_pad_ms * AUDIO_RATE // 1000
        self.model: Any = None
        self.decodes: DecodeQueue | None = None
        self.streams: dict[str, SpeechStream] = {}
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
            compression_ratio_threshold=cfg.compression_ratio_threshold,
            context_margin_s=cfg.context_margin_s, drop_invented_words=cfg.drop_invented_words)
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
                state.time(state.buffer.end) - chunk.t_capture) > GAP_TOLERANCE_S:
            await self._finish(chunk.stream_id)  # e.g. a microphone reopened
            state = None
        if state is None:
            state = SpeechStream(chunk.stream_id, chunk.t_capture, SileroVad(),
                                 UtteranceSegmenter(self.vad_settings))
            self.streams[chunk.stream_id] = state
        state.buffer.append(chunk.samples)
        probs = await asyncio.to_thread(state.vad, chunk.samples)
        state.backlog.append(HeardChunk(probs, state.buffer.end))
        await self._segment(state, wait=self.by_count)

    async def _segment(self, state: SpeechStream, wait: bool) -> None:
        """Act on the stream's audio in order: utterance ends, pauses, partials. At a pause
        whose sentence check is still decoding, stop (live: it resumes in the background when
        the check is in; with `wait`, await it) — later audio is never acted on before it."""
        async with state.lock:
            while True:
                if state.verdict is not None:
                    if not state.verdict.done() and not wait:
                        return
                    finished, state.verdict = await state.verdict, None
                    if finished and (utterance := state.segmenter.end_at_pause()) is not None:
                        await self._final(state, utterance, state.backlog[0].end)
                if not state.backlog:
                    return
                heard = state.backlog[0]
                while heard.index < len(heard.probs) and state.verdict is None:
                    found = state.segmenter.step(float(heard.probs[heard.index]))
                    heard.index += 1
                    if isinstance(found, Utterance):
                        await self._final(state, found, heard.end)
                    elif isinstance(found, Pause):
                        state.verdict = self._at_pause(state, found)
                if state.verdict is not None:
                    if not state.verdict.done() and not wait:
                        self.in_background(self._resume(state, state.verdict))
                    continue
                state.backlog.popleft()
                state.heard = heard.end
                self._drop_stale_candidate(state)
                if self.config.partials and self._partial_due(state):
                    await self._partial(state)
                self._trim(state)

    async def _resume(self, state: SpeechStream, verdict: asyncio.Future[bool]) -> None:
        await asyncio.wait({verdict})
        await self._segment(state, wait=False)
        await self._emit_ready()

    def _at_pause(self, state: SpeechStream, pause: Pause) -> asyncio.Future[bool] | None:
        """Start the final's decode of the speech before the pause (the same audio the final
        takes if the pause ends the utterance: decoded now, it is there sooner) and, with
        `sentence_end_ms`, check whether it reads as a finished sentence."""
        span = (max(pause.start - self.pad, state.buffer.start), pause.end + self.pad,
                pause.start, pause.end)
        if state.speculative is None or state.speculative.span != span:
            if state.speculative is not None:
                state.speculative.result.cancel()
            state.speculative = EarlyFinal(span, self._decode(
                state, span[0], span[1], final=True, speech_end=pause.end))
        if not (pause.check or pause.loose):
            return None
        reference = None if pause.loose else self._reference(state, pause.start)
        return self._sentence_check(state.speculative.result, reference, pause.loose)

    def _sentence_check(self, candidate: asyncio.Future[DecodeResult],
                        reference: asyncio.Future[DecodeResult] | None,
                        loose: bool) -> asyncio.Future[bool]:
        """The verdict `_segment` awaits in order. The check runs as the stage's background
        work, so a failure stops the pipeline even if no `_segment` is left to await it."""
        verdict: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        async def check() -> None:
            try:
                verdict.set_result(await self._finished(candidate, reference, loose))
            except asyncio.CancelledError:
                verdict.cancel()
                raise
            except BaseException as exc:
                verdict.set_exception(exc)
                raise

        self.in_background(check())
        return verdict

    def _reference(self, state: SpeechStream, speech_start: int
                   ) -> asyncio.Future[DecodeResult] | None:
        """The newest partial of this speech, decoded now if it was skipped live, so the
        sentence check compares the same texts in a live run and in a replay."""
        newest = state.newest_partial
        if newest is None or newest.speech_start != speech_start:
            return None
        if newest.result is None:
            newest.result = self._decode(state, *newest.span, final=False)
        return newest.result

    @staticmethod
    async def _finished(candidate: asyncio.Future[DecodeResult],
                        reference: asyncio.Future[DecodeResult] | None, loose: bool) -> bool:
        said = await candidate
        partial = (await reference).text if reference is not None else None
        return finished_sentence(said, partial, loose)

    def _drop_stale_candidate(self, state: SpeechStream) -> None:
        """Speech went on after the pause: the final's early decode is not needed."""
        if state.speculative is not None and state.segmenter.silence_from is None:
            state.speculative.result.cancel()
            state.speculative = None

    def _partial_due(self, state: SpeechStream) -> bool:
        """`first_partial_s` into the speech, then every `partial_interval_s`, until a pause
        holds the speech's padding (the final is on its way then)."""
        seg = state.segmenter
        start = seg.speech_start_sample()
        if start is None or (seg.silence_from is not None
                             and state.heard >= seg.silence_from * FRAME + self.pad):
            return False
        newest, cfg = state.newest_partial, self.config
        if newest is None or newest.speech_start != start:
            return state.heard - start >= cfg.first_partial_s * AUDIO_RATE
        # early on, the interval grows with the speech heard (0.3, 0.6, 1.2 s, then every
        # partial_interval_s): a first decode that found no words yet is tried again soon
        covered = (newest.span[1] - start) / AUDIO_RATE
        interval = min(cfg.partial_interval_s, max(cfg.first_partial_s, covered)
                       if cfg.partial_ramp else cfg.partial_interval_s)
        return state.heard - newest.span[1] >= interval * AUDIO_RATE

    async def _partial(self, state: SpeechStream) -> None:
        start = state.segmenter.speech_start_sample()
        assert start is not None
        span = (max(start - self.pad, state.buffer.start), state.heard)
        state.newest_partial = NewestPartial(start, span, None)
        if not self.by_count and (reason := self._too_busy(state)):
            self.skipped[reason] += 1
            return
        state.last_submitted = state.heard
        state.newest_partial.result = self._decode(state, *span, final=False)
        await self._submit(state, final=False, speech=(start, state.segmenter.speech_end_sample()),
                           at=state.heard, result=state.newest_partial.result)

    def _too_busy(self, state: SpeechStream) -> str | None:
        """Live: skip a partial while the stream's previous one is still decoding, or when
        partials would come faster than CADENCE x their measured decode time."""
        if any(not job.final for job in state.jobs):
            return "partial_skipped_busy"
        assert self.decodes is not None
        took = self.decodes.partial_seconds
        since = (state.heard - state.last_submitted) / AUDIO_RATE
        if took is not None and since < CADENCE * took:
            return "partial_skipped_slow"
        return None

    async def _final(self, state: SpeechStream, utterance: Utterance, at: int) -> None:
        begin = max(utterance.start - self.pad, state.buffer.start)
        end = utterance.end if utterance.cut else min(utterance.end + self.pad, at)
        ahead, state.speculative, result = state.speculative, None, None
        if ahead is not None:
            if ahead.span == (begin, end, utterance.start, utterance.end):
                result = ahead.result  # the very same audio, already decoding
            else:
                ahead.result.cancel()
        result = result or self._decode(state, begin, end, final=True, speech_end=utterance.end)
        await self._submit(state, final=True, speech=(utterance.start, utterance.end), at=at,
                           result=result)
        state.utterance_id += 1
        state.newest_partial = None

    def _decode(self, state: SpeechStream, begin: int, end: int, final: bool,
                speech_end: int | None = None) -> asyncio.Future[DecodeResult]:
        """Queue the decode of samples [begin, end), whose voice the VAD heard stop at sample
        `speech_end`; its prompt is taken when it runs."""
        assert self.decodes is not None
        audio, offset = state.buffer.slice(begin, end), state.t0 + begin / AUDIO_RATE
        heard_to = None if speech_end is None else (speech_end - begin) / AUDIO_RATE
        prompted = self.config.prompt_previous
        return self.decodes.submit(state.stream_id, lambda: DecodeRequest(
            audio, offset, final, state.prompt() if prompted else "", heard_to))

    async def _submit(self, state: SpeechStream, *, final: bool, speech: tuple[int, int], at: int,
                      result: asyncio.Future[DecodeResult]) -> None:
        # t_capture is when the transcript was decided, on the source's clock: a partial at the
        # end of the audio it covers, a final when the pause that ends its utterance was heard
        job = DecodeJob(final, state.utterance_id, state.time(speech[0]), state.time(speech[1]),
                        state.time(at), result)
        state.jobs.append(job)
        if final:
            state.finals.append(result)
        if self.by_count:
            await job.result
        else:
            self.in_background(self._emit_when_decoded(job))

    async def _emit_when_decoded(self, job: DecodeJob) -> None:
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

    def _trim(self, state: SpeechStream) -> None:
        start = state.segmenter.speech_start_sample()
        keep_from = (start if start is not None else state.heard) - self.pad
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

    def _event(self, stream_id: str, state: SpeechStream, job: DecodeJob) -> TranscriptEvent | None:
        if job.result.cancelled():
            return None
        result = job.result.result()
        if job.final and result.invented_words:  # dropped by the guards (invented_words.py)
            self.skipped["words_invented"] += result.invented_words
        payload = (state.final_transcript(job, result) if job.final else
                   state.partial_transcript(job, result, self.config.partial_interval_s))
        if payload is None:
            return None
        return TranscriptEvent(stream_id=stream_id, t_capture=job.decided_at, payload=payload)

    async def _finish(self, stream_id: str) -> None:
        """End of a stream's timeline: close the utterance, wait for its decodes, emit all."""
        state = self.streams.get(stream_id)
        if state is None:
            return
        await self._segment(state, wait=True)  # all audio heard, sentence checks included
        async with state.lock:
            utterance = state.segmenter.finish()
            if utterance is not None:
                await self._final(state, utterance, state.heard)
        for job in list(state.jobs):
            await asyncio.wait({job.result})
        await self._emit_ready()
        del self.streams[stream_id]
