"""Fusion windows: per stream, what was seen, heard and said over the same stretch of time.

Windows are `length_s` long and start every `hop_s` on a grid of source time (capture
timestamps, never arrival time, so a replay cuts the same windows every time). A window takes
the latest analysed frame at or before its end (no older than `max_frame_age_s` before its
start), the audio inside it, and what had been said in it *as recognised by its end*: per
utterance overlapping the window, the newest transcript decided at or before the window's end
(a transcript's `t_capture` is when it was decided). So a window over the first words of a
sentence carries the partial of those words, not the final decoded seconds later — the same
in a live run, a paced replay and a fast replay of its recording.

A window goes out once the stream's media has passed its end (+ a small grace, on streams with
audio, for frames that arrive a little after the audio of the same moment) and, on a stream
with audio, once the transcription stage says every transcript decided by then is out
(`TextProgress`). Live, a whisper that falls behind does not hold windows back longer than
`text_wait_s` (of media at 1x; `speed` times that in a paced replay). At the end of a stream,
windows that are at least half full are flushed. Every item passes on unchanged.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from mmstream.config import RunPolicy, WindowConfig
from mmstream.events import Transcript, TranscriptEvent
from mmstream.media import (
    AUDIO_RATE,
    AudioChunk,
    EndOfStream,
    FrameSkipped,
    TextProgress,
    VideoFrame,
    Window,
)
from mmstream.runtime.stage import Item, Stage

ALIGN_GRACE_S = 0.25  # a frame may arrive this much (source time) after audio of its moment
LIVE_TEXT_WAIT_S = 0.5  # a partial decodes in ~0.1-0.4 s here; the window must stay fresh
REPLAY_TEXT_WAIT_S = 30.0  # a bound only: in a fast replay TextProgress keeps up with audio


@dataclass
class _Stream:
    origin: float | None = None  # the window grid's start, from the first media item
    next_index: int = 0
    frames: deque[VideoFrame] = field(default_factory=deque)
    audio: deque[AudioChunk] = field(default_factory=deque)
    audio_end: float = -math.inf
    frame_end: float = -math.inf
    said: list[tuple[float, Transcript]] = field(default_factory=list)  # (decided at, text)
    text_heard_to: float = -math.inf  # every transcript decided by then has arrived

    @property
    def has_audio(self) -> bool:
        return self.audio_end > -math.inf

    @property
    def watermark(self) -> float:
        """How far this stream's media has come (audio is lossless, so it leads when present)."""
        return self.audio_end if self.has_audio else self.frame_end


