"""The `history:` section: the searchable store of every published event (docs/history.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from mmstream.config.sources import Section


class HistoryConfig(Section):
    """On by default in `mmstream run`; replays write it only with `--history PATH`."""

    enabled: bool = Field(True, description="keep every published event in a searchable store")
    path: Path | None = Field(
        None, description="SQLite file; unset: `mmstream run` keeps it in the state directory "
        "($STATE_DIRECTORY or ~/.local/state/mmstream, <device_id>.history.db), replays write "
        "none (replay --history PATH)")
    max_age_days: float = Field(30.0, gt=0, description="delete events older than this")
    max_mb: float = Field(2048.0, gt=0, description="delete the oldest events above this size")
    thumbnails: bool = Field(True, description="keep small JPEG pictures of analysed frames")
    thumbnail_interval_s: float = Field(
        10.0, gt=0, description="at most one picture per stream this often (media seconds)")
    thumbnail_width: int = Field(192, ge=32, le=640, description="the pictures' width (pixels)")
    thumbnail_max_age_days: float = Field(
        7.0, gt=0, description="delete pictures older than this (they take most of the room)")
    commit_interval_s: float = Field(
        0.5, gt=0, le=1.0, description="commit a batch at least this often: what a crash "
        "(SIGKILL, power cut) can lose")
