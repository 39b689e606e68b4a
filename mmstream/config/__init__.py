"""The pipeline file: one validated model that drives everything.

Values come from, in increasing priority: the YAML file, `MMSTREAM_…` environment variables
(`MMSTREAM_SINKS__MQTT__URL=mqtt://broker:1883`, `__` separates levels, list items by index:
`MMSTREAM_SOURCES__0__PATH=clip.mp4`), and `--set sinks.mqtt.url=…` on the command line.
A bad value fails at start with the path of the field and the offending value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from mmstream.config.history import HistoryConfig
from mmstream.config.overrides import (
    apply_overrides,
    env_overrides,
    parse_set_options,
    set_origins,
)
from mmstream.config.record import RecordConfig
from mmstream.config.runtime import (
    FAST,
    LIVE,
    PACED,
    RUN_POLICIES,
    LoggingConfig,
    MetricsConfig,
    OverloadConfig,
    RunMode,
    RunPolicy,
    WatchdogConfig,
)
from mmstream.config.sinks import JsonlSinkConfig, MqttSinkConfig, SinksConfig
from mmstream.config.sources import (
    ID_PATTERN,
    MAX_ID_CHARS,
    CameraSourceConfig,
    FileSourceConfig,
    Identifier,
    MicrophoneSourceConfig,
    RecordingSourceConfig,
    Section,
    SourceConfig,
    SyntheticSourceConfig,
)
from mmstream.config.stages import (
    ChangeGateConfig,
    InferConfig,
    StagesConfig,
    TranscribeConfig,
    WindowConfig,
)
from mmstream.config.web import WebConfig
from mmstream.errors import ConfigError

__all__ = [
    "FAST",
    "LIVE",
    "PACED",
    "CameraSourceConfig",
    "ChangeGateConfig",
    "FileSourceConfig",
    "HistoryConfig",
    "InferConfig",
    "JsonlSinkConfig",
    "MicrophoneSourceConfig",
    "MqttSinkConfig",
    "PipelineConfig",
    "RecordConfig",
    "RecordingSourceConfig",
    "RunMode",
    "RunPolicy",
    "RuntimeConfig",
    "SinksConfig",
    "StagesConfig",
    "SyntheticSourceConfig",
    "TranscribeConfig",
    "Update",
    "WebConfig",
    "WindowConfig",
    "load_pipeline",
    "validate_pipeline",
]


LIVE_KINDS = frozenset({"camera", "microphone"})
#: A pipeline file is a few KB; the bound stops a huge one before YAML parses it (a 50 MB file
#: took minutes and gigabytes), and the one on sources before anything is built for each.
MAX_PIPELINE_BYTES = 1 << 20
MAX_SOURCES = 64


class RuntimeConfig(Section):
    mode: Literal["auto", "live", "paced", "fast"] = Field(
        "auto", description="auto: live for cameras/microphones, paced for files played in "
        "real time, fast otherwise (media-time stamps, lossless, reproducible)")
    channel_capacity: int = Field(64, ge=1, description="items buffered between two stages")
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    overload: OverloadConfig = OverloadConfig()
    watchdog: WatchdogConfig = WatchdogConfig()


class PipelineConfig(Section):
    device_id: Identifier = "mmstream"
    sources: list[SourceConfig] = Field(min_length=1, max_length=MAX_SOURCES)
    stages: StagesConfig = StagesConfig()
    sinks: SinksConfig = SinksConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    record: RecordConfig | None = None
    web: WebConfig = WebConfig()
    history: HistoryConfig = HistoryConfig()

    @model_validator(mode="after")
    def _resolve_mode(self) -> PipelineConfig:
        """The run mode follows from the sources; an explicit one must agree with them."""
        if any(s.kind in LIVE_KINDS for s in self.sources):
            found: RunMode = "live"
        elif any(s.realtime for s in self.sources):
            found = "paced"
        else:
            found = "fast"
        if self.runtime.mode not in ("auto", found):
            raise ValueError(f"runtime.mode is {self.runtime.mode!r} but the sources make this "
                             f"a {found!r} pipeline (cameras and microphones are live, files "
                             "with realtime/speed are paced, other files fast)")
        if self.runtime.mode == "auto":
            self.runtime = self.runtime.model_copy(update={"mode": found})
        return self

    @property
    def mode(self) -> RunMode:
        """The resolved run mode (runtime/clock.py, stages and channels follow it)."""
        return self.runtime.mode  # type: ignore[return-value]  # resolved above

    @property
    def policy(self) -> RunPolicy:
        """What the run mode decides (clock, shedding, overload, emission): read by the
        runner and handed to each stage."""
        return RUN_POLICIES[self.mode]

    @property
    def serves_web(self) -> bool:
        """The live view is served: enabled, and the run keeps wall time (a fast replay has
        nothing to watch)."""
        return self.web.enabled and self.policy.clock == "wall"


Origins = Mapping[tuple[str, ...], str]  # an override's path -> where it came from
ID_RULE = (f"an id has 1 to {MAX_ID_CHARS} letters, digits, '_', '-' or '.' (not first): it "
           "names MQTT topics and files")
SECRET_FIELDS = frozenset({"password", "token"})
#: Settings of earlier releases, and what replaced them, so an old pipeline file is told how
#: to change rather than only that a field is unknown.
RETIRED_FIELDS: dict[tuple[str, ...], str] = {
    ("runtime", "clock"): "replaced by runtime.mode (auto | live | paced | fast): the run mode "
    "decides the clock",
    ("stages", "infer", "batching"): "removed: batching follows runtime.mode (a fast replay "
    "batches deterministically)",
    ("runtime", "overload", "mode"): "replaced by runtime.overload.enabled (true | false); a "
    "fast replay never sheds",
}


def _format_errors(error: ValidationError, origin: str, overrides: Origins) -> str:
    """One line per bad field: `path.to.field: what is wrong (got <value>)`, naming the
    environment variable or `--set` that gave the value when one did."""
    problems, from_file = [], False
    for item in error.errors():
        loc = tuple(str(part) for part in item["loc"])
        value = item.get("input")
        secret = bool(loc) and loc[-1] in SECRET_FIELDS  # never echo a secret into a log
        shown = "" if isinstance(value, dict | list) or secret else f" (got {_shown(value)})"
        source = _override_of(loc, overrides)
        from_file = from_file or source is None
        where = f", set by {source}" if source else ""
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = RETIRED_FIELDS.get(loc) or _did_you_mean(message, loc[-1] if loc else "")
        elif item["type"] == "string_pattern_mismatch" and item.get(
                "ctx", {}).get("pattern") == ID_PATTERN:
            message = ID_RULE
        problems.append(f"{'.'.join(loc) or '(root)'}: {message}{shown}{where}")
    header = f"invalid pipeline config in {origin}" if from_file else "invalid pipeline config"
    if len(problems) == 1:
        return f"{header}: {problems[0]}"
    return "\n  ".join([f"{header}:", *problems])


def _shown(value: Any) -> str:
    """A bad value as an error message quotes it: at most 80 characters of a huge one."""
    text = repr(value)
    if len(text) <= 80:
        return text
    size = f"{len(value):,} characters" if isinstance(value, str) else f"{len(text):,} as text"
    return f"{text[:80]}... ({size})"


def _did_you_mean(message: str, name: str) -> str:
    """'realtme' -> 'Extra inputs are not permitted: did you mean realtime?'"""
    import difflib

    close = difflib.get_close_matches(name, _field_names(PipelineConfig), n=1, cutoff=0.75)
    return f"{message}: did you mean {close[0]}?" if close else message


def _field_names(model: Any, seen: set[Any] | None = None) -> set[str]:
    """Every field name of the config models, at any depth."""
    seen = set() if seen is None else seen
    if model in seen or not hasattr(model, "model_fields"):
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for info in model.model_fields.values():
        for inner in _types_in(info.annotation):
            names |= _field_names(inner, seen)
    return names


def _types_in(annotation: Any) -> list[Any]:
    from typing import get_args

    return [annotation, *(t for arg in get_args(annotation) for t in _types_in(arg))]


def _override_of(loc: tuple[str, ...], overrides: Origins) -> str | None:
    """The override that set the field at `loc` (pydantic adds union tags to the path, as in
    `sources.0.file.path`, so the override's path is matched as a subsequence)."""
    best: tuple[int, str] | None = None
    for path, source in overrides.items():
        rest = iter(loc)
        if all(part in rest for part in path) and (best is None or len(path) > best[0]):
            best = (len(path), source)
    return best[1] if best else None


def validate_pipeline(data: Mapping[str, Any], origin: str = "<config>",
                      overrides: Origins | None = None) -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, origin, overrides or {})) from None


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:  # never more than the limit: it may be a pipe
            raw = file.read(MAX_PIPELINE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline file {path}: {exc.strerror}") from None
    if len(raw) > MAX_PIPELINE_BYTES:
        raise ConfigError(f"{path}: more than {MAX_PIPELINE_BYTES // 1024} KiB, the most a "
                          "pipeline file may have")
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


Update = tuple[list[str], Any]  # (["sinks", "jsonl", "path"], "events.jsonl")


def load_pipeline(
    path: Path | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    updates: Sequence[Update] = (),
    sets: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> PipelineConfig:
    """Read a pipeline file (or start from `base`), apply overrides, validate once.

    Priority, lowest first: the file, `MMSTREAM_…` environment variables, the command's own
    choices (`updates`: a replay's source, `--out`, `--mqtt`), `--set`.
    """
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        data = read_yaml(path)
        _resolve_relative_paths(data, path.parent)
    from_env = env_overrides(environ, set(PipelineConfig.model_fields))
    data = apply_overrides(data, [(path_, value) for path_, value, _ in from_env])
    data = apply_overrides(data, updates)
    data = apply_overrides(data, parse_set_options(sets))
    origins = {tuple(path_): source for path_, _, source in from_env}
    origins.update(set_origins(sets))
    return validate_pipeline(data, str(path) if path else "<built-in pipeline>", origins)


def _resolve_relative_paths(data: dict[str, Any], folder: Path) -> None:
    """Media paths in a pipeline file are relative to the file, like Frigate's."""
    for source in data.get("sources") or []:
        for key in ("path", "url"):  # url: a video file used as a camera
            if isinstance(source, dict) and isinstance(source.get(key), str):
                candidate = Path(source[key]).expanduser()
                # lexists: a broken link or a loop next to the file is still the one meant
                if not candidate.is_absolute() and os.path.lexists(folder / candidate):
                    source[key] = str(folder / candidate)
