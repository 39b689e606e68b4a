"""Fusion windows: per stream, what was seen, heard and said over the same stretch of time.

Windows are `length_s` long and start every `hop_s` on a grid of source time (capture
timestamps, never arrival time, so a replay cuts the same windows every time). A window takes
the latest analysed frame at or before its end (no older than `max_frame_age_s` before its
start), the audio inside it, and the transcripts overlapping it.

A window goes out once the stream's media has passed its end (+ a small grace, on streams with
audio, for frames that arrive a little after the audio of the same moment). Transcripts come
later than the audio they describe, so on a stream with audio the window also waits until a
final transcript covers its end or `text_wait_s` more seconds of media have passed. At the end
of a stream, windows that are at least half full are flushed. Every item passes on unchanged.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from mmstream.config import RunMode, WindowConfig
from mmstream.events import Transcript, TranscriptEvent
from mmstream.media import AUDIO_RATE, AudioChunk, EndOfStream, VideoFrame, Window
from mmstream.runtime.stage import Item, Stage

ALIGN_GRACE_S = 0.25  # a frame may arrive this much (source time) after audio of its moment
LIVE_TEXT_WAIT_S = 2.0
REPLAY_TEXT_WAIT_S = 30.0  # as long as the transcriber may hold audio before it speaks


@dataclass
class _Stream:
    origin: float
    next_index: int = 0
    frames: deque[VideoFrame] = field(default_factory=deque)
    audio: deque[AudioChunk] = field(default_factory=deque)
    audio_end: float = -math.inf
    frame_end: float = -math.inf
    finals: list[Transcript] = field(default_factory=list)
    partials: dict[int, Transcript] = field(default_factory=dict)
    final_coverage: float = -math.inf  # finals arrive in order: speech up to here is written

    @property
    def has_audio(self) -> bool:
        return self.audio_end > -math.inf

    @property
    def watermark(self) -> float:
        """How far this stream's media has come (audio is lossless, so it leads when present)."""
        return self.audio_end if self.has_audio else self.frame_end


