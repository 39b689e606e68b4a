"""What a replay runs: one input (recording or media file) as the source of a pipeline.

Shared by `mmstream replay` (one file or a batch), `record`, `demo` and the Ray reprocessing
workers, so every path builds exactly the same pipeline for the same input and options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mmstream.config import PipelineConfig


def stream_id_for(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-") or "file0"


def sample_clip() -> Path:
    return Path(str(resources.files("mmstream") / "assets" / "sample.mp4"))


# What --deterministic forces: media-time stamps, no shedding, batches that do not depend on
# timing, and CPU maths (GPU kernels may pick different algorithms or reduction orders).
DETERMINISTIC_SETS = (
    "runtime.clock=media",
    "runtime.overload.mode='off'",  # quoted: YAML reads a bare off as false
    "stages.infer.batching=deterministic",
    "stages.infer.device=cpu",
    "stages.infer.precision=fp32",
    "stages.transcribe.device=cpu",
)


def replay_source(
    media: Path,
    *,
    realtime: bool = False,
    speed: float | None = None,
    start: float | None = None,
    end: float | None = None,
    streams: list[str] | None = None,
) -> dict[str, Any]:
    """The source section for one input: a recording (.mcap) or a media file."""
    if media.suffix.lower() == ".mcap":
        source: dict[str, Any] = {"kind": "recording", "id": stream_id_for(media),
                                  "path": str(media)}
        if speed is not None or realtime:
            source["speed"] = speed or 1.0
        for key, value in (("start_s", start), ("end_s", end), ("streams", streams)):
            if value is not None:
                source[key] = value
        return source
    if speed is not None or start is not None or end is not None or streams is not None:
        from mmstream.errors import ConfigError

        raise ConfigError(f"--speed, --start, --end and --streams work on .mcap recordings; "
                          f"{media} is a media file (use --realtime to pace it)")
    return {"kind": "file", "id": stream_id_for(media), "path": str(media), "realtime": realtime}


def replay_config(
    media: Path,
    *,
    pipeline: Path | None,
    out: Path | None,
    mqtt: str | None,
    realtime: bool,
    sets: list[str],
    device_id: str | None = None,
    source: dict[str, Any] | None = None,
    deterministic: bool = False,
    stdout_by_default: bool = True,
) -> Any:
    """The pipeline a replay runs: the given (or default) pipeline with `media` as its source."""
    from mmstream.config import load_pipeline, read_yaml

    base: dict[str, Any] = read_yaml(pipeline) if pipeline else {"device_id": "replay"}
    base["sources"] = [source or replay_source(media, realtime=realtime)]
    sinks = dict(base.get("sinks") or {})
    if out is not None:
        sinks["jsonl"] = {"path": str(out)}
    if mqtt is not None:
        sinks["mqtt"] = {**(sinks.get("mqtt") or {}), "url": mqtt}
    if not sinks and stdout_by_default:
        sinks["jsonl"] = {"path": "-"}
    base["sinks"] = sinks
    if device_id:
        base["device_id"] = device_id
    forced = list(DETERMINISTIC_SETS) if deterministic else []
    return load_pipeline(None, base=base, sets=[*sets, *forced])


@dataclass(frozen=True)
class ReplayPlan:
    """The options of a batch replay, picklable: each worker (a Ray actor too) turns an input
    into its pipeline with `config_for`."""

    pipeline: Path | None = None
    mqtt: str | None = None
    sets: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)  # replay_source's keyword options
    deterministic: bool = False

    def config_for(self, media: Path, events: Path) -> PipelineConfig:
        options = dict(self.options)
        return replay_config(media, pipeline=self.pipeline, out=events, mqtt=self.mqtt,
                             realtime=bool(options.get("realtime")), sets=list(self.sets),
                             source=replay_source(media, **options),
                             deterministic=self.deterministic)
