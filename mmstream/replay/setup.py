"""What a replay runs: one input (recording or media file) as the source of a pipeline.

Shared by `mmstream replay` (one file or a batch), `record`, `demo` and the Ray reprocessing
workers, so every path builds exactly the same typed `PipelineConfig` for the same input and
options. The user's pipeline file and `--set` overrides apply on top of the replay's own
choices (source, sinks, threads), and the result is validated once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mmstream.config import (
    FileSourceConfig,
    PipelineConfig,
    RecordingSourceConfig,
    Update,
    load_pipeline,
    read_yaml,
)
from mmstream.config.sources import stream_id_for
from mmstream.errors import ConfigError


def sample_clip() -> Path:
    return Path(str(resources.files("mmstream") / "assets" / "sample.mp4"))


@dataclass(frozen=True)
class ReplayOptions:
    """How to play an input: `--realtime`, `--speed`, `--start`, `--end`, `--streams`."""

    realtime: bool = False
    speed: float | None = None
    start: float | None = None
    end: float | None = None
    streams: tuple[str, ...] | None = None

    @property
    def for_recordings_only(self) -> bool:
        return any(v is not None for v in (self.speed, self.start, self.end, self.streams))


def replay_source(media: Path, options: ReplayOptions = ReplayOptions()
                  ) -> FileSourceConfig | RecordingSourceConfig:
    """The source for one input: a recording (.mcap) or a media file."""
    if media.suffix.lower() != ".mcap":
        if options.for_recordings_only:
            raise ConfigError(f"--speed, --start, --end and --streams work on .mcap recordings; "
                              f"{media} is a media file (use --realtime to pace it)")
        return FileSourceConfig(id=stream_id_for(media), path=media, realtime=options.realtime)
    speed = options.speed or (1.0 if options.realtime else None)
    try:
        return RecordingSourceConfig(
            id=stream_id_for(media), path=media, speed=speed, start_s=options.start,
            end_s=options.end, streams=list(options.streams) if options.streams else None)
    except ValidationError as exc:  # name the flag the user typed, not the config field
        problems = "; ".join(_flag_error(error) for error in exc.errors())
        raise ConfigError(f"{media}: {problems}") from None


FLAGS = {"start_s": "--start", "end_s": "--end", "speed": "--speed", "streams": "--streams"}


def _flag_error(error: Any) -> str:
    field_name = str(error["loc"][-1]) if error["loc"] else ""
    message = str(error["msg"]).removeprefix("Value error, ")
    if field_name in FLAGS:
        return f"{FLAGS[field_name]} {error['input']}: {message}"
    for name, flag in FLAGS.items():  # a check across fields names them in its message
        message = message.replace(name, flag)
    return message


NO_ANALYSIS: list[Update] = [(["stages", stage, "enabled"], False)
                             for stage in ("transcribe", "window", "infer")]


def record_target(out: Path) -> list[Update]:
    """`x.mcap` records to one file; a folder to rec-<start>-<n>.mcap files there (the
    record section's other settings stay as the pipeline file has them)."""
    if out.suffix.lower() == ".mcap" and not out.is_dir():
        return [(["record", "path"], str(out)), (["record", "dir"], None)]
    return [(["record", "dir"], str(out)), (["record", "path"], None)]


def on_cpu_in_fp32(config: PipelineConfig) -> PipelineConfig:
    """What `--cpu-fp32` forces on top of a fast replay (whose policy already stamps media
    time, never sheds and emits by count): CPU maths in fp32, since GPU kernels pick
    algorithms per shape and may reduce in a different order, so the bytes match anywhere."""
    if config.policy.results_when_ready:
        raise ConfigError("--cpu-fp32 replays as fast as possible: it cannot be combined "
                          "with --realtime or --speed")
    stages = config.stages
    cpu_stages = stages.model_copy(update={
        "infer": stages.infer.model_copy(update={"device": "cpu", "precision": "fp32"}),
        "transcribe": stages.transcribe.model_copy(update={"device": "cpu"})})
    return config.model_copy(update={"stages": cpu_stages})


def replay_config(
    media: Path,
    *,
    pipeline: Path | None = None,
    out: Path | None = None,
    mqtt: str | None = None,
    options: ReplayOptions = ReplayOptions(),
    sets: Sequence[str] = (),
    device_id: str | None = None,
    cpu_fp32: bool = False,
    threads: int | None = None,
    cuda: bool = False,
    record_to: Path | None = None,
    analysis: bool = True,
    home_assistant: bool = False,
    stdout_by_default: bool = True,
    history: Path | None = None,
) -> PipelineConfig:
    """The pipeline a replay runs: the given (or default) pipeline with `media` as its source.

    `threads`/`cuda` (a Ray worker's settings), `record_to` and `analysis=False` are the
    command's own choices: the user's `--set` still wins over them.
    """
    updates: list[Update] = [(["sources"], [replay_source(media, options).model_dump()])]
    file_sinks = (read_yaml(pipeline).get("sinks") if pipeline else None) or {}
    if out is not None:
        updates.append((["sinks", "jsonl"], {"path": str(out), "append": False}))
    if mqtt is not None:
        updates.append((["sinks", "mqtt", "url"], mqtt))
    mqtt_file = file_sinks.get("mqtt") or {}
    if home_assistant:
        if mqtt is None and not mqtt_file:
            raise ConfigError("--ha publishes Home Assistant discovery over MQTT: give --mqtt")
        updates.append((["sinks", "mqtt", "homeassistant", "enabled"], True))
    if (mqtt is not None or mqtt_file) and not (mqtt_file.get("spool") or {}).get("path"):
        updates.append((["sinks", "mqtt", "spool", "path"], "memory"))  # a batch job
    if not (file_sinks or out or mqtt) and stdout_by_default:
        updates.append((["sinks", "jsonl"], {"path": "-"}))
    if device_id:
        updates.append((["device_id"], device_id))
    if threads is not None:
        updates += [(["stages", "infer", "cpu_threads"], threads),
                    (["stages", "infer", "prepare_threads"], threads),
                    (["stages", "transcribe", "cpu_threads"], threads)]
    if cuda:
        updates += [(["stages", "infer", "device"], "cuda"),
                    (["stages", "transcribe", "device"], "cuda")]
    if record_to is not None:
        updates += record_target(record_to)
    if not analysis:
        updates += NO_ANALYSIS
    if history is not None:  # `--history PATH`: a replay's events go into that store too
        updates += [(["history", "path"], str(history)), (["history", "enabled"], True)]
    config = load_pipeline(pipeline, base=None if pipeline else {"device_id": "replay"},
                           updates=updates, sets=sets)
    return on_cpu_in_fp32(config) if cpu_fp32 else config


@dataclass(frozen=True)
class ReplayPlan:
    """The options of a batch replay, picklable: each worker (a Ray actor too) turns an input
    into its pipeline with `config_for`."""

    pipeline: Path | None = None
    mqtt: str | None = None
    sets: tuple[str, ...] = ()
    options: ReplayOptions = field(default_factory=ReplayOptions)
    cpu_fp32: bool = False  # `--cpu-fp32`: the same bytes on any machine
    threads: int | None = None  # CPU threads of torch, CTranslate2 and the prepare pool
    cuda: bool = False
    history: Path | None = None  # `--history PATH`: every input's events go into one store

    def config_for(self, media: Path, events: Path) -> PipelineConfig:
        return replay_config(media, pipeline=self.pipeline, out=events, mqtt=self.mqtt,
                             options=self.options, sets=self.sets,
                             cpu_fp32=self.cpu_fp32, threads=self.threads,
                             cuda=self.cuda, history=self.history)
