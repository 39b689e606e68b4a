"""The pipeline file: one validated model that drives everything.

Values come from, in increasing priority: the YAML file, `MMSTREAM_…` environment variables
(`MMSTREAM_SINKS__MQTT__URL=mqtt://broker:1883`, `__` separates levels, list items by index:
`MMSTREAM_SOURCES__0__PATH=clip.mp4`), and `--set sinks.mqtt.url=…` on the command line.
A bad value fails at start with the path of the field and the offending value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from mmstream.config.overrides import apply_overrides, env_overrides, parse_set_options
from mmstream.config.record import RecordConfig
from mmstream.config.runtime import (
    LoggingConfig,
    MetricsConfig,
    OverloadConfig,
    WatchdogConfig,
)
from mmstream.config.sinks import JsonlSinkConfig, MqttSinkConfig, SinksConfig
from mmstream.config.sources import (
    CameraSourceConfig,
    FileSourceConfig,
    MicrophoneSourceConfig,
    RecordingSourceConfig,
    Section,
    SourceConfig,
    SyntheticSourceConfig,
)
from mmstream.config.stages import InferConfig, StagesConfig, TranscribeConfig, WindowConfig
from mmstream.errors import ConfigError

__all__ = [
    "CameraSourceConfig",
    "FileSourceConfig",
    "InferConfig",
    "JsonlSinkConfig",
    "MicrophoneSourceConfig",
    "MqttSinkConfig",
    "PipelineConfig",
    "RecordConfig",
    "RecordingSourceConfig",
    "RuntimeConfig",
    "SinksConfig",
    "StagesConfig",
    "SyntheticSourceConfig",
    "TranscribeConfig",
    "WindowConfig",
    "load_pipeline",
    "validate_pipeline",
]


class RuntimeConfig(Section):
    channel_capacity: int = Field(64, ge=1, description="items buffered between two stages")
    clock: Literal["auto", "wall", "media"] = Field(
        "auto", description="t_publish source: auto = media time for fast replays, else wall"
    )
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    overload: OverloadConfig = OverloadConfig()
    watchdog: WatchdogConfig = WatchdogConfig()


class PipelineConfig(Section):
    device_id: str = Field("mmstream", pattern=r"^[A-Za-z0-9_.-]+$")
    sources: list[SourceConfig] = Field(min_length=1)
    stages: StagesConfig = StagesConfig()
    sinks: SinksConfig = SinksConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    record: RecordConfig | None = None


def _format_errors(error: ValidationError, origin: str) -> str:
    """One line per bad field: `path.to.field: what is wrong (got <value>)`."""
    problems = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(root)"
        value = item.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
        problems.append(f"{path}: {item['msg']}{shown}")
    if len(problems) == 1:
        return f"invalid pipeline config in {origin}: {problems[0]}"
    return "\n  ".join([f"invalid pipeline config in {origin}:", *problems])


def validate_pipeline(data: Mapping[str, Any], origin: str = "<config>") -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, origin)) from None


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def load_pipeline(
    path: Path | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    sets: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> PipelineConfig:
    """Read a pipeline file (or start from `base`), apply env and --set overrides, validate."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        data = read_yaml(path)
        _resolve_relative_paths(data, path.parent)
    fields = set(PipelineConfig.model_fields)
    data = apply_overrides(data, env_overrides(environ, fields))
    data = apply_overrides(data, parse_set_options(sets))
    return validate_pipeline(data, str(path) if path else "<built-in pipeline>")


def _resolve_relative_paths(data: dict[str, Any], folder: Path) -> None:
    """Media paths in a pipeline file are relative to the file, like Frigate's."""
    for source in data.get("sources") or []:
        for key in ("path", "url"):  # url: a video file used as a camera
            if isinstance(source, dict) and isinstance(source.get(key), str):
                candidate = Path(source[key]).expanduser()
                if not candidate.is_absolute() and (folder / candidate).exists():
                    source[key] = str(folder / candidate)
