"""Bad input from a user's point of view: one clear `error:` line, non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from mmstream.demo_broker import free_port


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], result.stderr


def test_missing_file(cli, tmp_path: Path) -> None:
    result = cli("replay", str(tmp_path / "missing.mp4"), "--set", "stages.transcribe.enabled=0")
    assert_one_clear_line(result, "media file not found", "missing.mp4")


def test_random_bytes_named_mp4(cli, tmp_path: Path) -> None:
    bogus = tmp_path / "random.mp4"
    bogus.write_bytes(np.random.default_rng(1).bytes(20_000))
    result = cli("replay", str(bogus))
    assert_one_clear_line(result, "random.mp4", "not a media file ffmpeg can read")
    assert "Errno" not in result.stderr and "1094995529" not in result.stderr


def test_a_symlink_loop_is_named_as_one(cli, tmp_path: Path) -> None:
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    result = cli("replay", str(loop))
    assert_one_clear_line(result, "loop.mp4", "a loop of symbolic links")
    assert "not found" not in result.stderr


def test_truncated_mp4(cli, sample_clip: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(sample_clip), "-c", "copy",
                    str(plain)], check=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(plain.read_bytes()[:30_000])
    assert_one_clear_line(cli("replay", str(cut)), "cut.mp4")


def test_yaml_with_a_wrong_field_type(cli, tmp_path: Path) -> None:
    pipeline = tmp_path / "bad.yaml"
    pipeline.write_text("sources:\n  - kind: synthetic\n    duration_s: long\n")
    result = cli("run", str(pipeline))
    assert_one_clear_line(result, "sources.0.synthetic.duration_s", "'long'")
    assert result.returncode == 2


def test_unreachable_broker(cli, sample_clip: Path) -> None:
    port = free_port()  # nothing listens here
    result = cli("replay", str(sample_clip), "--mqtt", f"mqtt://127.0.0.1:{port}",
                 "--set", "stages.transcribe.enabled=false")
    assert_one_clear_line(result, "cannot connect to MQTT broker", f"127.0.0.1:{port}")


def test_debug_shows_the_traceback(cli, tmp_path: Path) -> None:
    result = cli("--debug", "replay", str(tmp_path / "missing.mp4"))
    assert result.returncode != 0
    assert "Traceback" in result.stderr


@pytest.mark.parametrize("command", ["run", "replay", "demo", "schema", "config"])
def test_every_command_explains_itself(cli, command: str) -> None:
    result = cli(command, "--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout
