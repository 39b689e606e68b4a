"""A fault we cannot produce with a real file on demand: a decoder that takes its whole
worker process down. Lives in a module so Ray workers can import it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from mmstream.replay.on_ray import FileWorker


class CrashingWorker(FileWorker):
    """Dies (like a segfaulting decoder) on any file whose name holds "voice"."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        if any("voice" in str(path) for path in batch["path"]):
            os._exit(1)
        return super().__call__(batch)
