"""`mmstream run` keeps its history, and a store that cannot be used never stops the run:
damaged, in a read-only folder, on a full disk (real processes, real media)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, SAMPLE_CLIP, SAMPLE_SENTENCES
from tests.notify_listener import NotifyListener, reload_then_stop

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


@pytest.mark.slow
def test_a_sighup_reload_loses_nothing_in_the_history(
        tmp_path: Path, notify_socket: tuple[NotifyListener, str]) -> None:
    """Events before and after a reload are all in the store, each once, as published."""
    received, socket_path = notify_socket
    out, store = tmp_path / "events.jsonl", tmp_path / "h.db"
    pipeline_file = tmp_path / "pipeline.yaml"
    pipeline_file.write_text(yaml.safe_dump({
        "device_id": "hup", "sources": [{"kind": "file", "id": "cam", "path": str(SAMPLE_CLIP),
                                         "realtime": True}],
        "stages": {"transcribe": {"enabled": False}}, "sinks": {"jsonl": {"path": str(out)}},
        "history": {"path": str(store)}}))
    daemon = subprocess.Popen([sys.executable, "-m", "mmstream", "run", str(pipeline_file)],
                              cwd=REPO, env={**os.environ, "NOTIFY_SOCKET": socket_path},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def published() -> list[bytes]:
        return out.read_bytes().splitlines() if out.exists() else []

    stderr = reload_then_stop(daemon, received, lambda: len(published()))
    assert daemon.returncode == 0, stderr
    lines = published()
    stored = [bytes(body) for (body,) in sqlite3.connect(store).execute(
        "SELECT body FROM events ORDER BY id")]
    assert len(stored) == len(lines) >= 12
    assert sorted(stored) == sorted(lines)  # the same envelopes, each once
    seqs = [json.loads(body)["seq"] for body in stored]
    assert sorted(seqs) == list(range(1, len(lines) + 1))  # across the reload
