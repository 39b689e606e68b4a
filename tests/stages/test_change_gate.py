"""Change gating on real media: which windows' frames go to the image models, which carry the
last analysed frame's results over (the gate alone, without models)."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmstream.config import ChangeGateConfig
from mmstream.media import VideoFrame, Window
from mmstream.stages.change_gate import ChangeGate, changed_fraction, thumbnail
from tests.stages.still_clips import SAMPLE, still_clip

# 4 s still, 3 s of the sample moving, 4 s still again (the same picture as before)
PARTS = (("still", 4.0), ("moving", 3.0), ("still", 4.0))


def frames_of(path: Path, fps: float) -> list[VideoFrame]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(VideoFrame("cam", round(len(frames) / fps, 6), image[:, :, ::-1].copy(),
                                 len(frames)))
    capture.release()
    return frames


def windows_of(frames: list[VideoFrame], hop_s: float = 1.0) -> list[Window]:
    """One window a second; its frame is the last one at or before its end (as WindowStage)."""
    windows, end = [], hop_s
    while end <= frames[-1].t_capture + 1e-6:
        frame = [f for f in frames if f.t_capture <= end + 1e-6][-1]
        windows.append(Window("cam", end, end - 2.0, len(windows), frame))
        end = round(end + hop_s, 6)
    return windows


def carried(gate: ChangeGate, windows: list[Window]) -> list[bool]:
    return [gate.carry(w) for w in windows]


@pytest.fixture(scope="module")
def still(tmp_path_factory: pytest.TempPathFactory) -> list[VideoFrame]:
    return frames_of(still_clip(tmp_path_factory.mktemp("gate") / "still.mp4", PARTS), 10.0)


def test_a_still_camera_is_analysed_once_then_again_only_when_it_moves(
        still: list[VideoFrame]) -> None:
    windows = windows_of(still)
    decided = carried(ChangeGate(ChangeGateConfig()), windows)
    fresh = [w.t_capture for w, c in zip(windows, decided, strict=True) if not c]
    # the first window; the movement (frames at 5 and 6 s: the sample 1 and 2 s in); the first
    # still window after it (at 7 s the still picture is back: not the last analysed, moving one)
    assert fresh == [1.0, 5.0, 6.0, 7.0]
    assert len(windows) == 10 and decided.count(True) == 6  # 110 frames: the last at 10.9 s


def test_a_camera_that_moves_all_the_time_is_never_carried() -> None:
    windows = windows_of(frames_of(SAMPLE, 10.0))
    assert len(windows) == 8
    assert carried(ChangeGate(ChangeGateConfig()), windows) == [False] * 8


def test_slow_drift_adds_up_against_the_last_analysed_frame(still: list[VideoFrame]) -> None:
    """Light fading in by 4 grey levels a second: never a change from one frame to the next,
    but against the frame analysed last it soon is."""
    image = still[0].image.astype(np.int16)
    windows = [Window("cam", float(t), t - 2.0, t, VideoFrame(
        "cam", float(t), np.clip(image + 4 * t, 0, 255).astype(np.uint8), t))
        for t in range(1, 13)]
    thumbs = [thumbnail(w.frame.image) for w in windows if w.frame is not None]
    assert max(changed_fraction(a, b, ChangeGateConfig().pixel_delta)
               for a, b in itertools.pairwise(thumbs)) == 0.0  # frame to frame: no change
    decided = carried(ChangeGate(ChangeGateConfig()), windows)
    assert [w.index for w, c in zip(windows, decided, strict=True) if not c] == [1, 5, 9]


def test_max_carry_s_re_analyses_a_still_scene_at_least_that_often(
        still: list[VideoFrame]) -> None:
    windows = windows_of(still)[:4]  # the first 4 s: the same picture
    decided = carried(ChangeGate(ChangeGateConfig(max_carry_s=2.0)), windows)
    assert decided == [False, True, False, True]


def test_no_frame_or_gating_off_means_analysed() -> None:
    frame = VideoFrame("cam", 1.0, np.zeros((48, 64, 3), np.uint8))
    same = [Window("cam", float(t), t - 2.0, t, frame) for t in range(1, 4)]
    assert carried(ChangeGate(ChangeGateConfig(enabled=False)), same) == [False] * 3
    audio_only = [Window("mic", float(t), t - 2.0, t, None) for t in range(1, 4)]
    assert carried(ChangeGate(ChangeGateConfig()), audio_only) == [False] * 3
