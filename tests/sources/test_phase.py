"""Cameras analysed at the same rate tick at different phases of one grid."""

from __future__ import annotations

import pytest

from mmstream.sources import phase
from mmstream.sources.phase import AnalysisGrid, next_camera_phase


def test_phases_of_cameras_started_together_are_spread_over_the_interval() -> None:
    phases = sorted(next_camera_phase() for _ in range(5))
    gaps = [b - a for a, b in zip(phases, [*phases[1:], phases[0] + 1.0], strict=True)]
    assert len(set(phases)) == 5
    assert min(gaps) > 0.09  # five phases, none closer than ~a tenth of the interval
    assert all(0.0 <= p < 1.0 for p in phases)


def test_ticks_fall_on_the_cameras_own_grid() -> None:
    grid = AnalysisGrid(0.5, 0.25)
    first = grid.at_or_after(1000.0)
    assert first >= 1000.0 and first - 1000.0 < 0.5
    second = grid.next_after(first, now=first)
    assert second == pytest.approx(first + 0.5)
    other = AnalysisGrid(0.5, 0.75)
    assert abs(other.at_or_after(first) - first) == pytest.approx(0.25)


@pytest.mark.parametrize("epoch", [0.0, 977.4272, 980.8908, 1014.9299, 1008.023])
def test_the_first_frame_off_the_grid_is_followed_by_a_tick_on_it(
        epoch: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """The grid starts at the process's start (monotonic): at some starts a tick computed by
    the grid was a rounding error past itself and moved one interval on (CI, once)."""
    monkeypatch.setattr(phase, "_EPOCH", epoch)
    grid = AnalysisGrid(0.5, 0.0)
    start = grid.at_or_after(2000.0) + 0.01  # the first frame, taken at once, just after a tick
    nxt = grid.next_after(start, now=start)
    assert nxt - start >= 0.25  # never two frames back to back
    assert grid.at_or_after(nxt) == pytest.approx(nxt)


def test_a_late_camera_skips_ticks_and_keeps_its_phase() -> None:
    grid = AnalysisGrid(0.5, 0.4)
    tick = grid.at_or_after(3000.0)
    late = tick + 1.3  # analysis held it up past two ticks
    nxt = grid.next_after(tick, now=late)
    assert nxt >= late
    assert nxt - late < 0.5
    assert (nxt - tick) / 0.5 == pytest.approx(round((nxt - tick) / 0.5))


def test_a_grid_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        AnalysisGrid(0.0, 0.1)


def test_a_camera_phase_is_a_fraction_of_the_interval() -> None:
    from pydantic import ValidationError

    from mmstream.config import CameraSourceConfig

    assert CameraSourceConfig(phase=0.0).phase == 0.0
    assert CameraSourceConfig().phase is None  # spread from the other cameras
    with pytest.raises(ValidationError, match="phase"):
        CameraSourceConfig(phase=1.0)


def test_each_camera_takes_its_phase_once_and_a_set_one_is_kept() -> None:
    from mmstream.config import CameraSourceConfig
    from mmstream.sources.camera import CameraSource

    first, second = (CameraSource(CameraSourceConfig(id=f"cam{i}")) for i in range(2))
    assert abs(first.phase - second.phase) > 0.09  # spread, and fixed for the camera's life
    assert CameraSource(CameraSourceConfig(phase=0.25)).phase == 0.25
