"""WindowStage: windows cut by capture time, aligned frame/audio/transcripts, waiting for text."""

from __future__ import annotations

from typing import Any

import numpy as np

from mmstream.config import FAST, LIVE, RunPolicy, WindowConfig
from mmstream.events import Transcript, TranscriptEvent
from mmstream.media import (
    AUDIO_RATE,
    AudioChunk,
    EndOfStream,
    FrameSkipped,
    TextProgress,
    VideoFrame,
    Window,
)
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
    stage = WindowStage(WindowConfig(length_s=2.0, hop_s=1.0), policy=LIVE, text_wait_s=0.0)
    items = _media("cam", 5.0)
    items.insert(20, _said("cam", "hello there", 1.2, 2.4))
    out = await _run(stage, [*items, EndOfStream("cam", 5.0)])
    windows = [x for x in out if isinstance(x, Window)]
    # The last window [4, 6] is half full when the stream ends: flushed, cut at the media's
    # end (5 s: no window, so no event, after the end); [5, 7] would not be.
    assert [(w.t_start, w.t_capture) for w in windows] == [(0, 2), (1, 3), (2, 4), (3, 5),
                                                           (4, 5)]
    assert len(windows[-1].audio) == AUDIO_RATE
    first = windows[0]
    assert first.frame is not None and first.frame.t_capture == 2.0  # latest frame <= end
    assert len(first.audio) == 2 * AUDIO_RATE and first.audio[0] == 0  # starts at sample 0
    assert windows[1].audio[0] == AUDIO_RATE  # window 1 starts 1 s in
    assert first.has_audio
    # said 1.2-2.4 s, decided at 2.4 s: not yet known at the end of [0, 2]
    assert [w.text for w in windows] == ["", "hello there", "hello there", "", ""]
    # Every input item passes on unchanged, in order.
    assert [x for x in out if not isinstance(x, Window)] == [*items, out[-1]]


async def test_a_window_waits_until_what_was_said_by_its_end_is_known() -> None:
    """Live: whisper answers after the audio has moved on; the window waits for it."""
    stage = WindowStage(WindowConfig(length_s=2.0, hop_s=1.0), policy=LIVE, text_wait_s=3.0)
    async with StageHarness(stage) as harness:
        await harness.feed(TextProgress("mic", 1.0))
        for item in _media("mic", 4.0, audio=True):
            await harness.feed(item)
        assert not [x for x in harness.emitted if isinstance(x, Window)]  # text known to 1.0 s
        await harness.feed(_said("mic", "good mor", 0.5, 2.0, final=False))  # decided at 2.0
        late = await harness.feed(TextProgress("mic", 2.5))
        windows = [x for x in late if isinstance(x, Window)]
        assert [w.t_capture for w in windows] == [2.0]  # known to 2.5: only [0, 2] is done
        assert windows[0].text == "good mor"
        await harness.feed(_said("mic", "good morning", 0.5, 2.6))  # the final, decided at 2.6
        later = await harness.feed(TextProgress("mic", 4.0))
    # [1, 3] now (media is at 4.0 s; [2, 4] still waits for frames a little late)
    assert [(w.t_capture, w.text) for w in later if isinstance(w, Window)] == [
        (3.0, "good morning")]


def _spoken_stream(delay: float) -> list[Any]:
    """Audio 0-6 s with a sentence at 0.5-3.1 s: partials decided at 1.5 and 2.5 s, the final
    at 3.6 s (after the pause). Each transcript comes `delay` s of audio after the chunk it was
    decided at (0: a fast replay; live, whisper's decoding time), progress held back until then."""
    media = _media("mic", 6.0, audio=True)
    said = {1.5: _said("mic", "the parcel", 0.5, 1.5, final=False),
            2.5: _said("mic", "the parcel is on", 0.5, 2.5, final=False),
            3.6: _said("mic", "the parcel is on the porch", 0.5, 3.1)}
    items: list[Any] = []
    pending: list[tuple[float, Any]] = []
    for chunk in media:
        t = round(chunk.t_capture + 0.1, 3) if isinstance(chunk, AudioChunk) else None
        if t is not None and t in said:
            pending.append((t, said[t]))
        if t is not None:
            due = [(d, s) for d, s in pending if d + delay <= t + 1e-9]
            pending = [p for p in pending if p not in due]
            items += [s for _, s in due]
            heard = min((d for d, _ in pending), default=t + 0.001) - 0.001
            items.append(TextProgress("mic", round(heard, 3)))
        items.append(chunk)
    return [*items, EndOfStream("mic", 6.0)]


async def test_live_and_fast_give_the_same_windows() -> None:
    async def cut(items: list[Any], policy: RunPolicy) -> list[tuple[float, str]]:
        stage = WindowStage(WindowConfig(length_s=2.0, hop_s=1.0), policy=policy)
        return [(w.t_capture, w.text) for w in await _run(stage, items)
                if isinstance(w, Window)]

    fast = await cut(_spoken_stream(0.0), FAST)
    assert fast == await cut(_spoken_stream(0.4), LIVE)  # whisper within text_wait_s
    assert fast[:4] == [(2.0, "the parcel"), (3.0, "the parcel is on"),
                        (4.0, "the parcel is on the porch"), (5.0, "the parcel is on the porch")]


