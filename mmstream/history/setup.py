"""Where a history store goes, checked before a command starts writing it."""

from __future__ import annotations

import os
from pathlib import Path

from mmstream.errors import ConfigError


def check_history_target(path: Path, setting: str) -> None:
    """A store that cannot be written is an error at the start of a replay, naming the
    setting that chose it (a daemon warns instead and runs on without history)."""
    if path.is_dir():
        raise ConfigError(f"{setting} {path}: a folder; name the store file (history.db)")
    folder = path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{setting} {path}: the file is not writable")
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{setting} {path}: cannot write in {folder}")
