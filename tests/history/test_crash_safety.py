"""What a killed or stopped process leaves in its history (real processes, real signals)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, wait_until


def _committed(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.Error:
        return 0  # not created yet


def _ingesting(path: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-m", "tests.history.ingest_process",
                                str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def _seqs_per_stream(db: sqlite3.Connection) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for stream, seq in db.execute("SELECT stream, seq FROM events ORDER BY stream, seq"):
        found.setdefault(stream, []).append(seq)
    return found


def test_sigkill_leaves_a_store_that_opens_with_all_but_the_last_batch(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    process = _ingesting(path)
    seen = wait_until(lambda: _committed(path) >= 5000 and _committed(path),
                      what="5000 events committed")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("INSERT INTO transcripts(transcripts) VALUES ('integrity-check')")
    kept = db.execute("SELECT count(*) FROM events").fetchone()[0]
    assert kept >= seen  # every batch committed before the kill is there
    for stream, seqs in _seqs_per_stream(db).items():  # and nothing in between is missing
        assert seqs == list(range(1, len(seqs) + 1)), stream


def test_sigterm_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    process = _ingesting(path)
    wait_until(lambda: _committed(path) >= 2000, what="2000 events committed")
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    submitted = int(out.split()[-1])
    assert _committed(path) == submitted
