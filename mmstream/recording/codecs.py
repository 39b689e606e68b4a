"""Compact media for recordings: H.264 video and AAC audio through PyAV (FFmpeg).

Video: each message is one H.264 access unit (Annex B, SPS/PPS repeated before every IDR), as
Foxglove's `foxglove.CompressedVideo` expects. libx264 runs with `tune=zerolatency` (no
B-frames, no lookahead: a frame in gives its packet out at once) and an IDR at least every
`KEYFRAME_EVERY_S` of capture time and at the first frame of every file, so each file and each
2 s stretch decodes on its own.

Audio: AAC-LC at 16 kHz mono, 1024-sample packets (64 ms) — what an mp4 clip carries, so a
clip copies it without re-encoding; libopus would decode only at 48 kHz, which a replay would
have to resample. An audio chunk's samples are only decodable once the encoder has emitted
the packets covering them (AAC primes 1024 samples and needs the next frame), so a chunk's
message is written when its packets are out: it holds the packets finished since the previous
message, the input sample index of its first packet (`pts`, FFmpeg's packet time) and of the
chunk itself (`start`). A decoder therefore cuts exactly the recorded chunks back out, even
when it starts reading in the middle of a stream (a rotated file, a clip).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from mmstream.media import AUDIO_RATE, AudioChunk, VideoFrame

KEYFRAME_EVERY_S = 2.0
AUDIO_CODEC = "aac"
X264_OPTIONS = {"preset": "veryfast", "tune": "zerolatency", "forced-idr": "1"}


class H264Encoder:
    """One stream's video encoder (writer thread only)."""

    def __init__(self, crf: int) -> None:
        self.crf = crf
        self._codec: av.VideoCodecContext | None = None
        self._size: tuple[int, int] | None = None
        self._first_t: float | None = None
        self._last_key_t: float | None = None
        self._last_pts = -1

    def encode(self, frame: VideoFrame, *, keyframe: bool = False) -> tuple[bytes, bool]:
        """RGB frame -> (H.264 access unit, whether it is a keyframe)."""
        height, width = frame.image.shape[:2]
        if self._codec is None or self._size != (width, height):
            self._open(width, height)
            self._first_t = frame.t_capture
            keyframe = True
        assert self._codec is not None and self._first_t is not None
        due = self._last_key_t is None or frame.t_capture - self._last_key_t >= KEYFRAME_EVERY_S
        keyframe = keyframe or due
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.image), format="rgb24")
        picture = picture.reformat(format="yuv420p")
        # x264 needs rising timestamps; capture times are, but keep it so for equal ones
        self._last_pts = max(self._last_pts + 1, round((frame.t_capture - self._first_t) * 1000))
        picture.pts = self._last_pts
        if keyframe:
            picture.pict_type = av.video.frame.PictureType.I
            self._last_key_t = frame.t_capture
        packets = self._codec.encode(picture)
        data = b"".join(bytes(p) for p in packets)
        if not data:  # zerolatency never delays a frame; a build that does would lose it
            raise ValueError("libx264 held a frame back: zerolatency tuning is not in effect")
        return data, any(p.is_keyframe for p in packets)

    def _open(self, width: int, height: int) -> None:
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
        codec.time_base = Fraction(1, 1000)
        codec.gop_size = 1_000_000  # keyframes are forced by capture time, not frame count
        codec.thread_count = 1  # a few frames a second: one core's slice is plenty
        codec.options = {**X264_OPTIONS, "crf": str(self.crf)}
        codec.open()
        self._codec, self._size = codec, (width, height)
        self._last_key_t = None
        self._last_pts = -1


class H264Decoder:
    """One stream's video decoder: access units in recorded order -> RGB images."""

    def __init__(self) -> None:
        self._codec = av.CodecContext.create("h264", "r")
        self._codec.thread_count = 1  # frame threads would hold frames back
        self.waiting_for_key = True

    def decode(self, data: bytes, keyframe: bool) -> np.ndarray | None:
        """The image, or None while no keyframe has been seen (a read starting mid-GOP)."""
        if self.waiting_for_key and not keyframe:
            return None
        self.waiting_for_key = False
        frames = self._codec.decode(av.Packet(data))
        if not frames:
            return None
        return frames[-1].to_ndarray(format="rgb24")


@dataclass
class AudioMessage:
    """One recorded audio chunk with the AAC packets finished by the time it was written."""

    chunk: AudioChunk
    start: int  # input sample index of the chunk's first sample
    pts: int  # input sample index of the first packet's first sample
    packets: list[bytes]


