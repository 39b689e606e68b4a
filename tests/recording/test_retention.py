"""Continuous recording into a folder of segments: retention by age and size, activity mode,
a full disk (a real 256 KiB tmpfs) pausing the recording while the pipeline goes on."""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path

import numpy as np
import pytest

from mmstream.build import build_pipeline
from mmstream.config import RecordConfig, validate_pipeline
from mmstream.errors import ConfigError
from mmstream.events import Transcript, TranscriptEvent
from mmstream.media import AUDIO_RATE, AudioChunk, VideoFrame
from mmstream.recording.segments import expired, files_on_disk, list_segments
from mmstream.sinks.recorder import RecorderSink
from tests.conftest import SAMPLE_CLIP, async_wait_until
from tests.recording.recording_helpers import NO_ANALYSIS, inputs_only, replay_items


def _recorder(pipeline: object) -> RecorderSink:
    return next(s for s in pipeline.sinks if isinstance(s, RecorderSink))  # type: ignore[attr-defined]


async def test_continuous_recording_deletes_old_segments_and_keeps_a_gapless_timeline(
        tmp_path: Path) -> None:
    folder = tmp_path / "recs"
    config = validate_pipeline({
        "device_id": "test", "stages": NO_ANALYSIS,
        "sources": [{"kind": "camera", "id": "door", "url": str(SAMPLE_CLIP), "loop": True,
                     "fps": 4}],
        "record": {"dir": str(folder), "rotate_s": 1.5, "retain_days": 5 / 86400,
                   "video": "all"}})
    pipeline = build_pipeline(config)
    recorder, stop = _recorder(pipeline), asyncio.Event()
    run = asyncio.create_task(pipeline.run(stop))
    await async_wait_until(lambda: recorder.segments_deleted >= 3 or run.done(), limit_s=90,
                           what="retention to delete three segments")
    stop.set()
    await run
    written = recorder.files.written
    left = sorted(folder.glob("*.mcap"))
    assert written[0] not in left and written[1] not in left, "the oldest go first"
    assert written[-1] in left, "the newest is kept"
    assert len(left) < len(written)
    segments = list_segments(folder)
    assert [s.path for s in segments] == left
    assert all(s.streams == {"door"} for s in segments)
    for before, after in itertools.pairwise(segments):
        gap_s = (after.start_ns - before.end_ns) / 1e9  # one frame apart (4 fps), or a few
        assert 0 < gap_s < 1.0, f"{after.path.name} starts {gap_s:.2f} s after the one before"


def test_retention_picks_by_age_then_size_and_never_the_open_file(tmp_path: Path) -> None:
    for n, age_s in enumerate((300, 200, 100, 0)):
        path = tmp_path / f"rec-{n}.mcap"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (1_000_000 - age_s, 1_000_000 - age_s))
    files = files_on_disk(tmp_path)
    names = lambda found: [f.path.name for f in found]  # noqa: E731
    assert names(expired(files, set(), 150 / 86400, None, now=1_000_000)) == [
        "rec-0.mcap", "rec-1.mcap"]
    assert names(expired(files, set(), None, 2500 / 1024**3, now=1_000_000)) == [
        "rec-0.mcap", "rec-1.mcap"]
    assert names(expired(files, {tmp_path / "rec-0.mcap"}, None, 2500 / 1024**3,
                         now=1_000_000)) == ["rec-1.mcap", "rec-2.mcap"]


def test_max_gb_smaller_than_one_segment_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"record.max_gb \(0.01 GB\) is smaller than one "
                                          r"segment \(record.rotate_mb = 64 MB\)"):
        validate_pipeline({"sources": [{"kind": "synthetic"}], "record": {
            "dir": str(tmp_path), "rotate_mb": 64, "max_gb": 0.01}})
    with pytest.raises(ConfigError, match=r"need record\.dir"):
        validate_pipeline({"sources": [{"kind": "synthetic"}], "record": {
            "path": str(tmp_path / "r.mcap"), "rotate_s": 60, "retain_days": 1}})