async def test_live_windows_do_not_wait_long_for_a_whisper_that_falls_behind() -> None:
    stage = WindowStage(WindowConfig(length_s=2.0, hop_s=1.0), policy=LIVE)
    windows = [w for w in await _run(stage, _spoken_stream(1.2)) if isinstance(w, Window)]
    assert windows[0].text == ""  # [0, 2] went 0.5 s of media after its end, text or not
    assert stage.drops() == {"text_not_waited_for:mic": 3}  # and says so


async def test_text_wait_is_bounded_by_media_time() -> None:
    stage = WindowStage(WindowConfig(length_s=2.0, hop_s=1.0), policy=LIVE, text_wait_s=1.0)
    async with StageHarness(stage) as harness:
        for item in _media("mic", 4.0):
            await harness.feed(item)
        ends = [w.t_capture for w in harness.emitted if isinstance(w, Window)]
    assert ends == [2.0, 3.0]  # media reached 4.0: windows ending <= 3.0 waited long enough


async def test_partials_count_until_their_final_replaces_them() -> None:
    stage = WindowStage(WindowConfig(length_s=2.0, hop_s=1.0), policy=LIVE, text_wait_s=0.0)
    items = [_said("s", "good mor", 0.2, 1.0, final=False, utterance=7),
             _said("s", "good morning every", 0.2, 1.5, final=False, utterance=7),
             *_media("s", 2.0)]
    windows = [x for x in await _run(stage, items) if isinstance(x, Window)]
    assert windows[0].text == "good morning every"  # only the newest partial
    stage = WindowStage(WindowConfig(length_s=2.0, hop_s=1.0), policy=LIVE, text_wait_s=0.0)
    items = [items[0], _said("s", "good morning everyone", 0.2, 1.8, utterance=7), *items[2:]]
    windows = [x for x in await _run(stage, items) if isinstance(x, Window)]
    assert windows[0].text == "good morning everyone"


async def test_video_only_streams_and_stale_frames() -> None:
    stage = WindowStage(WindowConfig(length_s=1.0, hop_s=1.0), policy=LIVE, text_wait_s=2.0)
    # A camera with a gap: frames 0-2 s, then nothing until 6 s.
    items = [*_media("cam", 2.0, audio=False), *_media("cam", 2.0, t0=6.0, audio=False)]
    windows = [x for x in await _run(stage, items) if isinstance(x, Window)]
    starts = [w.t_start for w in windows]
    assert 3.0 not in starts and 4.0 not in starts  # no frame within max_frame_age: no window
    assert all(w.frame is not None and not w.has_audio and not len(w.audio) for w in windows)
    assert {w.t_start for w in windows} >= {0.0, 1.0, 6.0}


async def test_skipped_frames_still_close_windows_on_time() -> None:
    """Under overload only 1 frame in 4 is analysed; the others pass as marks, so a window
    closes with the first frame (analysed or not) at its end, not up to 4 frames later."""
    stage = WindowStage(WindowConfig(length_s=2.0, hop_s=1.0), policy=LIVE, text_wait_s=2.0)
    items: list[Any] = []
    for i, frame in enumerate(_media("cam", 4.0, fps=4.0, audio=False)):
        items.append(frame if i % 4 == 0 else FrameSkipped("cam", frame.t_capture))
    async with StageHarness(stage) as harness:
        closed_by = {}
        for item in items:
            for window in await harness.feed(item):
                if isinstance(window, Window):
                    closed_by[window.t_capture] = item.t_capture
    assert closed_by == {2.0: 2.0, 3.0: 3.0}  # the frame at the end closes it, skipped or not


async def test_wall_clock_streams_share_one_grid() -> None:
    stage = WindowStage(WindowConfig(length_s=2.0, hop_s=1.0), policy=LIVE, text_wait_s=0.0)
    t0 = 1_700_000_000.37
    items = sorted([*_media("a", 4.0, t0=t0, audio=False),
                    *_media("b", 4.0, t0=t0 + 0.21, audio=False)], key=lambda x: x.t_capture)
    windows = [x for x in await _run(stage, items) if isinstance(x, Window)]
    by_stream = {s: [w.t_capture for w in windows if w.stream_id == s] for s in "ab"}
    assert by_stream["a"][:2] == by_stream["b"][:2]  # due together, so they batch together
    assert all(float(t).is_integer() for t in by_stream["a"][:-1])
    assert by_stream["a"][-1] == max(x.t_capture for x in items if x.stream_id == "a")


async def test_same_input_same_windows() -> None:
    items = [*_media("s", 6.0), _said("s", "one", 0.5, 1.5), _said("s", "two", 3.0, 4.5),
             EndOfStream("s", 6.0)]

    async def cut() -> list[tuple[float, int | None, int, str]]:
        stage = WindowStage(WindowConfig(), policy=FAST)
        return [(w.t_capture, w.frame.index if w.frame else None, len(w.audio), w.text)
                for w in await _run(stage, items) if isinstance(w, Window)]

    first = await cut()
    assert first == await cut()
    # "two" is said 3.0-4.5 s and decided at 4.5 s: [2, 4] ends before it was recognised
    assert [text for *_, text in first] == ["one", "one", "", "two", "two", ""]
