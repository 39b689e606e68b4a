"""A full disk pauses a recording instead of stopping the pipeline.

The recorder's writer thread runs every write through `DiskGuard.run`: a write that fails
because the disk (or the user's quota) is full abandons the open file (its complete chunks
stay readable), logs one warning and pauses; while paused, inputs and events are dropped
without trying, and every `retry_s` one write is tried again (retention may have freed space
meanwhile), which resumes the recording in a new file. Any other write error still fails the
recorder, as before.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
RETRY_S = 5.0


class DiskGuard:
    """Writer thread: `run(work, ...)`; the loop reads `state()` for health."""

    def __init__(self, abandon: Callable[[], None], retry_s: float = RETRY_S) -> None:
        self.abandon = abandon
        self.retry_s = retry_s
        self.paused_reason: str | None = None
        self.paused_since: float | None = None  # wall time
        self.pauses = 0
        self.dropped = 0  # writes skipped while paused
        self._retry_at = 0.0

    def run(self, work: Callable[..., Any], *args: Any) -> None:
        if self.paused_reason is not None and time.monotonic() < self._retry_at:
            self.dropped += 1
            return
        try:
            work(*args)
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            self._pause(exc)
            return
        if self.paused_reason is not None:
            log.info("recording resumed after %.0f s paused (%d writes dropped)",
                     time.time() - (self.paused_since or time.time()), self.dropped)
            self.paused_reason = self.paused_since = None

    def unless_paused(self, work: Callable[..., Any], *args: Any) -> None:
        """Housekeeping (a periodic flush): skipped while paused, so it never resumes."""
        if self.paused_reason is None:
            self.run(work, *args)

    def _pause(self, exc: OSError) -> None:
        self.abandon()
        self._retry_at = time.monotonic() + self.retry_s
        if self.paused_reason is None:
            self.paused_reason = f"disk full: {exc.strerror or exc}"
            self.paused_since = time.time()
            self.pauses += 1
            log.warning("recording paused: %s (the pipeline goes on; retrying every %.0f s)",
                        self.paused_reason, self.retry_s)

    def state(self) -> dict[str, Any]:
        if self.paused_reason is None:
            return {"recording": "on", "pauses": self.pauses}
        return {"recording": "paused", "reason": self.paused_reason,
                "paused_since": self.paused_since, "pauses": self.pauses,
                "dropped_writes": self.dropped}
