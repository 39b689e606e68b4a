"""What the runner tells whoever watches it, and what they may read of it.

Observers (metrics, systemd readiness, and every sink — the MQTT sink's health payload and
control topic) are told the pipeline they watch through `attached(view)`, then each event of
its life. The runner calls them from the event loop, so an observer must be quick and never
block. `PipelineView` is all an observer (or a stage) may read of the running pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mmstream.runtime.control import PipelineControl


@dataclass(frozen=True, slots=True)
class ChannelState:
    name: str  # "<stage>-><next stage>"
    depth: int  # items waiting
    capacity: int
    dropped: int  # items shed by the channel so far (video frames when full)


class PipelineView(Protocol):
    """A read-only view of a running pipeline."""

    @property
    def control(self) -> PipelineControl | None:
        """Run-time control (pause, frame rate), when the pipeline takes commands."""

    def drops(self) -> dict[str, int]:
        """Items dropped so far, by `<where>:<reason>`."""

    def models(self) -> dict[str, str]:
        """The model behind each analysis stage that has one, by stage name."""

    def event_counts(self) -> dict[str, int]:
        """Events delivered to the sinks so far, by type."""

    def media_read(self) -> dict[str, float]:
        """Seconds of media each source has read so far (its latest item's capture time minus
        its first's), by source name."""

    def channels(self, after: str | None = None) -> list[ChannelState]:
        """Every channel, or those downstream of the stage named `after`."""

    def age(self, stream_id: str, t_capture: float) -> float | None:
        """Wall seconds since the stream's moment `t_capture` was captured (runtime/lag.py);
        None for a stream not seen yet."""

    def lags(self) -> dict[str, float]:
        """Per stream, how late its latest analysed window reached the sinks (capture of its
        end -> delivery), in seconds."""

    def sink_health(self) -> dict[str, Mapping[str, Any]]:
        """What each sink says of its own link (`Sink.health()`), by sink name."""


class PipelineObserver:
    """All hooks are no-ops; override what you need."""

    def attached(self, pipeline: PipelineView) -> None:
        """The pipeline this observer watches, before anything runs."""

    def ready(self) -> None:
        """Every sink is open and every source has opened once: the pipeline is up."""

    def stage_item(self, stage: str, seconds: float, produced: int) -> None:
        """A stage handled one item in `seconds` (its own time, not waiting on the next stage)."""

    def source_restart(self, source: str, reason: str) -> None:
        """A restartable source failed and will be reopened."""

    def source_opened(self, source: str) -> None:
        """A source opened (at start, or again after a restart): it is delivering."""

    def source_ended(self, source: str) -> None:
        """A source reached its end (a file played out) or was stopped."""
