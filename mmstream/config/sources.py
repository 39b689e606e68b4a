"""Source sections of a pipeline file, one model per `kind`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

MAX_ID_CHARS = 64
#: Ids become MQTT topic levels and parts of file names: letters, digits, `_`, `-` and `.`
#: (never first, so no hidden file, `.` or `..`); no `/`, `+`, `#`, spaces or control characters.
ID_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$"
Identifier = Annotated[str, StringConstraints(max_length=MAX_ID_CHARS,
                                              pattern=ID_PATTERN)]


def stream_id_for(path: Path) -> str:
    """The stream id a replay gives an input file: its name, made a valid id."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-") or "file0"


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, so typos fail at start."""

    model_config = ConfigDict(extra="forbid")


class FileSourceConfig(Section):
    kind: Literal["file"] = "file"
    id: Identifier = Field("file0", description="stream id used in topics and events")
    path: Path = Field(description="media file: mp4/mkv/webm/wav/flac/mp3 ...")
    realtime: bool = Field(False, description="pace at the media's own rate instead of max speed")
    video: bool = Field(True, description="decode video frames (if the file has video)")
    audio: bool = Field(True, description="decode audio (resampled to 16 kHz mono)")
    fps: float = Field(2.0, gt=0, description="video frames per second handed to analysis")


class SyntheticSourceConfig(Section):
    kind: Literal["synthetic"] = "synthetic"
    id: Identifier = "synth0"
    duration_s: float = Field(5.0, gt=0)
    fps: float = Field(5.0, gt=0)
    width: int = Field(320, gt=0)
    height: int = Field(240, gt=0)
    tone_hz: float = Field(440.0, ge=0)
    realtime: bool = False


class CameraSourceConfig(Section):
    """A camera read with OpenCV: device index, /dev/videoN, rtsp:// or http:// URL, or a file."""

    kind: Literal["camera"] = "camera"
    id: Identifier = Field("cam0", description="stream id used in topics and events")
    url: int | str = Field(0, description="device index, /dev/videoN, rtsp/http URL or video file")
    fps: float = Field(2.0, gt=0, description="frames analysed per second (the next one grabbed; "
                       "each camera at its own phase of the second, so cameras do not queue)")
    phase: float | None = Field(
        None, ge=0, lt=1, description="when in each 1/fps interval the camera is analysed, as a "
        "fraction of it; unset: spread from the other cameras (sources/phase.py). Cameras with "
        "the same phase are analysed together and share forward passes (a GPU with many "
        "cameras), at the cost of waiting for each other on a CPU")
    width: int | None = Field(None, gt=0, description="ask the device for this capture width")
    height: int | None = Field(None, gt=0, description="ask the device for this capture height")
    loop: bool = Field(False, description="a video file used as camera restarts at its end")
    open_timeout_s: float = Field(10.0, gt=0, description="give up opening after this long")
    read_timeout_s: float = Field(5.0, gt=0, description="no frame for this long = camera lost")
    reconnect_min_s: float = Field(0.5, gt=0, description="first reconnect delay (then doubles)")
    reconnect_max_s: float = Field(30.0, gt=0, description="longest delay between reconnects")


class RecordingSourceConfig(Section):
    """Replays the raw inputs of an MCAP recording on the recording's own clock."""

    kind: Literal["recording"] = "recording"
    id: Identifier = Field("recording",
                           description="name of this source (streams keep recorded ids)")
    path: Path = Field(description="an .mcap file written by mmstream record / record:")
    speed: float | None = Field(
        None, gt=0, description="pace at this multiple of the recorded rate; unset = max speed")
    start_s: float | None = Field(None, ge=0, description="skip to this second of the recording")
    end_s: float | None = Field(None, gt=0, description="stop at this second of the recording")
    streams: list[Identifier] | None = Field(
        None, description="recorded stream ids to feed; unset = all")

    @property
    def realtime(self) -> bool:
        """Paced replays behave like live input (wall clock, overload policy)."""
        return self.speed is not None

    @model_validator(mode="after")
    def _ordered_range(self) -> RecordingSourceConfig:
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")
        return self


class MicrophoneSourceConfig(Section):
    """A live microphone (PortAudio via sounddevice), resampled to 16 kHz mono."""

    kind: Literal["microphone"] = "microphone"
    id: Identifier = Field("mic0", description="stream id used in topics and events")
    device: int | str | None = Field(
        None, description="input device index or (part of) its name; unset = system default")
    sample_rate: int | None = Field(
        None, gt=0, description="capture rate; unset = the device's default rate")
    channels: int = Field(1, ge=1, description="channels captured (mixed down to mono)")
    blocksize: int = Field(0, ge=0, description="frames per PortAudio callback; 0 = PortAudio's")
    latency: Literal["low", "high"] | float = Field(
        "high", description="PortAudio input latency: 'high' is safest against overflows")
    ring_s: float = Field(30.0, gt=0, description="seconds of audio the capture ring holds")
    read_timeout_s: float = Field(3.0, gt=0, description="no audio for this long = mic lost")
    reconnect_min_s: float = Field(0.5, gt=0, description="first reconnect delay (then doubles)")
    reconnect_max_s: float = Field(30.0, gt=0, description="longest delay between reconnects")
    status_interval_s: float = Field(
        10.0, gt=0, description="at most one overflow status event per this many seconds")


SourceConfig = Annotated[
    FileSourceConfig | SyntheticSourceConfig | CameraSourceConfig | RecordingSourceConfig
    | MicrophoneSourceConfig,
    Field(discriminator="kind"),
]
