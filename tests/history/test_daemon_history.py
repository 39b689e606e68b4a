"""`mmstream run` keeps its history, and a store that cannot be used never stops the run:
damaged, in a read-only folder, on a full disk (real processes, real media)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import SAMPLE_CLIP, SAMPLE_SENTENCES

Cli = Callable[..., subprocess.CompletedProcess[str]]
# the sample's windows and finals (24 + 3) and its partials, whose count depends on what whisper
# makes of half-spoken words on this CPU: compare the store with what the run published
EVENTS_OF_THE_SAMPLE = range(27, 60)


def _run(cli: Cli, tmp_path: Path, history: dict[str, object] | None) -> tuple[
        subprocess.CompletedProcess[str], list[dict[str, object]]]:
    pipeline = {"device_id": "kitchen", "sources": [{"kind": "file", "path": str(SAMPLE_CLIP)}],
                "sinks": {"jsonl": {"path": str(tmp_path / "out.jsonl")}}}
    if history is not None:
        pipeline["history"] = history
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipeline))
    done = cli("run", str(tmp_path / "p.yaml"))
    events = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    return done, events


def _stored(path: Path) -> int:
    return int(sqlite3.connect(path).execute("SELECT count(*) FROM events").fetchone()[0])


@pytest.mark.slow
def test_run_keeps_history_in_the_state_directory_by_default(
        cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "state"
    pipeline = {"device_id": "kitchen", "sources": [{"kind": "file", "path": str(SAMPLE_CLIP)}],
                "sinks": {"jsonl": {"path": str(tmp_path / "out.jsonl")}}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipeline))
    done = cli("run", str(tmp_path / "p.yaml"), env={"STATE_DIRECTORY": str(state)})
    assert done.returncode == 0, done.stderr
    published = len((tmp_path / "out.jsonl").read_text().splitlines())
    assert published in EVENTS_OF_THE_SAMPLE
    assert _stored(state / "kitchen.history.db") == published
    found = cli("search", "coffee", "--json", env={"STATE_DIRECTORY": str(state)})
    assert [m["text"] for m in json.loads(found.stdout)] == [SAMPLE_SENTENCES[-1]]


@pytest.mark.slow
def test_a_damaged_store_is_kept_aside_and_the_run_goes_on(cli: Cli, tmp_path: Path) -> None:
    store = tmp_path / "h.db"
    damaged = b"SQLite format 3\x00" + b"\xff" * 8000
    store.write_bytes(damaged)
    done, events = _run(cli, tmp_path, {"path": str(store)})
    assert done.returncode == 0 and len(events) in EVENTS_OF_THE_SAMPLE, done.stderr
    [aside] = tmp_path.glob("h.db.unreadable-*")
    assert aside.read_bytes() == damaged
    assert done.stderr.count("moved aside") == 1  # said once
    assert _stored(store) == len(events)


@pytest.mark.slow
def test_a_read_only_folder_is_a_warning_and_the_run_goes_on(
        cli: Cli, tmp_path: Path, read_only_folder: Path) -> None:
    done, events = _run(cli, tmp_path, {"path": str(read_only_folder / "h.db")})
    assert done.returncode == 0 and len(events) in EVENTS_OF_THE_SAMPLE, done.stderr
    assert "history.path" in done.stderr and "goes on without history" in done.stderr


@pytest.mark.slow
def test_a_full_disk_never_stops_the_run(cli: Cli, tmp_path: Path, small_tmpfs: Path) -> None:
    filler = small_tmpfs / "filler"
    with filler.open("wb", buffering=0) as out:  # leave the history almost no room
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
    done, events = _run(cli, tmp_path, {"path": str(small_tmpfs / "h.db")})
    assert done.returncode == 0 and len(events) in EVENTS_OF_THE_SAMPLE, done.stderr
    assert "history" in done.stderr and "Traceback" not in done.stderr
