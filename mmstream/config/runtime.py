"""Daemon sections of `runtime:`: run mode, metrics endpoint, logging, overload, watchdog."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from mmstream.config.sources import Section

LEVELS = ("debug", "info", "warning", "error", "critical")

#: How a pipeline runs, resolved once from its sources (PipelineConfig):
#: - live: devices (camera, microphone) on the wall clock; video may be shed to keep up;
#: - paced: files or recordings played at their own rate, behaving as live;
#: - fast: as fast as possible, lossless, stamped with media time, giving the same events on
#:   every run (and those a paced run of the same media gives).
RunMode = Literal["live", "paced", "fast"]


@dataclass(frozen=True)
class RunPolicy:
    """What the run mode decides, in one place: the runner and the stages read these fields,
    never the mode's name. `PipelineConfig.policy` gives the one for its mode."""

    mode: RunMode
    #: what stamps `t_publish`: the event's own capture time, or the wall clock
    clock: Literal["media", "wall"]
    #: a full channel may shed its oldest video frame (else producers wait: lossless)
    channels_shed: bool
    #: the overload stage and live inference may shed stale work (if `runtime.overload` is on)
    overload_control: bool
    #: results go out the moment they are ready; else by stream and count, at fixed places in
    #: the input, so the same input gives the same bytes whatever the timing
    results_when_ready: bool

    @classmethod
    def for_mode(cls, mode: RunMode) -> RunPolicy:
        timed = mode != "fast"  # live and paced keep up with a clock; fast has none
        return cls(mode, clock="wall" if timed else "media", channels_shed=timed,
                   overload_control=timed, results_when_ready=timed)


#: Built once: the policy of each mode.
RUN_POLICIES: dict[str, RunPolicy] = {mode: RunPolicy.for_mode(mode)
                                      for mode in ("live", "paced", "fast")}
LIVE, PACED, FAST = RUN_POLICIES["live"], RUN_POLICIES["paced"], RUN_POLICIES["fast"]


class MetricsConfig(Section):
    enabled: bool = Field(False, description="serve Prometheus metrics over HTTP")
    host: str = Field("127.0.0.1", description="bind address; loopback unless you mean it")
    port: int = Field(9108, ge=0, le=65535, description="0 picks a free port")
    sample_interval_s: float = Field(1.0, gt=0, description="how often queue depths are sampled")


class LoggingConfig(Section):
    level: str = Field("warning", description="root level: debug, info, warning, error")
    format: Literal["text", "json"] = Field("text", description="json: one object per line")
    levels: dict[str, str] = Field(
        default_factory=dict, description="per-module levels, e.g. {mmstream.sinks.mqtt: debug}"
    )

    @model_validator(mode="after")
    def _known_levels(self) -> LoggingConfig:
        for where, level in [("level", self.level), *self.levels.items()]:
            if level.lower() not in LEVELS:
                raise ValueError(f"{where}: unknown level {level!r} (one of {', '.join(LEVELS)})")
        return self


class OverloadConfig(Section):
    enabled: bool = Field(
        True, description="shed video when analysis falls behind (live and paced runs; a fast "
        "replay never sheds)")
    high_watermark: float = Field(0.75, gt=0, le=1, description="queue fill that means overload")
    low_watermark: float = Field(0.25, ge=0, lt=1, description="queue fill that means keeping up")
    check_interval_s: float = Field(1.0, gt=0, description="how often the policy decides")
    max_stride: int = Field(16, ge=1, description="analyse at least 1 in this many frames")
    recover_checks: int = Field(3, ge=1, description="healthy checks before the rate steps up")
    max_lag_s: float = Field(
        1.0, gt=0, description="a video window older than this (capture -> now) is not "
        "analysed but shed, and the frame stride widens until windows are fresher")
    vision_nice: int = Field(
        10, ge=0, le=19, description="nice value of the vision threads (face detection, the "
        "fused model): speech gets the CPU first; 0 = same as the rest")

    @model_validator(mode="after")
    def _ordered(self) -> OverloadConfig:
        if self.low_watermark >= self.high_watermark:
            raise ValueError("low_watermark must be below high_watermark")
        return self


class WatchdogConfig(Section):
    notify: bool = Field(True, description="send READY/STATUS/STOPPING to $NOTIFY_SOCKET if set")
    interval_s: float | None = Field(
        None, gt=0, description="WATCHDOG=1 period; default half of systemd's $WATCHDOG_USEC"
    )
