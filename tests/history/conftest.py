from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.history.helpers import mount_read_only


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "read-only"
    reason = mount_read_only(folder)
    if reason is not None:
        pytest.skip(f"cannot mount a read-only tmpfs here (needs root): {reason}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
