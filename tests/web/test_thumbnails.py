"""Which frames become thumbnails: the frame each window saw, or an even spread."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import cv2
import numpy as np

from mmstream.web.frames import FrameRef
from mmstream.web.thumbnails import pick_thumbnails, sample_evenly


def frames(stream: str, times: list[float], shape: tuple[int, int] = (48, 64)) -> list[FrameRef]:
    """Frames whose pixels say which frame they are (grey level = 10 x index, mod 256)."""
    return [FrameRef(stream, t, lambda n=n: np.full((*shape, 3), 10 * n % 256, dtype=np.uint8))
            for n, t in enumerate(times)]


def half_seconds(count: int) -> list[float]:
    return [n / 2 for n in range(count)]


def test_each_window_shows_the_last_frame_at_or_before_its_end() -> None:
    picked = pick_thumbnails(frames("cam0", half_seconds(17)), {"cam0": [2.0, 2.2, 3.7, 9.0]})
    # 2.0 and 2.2 saw the frame at 2.0 (shown once); 3.7 the one at 3.5; 9.0 the last (8.0)
    assert [thumb.t for thumb in picked.thumbnails] == [2.0, 3.5, 8.0]
    assert (picked.frames_seen, picked.first_t, picked.last_t) == (17, 0.0, 8.0)
    thumb = picked.thumbnails[0]
    assert (thumb.width, thumb.height, thumb.stream_id) == (160, 120, "cam0")
    greys = [decoded(t.data_uri).mean() for t in picked.thumbnails]
    assert np.allclose(greys, [40, 70, 160], atol=2)  # frames 4, 7 and 16: their own pixels


def decoded(data_uri: str) -> np.ndarray:
    head, _, payload = data_uri.partition(",")
    assert head == "data:image/jpeg;base64"
    image = cv2.imdecode(np.frombuffer(base64.b64decode(payload), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (120, 160, 3)
    return image


def test_a_window_before_the_first_frame_shows_the_first_frame() -> None:
    picked = pick_thumbnails(frames("cam0", [1.0, 1.5]), {"cam0": [0.5]})
    assert [thumb.t for thumb in picked.thumbnails] == [1.0]


def test_streams_pick_their_own_windows_and_a_stranger_takes_all() -> None:
    mixed = [*frames("cam0", half_seconds(9)), *frames("cam1", half_seconds(9)),
             *frames("file", half_seconds(9))]
    picked = pick_thumbnails(mixed, {"cam0": [1.0], "cam1": [3.0]})
    assert [(thumb.stream_id, thumb.t) for thumb in picked.thumbnails] == [
        ("cam0", 1.0), ("file", 1.0), ("cam1", 3.0), ("file", 3.0)]


def test_at_most_the_limit_spread_over_the_windows() -> None:
    windows = {"cam0": [float(t) for t in range(1, 101)]}
    picked = pick_thumbnails(frames("cam0", half_seconds(220)), windows, limit=10)
    assert [thumb.t for thumb in picked.thumbnails] == [1.0, 12.0, 23.0, 34.0, 45.0, 56.0,
                                                        67.0, 78.0, 89.0, 100.0]


def test_without_windows_frames_are_spread_evenly() -> None:
    picked = pick_thumbnails(frames("cam0", [float(n) for n in range(1000)]), {}, limit=60)
    times = [thumb.t for thumb in picked.thumbnails]
    gaps = np.diff(times)
    assert len(times) == 60 and times[0] == 0.0 and times[-1] >= 950
    assert gaps.min() > 0 and gaps.max() <= 2 * gaps.min()


def test_no_thumbnails_asked_reads_no_frames() -> None:
    def never() -> Iterator[FrameRef]:
        raise AssertionError("frames were read")
        yield

    assert pick_thumbnails(never(), {"cam0": [1.0]}, limit=0).frames_seen == 0


def test_a_frame_that_does_not_decode_is_left_out() -> None:
    def broken() -> np.ndarray:
        raise ValueError("cam0: frame 1 is not a decodable jpeg image")

    good = frames("cam0", [0.0, 2.0])
    picked = pick_thumbnails([good[0], FrameRef("cam0", 1.0, broken), good[1]],
                             {"cam0": [0.0, 1.0, 2.0]})
    assert [thumb.t for thumb in picked.thumbnails] == [0.0, 2.0]


def test_sample_evenly_keeps_both_ends() -> None:
    assert sample_evenly(list(range(10)), 4) == [0, 3, 6, 9]
    assert sample_evenly(list(range(3)), 5) == [0, 1, 2]
    assert sample_evenly(list(range(3)), 1) == [0] and sample_evenly([1], 0) == []