class WindowStage(Stage):
    name = "window"

    def __init__(self, config: WindowConfig | None = None, *, mode: RunMode = "live",
                 text_wait_s: float | None = None) -> None:
        self.config = config or WindowConfig()
        wait = self.config.text_wait_s if self.config.text_wait_s is not None else text_wait_s
        if wait is None:
            wait = REPLAY_TEXT_WAIT_S if mode == "fast" else LIVE_TEXT_WAIT_S
        self.text_wait_s = wait
        self.max_frame_age_s = self.config.max_frame_age_s or self.config.length_s
        self.streams: dict[str, _Stream] = {}
        self.windows_emitted = 0

    async def process(self, item: Item) -> None:
        if isinstance(item, EndOfStream):
            windows = self._finish(item.stream_id)
        elif self._take(item):
            windows = self._ready_windows(self.streams[item.stream_id], item.stream_id)
        else:
            windows = []
        for window in windows:
            await self.emit(window)
        await self.emit(item)

    async def finish(self) -> None:
        for stream_id in list(self.streams):
            for window in self._finish(stream_id):
                await self.emit(window)

    def _stream(self, stream_id: str, t: float) -> _Stream:
        state = self.streams.get(stream_id)
        if state is None:
            hop = self.config.hop_s
            state = self.streams[stream_id] = _Stream(origin=math.floor(t / hop) * hop)
        return state

    def _take(self, item: Item) -> bool:
        """Remember what a window needs from `item`; True when the stream moved on."""
        if isinstance(item, VideoFrame):
            state = self._stream(item.stream_id, item.t_capture)
            state.frames.append(item)
            state.frame_end = max(state.frame_end, item.t_capture)
        elif isinstance(item, AudioChunk):
            state = self._stream(item.stream_id, item.t_capture)
            state.audio.append(item)
            state.audio_end = max(state.audio_end, item.t_end)
        elif isinstance(item, TranscriptEvent):
            state = self._stream(item.stream_id, item.payload.start)
            self._take_transcript(state, item.payload)
        else:
            return False
        return True

    @staticmethod
    def _take_transcript(state: _Stream, transcript: Transcript) -> None:
        if transcript.final:
            state.partials.pop(transcript.utterance_id, None)
            state.finals.append(transcript)
            state.final_coverage = max(state.final_coverage, transcript.end)
        else:  # a newer partial of an utterance replaces the older one
            state.partials[transcript.utterance_id] = transcript

    def _bounds(self, state: _Stream, index: int) -> tuple[float, float]:
        start = state.origin + index * self.config.hop_s
        return round(start, 6), round(start + self.config.length_s, 6)

    def _ready_windows(self, state: _Stream, stream_id: str) -> list[Window]:
        windows = []
        while True:
            _, end = self._bounds(state, state.next_index)
            # Frames come in order, so on a video-only stream a frame at or past the end
            # closes the window; next to audio (which leads) a frame may still be on its way.
            has_video = state.frame_end > -math.inf
            grace = ALIGN_GRACE_S if has_video and state.has_audio else 0.0
            media_done = state.watermark >= end + grace
            text_done = (not state.has_audio or self.text_wait_s <= 0
                         or state.final_coverage >= end
                         or state.watermark >= end + self.text_wait_s)
            if not (media_done and text_done):
                break
            windows.extend(self._emit(state, stream_id))
        return windows

    def _finish(self, stream_id: str) -> list[Window]:
        """End of a stream: flush the windows that are at least half full, forget the stream."""
        state = self.streams.pop(stream_id, None)
        windows: list[Window] = []
        while state is not None:
            _, end = self._bounds(state, state.next_index)
            if end - state.watermark > self.config.length_s / 2:
                break
            windows.extend(self._emit(state, stream_id))
        return windows

    def _emit(self, state: _Stream, stream_id: str) -> list[Window]:
        """Cut window `next_index` (nothing if it holds no media), advance, prune."""
        index = state.next_index
        start, end = self._bounds(state, index)
        state.next_index += 1
        frame = self._frame(state, start, end)
        audio = self._audio(state, start, end)
        transcripts = self._transcripts(state, start, end)
        self._prune(state, *self._bounds(state, state.next_index))
        if frame is None and not len(audio):
            return []
        self.windows_emitted += 1
        return [Window(stream_id, end, start, index, frame, audio, transcripts,
                       has_audio=state.has_audio)]

    def _frame(self, state: _Stream, start: float, end: float) -> VideoFrame | None:
        for frame in reversed(state.frames):
            if frame.t_capture <= end + 1e-6:
                return frame if frame.t_capture >= start - self.max_frame_age_s else None
        return None

    @staticmethod
    def _audio(state: _Stream, start: float, end: float) -> np.ndarray:
        chunks = [c for c in state.audio if c.t_end > start and c.t_capture < end]
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        samples = np.concatenate([c.samples for c in chunks])
        first = round((start - chunks[0].t_capture) * AUDIO_RATE)
        count = round((end - start) * AUDIO_RATE)
        return samples[max(first, 0): max(first, 0) + count + min(first, 0)]

    @staticmethod
    def _transcripts(state: _Stream, start: float, end: float) -> tuple[Transcript, ...]:
        found = [t for t in (*state.finals, *state.partials.values())
                 if t.end > start and t.start < end]
        return tuple(sorted(found, key=lambda t: (t.start, t.end)))

    def _prune(self, state: _Stream, next_start: float, next_end: float) -> None:
        """Forget what no later window can use: frames too old or superseded by a newer one."""
        oldest_frame = next_start - self.max_frame_age_s
        frames = state.frames
        while frames and (frames[0].t_capture < oldest_frame
                          or (len(frames) > 1 and frames[1].t_capture <= next_end)):
            frames.popleft()
        while state.audio and state.audio[0].t_end <= next_start:
            state.audio.popleft()
        state.finals = [t for t in state.finals if t.end > next_start]
        state.partials = {k: t for k, t in state.partials.items() if t.end > next_start}
