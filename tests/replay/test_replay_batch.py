"""Batch replay of a folder or glob: per-file errors, summary, exit code, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import speak
from replay_helpers import NO_ANALYSIS_SETS, record_synthetic

from mmstream.events import StatusEvent, decode


@pytest.fixture
def batch_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "recordings"
    (folder / "site2").mkdir(parents=True)
    record_synthetic(folder / "good.mcap", duration_s=1.0)
    record_synthetic(tmp_path / "long.mcap", duration_s=3.0, chunk_kb=16)
    whole = (tmp_path / "long.mcap").read_bytes()
    (folder / "cut.mcap").write_bytes(whole[:len(whole) // 2])  # as if the power went
    (folder / "corrupt.mcap").write_bytes(b"not a recording at all\n" * 100)
    speak("Batch replay test.", folder / "site2" / "voice.wav")
    (folder / "notes.txt").write_text("not media: ignored by the batch\n")
    return folder


def test_folder_with_a_corrupt_file_finishes_the_others(cli: Any, batch_folder: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = cli("replay", str(batch_folder), "--out", str(out), *NO_ANALYSIS_SETS)
    assert result.returncode == 3, result.stderr  # partial failure
    assert "corrupt.mcap" in result.stdout and "failed" in result.stdout  # the summary table
    assert f"error: 1 of 4 inputs failed: {batch_folder / 'corrupt.mcap'}" in result.stderr
    assert "4/4 files" in result.stderr  # the progress bar's last state
    summary = {Path(r["path"]).name: r for r in json.loads((out / "summary.json").read_text())
               ["results"]}
    assert {name: r["status"] for name, r in summary.items()} == {
        "corrupt.mcap": "failed", "cut.mcap": "ok", "good.mcap": "ok", "voice.wav": "ok"}
    assert "not an MCAP recording" in summary["corrupt.mcap"]["error"]
    assert sorted(p.name for p in out.iterdir()) == [
        "cut.mcap.jsonl", "good.mcap.jsonl", "site2__voice.wav.jsonl", "summary.json"]
    (cut_status,) = [decode(line) for line in (out / "cut.mcap.jsonl").read_bytes().splitlines()]
    assert isinstance(cut_status, StatusEvent) and "cut short" in cut_status.payload.message
    assert summary["voice.wav"]["media_s"] > 0.5

    again = cli("replay", str(batch_folder), "--out", str(out), *NO_ANALYSIS_SETS)
    assert again.returncode == 3
    statuses = {Path(r["path"]).name: r["status"]
                for r in json.loads((out / "summary.json").read_text())["results"]}
    assert statuses == {"corrupt.mcap": "failed", "cut.mcap": "skipped",
                        "good.mcap": "skipped", "voice.wav": "skipped"}, "resumed"


def test_glob_all_good_exits_zero_and_needs_out(cli: Any, batch_folder: Path,
                                                tmp_path: Path) -> None:
    pattern = str(batch_folder / "g*.mcap")
    missing_out = cli("replay", pattern, *NO_ANALYSIS_SETS)
    assert missing_out.returncode == 2 and "needs --out DIR" in missing_out.stderr
    result = cli("replay", pattern, "--out", str(tmp_path / "r"), *NO_ANALYSIS_SETS)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r" / "good.mcap.jsonl").exists()
    nothing = cli("replay", str(batch_folder / "*.nope"), "--out", str(tmp_path / "x"))
    assert nothing.returncode == 2 and "no recordings or media files" in nothing.stderr
