"""`mmstream clip`: a moment of a folder of segments (or of one recording) as an mp4 that
ffprobe reads with the right duration and ffmpeg decodes, transcripts in an .srt beside it;
bad input is one clear line and leaves no mp4."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mmstream.recording.clip import clip_from_folder
from mmstream.recording.segments import list_segments
from tests.cli.test_errors import assert_one_clear_line
from tests.recording.recording_helpers import record_door

T0 = 1_796_652_000.0  # 2026-12-07T14:00:00Z: live recordings log epoch seconds
SECONDS = 12


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clip") / "recs"
    record_door(folder, T0, SECONDS)
    return folder


def _probe(path: Path) -> dict:
    done = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                           "-show_streams", str(path)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def _decoded_frames(path: Path) -> int:
    done = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                           "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0",
                           str(path)], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def test_a_clip_across_a_segment_boundary_has_its_duration_and_decodes(
        segments: Path, tmp_path: Path) -> None:
    spans = list_segments(segments)
    assert len(spans) >= 4
    boundary = spans[1].start_ns / 1e9
    out = tmp_path / "door.mp4"
    result = clip_from_folder(segments, "door", boundary - 1.2, boundary + 2.0, out)
    assert not result.re_encoded and not result.notes
    assert 0 <= result.early_s <= 2.0, "from the keyframe at or before --from"
    probe = _probe(out)
    codecs = sorted(s["codec_name"] for s in probe["streams"])
    assert codecs == ["aac", "h264"]
    duration = float(probe["format"]["duration"])
    assert duration == pytest.approx(boundary + 2.0 - result.start_s, abs=0.1)
    expected = [k for k in range(SECONDS * 4) if result.start_s <= T0 + k / 4 < boundary + 2.0]
    assert _decoded_frames(out) == result.frames == len(expected)
    srt = out.with_suffix(".srt").read_text()
    assert "someone at the door" in srt


def test_the_cli_cuts_by_time_and_by_seconds_into_one_recording(
        cli, segments: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.mp4"
    done = cli("clip", "--dir", str(segments), "--stream", "door", "--from", _iso(T0 + 5),
               "--to", "+3s", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "remuxed" in done.stderr
    assert float(_probe(out)["format"]["duration"]) >= 3.0
    one = sorted(segments.glob("*.mcap"))[1]
    out = tmp_path / "one.mp4"
    done = cli("clip", str(one), "--from", "0.5", "--to", "2.5", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert _decoded_frames(out) >= 8


def test_no_recording_then_or_of_that_stream_is_one_line_and_no_mp4(
        cli, segments: Path, tmp_path: Path) -> None:
    out = tmp_path / "none.mp4"
    done = cli("clip", "--dir", str(segments), "--from", _iso(T0 + 3600), "--to", "+20s",
               "--out", str(out))
    assert_one_clear_line(done, "no recording of stream 'door'", "2026-12-07T15:00:00")
    done = cli("clip", "--dir", str(segments), "--stream", "garden", "--from", _iso(T0),
               "--to", "+5s", "--out", str(out))
    assert_one_clear_line(done, "stream 'garden' is not recorded", "recorded: door")
    done = cli("clip", "--dir", str(segments), "--from", "yesterday", "--to", "+5s",
               "--out", str(out))
    assert_one_clear_line(done, "--from 'yesterday'")
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_a_damaged_segment_in_the_middle_is_skipped_and_said(
        cli, segments: Path, tmp_path: Path) -> None:
    copy = tmp_path / "recs"
    copy.mkdir()
    paths = sorted(segments.glob("*.mcap"))
    for path in paths:
        (copy / path.name).write_bytes(path.read_bytes())
    middle = copy / paths[1].name
    data = middle.read_bytes()
    middle.write_bytes(data[:len(data) // 2] + bytes(len(data) - len(data) // 2))
    out = tmp_path / "across.mp4"
    done = cli("clip", "--dir", str(copy), "--from", _iso(T0 + 1), "--to", _iso(T0 + 8),
               "--out", str(out))
    assert done.returncode == 3, done.stderr
    assert f"warning: {middle.name} is damaged" in done.stderr
    assert "goes on with the next" in done.stderr
    frames = _decoded_frames(out)
    assert 0 < frames < 7 * 4, "what was readable, without the damaged stretch"
