"""Writing and reading history stores in tests."""

from __future__ import annotations

import time
from pathlib import Path

from mmstream.events import Event
from mmstream.history.store import Retention
from mmstream.history.writer import HistoryWriter

KEEP_ALL = Retention(max_age_s=1e12, max_bytes=1 << 40, thumbnail_max_age_s=1e12)


def written_store(path: Path, events: list[Event], retention: Retention = KEEP_ALL
                  ) -> HistoryWriter:
    """A store holding `events` (the writer's thread committed them and stopped)."""
    writer = HistoryWriter(path, retention, anchor=time.time())
    writer.open()
    writer.start()
    for event in events:
        writer.submit(event)
    writer.close()
    return writer


def mount_read_only(folder: Path) -> str | None:
    """A read-only tmpfs at `folder` (root sees through file modes, not through a read-only
    mount); the reason when it cannot be mounted."""
    import subprocess

    folder.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    return None if done.returncode == 0 else done.stderr.strip() or "mount failed"
