"""The live view's health panel: sources, queues, drops, sinks, models, CPU.

Read from the running pipeline's read-only view (runtime/observer.py) and the sinks' own
`health()`, on demand only: nothing is sampled while nobody watches. A snapshot is kept for
a second, so many viewers cost one read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from mmstream.drop_reasons import explain
from mmstream.runtime import metrics
from mmstream.runtime.observer import PipelineView

SNAPSHOT_TTL_S = 1.0


@dataclass(frozen=True)
class _CpuReading:
    at: float  # monotonic seconds
    device_idle: float  # seconds, summed over the cores
    device_total: float
    own: float  # this process: user + system seconds


class CpuMeter:
    """Busy share of the whole device and of this process since the previous reading (its
    own baseline: psutil.cpu_percent's module-wide one is shared with other callers)."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.cores = psutil.cpu_count() or 1
        self._last = self._read()

    def _read(self) -> _CpuReading:
        device, own = psutil.cpu_times(), self.process.cpu_times()
        idle = device.idle + getattr(device, "iowait", 0.0)
        # Linux counts guest time inside user and nice already
        total = sum(device) - getattr(device, "guest", 0.0) - getattr(device, "guest_nice", 0.0)
        return _CpuReading(time.monotonic(), idle, total, own.user + own.system)

    def percent(self) -> dict[str, float]:
        """{"device": % of all cores busy, "mmstream": % of one core this process used}."""
        before, now = self._last, self._read()
        self._last = now
        span, wall = now.device_total - before.device_total, now.at - before.at
        idle = now.device_idle - before.device_idle
        device = 100.0 * (1.0 - idle / span) if span > 0 else 0.0
        own = 100.0 * (now.own - before.own) / wall if wall > 0 else 0.0
        return {"device": round(max(device, 0.0), 1), "mmstream": round(max(own, 0.0), 1),
                "cores": self.cores}


@dataclass
class SourceStates:
    """ok / reconnecting / ended per source, as the runner tells its observers."""

    states: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (state, why)

    def set(self, source: str, state: str, reason: str = "") -> None:
        self.states[source] = (state, reason)

    def as_json(self) -> list[dict[str, str]]:
        return [{"name": name, "state": state, "reason": reason}
                for name, (state, reason) in self.states.items()]


class HealthPanel:
    """Builds the panel's JSON from the current pipeline (None between two pipelines)."""

    def __init__(self) -> None:
        self.pipeline: PipelineView | None = None
        self.sources = SourceStates()
        self.mode = ""
        self.reloads = 0
        self._cpu: CpuMeter | None = None
        self._snapshot: dict[str, Any] | None = None
        self._taken = 0.0

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._snapshot is None or now - self._taken >= SNAPSHOT_TTL_S:
            self._snapshot, self._taken = self._build(), now
        return self._snapshot

    def _build(self) -> dict[str, Any]:
        if self._cpu is None:  # the first viewer starts the meter: its first reading is 0
            self._cpu = CpuMeter()
        view = self.pipeline
        panel: dict[str, Any] = {
            "running": view is not None, "mode": self.mode, "reloads": self.reloads,
            "sources": self.sources.as_json(), "cpu": self._cpu.percent(),
            "models": _models(view), "queues": [], "drops": [], "sinks": {}, "lag": {},
        }
        if view is not None:
            panel["queues"] = [{"name": ch.name, "depth": ch.depth, "capacity": ch.capacity,
                                "dropped": ch.dropped} for ch in view.channels()]
            panel["drops"] = _drops(view)
            panel["sinks"] = {name: dict(state) for name, state in view.sink_health().items()
                              if state}
            panel["lag"] = {stream: round(lag, 3) for stream, lag in view.lags().items()}
        return panel


def _drops(view: PipelineView) -> list[dict[str, Any]]:
    """Each drop counter above 0, with where it is and what it means in words."""
    rows = []
    for key, count in sorted(view.drops().items()):
        if count:
            reason = explain(key)
            rows.append({"key": key, "where": reason.where, "text": reason.line, "count": count})
    return rows


def _models(view: PipelineView | None) -> list[dict[str, Any]]:
    """Each loaded model's load time, with the stage version that uses it where known."""
    loads = metrics.model_load_times()
    versions = view.models() if view is not None else {}
    rows = [{"name": name, "load_s": round(seconds, 2)} for name, seconds in sorted(loads.items())]
    rows += [{"name": f"{stage}: {version}", "load_s": None}
             for stage, version in sorted(versions.items())]
    return rows
