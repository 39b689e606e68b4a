"""Prometheus metrics: one registry for the process, served only when the config asks.

Any module records with the small functions below (cheap: they work whether or not the
endpoint is served, and never block):

    from mmstream.runtime import metrics
    metrics.observe_model_load("whisper-tiny.en", seconds)
    metrics.observe_rtf("whisper-tiny.en", audio_s=3.0, compute_s=0.4)
    metrics.observe_batch_size("infer", 8)
    metrics.set_spool_depth("mqtt", 12)
    metrics.count_reconnect("mqtt")
    metrics.count_drop("microphone:mic0", "overflow:AudioChunk")

The runner-level ones (per-stage latency, queue depths, channel and stage drops, events by
type, source restarts, event-loop heartbeat and lag) come from `PipelineMetrics`, an observer
the daemon attaches to the pipeline. The endpoint binds 127.0.0.1 unless configured otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from mmstream.runtime.observer import PipelineObserver, PipelineView

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                   0.5, 1.0, 2.5, 5.0)

STAGE_SECONDS = Histogram("mmstream_stage_seconds", "Time a stage spends on one item",
                          ["stage"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
QUEUE_DEPTH = Gauge("mmstream_queue_depth", "Items waiting in a channel", ["channel"],
                    registry=REGISTRY)
QUEUE_CAPACITY = Gauge("mmstream_queue_capacity", "Capacity of a channel", ["channel"],
                       registry=REGISTRY)
DROPS = Counter("mmstream_drops", "Items dropped, by where and why", ["where", "reason"],
                registry=REGISTRY)
EVENTS = Counter("mmstream_events", "Events delivered to the sinks, by type", ["type"],
                 registry=REGISTRY)
BATCH_SIZE = Histogram("mmstream_batch_size", "Items per model forward pass", ["stage"],
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=REGISTRY)
WHISPER_RTF = Histogram("mmstream_whisper_rtf", "Decode time / audio duration (< 1 keeps up)",
                        ["model"], buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0),
                        registry=REGISTRY)
SPOOL_DEPTH = Gauge("mmstream_spool_depth", "Events waiting in the on-disk spool", ["sink"],
                    registry=REGISTRY)
RECONNECTS = Counter("mmstream_reconnects", "Reconnects of sources and sinks", ["part"],
                     registry=REGISTRY)
MODEL_LOAD_SECONDS = Gauge("mmstream_model_load_seconds", "How long the last load of a model took",
                           ["model"], registry=REGISTRY)
LOOP_HEARTBEAT = Gauge("mmstream_loop_heartbeat_timestamp_seconds",
                       "Last time the event loop ran the metrics sampler (unix time)",
                       registry=REGISTRY)
LOOP_LAG = Gauge("mmstream_loop_lag_seconds", "How late the event loop woke the sampler",
                 registry=REGISTRY)
DEGRADED = Gauge("mmstream_degraded", "1 while the overload policy sheds frames",
                 registry=REGISTRY)
LAG = Gauge("mmstream_lag_seconds", "How late a stream's latest analysed window reached the "
            "sinks (capture of its end -> delivery)", ["stream"], registry=REGISTRY)
FRAME_STRIDE = Gauge("mmstream_frame_stride", "Overload policy: 1 in N video frames analysed",
                     registry=REGISTRY)


_model_loads: dict[str, float] = {}


def observe_model_load(model: str, seconds: float) -> None:
    MODEL_LOAD_SECONDS.labels(model=model).set(seconds)
    _model_loads[model] = seconds


def model_load_times() -> dict[str, float]:
    """How long the last load of each model took, in seconds (health payloads, the web view)."""
    return dict(_model_loads)


@contextlib.contextmanager
def timed_model_load(model: str) -> Iterator[None]:
    """`with timed_model_load("efficientnet-lite0"): model = load()`."""
    started = time.perf_counter()
    yield
    observe_model_load(model, time.perf_counter() - started)


def observe_rtf(model: str, audio_s: float, compute_s: float) -> None:
    if audio_s > 0:
        WHISPER_RTF.labels(model=model).observe(compute_s / audio_s)


def observe_batch_size(stage: str, size: int) -> None:
    BATCH_SIZE.labels(stage=stage).observe(size)


def set_spool_depth(sink: str, depth: int) -> None:
    SPOOL_DEPTH.labels(sink=sink).set(depth)


def count_reconnect(part: str) -> None:
    RECONNECTS.labels(part=part).inc()


def count_drop(where: str, reason: str, count: int = 1) -> None:
    """Drops outside the runner's channels (a mic buffer overflow, spool shedding)."""
    if count > 0:
        DROPS.labels(where=where, reason=reason).inc(count)


def set_overload(degraded: bool, stride: int) -> None:
    DEGRADED.set(1 if degraded else 0)
    FRAME_STRIDE.set(stride)


class PipelineMetrics(PipelineObserver):
    """Feeds the runner-level metrics: stage timing per item, and a sampler of the channels."""

    def __init__(self) -> None:
        self.pipeline: PipelineView | None = None
        self._stage_children: dict[str, Any] = {}
        self._seen_drops: dict[str, int] = {}
        self._seen_events: dict[str, int] = {}

    def attached(self, pipeline: PipelineView) -> None:
        self.pipeline = pipeline

    def stage_item(self, stage: str, seconds: float, produced: int) -> None:
        child = self._stage_children.get(stage)
        if child is None:
            child = self._stage_children[stage] = STAGE_SECONDS.labels(stage=stage)
        child.observe(seconds)

    def source_restart(self, source: str, reason: str) -> None:
        count_reconnect(source)

    def sample(self) -> None:
        """Copy queue depths, new drops and new events into the metrics (cheap, loop-only)."""
        pipeline = self.pipeline
        if pipeline is None:
            return
        for channel in pipeline.channels():
            QUEUE_DEPTH.labels(channel=channel.name).set(channel.depth)
            QUEUE_CAPACITY.labels(channel=channel.name).set(channel.capacity)
        for key, total in pipeline.drops().items():  # "<channel or stage>:<reason>"
            new = total - self._seen_drops.get(key, 0)
            if new > 0:
                where, _, reason = key.partition(":")
                count_drop(where, reason, new)
                self._seen_drops[key] = total
        for stream, lag in pipeline.lags().items():
            LAG.labels(stream=stream).set(lag)
        for kind, total in pipeline.event_counts().items():
            new = total - self._seen_events.get(kind, 0)
            if new > 0:
                EVENTS.labels(type=kind).inc(new)
                self._seen_events[kind] = total

    async def run_sampler(self, interval_s: float = 1.0) -> None:
        """Sample until cancelled; the heartbeat and lag show whether the loop is responsive."""
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + interval_s
            await asyncio.sleep(interval_s)
            LOOP_LAG.set(max(0.0, loop.time() - expected))
            LOOP_HEARTBEAT.set(time.time())
            self.sample()


class MetricsServer:
    """The /metrics HTTP endpoint in a daemon thread; `close()` stops it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9108) -> None:
        self.host = host
        self.server, self._thread = start_http_server(port, addr=host, registry=REGISTRY)
        self.port = int(self.server.server_address[1])
        log.info("metrics on http://%s:%d/metrics", host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if isinstance(self._thread, threading.Thread):
            self._thread.join(timeout=5)


def serve_metrics(host: str = "127.0.0.1", port: int = 9108) -> MetricsServer:
    from mmstream.errors import ConfigError

    try:
        return MetricsServer(host, port)
    except OSError as exc:
        raise ConfigError(f"runtime.metrics: cannot listen on {host}:{port}: {exc.strerror}"
                          ) from None