def test_activity_mode_keeps_the_speech_and_drops_the_still_silence(tmp_path: Path) -> None:
    """30 s of a still picture and silence but for speech at 15-17 s: the recording keeps
    that stretch with its pre- and post-roll (pre-roll back to a keyframe), nothing else."""
    path = tmp_path / "act.mcap"
    recorder = RecorderSink(RecordConfig(path=path, mode="activity", pre_roll_s=2,
                                         post_roll_s=3, decide_after_s=5, video="all"), "t")
    still = np.full((120, 160, 3), 90, dtype=np.uint8)
    rng = np.random.default_rng(1)

    async def record() -> None:
        async with recorder:
            for index in range(60):  # 2 fps
                t = index / 2
                await recorder.record_input(VideoFrame("room", t, still, index))
                for part in range(5):  # 100 ms audio chunks
                    t_audio = t + part / 10
                    loud = 15 <= t_audio < 17
                    samples = (rng.standard_normal(AUDIO_RATE // 10) * (0.3 if loud else 0)
                               ).astype(np.float32)
                    await recorder.record_input(AudioChunk("room", t_audio, samples))
                if t == 20:  # whisper answers a few seconds after the speech
                    await recorder.send(TranscriptEvent(stream_id="room", t_capture=17.2,
                                                        payload=Transcript(True, "hello there",
                                                                           15.0, 17.0)))

    asyncio.run(record())
    items = inputs_only(replay_items(path)[0])
    frames = [i.t_capture for i in items if isinstance(i, VideoFrame)]
    audio = [i.t_capture for i in items if isinstance(i, AudioChunk)]
    assert frames and min(frames) <= 13 and min(frames) >= 11, "pre-roll to a keyframe"
    assert max(frames) >= 19.5 and max(frames) < 22.5, "post-roll, to the GOP's end"
    assert len(frames) == round((max(frames) - min(frames)) * 2) + 1, "every kept frame decodes"
    assert min(audio) == pytest.approx(13.0) and max(audio) == pytest.approx(20.0)
    health = recorder.health()
    assert health["activity_dropped_bytes"] > health["activity_kept_bytes"] > 0


async def test_a_full_disk_pauses_the_recording_and_the_pipeline_goes_on(
        small_tmpfs: Path) -> None:
    config = validate_pipeline({
        "device_id": "test", "stages": NO_ANALYSIS,
        "sources": [{"kind": "synthetic", "id": "cam", "duration_s": 600, "fps": 10,
                     "width": 320, "height": 240, "realtime": True}],
        "record": {"dir": str(small_tmpfs), "frame_format": "png", "video": "all",
                   "audio_format": "f32", "rotate_s": 2, "fsync": False,
                   "compression": "none"}})
    pipeline = build_pipeline(config)
    recorder, stop = _recorder(pipeline), asyncio.Event()
    recorder.guard.retry_s = 0.5
    run = asyncio.create_task(pipeline.run(stop))
    await async_wait_until(lambda: recorder.health()["recording"] == "paused" or run.done(),
                           limit_s=60, what="the recording to pause on the full disk")
    assert not run.done(), "the pipeline goes on"
    assert "disk full" in recorder.health()["reason"]
    dropped = recorder.guard.dropped
    await async_wait_until(lambda: recorder.guard.dropped > dropped + 5, what="inputs going on")
    for path in await asyncio.to_thread(lambda: list(small_tmpfs.glob("*.mcap"))):
        path.unlink()  # space again: the recording resumes in a new file
    await async_wait_until(lambda: recorder.health()["recording"] == "on"
                           and any(small_tmpfs.glob("*.mcap")), what="the recording to resume")
    assert recorder.health()["pauses"] >= 1
    stop.set()
    await run
    assert not run.exception()
