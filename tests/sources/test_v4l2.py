"""Camera listing over V4L2. This machine has no camera: what can be shown for real is that
nodes which are not capture devices are skipped and unopenable ones reported, not guessed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmstream.sources.v4l2 import list_cameras


def test_no_video_nodes_no_cameras(tmp_path: Path) -> None:
    assert list_cameras(tmp_path) == []


def test_a_node_that_is_not_v4l2_is_skipped_and_an_unopenable_one_reported(
        tmp_path: Path) -> None:
    (tmp_path / "video0").symlink_to("/dev/null")  # opens, but answers no V4L2 ioctl
    (tmp_path / "video1").symlink_to(tmp_path / "unplugged")  # gone between listing and open
    cameras = list_cameras(tmp_path)
    assert [c.path for c in cameras] == [str(tmp_path / "video1")]
    assert "No such file" in cameras[0].error and not cameras[0].formats


def test_devices_lists_cameras_and_microphones(cli: Any) -> None:
    table = cli("devices", timeout=60)
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("cameras:") and "\nmicrophones:" in table.stdout
    as_json = cli("devices", "--json", timeout=60)
    found = json.loads(as_json.stdout)  # one array: `[]` when there are no devices
    assert isinstance(found, list) and {d["kind"] for d in found} <= {"camera", "microphone"}
    if not found:
        assert as_json.stdout.strip() == "[]"
    if not list(Path("/dev").glob("video*")):
        assert "cameras: none" in table.stdout
