"""The `record:` section: the MCAP recorder (the `recording` source kind is in sources.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from mmstream.config.sources import Section


class RecordConfig(Section):
    """Write raw inputs and every event to MCAP files (docs/replay.md)."""

    path: Path | None = Field(
        None, description="recording file; when rotating: <stem>-000.mcap, <stem>-001.mcap ...")
    dir: Path | None = Field(
        None, description="folder for rec-<UTC start>-<n>.mcap files (instead of path)")
    compression: Literal["zstd", "lz4", "none"] = Field("zstd", description="chunk compression")
    chunk_kb: int = Field(1024, ge=16, description="chunk size: the unit a power cut can lose")
    flush_interval_s: float = Field(
        5.0, gt=0, description="close the open chunk at least this often (bounds what a crash "
        "loses)")
    rotate_mb: float | None = Field(None, gt=0, description="start a new file above this size")
    rotate_s: float | None = Field(
        None, gt=0, description="start a new file after this many seconds of recorded time")
    fsync: bool = Field(True, description="fsync each file when it is closed or rotated")
    streams: list[str] | None = Field(None, description="stream ids to record; unset = all")
    inputs: bool = Field(True, description="record raw inputs (video frames, audio chunks)")
    events: bool = Field(True, description="record every published event")
    frame_format: Literal["h264", "jpeg", "png"] = Field(
        "h264", description="h264: compact (foxglove.CompressedVideo); jpeg, png: one image a "
        "frame (png is lossless: byte-identical replays)")
    video: Literal["analysed", "all"] = Field(
        "analysed", description="analysed: the frames the fusion windows use (per window end, "
        "the last frame before it); all: every frame the source delivers")
    h264_crf: int = Field(30, ge=0, le=51, description="libx264 quality: lower is better, "
                          "bigger")
    jpeg_quality: int = Field(90, ge=1, le=100)
    audio_format: Literal["aac", "s16", "f32"] = Field(
        "aac", description="aac: compact (mmstream.CompressedAudio); s16: pcm-s16 (Foxglove "
        "plays it); f32: lossless float32")
    audio_kbps: int = Field(48, ge=8, le=256, description="AAC bitrate, kbit/s")

    @model_validator(mode="after")
    def _one_target(self) -> RecordConfig:
        if (self.path is None) == (self.dir is None):
            raise ValueError("set exactly one of record.path (a file) or record.dir (a folder)")
        return self