@dataclass
class AudioEncoder:
    """One stream's audio encoder (writer thread only): chunks in, messages out when ready."""

    bitrate: int
    config: bytes = b""  # the AudioSpecificConfig a decoder needs
    _codec: av.AudioCodecContext | None = None
    _pending: list[tuple[AudioChunk, int]] = field(default_factory=list)
    _packets: list[bytes] = field(default_factory=list)
    _packets_pts: int | None = None
    _covered: int = -(2**62)  # input samples up to here are inside emitted packets
    _fed: int = 0
    _held: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def encode(self, chunk: AudioChunk) -> list[AudioMessage]:
        if chunk.sample_rate != AUDIO_RATE:
            raise ValueError(f"{chunk.stream_id}: audio at {chunk.sample_rate} Hz, "
                             f"expected {AUDIO_RATE}")
        if self._codec is None:
            self._open()
        samples = np.asarray(chunk.samples, dtype=np.float32).reshape(-1)
        self._pending.append((chunk, self._fed + len(self._held)))
        self._held = np.concatenate([self._held, samples])
        assert self._codec is not None
        frame_size = self._codec.frame_size
        while len(self._held) >= frame_size:
            self._feed(self._held[:frame_size])
            self._held = self._held[frame_size:]
        return self._ready()

    def flush(self) -> list[AudioMessage]:
        """The end of the stream: everything still held goes out."""
        if self._codec is None:
            return []
        if len(self._held):
            self._feed(self._held)
            self._held = self._held[:0]
        self._take(self._codec.encode(None))
        messages = self._ready(final=True)
        self._codec = None
        return messages

    def _open(self) -> None:
        codec = av.CodecContext.create(AUDIO_CODEC, "w")
        codec.sample_rate, codec.layout, codec.format = AUDIO_RATE, "mono", "fltp"
        codec.bit_rate = self.bitrate
        codec.open()
        self._codec, self.config = codec, bytes(codec.extradata or b"")

    def _feed(self, samples: np.ndarray) -> None:
        assert self._codec is not None
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, self._fed
        self._fed += len(samples)
        self._take(self._codec.encode(frame))

    def _take(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            if self._packets_pts is None:
                self._packets_pts = int(packet.pts)
            self._packets.append(bytes(packet))
            self._covered = int(packet.pts) + int(packet.duration)

    def _ready(self, final: bool = False) -> list[AudioMessage]:
        messages: list[AudioMessage] = []
        while self._pending:
            chunk, start = self._pending[0]
            if not final and self._covered < start + len(chunk.samples):
                break
            self._pending.pop(0)
            pts = self._packets_pts if self._packets_pts is not None else start
            messages.append(AudioMessage(chunk, start, pts, self._packets))
            self._packets, self._packets_pts = [], None
        return messages


class AudioDecoder:
    """One stream's audio decoder: recorded messages in order -> the recorded chunks' samples."""

    def __init__(self, config: bytes) -> None:
        self._codec = av.CodecContext.create(AUDIO_CODEC, "r")
        self._codec.sample_rate, self._codec.layout = AUDIO_RATE, "mono"
        self._codec.extradata = config
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start: int | None = None  # input sample index of the buffer's first sample

    def decode(self, start: int, count: int, pts: int, packets: list[bytes]) -> np.ndarray:
        if packets and (self._buffer_start is None
                        or pts != self._buffer_start + len(self._buffer)):
            self._buffer, self._buffer_start = self._buffer[:0], pts  # a fresh start
        for packet in packets:
            for frame in self._codec.decode(av.Packet(packet)):
                self._buffer = np.concatenate([self._buffer, _mono_float(frame)])
        base = self._buffer_start if self._buffer_start is not None else start
        lo, hi = start - base, start - base + count
        out = np.zeros(count, dtype=np.float32)  # what a read begun mid-stream never decoded
        have = self._buffer[max(lo, 0):max(hi, 0)]
        out[max(-lo, 0):max(-lo, 0) + len(have)] = have
        drop = max(0, min(hi, len(self._buffer)))
        self._buffer = self._buffer[drop:]
        self._buffer_start = base + drop
        return out


def _mono_float(frame: av.AudioFrame) -> np.ndarray:
    """A decoded frame as float32 mono in [-1, 1]."""
    samples = frame.to_ndarray()
    if frame.format.is_planar:
        samples = samples.mean(axis=0)
    else:
        samples = samples.reshape(frame.samples, -1).mean(axis=1)
    if frame.format.name.startswith("s16"):
        return (samples / 32768.0).astype(np.float32)
    return samples.astype(np.float32)
