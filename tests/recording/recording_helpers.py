"""Shared by the recording, recorder, recording-source and replay tests: real recordings made
in-process, read back with the recording source."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from mmstream.build import build_pipeline
from mmstream.config import validate_pipeline
from mmstream.media import AudioChunk, VideoFrame
from mmstream.runtime.pipeline import PipelineReport
from mmstream.sources.recording import RecordingSource

NO_ANALYSIS = {"transcribe": {"enabled": False}, "window": {"enabled": False},
               "infer": {"enabled": False}}
# Today's exact formats, every frame: the file-layer tests (chunks, damage, rotation) count and
# compare inputs one for one; the compact default is tested in test_compact.py.
IMAGE_FORMATS = {"frame_format": "jpeg", "audio_format": "s16", "video": "all"}
IMAGE_FORMAT_SETS = [arg for key, value in IMAGE_FORMATS.items()
                     for arg in ("--set", f"record.{key}={value}")]
NO_ANALYSIS_SETS = ["--set", "stages.transcribe.enabled=false", "--set",
                    "stages.window.enabled=false", "--set", "stages.infer.enabled=false"]


def synthetic_sources(streams: tuple[str, ...], duration_s: float, **extra: Any) -> list[dict]:
    return [{"kind": "synthetic", "id": stream, "duration_s": duration_s, "width": 64,
             "height": 48, "tone_hz": 300.0 + 100 * n, **extra}
            for n, stream in enumerate(streams)]


def record_synthetic(path: Path, streams: tuple[str, ...] = ("syn",), duration_s: float = 2.0,
                     **record: Any) -> PipelineReport:
    """Run synthetic sources (no analysis) with the recorder on; returns the run's report."""
    config = validate_pipeline({
        "device_id": "test", "sources": synthetic_sources(streams, duration_s),
        "stages": NO_ANALYSIS, "record": {"path": str(path), **IMAGE_FORMATS, **record}})
    return asyncio.run(build_pipeline(config).run())


def replay_items(path: Path, **options: Any) -> tuple[list[Any], RecordingSource]:
    """Everything a RecordingSource yields for `path` (inputs, end markers, status)."""
    config = validate_pipeline({"sources": [{"kind": "recording", "path": str(path),
                                             **options}]})
    source = RecordingSource(config.sources[0])  # type: ignore[arg-type]

    async def read() -> list[Any]:
        async with source:
            return [item async for item in source]

    return asyncio.run(read()), source


def inputs_only(items: list[Any]) -> list[VideoFrame | AudioChunk]:
    return [item for item in items if isinstance(item, VideoFrame | AudioChunk)]


def payload(item: VideoFrame | AudioChunk) -> np.ndarray:
    return item.image if isinstance(item, VideoFrame) else item.samples


def same_inputs(got: VideoFrame | AudioChunk, want: VideoFrame | AudioChunk) -> bool:
    """Same kind, stream, capture time and exactly the same pixels or samples."""
    return (isinstance(got, type(want)) and got.stream_id == want.stream_id
            and got.t_capture == want.t_capture and np.array_equal(payload(got), payload(want)))


def record_door(folder: Path, t0: float, seconds: int) -> None:
    """`seconds` of a moving picture (4 fps) and a tone from t0 (epoch seconds) as the daemon
    records them: compact, in 3 s segments, with one transcript at 4-7 s, on stream door."""
    from mmstream.config import RecordConfig
    from mmstream.media import AUDIO_RATE
    from mmstream.sinks.recorder import RecorderSink

    recorder = RecorderSink(RecordConfig(dir=folder, rotate_s=3, video="all"), "test")
    base = np.random.default_rng(3).integers(0, 255, (120, 160, 3), dtype=np.uint8)

    async def record() -> None:
        async with recorder:
            for index in range(seconds * 4):
                t = t0 + index / 4
                await recorder.record_input(VideoFrame("door", t, np.roll(base, index * 4, 1),
                                                       index))
                for part in range(5):
                    t_audio = index / 4 + part / 20
                    n = np.arange(AUDIO_RATE // 20) + round(t_audio * AUDIO_RATE)
                    tone = (0.2 * np.sin(2 * np.pi * 440 * n / AUDIO_RATE)).astype(np.float32)
                    await recorder.record_input(AudioChunk("door", t0 + t_audio, tone))
                if index == 32:
                    await recorder.send(door_transcript(t0))

    asyncio.run(record())


def door_transcript(t0: float) -> Any:
    """The door's one sentence, said at 4-7 s, decided at 7.5 s."""
    from mmstream.events import Transcript, TranscriptEvent

    return TranscriptEvent(stream_id="door", device_id="test", t_capture=t0 + 7.5,
                           payload=Transcript(True, "someone at the door", t0 + 4, t0 + 7))
