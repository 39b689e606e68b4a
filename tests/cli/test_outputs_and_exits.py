"""Outputs and exit codes that tell the truth: an events file appears only for a run that
succeeded, an interrupted replay says how far it got and exits 130/143, a recording is not
overwritten by accident, a terminal shows progress and a pipe gets nothing extra."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mmstream.events import decode
from tests.conftest import REPO, wait_until

NO_MODELS = ("--set", "stages.transcribe.enabled=false", "--set", "stages.window.enabled=false")


@pytest.mark.parametrize("bad", ["missing", "empty", "streams"])
def test_a_failed_replay_leaves_no_events_file(cli: Any, sample_clip: Path, tmp_path: Path,
                                                bad: str) -> None:
    out = tmp_path / "x.jsonl"
    if bad == "missing":
        args = [str(tmp_path / "missing.mp4")]
    elif bad == "empty":
        (tmp_path / "empty.mp4").write_bytes(b"")
        args = [str(tmp_path / "empty.mp4")]
    else:
        args = [str(sample_clip), "--streams", "nope"]
    result = cli("replay", *args, "--out", str(out), *NO_MODELS, timeout=120)
    assert result.returncode != 0 and "error:" in result.stderr
    assert not list(tmp_path.glob("x.jsonl*"))  # neither the file nor its partial


def test_a_replay_writes_its_events_file_only_at_the_end(cli: Any, sample_clip: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    out.write_text("an older run's events\n")
    result = cli("replay", str(sample_clip), "--out", str(out), *NO_MODELS,
                 "--set", "stages.infer.enabled=false", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "older run" not in out.read_text()  # replaced, not appended to
    assert not (tmp_path / "x.jsonl.partial").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_replay_says_how_far_it_got(sample_clip: Path, tmp_path: Path,
                                                  sig: signal.Signals, code: int) -> None:
    out = tmp_path / "x.jsonl"
    partial = tmp_path / "x.jsonl.partial"
    replay = subprocess.Popen([sys.executable, "-m", "mmstream", "replay", str(sample_clip),
                               "--realtime", "--out", str(out)], cwd=REPO,
                              stderr=subprocess.PIPE, text=True)
    wait_until(lambda: partial.exists() and partial.read_bytes().count(b"\n") >= 2, 120,
               "the first events")
    replay.send_signal(sig)
    _, stderr = replay.communicate(timeout=60)
    assert replay.returncode == code, stderr
    assert f"interrupted ({sig.name}) at" in stderr and "of 8.2 s of media" in stderr
    assert str(partial) in stderr and not out.exists()
    events = [decode(line) for line in partial.read_bytes().splitlines()]
    assert len(events) >= 2  # what was read before the signal is all there


def test_record_refuses_to_overwrite_without_force(cli: Any, sample_clip: Path,
                                                   tmp_path: Path) -> None:
    rec = tmp_path / "rec.mcap"
    rec.write_bytes(b"precious")
    refused = cli("record", str(sample_clip), "--out", str(rec), "--no-analysis", timeout=60)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert rec.read_bytes() == b"precious"
    forced = cli("record", str(sample_clip), "--out", str(rec), "--no-analysis", "--force",
                 timeout=120)
    assert forced.returncode == 0, forced.stderr
    assert rec.read_bytes()[:8] != b"precious"


def _stderr_on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal (stdout to /dev/null); returns (exit, stderr)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "mmstream", *args], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=follower,
                               env={**os.environ, "COLUMNS": "120"})
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the other end closed: the process is done
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout=30), seen.decode(errors="replace")


def test_progress_on_a_terminal_and_nothing_extra_in_a_pipe(cli: Any, sample_clip: Path,
                                                            tmp_path: Path) -> None:
    args = ["replay", str(sample_clip), *NO_MODELS, "--set", "stages.infer.enabled=false"]
    code, terminal = _stderr_on_a_terminal([*args, "--out", str(tmp_path / "t.jsonl")])
    assert code == 0, terminal
    assert "media s" in terminal and "x realtime" in terminal and "8/8 media s" in terminal
    piped = cli(*args, "--out", str(tmp_path / "p.jsonl"), timeout=120)
    assert piped.returncode == 0
    assert piped.stderr.strip().splitlines() == [piped.stderr.strip().splitlines()[-1]]
    assert piped.stderr.startswith("done:")
