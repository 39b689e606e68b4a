"""Analysis stage sections of a pipeline file."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mmstream.config.sources import Section


class TranscribeConfig(Section):
    enabled: bool = True
    model: str = Field("bundled", description="'bundled' (offline tiny.en) or a CT2 model dir")
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: str = Field("default", description="int8 on CPU, float16 on GPU by default")
    beam_size: int = Field(1, ge=1)
    language: str | None = "en"
    cpu_threads: int = Field(2, ge=1)
    initial_prompt: str | None = None
    hotwords: str | None = None


class StagesConfig(Section):
    transcribe: TranscribeConfig = TranscribeConfig()
