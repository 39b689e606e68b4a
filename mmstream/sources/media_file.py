"""Media file source (PyAV): video frames at the analysis rate + 16 kHz mono audio chunks.

`t_capture` is media time on the container's clock: seconds from the start of the file, for
video and audio alike (audio gaps are filled with silence, overlaps cut), so transcripts,
windows and scene events stay aligned and a file replayed as fast as possible yields the same
items every time. Decoding runs in a worker thread, a batch of items
per hop, so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from itertools import islice
from pathlib import Path

import av
import av.error
import numpy as np

from mmstream.config import FileSourceConfig
from mmstream.errors import NOT_MEDIA, SourceError, ffmpeg_reason, missing_path
from mmstream.media import AUDIO_RATE, AudioChunk, MediaItem, VideoFrame
from mmstream.paths import missing_reason
from mmstream.runtime.stage import Source

AUDIO_CHUNK_SAMPLES = AUDIO_RATE // 10  # 100 ms: small enough for live-like latency
ITEMS_PER_HOP = 16
GAP_TOLERANCE_S = 0.02  # audio timestamps further off than this are a gap or an overlap


class _AudioAssembler:
    """Resamples decoded audio to 16 kHz mono float32 and cuts it into fixed-size chunks.

    Chunks are stamped on the container's clock, not by counting samples: where the audio
    track's timestamps jump ahead (a track shorter than its video, looped with `-c copy`, a
    lost packet) the gap is filled with silence, and where they step back the overlap is cut,
    so audio stays aligned with the video however long the file is.
    """

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        self.pending = np.zeros(0, dtype=np.float32)
        self.samples_emitted = 0
        self.t0: float | None = None
        self.expected: float | None = None  # container time where the next frame should start
        self.trim = 0  # samples still to cut from the output (timestamps stepped back)
        self.padded_s = 0.0
        self.trimmed_s = 0.0

    def push(self, frame: av.AudioFrame | None, t_frame: float) -> Iterator[AudioChunk]:
        if frame is not None:
            self._align(t_frame, frame.samples / frame.sample_rate)
        for out in self.resampler.resample(frame):
            data = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            cut, self.trim = min(self.trim, len(data)), self.trim - min(self.trim, len(data))
            self.pending = np.concatenate([self.pending, data[cut:]])
        final = frame is None
        while len(self.pending) >= AUDIO_CHUNK_SAMPLES or (final and len(self.pending)):
            take = self.pending[:AUDIO_CHUNK_SAMPLES].copy()
            self.pending = self.pending[AUDIO_CHUNK_SAMPLES:]
            assert self.t0 is not None
            t = self.t0 + self.samples_emitted / AUDIO_RATE
            self.samples_emitted += len(take)
            yield AudioChunk(self.stream_id, round(t, 6), take)

    def _align(self, t_frame: float, duration: float) -> None:
        """Pad a gap before this frame with silence, or mark an overlap to be cut."""
        if self.t0 is None:
            self.t0 = self.expected = max(0.0, t_frame)
        assert self.expected is not None
        drift = t_frame - self.expected
        if drift > GAP_TOLERANCE_S:
            self.pending = np.concatenate(
                [self.pending, np.zeros(round(drift * AUDIO_RATE), dtype=np.float32)])
            self.padded_s += drift
        elif drift < -GAP_TOLERANCE_S:
            self.trim += round(-drift * AUDIO_RATE)
            self.trimmed_s -= drift
        self.expected = max(self.expected, t_frame + duration)


def decode_media(config: FileSourceConfig) -> Iterator[MediaItem]:
    """Decode a file into VideoFrames (decimated to config.fps) and AudioChunks, in time order."""
    path = Path(config.path)
    if missing_reason(path) is not None:
        raise SourceError(missing_path(path, "media file"))
    if not path.is_file():
        raise SourceError(f"media file {path}: not a file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        reason = ffmpeg_reason(exc)
        if reason != NOT_MEDIA:
            reason = f"not a readable media file ({reason})"
        raise SourceError(f"{path}: {reason}") from None
    with container:
        video = container.streams.video[0] if config.video and container.streams.video else None
        audio = container.streams.audio[0] if config.audio and container.streams.audio else None
        if video is None and audio is None:
            raise SourceError(f"{path}: has no video or audio stream to analyse")
        start = (container.start_time or 0) / av.time_base
        yield from _demux(container, video, audio, start, config)


def _demux(
    container: av.container.InputContainer,
    video: av.VideoStream | None,
    audio: av.AudioStream | None,
    start: float,
    config: FileSourceConfig,
) -> Iterator[MediaItem]:
    assembler = _AudioAssembler(config.id) if audio is not None else None
    frame_interval = 1.0 / config.fps
    next_frame_t = 0.0
    emitted = 0
    streams = [s for s in (video, audio) if s is not None]
    try:
        for packet in container.demux(streams):
            for frame in packet.decode():
                t = (frame.time if frame.time is not None else 0.0) - start
                if isinstance(frame, av.AudioFrame) and assembler is not None:
                    yield from assembler.push(frame, t)
                elif isinstance(frame, av.VideoFrame) and t + 1e-6 >= next_frame_t:
                    image = frame.to_ndarray(format="rgb24")
                    yield VideoFrame(config.id, round(max(t, 0.0), 6), image, emitted)
                    emitted += 1
                    # next grid point after t: a steady analysis rate whatever the file's fps
                    next_frame_t = (int(t / frame_interval + 1e-6) + 1) * frame_interval
    except av.error.FFmpegError as exc:
        raise SourceError(f"{config.path}: corrupt media, decoding stopped "
                          f"({ffmpeg_reason(exc)})") from None
    if assembler is not None and assembler.t0 is not None:
        yield from assembler.push(None, 0.0)


class MediaFileSource(Source):
    """`async with MediaFileSource(cfg) as src: async for item in src: ...`"""

    kind = "file"

    def __init__(self, config: FileSourceConfig) -> None:
        super().__init__(config)

    async def __aiter__(self) -> AsyncIterator[MediaItem]:  # type: ignore[override]
        decoder = decode_media(self.config)
        started = time.monotonic()
        while True:
            batch = await asyncio.to_thread(lambda: list(islice(decoder, ITEMS_PER_HOP)))
            for item in batch:
                if self.config.realtime:
                    delay = started + item.t_capture - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                yield item
            if len(batch) < ITEMS_PER_HOP:
                return

