"""Source sections of a pipeline file, one model per `kind`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, so typos fail at start."""

    model_config = ConfigDict(extra="forbid")


class FileSourceConfig(Section):
    kind: Literal["file"] = "file"
    id: str = Field("file0", description="stream id used in topics and events")
    path: Path = Field(description="media file: mp4/mkv/webm/wav/flac/mp3 ...")
    realtime: bool = Field(False, description="pace at the media's own rate instead of max speed")
    video: bool = Field(True, description="decode video frames (if the file has video)")
    audio: bool = Field(True, description="decode audio (resampled to 16 kHz mono)")
    fps: float = Field(2.0, gt=0, description="video frames per second handed to analysis")


class SyntheticSourceConfig(Section):
    kind: Literal["synthetic"] = "synthetic"
    id: str = "synth0"
    duration_s: float = Field(5.0, gt=0)
    fps: float = Field(5.0, gt=0)
    width: int = Field(320, gt=0)
    height: int = Field(240, gt=0)
    tone_hz: float = Field(440.0, ge=0)
    realtime: bool = False


SourceConfig = Annotated[
    FileSourceConfig | SyntheticSourceConfig,
    Field(discriminator="kind"),
]
