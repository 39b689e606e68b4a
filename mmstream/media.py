"""Raw media items that flow from sources through stages (not published; events.py is).

Every item carries the stream it belongs to and the source's capture time in seconds
(media time for files and recordings, wall-clock epoch seconds for live devices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from mmstream.events import Transcript

AUDIO_RATE = 16_000  # every source resamples to 16 kHz mono float32
# Epoch seconds of 2001-09-09: no file or recording is that long, so a `t_capture` from here on
# is a live device's wall-clock time, and one below it is media time (seconds into the input).
WALL_CLOCK_FROM = 1e9


def is_wall_clock(t_capture: float) -> bool:
    """Whether a capture time is a live device's epoch time rather than media time."""
    return t_capture >= WALL_CLOCK_FROM


@dataclass(frozen=True, slots=True, eq=False)
class VideoFrame:
    """One RGB uint8 frame (H, W, 3). Droppable: channels keep the newest frames."""

    droppable: ClassVar[bool] = True
    stream_id: str
    t_capture: float
    image: np.ndarray
    index: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class AudioChunk:
    """16 kHz mono float32 samples starting at `t_capture`. Never dropped."""

    droppable: ClassVar[bool] = False
    stream_id: str
    t_capture: float
    samples: np.ndarray
    sample_rate: int = AUDIO_RATE

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def t_end(self) -> float:
        return self.t_capture + self.duration


@dataclass(frozen=True, slots=True, eq=False)
class EndOfStream:
    """Marks that one stream's source has finished; stages flush that stream's state."""

    droppable: ClassVar[bool] = False
    stream_id: str
    t_capture: float
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, eq=False)
class Window:
    """One fusion window of a stream: what it saw, heard and said in [t_start, t_capture].

    Made by WindowStage, consumed by InferStage. `t_capture` is the window's end, so events
    about the window carry the source time they describe. `frame` is the latest analysed
    frame at or before the end (None when the stream has no recent frame); `audio` is the
    16 kHz mono audio inside the window (empty when the stream has none); `transcripts` are
    the transcripts overlapping it. Never dropped: it is the unit every analysis reports on.
    """

    droppable: ClassVar[bool] = False
    stream_id: str
    t_capture: float
    t_start: float
    index: int = 0
    frame: VideoFrame | None = None
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    transcripts: tuple[Transcript, ...] = ()
    has_audio: bool = False  # the stream carries audio (so silence is "no voice", not unknown)

    @property
    def t_end(self) -> float:
        return self.t_capture

    @property
    def text(self) -> str:
        return " ".join(t.text.strip() for t in self.transcripts if t.text.strip())


@dataclass(frozen=True, slots=True, eq=False)
class TextProgress:
    """From the transcription stage: every transcript of the stream decided at or before
    `t_capture` (source time) has been emitted. A window ending at T waits for this to reach
    T, so it holds exactly what had been heard and recognised by its end, in every run mode.
    Not published."""

    droppable: ClassVar[bool] = False
    stream_id: str
    t_capture: float


@dataclass(frozen=True, slots=True, eq=False)
class FrameSkipped:
    """A video frame captured at `t_capture` that a policy did not pass on (the overload
    stride, a lowered frame rate): later stages learn that the stream's video has moved on,
    so a window still closes on time when fewer frames are analysed. Not published."""

    droppable: ClassVar[bool] = False
    stream_id: str
    t_capture: float


@dataclass(frozen=True, slots=True, eq=False)
class FaceMark:
    """A face found in an analysed frame, in its pixel coordinates."""

    x: int
    y: int
    w: int
    h: int
    landmarks: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class AnalysedFrame:
    """What a live window's analysis saw: its frame, the faces in it, and what the window's
    events said (scene tags, emotion). Made by the inference stage for the sinks that show a
    picture (the web view, Home Assistant's camera); droppable like the frame it carries, and
    never published or recorded."""

    droppable: ClassVar[bool] = True
    stream_id: str
    t_capture: float  # the window's end
    image: np.ndarray  # RGB uint8 (H, W, 3), the window's frame (not a copy)
    frame_t: float  # when that frame was captured
    faces: tuple[FaceMark, ...] = ()
    tags: tuple[tuple[str, float], ...] = ()  # published scene tags (label, score)
    emotion: str | None = None
    valence: float | None = None


MediaItem = VideoFrame | AudioChunk | EndOfStream | TextProgress | FrameSkipped | AnalysedFrame
