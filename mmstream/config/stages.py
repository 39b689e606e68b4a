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


class WindowConfig(Section):
    """Fusion windows: per stream, the latest frame + audio + transcripts over `length_s`."""

    enabled: bool = True
    length_s: float = Field(2.0, gt=0, description="window length in source seconds")
    hop_s: float = Field(1.0, gt=0, description="a new window every hop_s seconds")
    max_frame_age_s: float | None = Field(
        None, gt=0, description="oldest frame (before the window start) still used; default length"
    )
    text_wait_s: float | None = Field(
        None, ge=0, description="how long past its end a window waits for transcripts; "
        "default 2 s live, 30 s (as long as whisper buffers) in fast replays"
    )


class InferConfig(Section):
    """The fused model: image + face + voice + text -> scene, emotion and fused events."""

    enabled: bool = True
    device: Literal["cpu", "cuda", "auto"] = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto", description="auto: fp16 autocast on CUDA, fp32 on CPU"
    )
    max_batch: int = Field(16, ge=1, description="windows per forward pass, from all streams")
    max_wait_ms: float = Field(20.0, ge=0, description="how long a partial batch waits")
    prepare_threads: int = Field(2, ge=1, description="threads for face detection + features")
    batching: Literal["auto", "latency", "deterministic"] = Field(
        "auto", description="deterministic: batches by stream and count only (fast replays)"
    )
    compile: bool = Field(False, description="torch.compile the encoders (CUDA; slow start)")
    cpu_threads: int | None = Field(None, ge=1, description="torch threads on CPU")
    checkpoint: str | None = Field(None, description="fusion checkpoint from `mmstream train`")
    vocabulary: str | None = Field(None, description="scene vocabulary YAML (default bundled)")
    image: bool = Field(True, description="use the image encoder (scene tags)")
    face: bool = Field(True, description="use face detection + facial emotion")
    voice: bool = Field(True, description="use voice prosody")
    text: bool = Field(True, description="use the transcript's sentiment")
    scene_threshold: float = Field(0.2, ge=0, le=1, description="lowest tag score published")
    scene_top_k: int = Field(5, ge=1, description="most tags per scene event")


class StagesConfig(Section):
    transcribe: TranscribeConfig = TranscribeConfig()
    window: WindowConfig = WindowConfig()
    infer: InferConfig = InferConfig()