class WindowStage(Stage):
    name = "window"

    def __init__(self, config: WindowConfig | None = None, *, policy: RunPolicy,
                 text_wait_s: float | None = None, pace: float = 1.0) -> None:
        self.config = config or WindowConfig()
        on_wall_clock = policy.clock == "wall"
        wait = self.config.text_wait_s if self.config.text_wait_s is not None else text_wait_s
        if wait is None:
            wait = LIVE_TEXT_WAIT_S if on_wall_clock else REPLAY_TEXT_WAIT_S
        # The wait bounds how long whisper may hold a window in *wall* time: a replay paced at
        # 2x covers twice the media in that time (`pace`: media seconds per wall second).
        self.text_wait_s = wait * pace if on_wall_clock else wait
        self.max_frame_age_s = self.config.max_frame_age_s or self.config.length_s
        self.streams: dict[str, _Stream] = {}
        self.windows_emitted = 0
        self.late_text: Counter[str] = Counter()  # windows that went before their text

    def drops(self) -> Mapping[str, int]:
        """Windows that did not wait for all their text (live, whisper behind)."""
        return self.late_text

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

    def _stream(self, stream_id: str, media_t: float | None = None) -> _Stream:
        state = self.streams.setdefault(stream_id, _Stream())
        if state.origin is None and media_t is not None:
            hop = self.config.hop_s
            state.origin = math.floor(media_t / hop) * hop
        return state

    def _take(self, item: Item) -> bool:
        """Remember what a window needs from `item`; True when the stream moved on."""
        if isinstance(item, VideoFrame):
            state = self._stream(item.stream_id, item.t_capture)
            state.frames.append(item)
            state.frame_end = max(state.frame_end, item.t_capture)
        elif isinstance(item, FrameSkipped):  # video went on, this frame is not analysed
            state = self._stream(item.stream_id, item.t_capture)
            state.frame_end = max(state.frame_end, item.t_capture)
        elif isinstance(item, AudioChunk):
            state = self._stream(item.stream_id, item.t_capture)
            state.audio.append(item)
            state.audio_end = max(state.audio_end, item.t_end)
        elif isinstance(item, TranscriptEvent):
            state = self._stream(item.stream_id)
            state.said.append((item.t_capture, item.payload))
        elif isinstance(item, TextProgress):
            state = self._stream(item.stream_id)
            state.text_heard_to = max(state.text_heard_to, item.t_capture)
        else:
            return False
        return True

    def _bounds(self, state: _Stream, index: int) -> tuple[float, float]:
        assert state.origin is not None
        start = state.origin + index * self.config.hop_s
        return round(start, 6), round(start + self.config.length_s, 6)

    def _ready_windows(self, state: _Stream, stream_id: str) -> list[Window]:
        windows: list[Window] = []
        while state.origin is not None:
            _, end = self._bounds(state, state.next_index)
            # Frames come in order, so on a video-only stream a frame at or past the end
            # closes the window; next to audio (which leads) a frame may still be on its way.
            has_video = state.frame_end > -math.inf
            grace = ALIGN_GRACE_S if has_video and state.has_audio else 0.0
            media_done = state.watermark >= end + grace
            text_known = (not state.has_audio or self.text_wait_s <= 0
                          or state.text_heard_to >= end)
            waited_enough = state.watermark >= end + self.text_wait_s
            if not (media_done and (text_known or waited_enough)):
                break
            if not text_known:
                self.late_text[f"text_not_waited_for:{stream_id}"] += 1
            windows.extend(self._cut(state, stream_id))
        return windows

    def _finish(self, stream_id: str) -> list[Window]:
        """End of a stream: flush the windows that are at least half full, forget the stream."""
        state = self.streams.pop(stream_id, None)
        windows: list[Window] = []
        while state is not None and state.origin is not None:
            _, end = self._bounds(state, state.next_index)
            if end - state.watermark > self.config.length_s / 2:
                break
            # the last windows end where the media does, not past it (no events after the end)
            windows.extend(self._cut(state, stream_id, until=state.watermark))
        return windows

    def _cut(self, state: _Stream, stream_id: str, until: float = math.inf) -> list[Window]:
        """Cut window `next_index` (nothing if it holds no media), advance, prune; `until`:
        where the stream's media ended, which cuts the last windows short."""
        index = state.next_index
        start, end = self._bounds(state, index)
        end = round(min(end, max(until, start)), 6)
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
        """Per utterance overlapping the window, the newest transcript decided by its end."""
        newest: dict[int, tuple[float, Transcript]] = {}
        for decided, said in state.said:
            if decided <= end and said.end > start and said.start < end:
                known = newest.get(said.utterance_id)
                if known is None or decided >= known[0]:
                    newest[said.utterance_id] = (decided, said)
        return tuple(sorted((t for _, t in newest.values()), key=lambda t: (t.start, t.end)))

    def _prune(self, state: _Stream, next_start: float, next_end: float) -> None:
        """Forget what no later window can use: frames too old or superseded by a newer one."""
        oldest_frame = next_start - self.max_frame_age_s
        frames = state.frames
        while frames and (frames[0].t_capture < oldest_frame
                          or (len(frames) > 1 and frames[1].t_capture <= next_end)):
            frames.popleft()
        while state.audio and state.audio[0].t_end <= next_start:
            state.audio.popleft()
        state.said = [(decided, t) for decided, t in state.said if t.end > next_start]
