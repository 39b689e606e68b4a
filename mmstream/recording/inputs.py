"""Raw inputs to recorded messages and back, in every `record.frame_format`/`audio_format`.

`InputEncoder` (the recorder's writer thread) also chooses which frames to keep: with
`record.video: analysed` only the frames a fusion window can analyse — per window end (a grid
of `hop_s`, offset by `length_s`: stages/window.py), the last frame at or before it, plus each
stream's first frame (it places the window grid). A replay of those frames cuts the same
windows with the same frames as the live run. A frame is held until the next one shows it was
the last before its window's end, so the recorder writes it one frame late.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from mmstream.config.record import RecordConfig
from mmstream.media import AudioChunk, VideoFrame
from mmstream.recording import format as fmt
from mmstream.recording.codecs import (
    AudioDecoder,
    AudioEncoder,
    AudioMessage,
    H264Decoder,
    H264Encoder,
)
from mmstream.recording.reader import RecordedMessage

Written = tuple[fmt.Topic, int, bytes]  # topic, log time (ns), message
NewFile = Callable[[fmt.Topic, int], bool]  # is this message its channel's first in a file?


@dataclass(frozen=True)
class AnalysisGrid:
    """Where fusion windows end: `length_s + k * hop_s` (stages/window.py)."""

    hop_s: float
    length_s: float

    def slot(self, t: float) -> int:
        """The index of the first window end at or after `t` (within the window's 1e-6)."""
        return math.ceil((t - self.length_s - 1e-6) / self.hop_s)


class InputEncoder:
    def __init__(self, config: RecordConfig, grid: AnalysisGrid | None) -> None:
        self.config = config
        self.grid = grid if config.video == "analysed" else None
        self._video: dict[str, H264Encoder] = {}
        self._audio: dict[str, AudioEncoder] = {}
        self._held: dict[str, VideoFrame] = {}  # the newest frame, until the next one comes
        self._firsts: dict[str, VideoFrame] = {}  # written as they came

    def encode(self, item: VideoFrame | AudioChunk, new_file: NewFile) -> list[Written]:
        if isinstance(item, AudioChunk):
            return self._encode_audio(item)
        if self.grid is None:
            return self._encode_frame(item, new_file)
        held = self._held.get(item.stream_id)
        self._held[item.stream_id] = item
        if held is None:  # the stream's first frame: it places the window grid
            self._firsts[item.stream_id] = item
            return self._encode_frame(item, new_file)
        passed = self.grid.slot(item.t_capture) > self.grid.slot(held.t_capture)
        if passed and held is not self._firsts[item.stream_id]:
            return self._encode_frame(held, new_file)
        return []

    def _encode_frame(self, frame: VideoFrame, new_file: NewFile) -> list[Written]:
        cfg = self.config
        t_ns = fmt.to_ns(frame.t_capture)
        if cfg.frame_format != "h264":
            data = fmt.encode_frame(frame, cfg.frame_format, cfg.jpeg_quality)
            return [(fmt.Topic(frame.stream_id, "video"), t_ns, data)]
        encoder = self._video.setdefault(frame.stream_id, H264Encoder(cfg.h264_crf))
        topic = fmt.Topic(frame.stream_id, "video", codec="h264")
        access_unit, keyframe = encoder.encode(frame, keyframe=new_file(topic, t_ns))
        return [(topic, t_ns,
                 fmt.encode_video(frame, access_unit, keyframe))]

    def _encode_audio(self, chunk: AudioChunk) -> list[Written]:
        cfg = self.config
        if cfg.audio_format != "aac":
            t_ns = fmt.to_ns(chunk.t_capture)
            return [(fmt.Topic(chunk.stream_id, "audio"), t_ns,
                     fmt.encode_audio(chunk, cfg.audio_format))]
        encoder = self._audio.setdefault(chunk.stream_id, AudioEncoder(cfg.audio_kbps * 1000))
        return self._audio_messages(encoder, encoder.encode(chunk))

    @staticmethod
    def _audio_messages(encoder: AudioEncoder, messages: list[AudioMessage]) -> list[Written]:
        return [(fmt.Topic(m.chunk.stream_id, "audio", codec="aac"),
                 fmt.to_ns(m.chunk.t_capture),
                 fmt.encode_aac(m.chunk, m.start, m.pts, m.packets, encoder.config))
                for m in messages]

    def flush(self, new_file: NewFile) -> list[Written]:
        """The end of the recording: the held frames and the audio still in the encoders."""
        written: list[Written] = []
        for stream_id, frame in self._held.items():
            if frame is not self._firsts[stream_id]:
                written += self._encode_frame(frame, new_file)
        self._held.clear()
        for encoder in self._audio.values():
            written += self._audio_messages(encoder, encoder.flush())
        return written


class InputDecoder:
    """Recorded input messages in file order -> frames and chunks (None: nothing to hand out
    yet, or a message read only to prime a decoder before a replay's `--start`)."""

    def __init__(self) -> None:
        self._video: dict[str, H264Decoder] = {}
        self._audio: dict[str, AudioDecoder] = {}

    def decode(self, message: RecordedMessage) -> VideoFrame | AudioChunk | None:
        topic, stream = message.topic, message.topic.stream_id
        if topic.kind == "video" and topic.codec == "h264":
            video = fmt.video_decoder.decode(message.data)
            decoder = self._video.setdefault(stream, H264Decoder())
            image = decoder.decode(video.data, video.keyframe)
            return None if image is None else VideoFrame(stream, video.t_capture, image,
                                                         video.index)
        if topic.kind == "video":
            t, index, image = fmt.decode_frame(message.data, stream)
            return VideoFrame(stream, t, image, index)
        if topic.codec == "aac":
            audio = fmt.aac_decoder.decode(message.data)
            samples = self._audio.setdefault(stream, AudioDecoder(audio.config)).decode(
                audio.start, audio.samples, audio.pts, audio.packets)
            return AudioChunk(stream, audio.t_capture, samples)
        t, samples = fmt.decode_audio(message.data, stream)
        return AudioChunk(stream, t, samples)
