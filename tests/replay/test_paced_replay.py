"""Paced replays (`--speed`) measure lag and staleness on the wall clock the pace maps media
time to: a slow replay is not late, so it sheds nothing and cuts the windows a fast one does."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from mmstream.events import FusedEvent, decode
from mmstream.runtime.lag import SourceClocks


def test_a_slow_clock_is_not_late() -> None:
    """At 0.5x, media second 2 plays 4 wall seconds after media second 0: it is not 2 s old
    when it arrives (the bug: every window of a 0.5x replay was shed as stale)."""
    clocks = SourceClocks()
    clocks.observe("half", 0.0, wall=time.time() - 4.0, rate=0.5)
    clocks.observe("double", 0.0, wall=time.time() - 1.0, rate=2.0)
    clocks.observe("real", 0.0, wall=time.time() - 2.0)
    for stream in ("half", "double", "real"):
        age = clocks.age(stream, 2.0)
        assert age is not None and abs(age) < 0.5, (stream, age)


def windows_of(path: Path) -> list[tuple[float, float]]:
    events = map(decode, path.read_bytes().splitlines())
    return [(e.payload.window_start, e.payload.window_end)
            for e in events if isinstance(e, FusedEvent)]


@pytest.mark.slow
def test_paced_replays_shed_nothing_and_cut_the_same_windows(cli: Any, sample_clip: Path,
                                                             tmp_path: Path) -> None:
    rec = tmp_path / "talk.mcap"
    made = cli("record", str(sample_clip), "--out", str(rec), "--no-analysis")
    assert made.returncode == 0, made.stderr
    runs: dict[str, list[tuple[float, float]]] = {}
    for name, pace in (("fast", []), ("0.5x", ["--speed", "0.5"]), ("1x", ["--speed", "1"]),
                       ("2x", ["--speed", "2"])):
        out = tmp_path / f"{name}.jsonl"
        result = cli("replay", str(rec), "--out", str(out), *pace)
        assert result.returncode == 0, result.stderr
        done = [line for line in result.stderr.splitlines() if line.startswith("done:")][-1]
        assert not re.search(r"shed|text_not_waited_for|windows waited", done), (name, done)
        runs[name] = windows_of(out)
    assert len(runs["fast"]) >= 6
    for name, windows in runs.items():
        assert windows == runs["fast"], name
