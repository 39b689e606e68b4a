"""Small pipelines the runtime and daemon tests run: synthetic input, no models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmstream.config import StagesConfig, validate_pipeline

NO_ANALYSIS = {name: {"enabled": False} for name, field in StagesConfig.model_fields.items()
               if "enabled" in getattr(field.annotation, "model_fields", {})}


def synthetic_config(tmp_path: Path, seconds: float, **runtime: Any) -> Any:
    return validate_pipeline({
        "device_id": "t1",
        "sources": [{"kind": "synthetic", "duration_s": seconds, "realtime": True,
                     "width": 32, "height": 24}],
        "stages": NO_ANALYSIS,
        "sinks": {"jsonl": {"path": str(tmp_path / "out.jsonl")}},
        "runtime": runtime,
        "web": {"port": 0},  # the live view on any free port: never the fixed one
    })
