"""How mmstream lays out an MCAP recording: topics, schemas and message encodings.

Every channel uses JSON messages with a JSON Schema, so Foxglove Studio and `mcap cat` read
the file without mmstream:

- `/<stream>/video`: `foxglove.CompressedVideo` (H.264, the default; Foxglove plays it) or
  `foxglove.CompressedImage` (JPEG or PNG; Foxglove's Image panel shows it)
- `/<stream>/audio`: `mmstream.CompressedAudio` (AAC-LC packets, the default) or
  `foxglove.RawAudio` (`pcm-s16`, which Foxglove plays, or lossless `pcm-f32le`), 16 kHz mono
- `/<stream>/events/<type>`: the published event envelopes, schema `mmstream.event/1`

Messages are logged at their capture time (`log_time` = `t_capture` in ns). Raw inputs also
carry the exact float `t_capture` (nanosecond integers cannot hold every epoch-seconds float),
so a replay hands stages the very timestamps the live run had.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import cv2
import msgspec
import numpy as np

from mmstream.events import SCHEMA_VERSION, json_schema
from mmstream.media import AUDIO_RATE, AudioChunk, VideoFrame

PROFILE = "mmstream"
METADATA_NAME = "mmstream.recording"
RECORDING_FORMAT = "1"
IMAGE_SCHEMA = "foxglove.CompressedImage"
AUDIO_SCHEMA = "foxglove.RawAudio"
VIDEO_SCHEMA = "foxglove.CompressedVideo"
AAC_SCHEMA = "mmstream.CompressedAudio"
EVENT_SCHEMA = SCHEMA_VERSION

Kind = Literal["video", "audio", "event"]

_TIME_SCHEMA = {
    "type": "object", "title": "time",
    "properties": {"sec": {"type": "integer", "minimum": 0},
                   "nsec": {"type": "integer", "minimum": 0, "maximum": 999999999}},
}
_EXACT_TIME = {"type": "number", "description": "mmstream: capture time in seconds, exact"}

IMAGE_SCHEMA_JSON = {
    "title": IMAGE_SCHEMA, "description": "A compressed image", "type": "object",
    "properties": {
        "timestamp": {**_TIME_SCHEMA, "description": "Timestamp of image"},
        "frame_id": {"type": "string", "description": "mmstream: the stream id"},
        "data": {"type": "string", "contentEncoding": "base64",
                 "description": "Compressed image data"},
        "format": {"type": "string", "description": "Image format: jpeg or png"},
        "t_capture": _EXACT_TIME,
        "index": {"type": "integer", "description": "mmstream: frame number in its stream"},
    },
}

AUDIO_SCHEMA_JSON = {
    "title": AUDIO_SCHEMA, "description": "A single block of an audio bitstream",
    "type": "object",
    "properties": {
        "timestamp": {**_TIME_SCHEMA, "description": "Timestamp of the start of the block"},
        "data": {"type": "string", "contentEncoding": "base64",
                 "description": "Interleaved little-endian samples"},
        "format": {"type": "string", "description": "pcm-s16 or pcm-f32le"},
        "sample_rate": {"type": "integer", "minimum": 0},
        "number_of_channels": {"type": "integer", "minimum": 0},
        "t_capture": _EXACT_TIME,
    },
}


VIDEO_SCHEMA_JSON = {
    "title": VIDEO_SCHEMA, "description": "A single frame of a compressed video bitstream",
    "type": "object",
    "properties": {
        "timestamp": {**_TIME_SCHEMA, "description": "Timestamp of video frame"},
        "frame_id": {"type": "string", "description": "mmstream: the stream id"},
        "data": {"type": "string", "contentEncoding": "base64",
                 "description": "One H.264 access unit, Annex B; SPS/PPS before each IDR"},
        "format": {"type": "string", "description": "Video format: h264"},
        "t_capture": _EXACT_TIME,
        "index": {"type": "integer", "description": "mmstream: frame number in its stream"},
        "keyframe": {"type": "boolean", "description": "mmstream: an IDR frame"},
    },
}

AAC_SCHEMA_JSON = {
    "title": AAC_SCHEMA, "type": "object",
    "description": "One recorded audio chunk and the raw AAC-LC packets (16 kHz mono, 1024 "
                   "samples each; `config`: the AudioSpecificConfig) "
                   "finished when it was written: decode the packets in order; the chunk is "
                   "`samples` samples from input sample `start`, the first packet starts at "
                   "input sample `pts` (packets may cover a neighbouring chunk's samples)",
    "properties": {
        "timestamp": {**_TIME_SCHEMA, "description": "Timestamp of the start of the chunk"},
        "format": {"type": "string", "description": "aac"},
        "config": {"type": "string", "contentEncoding": "base64"},
        "packets": {"type": "array", "items": {"type": "string", "contentEncoding": "base64"}},
        "sample_rate": {"type": "integer", "minimum": 0},
        "number_of_channels": {"type": "integer", "minimum": 0},
        "start": {"type": "integer"},
        "samples": {"type": "integer", "minimum": 0},
        "pts": {"type": "integer"},
        "t_capture": _EXACT_TIME,
    },
}


class Timestamp(msgspec.Struct):
    sec: int
    nsec: int


class CompressedImage(msgspec.Struct):
    timestamp: Timestamp
    frame_id: str
    data: bytes  # msgspec writes bytes as base64, as the schema says
    format: str
    t_capture: float
    index: int = 0


class RawAudio(msgspec.Struct):
    timestamp: Timestamp
    data: bytes
    format: str
    sample_rate: int
    number_of_channels: int
    t_capture: float


class CompressedVideo(msgspec.Struct):
    timestamp: Timestamp
    frame_id: str
    data: bytes
    format: str
    t_capture: float
    index: int = 0
    keyframe: bool = False


class CompressedAudio(msgspec.Struct):
    timestamp: Timestamp
    format: str
    packets: list[bytes]
    sample_rate: int
    number_of_channels: int
    start: int
    samples: int
    pts: int
    t_capture: float
    config: bytes = b""


_encoder = msgspec.json.Encoder()
_image_decoder = msgspec.json.Decoder(CompressedImage)
_audio_decoder = msgspec.json.Decoder(RawAudio)
video_decoder = msgspec.json.Decoder(CompressedVideo)
aac_decoder = msgspec.json.Decoder(CompressedAudio)


@dataclass(frozen=True)
class Topic:
    """One channel of a recording: what it carries and for which stream."""

    stream_id: str
    kind: Kind
    event_type: str = ""
    codec: str = ""  # h264 or aac for compact media; "" for images, raw audio and events

    @property
    def name(self) -> str:
        if self.kind == "event":
            return f"/{self.stream_id}/events/{self.event_type}"
        return f"/{self.stream_id}/{self.kind}"

    @property
    def schema_name(self) -> str:
        if self.codec:
            return VIDEO_SCHEMA if self.kind == "video" else AAC_SCHEMA
        return {"video": IMAGE_SCHEMA, "audio": AUDIO_SCHEMA, "event": EVENT_SCHEMA}[self.kind]

    def metadata(self) -> dict[str, str]:
        found = {"stream_id": self.stream_id, "kind": self.kind}
        if self.event_type:
            found["event_type"] = self.event_type
        if self.codec:
            found["codec"] = self.codec
        return found

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], topic: str) -> Topic | None:
        """The Topic of a recorded channel; None for channels mmstream did not write."""
        kind = metadata.get("kind")
        stream = metadata.get("stream_id")
        if kind not in ("video", "audio", "event") or not stream:
            return None
        return cls(stream, kind, metadata.get("event_type", ""),  # type: ignore[arg-type]
                   metadata.get("codec", ""))


def schema_bytes(schema_name: str) -> bytes:
    schema = {IMAGE_SCHEMA: IMAGE_SCHEMA_JSON, AUDIO_SCHEMA: AUDIO_SCHEMA_JSON,
              VIDEO_SCHEMA: VIDEO_SCHEMA_JSON, AAC_SCHEMA: AAC_SCHEMA_JSON}.get(schema_name)
    return json.dumps(schema if schema is not None else json_schema(), sort_keys=True).encode()


def to_ns(seconds: float) -> int:
    """MCAP times are unsigned nanoseconds; media time starts at 0, live time at the epoch."""
    return max(0, round(seconds * 1e9))


def timestamp(seconds: float) -> Timestamp:
    ns = to_ns(seconds)
    return Timestamp(ns // 1_000_000_000, ns % 1_000_000_000)


def encode_frame(frame: VideoFrame, image_format: str, jpeg_quality: int) -> bytes:
    """RGB frame -> CompressedImage JSON (the JPEG/PNG encode is the costly part: run it off
    the event loop)."""
    bgr = cv2.cvtColor(np.ascontiguousarray(frame.image), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if image_format == "jpeg" else []
    ok, buffer = cv2.imencode(".jpg" if image_format == "jpeg" else ".png", bgr, params)
    if not ok:
        raise ValueError(f"cannot encode a {frame.image.shape} frame as {image_format}")
    message = CompressedImage(timestamp(frame.t_capture), frame.stream_id, buffer.tobytes(),
                              image_format, frame.t_capture, frame.index)
    return _encoder.encode(message)


def decode_frame(data: bytes, stream_id: str) -> tuple[float, int, np.ndarray]:
    """CompressedImage JSON -> (t_capture, index, RGB image)."""
    message = _image_decoder.decode(data)
    raw = np.frombuffer(message.data, dtype=np.uint8)
    bgr = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{stream_id}: frame {message.index} is not a decodable "
                         f"{message.format} image")
    return message.t_capture, message.index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_audio(chunk: AudioChunk, audio_format: str) -> bytes:
    samples = np.asarray(chunk.samples, dtype=np.float32)
    if audio_format == "s16":
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
        name = "pcm-s16"
    else:
        pcm, name = samples.astype("<f4").tobytes(), "pcm-f32le"
    message = RawAudio(timestamp(chunk.t_capture), pcm, name, chunk.sample_rate, 1,
                       chunk.t_capture)
    return _encoder.encode(message)


def decode_audio(data: bytes, stream_id: str) -> tuple[float, np.ndarray]:
    """RawAudio JSON -> (t_capture, 16 kHz mono float32 samples)."""
    message = _audio_decoder.decode(data)
    if message.format == "pcm-s16":
        samples = np.frombuffer(message.data, dtype="<i2").astype(np.float32) / 32767.0
    elif message.format == "pcm-f32le":
        samples = np.frombuffer(message.data, dtype="<f4").astype(np.float32)
    else:
        raise ValueError(f"{stream_id}: unsupported audio format {message.format!r}")
    if message.number_of_channels > 1:
        samples = samples.reshape(-1, message.number_of_channels).mean(axis=1)
    if message.sample_rate != AUDIO_RATE:
        raise ValueError(f"{stream_id}: audio at {message.sample_rate} Hz, expected {AUDIO_RATE}")
    return message.t_capture, samples


def encode_video(frame: VideoFrame, data: bytes, keyframe: bool) -> bytes:
    """One H.264 access unit of `frame` -> CompressedVideo JSON."""
    return _encoder.encode(CompressedVideo(timestamp(frame.t_capture), frame.stream_id, data,
                                           "h264", frame.t_capture, frame.index, keyframe))


def encode_aac(chunk: AudioChunk, start: int, pts: int, packets: list[bytes],
               config: bytes) -> bytes:
    return _encoder.encode(CompressedAudio(
        timestamp(chunk.t_capture), "aac", packets, chunk.sample_rate, 1, start,
        len(chunk.samples), pts, chunk.t_capture, config))
