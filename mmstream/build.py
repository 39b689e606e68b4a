"""Turns a validated PipelineConfig into sources, stages and sinks.

Each part is imported only when a pipeline uses it, so `mmstream schema` or `config validate`
never pays for loading torch or whisper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mmstream.config import PipelineConfig
from mmstream.runtime.clock import ClockMode, make_clock
from mmstream.runtime.pipeline import Pipeline
from mmstream.runtime.stage import Sink, Source, Stage

LIVE_KINDS = {"camera", "microphone"}


def _file_source(cfg: Any) -> Source:
    from mmstream.sources.media_file import MediaFileSource

    return MediaFileSource(cfg)


def _synthetic_source(cfg: Any) -> Source:
    from mmstream.sources.synthetic import SyntheticSource

    return SyntheticSource(cfg)


def _camera_source(cfg: Any) -> Source:
    from mmstream.sources.camera import CameraSource

    return CameraSource(cfg)


def _recording_source(cfg: Any) -> Source:
    from mmstream.sources.recording import RecordingSource

    return RecordingSource(cfg)


def _microphone_source(cfg: Any) -> Source:
    from mmstream.sources.microphone import MicrophoneSource

    return MicrophoneSource(cfg)


SOURCE_FACTORIES: dict[str, Callable[[Any], Source]] = {
    "file": _file_source,
    "synthetic": _synthetic_source,
    "camera": _camera_source,
    "recording": _recording_source,
    "microphone": _microphone_source,
}


def build_sources(config: PipelineConfig) -> list[Source]:
    return [SOURCE_FACTORIES[source.kind](source) for source in config.sources]


def build_stages(config: PipelineConfig) -> list[Stage]:
    stages: list[Stage] = []
    if config.stages.transcribe.enabled:
        from mmstream.stages.transcribe import TranscribeStage

        stages.append(TranscribeStage(config.stages.transcribe,
                                      deterministic=clock_mode(config) == "media"))
    stages.extend(_fusion_stages(config))
    return stages


def _fusion_stages(config: PipelineConfig) -> list[Stage]:
    """Windowing + fused inference (scene, emotion, fused events), after transcription."""
    window, infer = config.stages.window, config.stages.infer
    if not (window.enabled and infer.enabled):
        return []
    from mmstream.stages.infer import InferStage
    from mmstream.stages.window import WindowStage

    fast_replay = clock_mode(config) == "media"
    text_wait = None if config.stages.transcribe.enabled else 0.0  # no transcripts to wait for
    return [WindowStage(window, text_wait_s=text_wait, fast_replay=fast_replay),
            InferStage(infer, deterministic=fast_replay)]


def build_sinks(config: PipelineConfig) -> list[Sink]:
    sinks: list[Sink] = []
    if config.sinks.jsonl is not None:
        from mmstream.sinks.jsonl import JsonlSink

        sinks.append(JsonlSink(config.sinks.jsonl.path))
    if config.sinks.mqtt is not None:
        from mmstream.sinks.mqtt import MqttSink

        sinks.append(MqttSink(config.sinks.mqtt, config.device_id,
                              streams=[source.id for source in config.sources]))
    return sinks


def is_paced(config: PipelineConfig) -> bool:
    """Live devices and --realtime replays run against the clock; fast replays do not."""
    return any(s.kind in LIVE_KINDS or getattr(s, "realtime", False) for s in config.sources)


def clock_mode(config: PipelineConfig) -> ClockMode:
    """Fast replays stamp media time (deterministic output); live or paced runs wall time."""
    if config.runtime.clock != "auto":
        return config.runtime.clock
    return "wall" if is_paced(config) else "media"


def overload_active(config: PipelineConfig) -> bool:
    """Shedding is for live/paced input; a fast replay must stay deterministic, so never there."""
    mode = config.runtime.overload.mode
    return mode == "on" or (mode == "auto" and clock_mode(config) == "wall")


def restart_backoff(config: PipelineConfig) -> tuple[float, float]:
    """Reconnect delays (first, longest) for failed live sources: their own settings."""
    cameras = [s for s in config.sources if s.kind in LIVE_KINDS]
    if not cameras:
        return (0.5, 30.0)
    return (min(c.reconnect_min_s for c in cameras), max(c.reconnect_max_s for c in cameras))


def _mqtt_stages(config: PipelineConfig, stages: list[Stage]) -> Any:
    """MQTT control at the head of the analysis, coalescing at its tail (before seq)."""
    mqtt = config.sinks.mqtt
    control = None
    if mqtt is not None and mqtt.control:
        from mmstream.runtime.control import ControlStage, PipelineControl

        control = PipelineControl()
        stages.insert(0, ControlStage(control))
    if mqtt is not None and mqtt.coalesce.enabled:
        from mmstream.sinks.coalesce import CoalesceStage

        stages.append(CoalesceStage(mqtt.coalesce))
    return control


def build_pipeline(config: PipelineConfig, extra_sinks: Sequence[Sink] = ()) -> Pipeline:
    stages = build_stages(config)
    control = _mqtt_stages(config, stages)
    governor = None
    if overload_active(config):
        from mmstream.runtime.overload import OverloadStage

        governor = OverloadStage(config.runtime.overload)
        stages.insert(0, governor)
    sinks = [*build_sinks(config), *extra_sinks]
    if config.record is not None:  # its tap goes first: every raw input, before any shedding
        from mmstream.sinks.recorder import RecorderSink

        recorder = RecorderSink(config.record, config.device_id)
        sinks.append(recorder)
        stages.insert(0, recorder.tap())
    pipeline = Pipeline(
        build_sources(config),
        stages,
        sinks,
        device_id=config.device_id,
        clock=make_clock(clock_mode(config)),
        capacity=config.runtime.channel_capacity,
        restart_backoff=restart_backoff(config),
        lossless=not is_paced(config),  # a fast replay waits instead of shedding frames
    )
    if governor is not None:
        governor.watch(pipeline.channels[stages.index(governor) + 1:])
    if config.sinks.mqtt is not None:  # health payload and control topic need the pipeline
        from mmstream.sinks.mqtt import attach_to_pipeline

        attach_to_pipeline(pipeline, control)
    return pipeline
