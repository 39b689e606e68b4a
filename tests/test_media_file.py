"""Media file source: real files in several containers, decoded to frames and 16 kHz audio."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from mmstream.config import FileSourceConfig
from mmstream.errors import SourceError
from mmstream.media import AUDIO_RATE, AudioChunk, VideoFrame
from mmstream.sources.media_file import decode_media


def items(path: Path, **options: object) -> list:
    return list(decode_media(FileSourceConfig(path=path, **options)))


def test_sample_clip_gives_frames_at_the_analysis_rate_and_16k_audio(sample_clip: Path) -> None:
    decoded = items(sample_clip, fps=2.0)
    frames = [i for i in decoded if isinstance(i, VideoFrame)]
    audio = [i for i in decoded if isinstance(i, AudioChunk)]
    assert [f.t_capture for f in frames[:4]] == [0.0, 0.5, 1.0, 1.5]
    assert frames[0].image.shape == (320, 320, 3) and frames[0].image.dtype == np.uint8
    total = sum(len(a.samples) for a in audio) / AUDIO_RATE
    assert 8.0 < total < 8.4
    assert all(a.samples.dtype == np.float32 for a in audio)
    assert audio[1].t_capture == pytest.approx(audio[0].t_end)
    assert np.abs(np.concatenate([a.samples for a in audio])).max() > 0.1, "speech is audible"


def test_decoding_is_deterministic(sample_clip: Path) -> None:
    first, second = items(sample_clip), items(sample_clip)
    assert [(type(i), i.t_capture) for i in first] == [(type(i), i.t_capture) for i in second]


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".mkv", ".webm"])
def test_other_containers_decode(sample_clip: Path, tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"clip{suffix}"
    extra = ["-c:v", "libvpx", "-b:v", "200k", "-deadline", "realtime"] if suffix == ".webm" else []
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(sample_clip), *extra,
                    "-t", "2", str(target)], check=True)
    decoded = items(target)
    seconds = sum(len(i.samples) for i in decoded if isinstance(i, AudioChunk)) / AUDIO_RATE
    assert seconds == pytest.approx(2.0, abs=0.1)
    has_video = suffix in (".mkv", ".webm")
    assert any(isinstance(i, VideoFrame) for i in decoded) == has_video


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="media file not found"):
        items(tmp_path / "nope.mp4")


def test_random_bytes_named_mp4(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(np.random.default_rng(0).bytes(50_000))
    with pytest.raises(SourceError, match="not a readable media file"):
        items(bogus)


def test_truncated_mp4(sample_clip: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.mp4"  # moov atom at the end, as cameras write it
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(sample_clip), "-c", "copy",
                    str(plain)], check=True)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(plain.read_bytes()[: plain.stat().st_size // 2])
    with pytest.raises(SourceError, match=r"truncated\.mp4"):
        items(truncated)
