"""`mmstream report` on inputs that are missing, garbage, empty or cut short: one clear line on
stderr and a non-zero exit; what is readable of a damaged input is still reported."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
from conftest import SAMPLE_CLIP

from mmstream.events import Emotion, EmotionEvent, Transcript, TranscriptEvent, encode
from tests.web.report_helpers import mmstream

DAMAGED_EXIT = 3


@pytest.fixture(scope="module")
def raw_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample clip's frames and audio, no analysis, in many small chunks (no models)."""
    path = tmp_path_factory.mktemp("raw") / "raw.mcap"
    done = mmstream("record", str(SAMPLE_CLIP), "--out", str(path), "--no-analysis",
                    "--set", "record.chunk_kb=16")
    assert done.returncode == 0, done.stderr
    return path


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def event_lines() -> list[bytes]:
    """Three envelopes as `replay --out` writes them."""
    return [
        encode(TranscriptEvent(stream_id="cam0", seq=1, t_capture=1.5, payload=Transcript(
            final=True, text="the kettle is on", start=0.2, end=1.4))),
        encode(EmotionEvent(stream_id="cam0", seq=2, t_capture=2.0, payload=Emotion(
            label="happy", scores={"happy": 0.8}, valence=0.6))),
        encode(EmotionEvent(stream_id="cam0", seq=3, t_capture=3.0, payload=Emotion(
            label="sad", scores={"sad": 0.7}, valence=-0.4))),
    ]


def test_a_missing_input_is_named(tmp_path: Path) -> None:
    missing, out = tmp_path / "nope.mcap", tmp_path / "report.html"
    done = mmstream("report", str(missing), "--out", str(out))
    assert done.returncode == 1
    assert one_line(done) == f"error: {missing}: no such file"
    assert not out.exists()


@pytest.mark.parametrize(("name", "content", "says"), [
    ("noise.mcap", random.Random(1).randbytes(4096),
     "not an MCAP recording (the file does not start with the MCAP magic bytes)"),
    ("noise.jsonl", random.Random(2).randbytes(4096), "line 1: not an mmstream event"),
    ("other.jsonl", b'{"hello": "world"}\n', "line 1: not an mmstream event"),
    ("empty.jsonl", b"", "no events (the file is empty)"),
    ("blank.jsonl", b"\n \n", "no events (the file is empty)"),
])
def test_unreadable_inputs_are_one_clear_line(tmp_path: Path, name: str, content: bytes,
                                              says: str) -> None:
    source, out = tmp_path / name, tmp_path / "report.html"
    source.write_bytes(content)
    done = mmstream("report", str(source), "--out", str(out))
    assert done.returncode == 1
    line = one_line(done)
    assert line.startswith(f"error: {source}") and says in line
    assert not out.exists()


def test_a_bad_line_inside_an_events_file_is_named(tmp_path: Path) -> None:
    first, _, third = event_lines()
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join([first, b'{"type": "scene"}', third]) + b"\n")
    done = mmstream("report", str(source), "--out", str(tmp_path / "report.html"))
    assert done.returncode == 1
    assert one_line(done).startswith(f"error: {source} line 2: not an mmstream event")


def test_an_events_file_cut_mid_line_is_reported_up_to_the_cut(tmp_path: Path) -> None:
    first, second, third = event_lines()
    source, out = tmp_path / "events.jsonl", tmp_path / "report.html"
    source.write_bytes(first + b"\n" + second + b"\n" + third[: len(third) // 2])
    done = mmstream("report", str(source), "--out", str(out))
    assert done.returncode == DAMAGED_EXIT
    line = one_line(done)
    assert line.startswith(f"warning: {source}: the last line (3) is cut short; read 2 events "
                           "up to t=2.000 s")
    assert "1 transcript, 1 emotion" in line
    html = out.read_text()
    assert "Damaged input." in html and "the kettle is on" in html


def test_a_recording_cut_short_is_reported_up_to_its_last_whole_chunk(
        raw_recording: Path, tmp_path: Path) -> None:
    data = raw_recording.read_bytes()
    cut, out = tmp_path / "cut.mcap", tmp_path / "report.html"
    cut.write_bytes(data[: len(data) // 2])
    done = mmstream("report", str(cut), "--out", str(out))
    assert done.returncode == DAMAGED_EXIT
    line = one_line(done)
    assert line.startswith(f"warning: {cut}: ") and f"of {len(data) // 2}; read up to t=" in line
    html = out.read_text()
    assert "Damaged input." in html and f"of {len(data) // 2}; read up to t=" in html
    shown = html.count('<img src="data:image/jpeg;base64,')
    assert 0 < shown < 17  # the whole clip has 17 frames


def test_a_recording_cut_before_its_first_chunk_is_an_error(raw_recording: Path,
                                                            tmp_path: Path) -> None:
    cut, out = tmp_path / "cut.mcap", tmp_path / "report.html"
    cut.write_bytes(raw_recording.read_bytes()[:40])
    done = mmstream("report", str(cut), "--out", str(out))
    assert done.returncode == 1
    line = one_line(done)
    assert line.startswith(f"error: {cut}: ") and line.endswith("nothing readable to report")
    assert not out.exists()


def test_a_media_file_as_input_says_how_to_get_its_events(tmp_path: Path) -> None:
    done = mmstream("report", str(SAMPLE_CLIP), "--out", str(tmp_path / "report.html"))
    assert done.returncode == 1
    assert f"is a media file: replay it first (mmstream replay {SAMPLE_CLIP}" in one_line(done)


def test_a_missing_media_file_is_named(tmp_path: Path) -> None:
    source, media = tmp_path / "events.jsonl", tmp_path / "gone.mp4"
    source.write_bytes(b"\n".join(event_lines()) + b"\n")
    done = mmstream("report", str(source), "--out", str(tmp_path / "r.html"), "--media",
                    str(media))
    assert done.returncode == 1
    assert one_line(done) == f"error: {media}: no such file"


def test_replay_report_needs_an_events_file(tmp_path: Path) -> None:
    done = mmstream("replay", str(SAMPLE_CLIP), "--report", str(tmp_path / "r.html"))
    assert done.returncode == 2
    assert one_line(done) == "error: --report needs --out (events.jsonl, or a folder for a batch)"


def test_report_explains_itself() -> None:
    done = mmstream("report", "--help")
    assert done.returncode == 0
    assert "Usage" in done.stdout and "needs no network" in " ".join(done.stdout.split())
