"""WindowStage: windows cut by capture time, aligned frame/audio/transcripts, waiting for text."""

from __future__ import annotations

from typing import Any

import numpy as np

from mmstream.config import WindowConfig
from mmstream.events import Transcript, TranscriptEvent
from mmstream.media import AUDIO_RATE, AudioChunk, EndOfStream, VideoFrame, Window
from mmstream.runtime.harness import StageHarness, run_stage
from mmstream.stages.window import WindowStage

CHUNK = AUDIO_RATE // 10


def _media(stream: str, seconds: float, fps: float = 2.0, t0: float = 0.0,
           audio: bool = True) -> list[Any]:
    """Frames at `fps` and 100 ms audio chunks whose samples encode their own sample index."""
    items: list[Any] = []
    for i in range(int(seconds * fps)):
        items.append(VideoFrame(stream, round(t0 + i / fps, 6), np.full((4, 4, 3), i, np.uint8),
                                i))
    if audio:
        for i in range(int(seconds * 10)):
            samples = np.arange(i * CHUNK, (i + 1) * CHUNK, dtype=np.float32)
            items.append(AudioChunk(stream, round(t0 + i / 10, 6), samples))
    return sorted(items, key=lambda x: x.t_capture)


def _said(stream: str, text: str, start: float, end: float, final: bool = True,
          utterance: int = 0) -> TranscriptEvent:
    return TranscriptEvent(stream_id=stream, t_capture=end, payload=Transcript(
        final=final, text=text, start=start, end=end, utterance_id=utterance))


async def _run(stage: WindowStage, items: list[Any]) -> list[Any]:
    return await run_stage(stage, items)


async def test_windows_align_frame_audio_and_text_by_capture_time() -> None:
    stage = WindowStage(WindowConfig(length_s=2.0, hop_s=1.0), text_wait_s=0.0)
    items = _media("cam", 5.0)
    items.insert(20, _said("cam", "hello there", 1.2, 2.4))
    out = await _run(stage, [*items, EndOfStream("cam", 5.0)])
    windows = [x for x in out if isinstance(x, Window)]
    # The last window [4, 6] is half full when the stream ends: flushed; [5, 7] would not be.
    assert [(w.t_start, w.t_capture) for w in windows] == [(0, 2), (1, 3), (2, 4), (3, 5),
                                                           (4, 6)]
    assert len(windows[-1].audio) == AUDIO_RATE
    first = windows[0]
    assert first.frame is not None and first.frame.t_capture == 2.0  # latest frame <= end
    assert len(first.audio) == 2 * AUDIO_RATE and first.audio[0] == 0  # starts at sample 0
    assert windows[1].audio[0] == AUDIO_RATE  # window 1 starts 1 s in
    assert first.has_audio
    assert [w.text for w in windows] == ["hello there"] * 3 + ["", ""]
    # Every input item passes on unchanged, in order.
    assert [x for x in out if not isinstance(x, Window)] == [*items, out[-1]]


async def test_a_window_waits_for_its_transcript_then_goes() -> None:
    stage = WindowStage(WindowConfig(length_s=2.0, hop_s=1.0), text_wait_s=3.0)
    async with StageHarness(stage) as harness:
        for item in _media("mic", 4.0, audio=True):
            await harness.feed(item)
        assert not [x for x in harness.emitted if isinstance(x, Window)]  # audio past 2 s only
        late = await harness.feed(_said("mic", "good morning", 0.5, 2.6))
    windows = [x for x in late if isinstance(x, Window)]
    assert [w.t_capture for w in windows] == [2.0]  # covered up to 2.6: only [0, 2] is done
    assert windows[0].text == "good morning"


async def test_text_wait_is_bounded_by_media_time() -> None:
    stage = WindowStage(WindowConfig(length_s=2.0, hop_s=1.0), text_wait_s=1.0)
    async with StageHarness(stage) as harness:
        for item in _media("mic", 4.0):
            await harness.feed(item)
        ends = [w.t_capture for w in harness.emitted if isinstance(w, Window)]
    assert ends == [2.0, 3.0]  # media reached 4.0: windows ending <= 3.0 waited long enough


async def test_partials_count_until_their_final_replaces_them() -> None:
    stage = WindowStage(WindowConfig(length_s=2.0, hop_s=1.0), text_wait_s=0.0)
    items = [_said("s", "good mor", 0.2, 1.0, final=False, utterance=7),
             _said("s", "good morning every", 0.2, 1.5, final=False, utterance=7),
             *_media("s", 2.0)]
    windows = [x for x in await _run(stage, items) if isinstance(x, Window)]
    assert windows[0].text == "good morning every"  # only the newest partial
    stage = WindowStage(WindowConfig(length_s=2.0, hop_s=1.0), text_wait_s=0.0)
    items = [items[0], _said("s", "good morning everyone", 0.2, 1.8, utterance=7), *items[2:]]
    windows = [x for x in await _run(stage, items) if isinstance(x, Window)]
    assert windows[0].text == "good morning everyone"


async def test_video_only_streams_and_stale_frames() -> None:
    stage = WindowStage(WindowConfig(length_s=1.0, hop_s=1.0), text_wait_s=2.0)
    # A camera with a gap: frames 0-2 s, then nothing until 6 s.
    items = [*_media("cam", 2.0, audio=False), *_media("cam", 2.0, t0=6.0, audio=False)]
    windows = [x for x in await _run(stage, items) if isinstance(x, Window)]
    starts = [w.t_start for w in windows]
    assert 3.0 not in starts and 4.0 not in starts  # no frame within max_frame_age: no window
    assert all(w.frame is not None and not w.has_audio and not len(w.audio) for w in windows)
    assert {w.t_start for w in windows} >= {0.0, 1.0, 6.0}


async def test_wall_clock_streams_share_one_grid() -> None:
    stage = WindowStage(WindowConfig(length_s=2.0, hop_s=1.0), text_wait_s=0.0)
    t0 = 1_700_000_000.37
    items = sorted([*_media("a", 4.0, t0=t0, audio=False),
                    *_media("b", 4.0, t0=t0 + 0.21, audio=False)], key=lambda x: x.t_capture)
    windows = [x for x in await _run(stage, items) if isinstance(x, Window)]
    by_stream = {s: [w.t_capture for w in windows if w.stream_id == s] for s in "ab"}
    assert by_stream["a"][:2] == by_stream["b"][:2]  # due together, so they batch together
    assert all(float(t).is_integer() for t in by_stream["a"])


async def test_same_input_same_windows() -> None:
    items = [*_media("s", 6.0), _said("s", "one", 0.5, 1.5), _said("s", "two", 3.0, 4.5),
             EndOfStream("s", 6.0)]

    async def cut() -> list[tuple[float, int | None, int, str]]:
        stage = WindowStage(WindowConfig(), mode="fast")
        return [(w.t_capture, w.frame.index if w.frame else None, len(w.audio), w.text)
                for w in await _run(stage, items) if isinstance(w, Window)]

    first = await cut()
    assert first == await cut()
    assert [text for *_, text in first] == ["one", "one", "two", "two", "two", ""]
