"""Batch replay of a folder or glob: per-file errors, summary, exit code, resume, and the
progress a batch reports to its caller."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mmstream.events import StatusEvent, decode
from mmstream.replay.batch import BatchRunner, FileResult, expand_inputs
from mmstream.replay.setup import ReplayPlan
from tests.conftest import speak
from tests.recording.recording_helpers import NO_ANALYSIS_SETS, record_synthetic


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
        "corrupt.mcap": "failed", "cut.mcap": "damaged", "good.mcap": "ok", "voice.wav": "ok"}
    assert "cut short" in summary["cut.mcap"]["error"]
    assert f"1 of 4 inputs were damaged (their readable part was replayed): " \
        f"{batch_folder / 'cut.mcap'}" in result.stderr
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


@dataclass
class HeardProgress:
    """A `BatchProgress` that notes what it is told, in order."""

    told: list[tuple[str, Any]] = field(default_factory=list)

    def started(self, total_media_s: float, files: int, workers: int | None = None) -> None:
        self.told.append(("started", (total_media_s, files, workers)))

    def advanced(self, done_media_s: float) -> None:
        self.told.append(("advanced", done_media_s))

    def file_done(self, result: FileResult) -> None:
        self.told.append(("file_done", result))

    def finished(self) -> None:
        self.told.append(("finished", None))

    def said(self, what: str) -> list[Any]:
        return [value for kind, value in self.told if kind == what]


def test_a_batch_reports_progress_through_the_interface(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    record_synthetic(folder / "a.mcap", duration_s=1.0)
    record_synthetic(folder / "b.mcap", duration_s=2.0)
    (folder / "c.mcap").write_bytes(b"not a recording at all\n" * 10)
    inputs, base = expand_inputs(str(folder))
    no_analysis = ReplayPlan(sets=tuple(NO_ANALYSIS_SETS[1::2]))

    def run(stop: asyncio.Event) -> tuple[list[FileResult], HeardProgress]:
        heard = HeardProgress()
        runner = BatchRunner(inputs, base, tmp_path / "out", no_analysis.config_for,
                             progress=heard)
        return asyncio.run(runner.run(stop)), heard

    results, heard = run(asyncio.Event())
    probed = 0.9 + 1.9  # first to last message of each recording; c.mcap cannot be probed
    assert heard.told[0] == ("started", (pytest.approx(probed), 3, None))
    assert heard.told[-1] == ("finished", None)
    assert heard.said("file_done") == results
    assert [r.status for r in results] == ["ok", "ok", "failed"]
    done = heard.said("advanced")
    assert done == sorted(done) and done[-1] == pytest.approx(sum(r.media_s for r in results))
    for index, (kind, _) in enumerate(heard.told):  # the batch's media so far, then the file
        if kind == "file_done":
            assert heard.told[index - 1][0] == "advanced"

    resumed, heard = run(asyncio.Event())
    assert heard.said("file_done") == resumed
    assert [r.status for r in resumed] == ["skipped", "skipped", "failed"]
    assert heard.said("advanced")[-1] == pytest.approx(probed), "skipped files count as probed"

    stopped = asyncio.Event()
    stopped.set()
    interrupted, heard = run(stopped)
    assert [r.status for r in interrupted] == ["not run"] * 3
    assert [kind for kind, _ in heard.told] == ["started", "finished"]
