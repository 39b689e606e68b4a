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
    retain_days: float | None = Field(
        None, gt=0, description="with dir: delete closed segments older than this (fractions "
        "allowed: 0.5 = 12 h)")
    max_gb: float | None = Field(
        None, gt=0, description="with dir: delete the oldest closed segments above this total; "
        "whichever of retain_days and max_gb is reached first deletes")
    mode: Literal["continuous", "activity"] = Field(
        "continuous", description="continuous: every input; activity: only stretches with "
        "speech, a person (scene tag or face) or one of activity_tags, with pre/post-roll")
    activity_tags: list[str] = Field(
        default_factory=list, description="activity mode: scene tags that count as activity "
        "besides person")
    pre_roll_s: float = Field(5.0, ge=0, description="activity mode: kept before activity")
    post_roll_s: float = Field(10.0, ge=0, description="activity mode: kept after activity")
    decide_after_s: float = Field(
        20.0, gt=0, description="activity mode: inputs wait this long in memory for the "
        "events that decide them (whisper and the fused model answer seconds late)")

    @model_validator(mode="after")
    def _one_target(self) -> RecordConfig:
        if (self.path is None) == (self.dir is None):
            raise ValueError("set exactly one of record.path (a file) or record.dir (a folder)")
        if self.retain_days is None and self.max_gb is None:
            return self
        if self.dir is None:
            raise ValueError("record.retain_days and record.max_gb need record.dir (a folder "
                             "of segments)")
        if self.rotate_mb is None and self.rotate_s is None:
            raise ValueError("record.retain_days and record.max_gb need segments: set "
                             "record.rotate_s or record.rotate_mb")
        if (self.max_gb is not None and self.rotate_mb is not None
                and self.max_gb * 1024 < self.rotate_mb):
            raise ValueError(f"record.max_gb ({self.max_gb:g} GB) is smaller than one segment "
                             f"(record.rotate_mb = {self.rotate_mb:g} MB)")
        return self
