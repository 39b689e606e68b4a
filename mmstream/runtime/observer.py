"""What the runner tells whoever watches it (metrics, systemd readiness); all no-ops by default.

The runner calls these from the event loop, so an observer must be quick and never block.
"""

from __future__ import annotations


class PipelineObserver:
    def ready(self) -> None:
        """Every sink is open and every source has opened once: the pipeline is up."""

    def stage_item(self, stage: str, seconds: float, produced: int) -> None:
        """A stage handled one item in `seconds` (its own time, not waiting on the next stage)."""

    def source_restart(self, source: str, reason: str) -> None:
        """A restartable source failed and will be reopened."""
