"""Speech to text: buffers each stream's audio and publishes final transcript events.

Audio is collected per stream up to `MAX_BUFFER_S` (or the end of the stream) and decoded by
faster-whisper in a worker thread; each recognised segment becomes one final `transcript`
event stamped with its source time. Audio chunks pass on unchanged for later stages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmstream.config import TranscribeConfig
from mmstream.events import Transcript, TranscriptEvent, Word
from mmstream.media import AUDIO_RATE, AudioChunk, EndOfStream
from mmstream.models.whisper import load_whisper
from mmstream.runtime.stage import Stage

MAX_BUFFER_S = 30.0


@dataclass
class _StreamAudio:
    t_start: float = 0.0
    chunks: list[np.ndarray] = field(default_factory=list)
    samples: int = 0


class TranscribeStage(Stage):
    name = "transcribe"

    def __init__(self, config: TranscribeConfig) -> None:
        self.config = config
        self.model: Any = None
        self.buffers: dict[str, _StreamAudio] = {}

    async def open(self) -> None:
        cfg = self.config
        self.model = await asyncio.to_thread(
            load_whisper, cfg.model, cfg.device, cfg.compute_type, cfg.cpu_threads
        )

    async def process(self, item: Any) -> AsyncIterator[Any]:
        if isinstance(item, AudioChunk):
            buffer = self.buffers.setdefault(item.stream_id, _StreamAudio(item.t_capture))
            buffer.chunks.append(item.samples)
            buffer.samples += len(item.samples)
            if buffer.samples >= MAX_BUFFER_S * AUDIO_RATE:
                for event in await self._transcribe(item.stream_id):
                    yield event
        elif isinstance(item, EndOfStream):
            for event in await self._transcribe(item.stream_id):
                yield event
        yield item

    async def flush(self) -> AsyncIterator[Any]:
        for stream_id in list(self.buffers):
            for event in await self._transcribe(stream_id):
                yield event

    async def _transcribe(self, stream_id: str) -> list[TranscriptEvent]:
        buffer = self.buffers.pop(stream_id, None)
        if buffer is None or not buffer.chunks:
            return []
        audio = np.concatenate(buffer.chunks)
        return await asyncio.to_thread(self._decode, stream_id, buffer.t_start, audio)

    def _decode(self, stream_id: str, t_start: float, audio: np.ndarray) -> list[TranscriptEvent]:
        cfg = self.config
        segments, info = self.model.transcribe(
            audio,
            language=cfg.language,
            beam_size=cfg.beam_size,
            word_timestamps=True,
            vad_filter=True,
            initial_prompt=cfg.initial_prompt,
            hotwords=cfg.hotwords,
            condition_on_previous_text=False,
        )
        events = []
        for segment in segments:
            text = segment.text.strip()
            if not text or segment.no_speech_prob > 0.6:
                continue
            words = [
                Word(w.word.strip(), round(t_start + float(w.start), 3),
                     round(t_start + float(w.end), 3), round(float(w.probability), 3))
                for w in segment.words or []
            ]
            start = round(t_start + float(segment.start), 3)
            end = round(t_start + float(segment.end), 3)
            payload = Transcript(
                final=True, text=text, start=start, end=end, language=info.language,
                confidence=round(float(np.exp(segment.avg_logprob)), 3), words=words,
                stable_text=text,
            )
            events.append(TranscriptEvent(stream_id=stream_id, t_capture=end, payload=payload))
        return events
