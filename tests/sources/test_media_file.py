"""Media file source: real files in several containers, decoded to frames and 16 kHz audio."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mmstream.build import build_pipeline
from mmstream.config import FileSourceConfig
from mmstream.errors import SourceError
from mmstream.events import TranscriptEvent, decode
from mmstream.media import AUDIO_RATE, AudioChunk, VideoFrame
from mmstream.replay.setup import replay_config
from mmstream.sources.media_file import decode_media
from tests.conftest import speak


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


def test_a_symlink_loop_is_named_as_one(tmp_path: Path) -> None:
    loop = tmp_path / "clip.mp4"
    loop.symlink_to(loop)
    with pytest.raises(SourceError, match=f"media file {loop}: a loop of symbolic links"):
        items(loop)


def test_random_bytes_named_mp4(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(np.random.default_rng(0).bytes(50_000))
    with pytest.raises(SourceError, match="not a media file ffmpeg can read"):
        items(bogus)


def test_truncated_mp4(sample_clip: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.mp4"  # moov atom at the end, as cameras write it
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(sample_clip), "-c", "copy",
                    str(plain)], check=True)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(plain.read_bytes()[: plain.stat().st_size // 2])
    with pytest.raises(SourceError, match=r"truncated\.mp4"):
        items(truncated)


def gapped_clip(folder: Path, loops: int = 6) -> Path:
    """A 10 s clip whose audio track is 0.3 s shorter than its video, speech 1 s in, then
    looped with `-c copy`: every loop leaves a 0.3 s hole in the audio timestamps."""
    speech = speak("The parcel is on the porch next to the blue door.", folder / "s.wav")
    clip, looped = folder / "clip.mp4", folder / "looped.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=160x120:rate=10:duration=10", "-i", str(speech),
                    "-filter_complex", "[1:a]adelay=1000|1000,apad=whole_dur=9.7[a]",
                    "-map", "0:v", "-map", "[a]", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-t", "10", str(clip)], check=True)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", str(loops - 1),
                    "-i", str(clip), "-c", "copy", str(looped)], check=True)
    return looped


def speech_onsets(chunks: list[AudioChunk], every_s: float, count: int) -> list[float]:
    """Capture time of the first loud sample after each multiple of `every_s`."""
    audio = np.concatenate([c.samples for c in chunks])
    t0 = chunks[0].t_capture
    found = []
    for k in range(count):
        segment = audio[round(k * every_s * AUDIO_RATE):round((k * every_s + 5) * AUDIO_RATE)]
        found.append(t0 + k * every_s + int(np.argmax(np.abs(segment) > 0.05)) / AUDIO_RATE)
    return found


def test_audio_with_timestamp_gaps_stays_on_the_video_clock(tmp_path: Path) -> None:
    decoded = items(gapped_clip(tmp_path))
    audio = [i for i in decoded if isinstance(i, AudioChunk)]
    frames = [i for i in decoded if isinstance(i, VideoFrame)]
    onsets = speech_onsets(audio, 10.0, 6)
    # counted in samples, the last loop's speech would start 5 x 0.3 s = 1.5 s early
    assert [round(t - onsets[0], 2) for t in onsets] == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    assert audio[-1].t_end == pytest.approx(59.7, abs=0.05)  # the last loop's audio ends early
    assert frames[-1].t_capture == pytest.approx(59.5, abs=0.01)
    assert all(b.t_capture == pytest.approx(a.t_end) for a, b in itertools.pairwise(audio))


@pytest.mark.slow
async def test_transcripts_of_a_gapped_file_stay_aligned_with_its_video(tmp_path: Path) -> None:
    looped = gapped_clip(tmp_path)
    out = tmp_path / "events.jsonl"
    config = replay_config(looped, out=out, sets=["stages.window.enabled=false"])
    await build_pipeline(config).run()
    finals = [e.payload for e in map(decode, out.read_bytes().splitlines())
              if isinstance(e, TranscriptEvent) and e.payload.final]
    assert len(finals) == 6, [f.text for f in finals]
    assert all("parcel" in f.text.lower() for f in finals)
    first = finals[0].start
    assert 0.9 <= first <= 1.3  # the speech begins 1 s into each loop
    for k, final in enumerate(finals):
        assert final.start == pytest.approx(first + 10 * k, abs=0.1), (k, final.start)
