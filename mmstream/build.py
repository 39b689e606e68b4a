"""Turns a validated PipelineConfig into its pipeline: sources, stages in order, sinks.

Declarative: every part is constructed with everything it needs (the run policy, the shared
control state, the recorder the tap feeds) and nothing is wired after construction. The
stage order is the data path:

    record tap -> overload -> control -> transcribe -> window -> infer -> coalesce

(each only when the config asks for it). Parts are imported only when a pipeline uses them,
so `mmstream schema` or `config validate` never pay for loading torch or whisper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mmstream.config import LIVE_KINDS, PipelineConfig
from mmstream.runtime.control import PipelineControl
from mmstream.runtime.observer import PipelineObserver
from mmstream.runtime.pipeline import Pipeline
from mmstream.runtime.stage import Sink, Source, Stage


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


def build_control(config: PipelineConfig) -> PipelineControl | None:
    """The run-time control state, when the MQTT sink takes commands."""
    mqtt = config.sinks.mqtt
    return PipelineControl() if mqtt is not None and mqtt.control else None


def build_stages(config: PipelineConfig, *, control: PipelineControl | None = None,
                 recorder: Any = None) -> list[Stage]:
    """The stages in data-path order (see the module docstring)."""
    stages: list[Stage] = []
    if recorder is not None:  # first: every raw input, before anything can shed it
        from mmstream.stages.record_tap import RecordTap

        stages.append(RecordTap(recorder.record_input))
    if overload_active(config):
        from mmstream.stages.overload import OverloadStage

        stages.append(OverloadStage(config.runtime.overload))
    if control is not None:
        from mmstream.stages.control import ControlStage

        stages.append(ControlStage(control))
    stages.extend(_analysis_stages(config))
    mqtt = config.sinks.mqtt
    if mqtt is not None and mqtt.coalesce.enabled:  # last: before seq is stamped
        from mmstream.stages.coalesce import CoalesceStage

        stages.append(CoalesceStage(mqtt.coalesce))
    return stages


def _analysis_stages(config: PipelineConfig) -> list[Stage]:
    """Transcription, then windowing + fused inference (scene, emotion, fused events)."""
    analyses, policy = config.stages, config.policy
    stages: list[Stage] = []
    if analyses.window.enabled and analyses.infer.enabled:
        from mmstream.stages.infer import set_up_memory

        set_up_memory(analyses.infer)  # process-wide: before whisper's threads exist
    if analyses.transcribe.enabled:
        from mmstream.stages.transcribe import TranscribeStage

        stages.append(TranscribeStage(analyses.transcribe, policy=policy))
    if analyses.window.enabled and analyses.infer.enabled:
        from mmstream.stages.infer import InferStage
        from mmstream.stages.window import WindowStage

        text_wait = None if analyses.transcribe.enabled else 0.0  # no transcripts to wait for
        overload = config.runtime.overload
        shedding = overload_active(config)
        # a replay paced at `speed` covers that many media seconds per wall second
        pace = max((getattr(s, "speed", None) or 1.0 for s in config.sources), default=1.0)
        stages += [WindowStage(analyses.window, policy=policy, text_wait_s=text_wait, pace=pace),
                   InferStage(analyses.infer, policy=policy,
                              max_lag_s=overload.max_lag_s if shedding else None,
                              vision_nice=overload.vision_nice if shedding else 0)]
    return stages


def build_sinks(config: PipelineConfig) -> list[Sink]:
    sinks: list[Sink] = []
    if config.sinks.jsonl is not None:
        from mmstream.sinks.jsonl import JsonlSink

        sinks.append(JsonlSink(config.sinks.jsonl.path, append=config.sinks.jsonl.append))
    if config.sinks.mqtt is not None:
        from mmstream.sinks.mqtt import MqttSink

        sinks.append(MqttSink(config.sinks.mqtt, config.device_id,
                              streams=[source.id for source in config.sources],
                              configuration_url=web_link(config)))
    if config.history.enabled and config.history.path is not None:
        from mmstream.history.sink import HistorySink

        sinks.append(HistorySink.for_pipeline(config))
    return sinks


def web_link(config: PipelineConfig) -> str | None:
    """Where the live view is, for Home Assistant's device page (the daemon fills
    `web.public_url` with the address it serves on, unless the user set one)."""
    return config.web.public_url if config.serves_web else None


def overload_active(config: PipelineConfig) -> bool:
    """Shedding is for live/paced input; a fast replay must stay deterministic, so never there."""
    return config.runtime.overload.enabled and config.policy.overload_control


def restart_backoff(config: PipelineConfig) -> tuple[float, float]:
    """Reconnect delays (first, longest) for failed live sources: their own settings."""
    devices = [s for s in config.sources if s.kind in LIVE_KINDS]
    if not devices:
        return (0.5, 30.0)
    return (min(d.reconnect_min_s for d in devices),  # type: ignore[union-attr]
            max(d.reconnect_max_s for d in devices))  # type: ignore[union-attr]


def build_pipeline(config: PipelineConfig, extra_sinks: Sequence[Sink] = (),
                   observers: Sequence[PipelineObserver] = ()) -> Pipeline:
    control = build_control(config)
    recorder = None
    if config.record is not None:
        from mmstream.recording.inputs import AnalysisGrid
        from mmstream.sinks.recorder import RecorderSink

        window = config.stages.window  # where windows end: the frames `video: analysed` keeps
        recorder = RecorderSink(config.record, config.device_id,
                                AnalysisGrid(window.hop_s, window.length_s))
    sinks = [*build_sinks(config), *extra_sinks, *([recorder] if recorder else [])]
    if recorder is not None and config.history.enabled:
        from mmstream.history.sink import HistorySink

        for sink in sinks:  # the history's results point into the daemon's own recording
            if isinstance(sink, HistorySink):
                sink.follow(recorder.segments)
    return Pipeline(
        build_sources(config),
        build_stages(config, control=control, recorder=recorder),
        sinks,
        device_id=config.device_id,
        policy=config.policy,
        capacity=config.runtime.channel_capacity,
        restart_backoff=restart_backoff(config),
        observers=observers,
        control=control,
    )
