"""The retained health payload on `<prefix>/<device>/health` (docs/mqtt.md, Availability).

A `status` event built from what the sink knows (link state and counters, the spool's depth
and its drops) and what the pipeline's read-only view says (drops, models, events by type, the
control state), so a subscriber sees the whole device in one retained message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from mmstream.events import Status, StatusEvent
from mmstream.runtime import metrics
from mmstream.runtime.observer import PipelineView
from mmstream.sinks.mqtt.client import LinkStats
from mmstream.sinks.mqtt.spool import Spool


@dataclass
class HealthReport:
    """Builds the health events of one device: numbered, with the uptime since construction."""

    device_id: str
    started: float = field(default_factory=time.monotonic)
    seq: int = 0

    def next_event(self, stats: LinkStats, connected: bool, spool: Spool,
                   pipeline: PipelineView | None, *, held: int = 0,
                   failure: BaseException | None = None) -> StatusEvent:
        self.seq += 1
        now = time.time()
        state, message = ("online", "") if connected else ("reconnecting", stats.last_error)
        if held:
            state, message = "degraded", f"the spool's disk is full: {held} events wait"
        if failure is not None:
            state, message = "error", f"the MQTT link stopped: {failure}"
        details = self._details(stats, spool, pipeline)
        details["spool_held"] = held
        return StatusEvent(
            device_id=self.device_id, stream_id="health", seq=self.seq, t_capture=now,
            t_publish=now,
            payload=Status(state=state, message=message, drops=_drops(stats, spool, pipeline),
                           lag_s=round(stats.lag_s, 3), details=details))

    def _details(self, stats: LinkStats, spool: Spool,
                 pipeline: PipelineView | None) -> dict[str, Any]:
        details: dict[str, Any] = {
            "uptime_s": round(time.monotonic() - self.started, 1),
            "spool_depth": spool.depth, "published": stats.acked,
            "rejected": stats.rejected, "connects": stats.connects,
        }
        loads = metrics.model_load_times()
        details.update(cpu_percent=psutil.cpu_percent(interval=None),  # since the last call
                       model_load_s=round(sum(loads.values()), 2))
        if pipeline is not None:
            lags = pipeline.lags()
            details.update(models=pipeline.models(), events=pipeline.event_counts(),
                           lag_s=max(lags.values(), default=0.0), lag_per_stream_s=lags)
            if pipeline.control is not None:
                details["control"] = pipeline.control.snapshot()
        return details


def _drops(stats: LinkStats, spool: Spool, pipeline: PipelineView | None) -> dict[str, int]:
    """The sink's own drops (`mqtt:<reason>`) and the pipeline's."""
    drops = {f"mqtt:{reason}": n for reason, n in spool.dropped.items()}
    if stats.dropped_qos0:
        drops["mqtt:qos0_offline"] = stats.dropped_qos0
    if pipeline is not None:
        drops.update(pipeline.drops())
    return drops
