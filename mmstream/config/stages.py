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
    beam_size: int = Field(5, ge=1, description="beam width of finals (partials are greedy)")
    language: str | None = "en"
    cpu_threads: int = Field(
        1, ge=1, description="CTranslate2 threads; one decodes tiny.en as fast as two on a small "
        "box and leaves the other core to the cameras (docs/speech.md)")
    initial_prompt: str | None = None
    hotwords: str | None = None
    prompt_previous: bool = Field(
        False, description="prompt each decode with the stream's earlier finals, as whisper does "
        "offline; off: on a live stream one invented word then spoils the finals after it "
        "(docs/speech.md, measured on real voices)")
    # streaming: partials while someone speaks, one final per utterance
    partials: bool = Field(True, description="publish partial transcripts while speech goes on")
    partial_interval_s: float = Field(1.0, gt=0, description="source seconds between partials")
    first_partial_s: float = Field(
        0.3, gt=0, description="seconds of speech before an utterance's first partial")
    partial_ramp: bool = Field(
        True, description="the next partials come sooner early on: at twice, four times "
        "first_partial_s ... until partial_interval_s apart (a first decode with no words yet "
        "is retried soon)")
    sentence_end_ms: int | None = Field(
        300, ge=0, description="a pause this long (at least speech_pad_ms) ends an utterance whose "
        "transcript reads as a finished sentence: punctuated, a word a sentence ends on, sure of "
        "it, and keeping its partial's words (shorter pauses are inside one); null: off")
    loose_sentence_end_ms: int | None = Field(
        500, ge=0, description="a pause this long ends an utterance whose transcript ends "
        "in . ? or ! even if whisper doubts its last word or the partials disagreed; null: off")
    context_margin_s: float | None = Field(
        10.0, ge=0, le=30, description="whisper encodes the audio + this much of its silence "
        "padding instead of 30 s (faster); null: the full 30 s")
    max_utterance_s: float = Field(
        25.0, ge=5, le=30, description="longer speech is cut at a pause (whisper sees 30 s)")
    max_batch: int = Field(8, ge=1, description="utterances decoded together (batched on CUDA)")
    # Silero VAD: utterance boundaries
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="speech probability to start")
    vad_neg_threshold: float | None = Field(
        None, gt=0, lt=1, description="probability below which speech ends; default threshold-0.15")
    min_speech_ms: int = Field(250, ge=0, description="shorter bursts are not transcribed")
    min_silence_ms: int = Field(1000, ge=32, description="silence that ends any utterance")
    speech_pad_ms: int = Field(150, ge=0, description="audio kept on each side of the speech")
    # hallucination guards
    no_speech_threshold: float = Field(
        0.6, ge=0, le=1, description="drop a segment whisper thinks is not speech (with logprob)")
    logprob_threshold: float = Field(-1.0, description="... and whose avg log-prob is below this")
    max_repeats: int = Field(3, ge=1, description="a phrase repeated more often is collapsed")
    compression_ratio_threshold: float = Field(
        2.4, gt=0, description="drop a segment whose text compresses better (a repetition loop)")
    drop_invented_words: bool = Field(
        True, description="drop words of a final that were not said: a doubted tail after the "
        "last sentence, an echo of it, words after the voice stopped (docs/speech.md)")


class WindowConfig(Section):
    """Fusion windows: per stream, the latest frame + audio + transcripts over `length_s`."""

    enabled: bool = True
    length_s: float = Field(2.0, gt=0, description="window length in source seconds")
    hop_s: float = Field(1.0, gt=0, description="a new window every hop_s seconds")
    max_frame_age_s: float | None = Field(
        None, gt=0, description="oldest frame (before the window start) still used; default length"
    )
    text_wait_s: float | None = Field(
        None, ge=0, description="live: the longest a window waits (media seconds past its end) "
        "for transcripts decided by its end when whisper falls behind; default 0.5 s"
    )


class ChangeGateConfig(Section):
    """Skip the image models on windows whose frame did not change (docs/architecture.md)."""

    enabled: bool = Field(
        True, description="carry the scene and face results of the last analysed frame over to "
        "windows whose frame did not change (no image encoder, face detector or face net)")
    pixel_delta: int = Field(
        12, ge=1, le=255, description="a pixel of the 64x48 grey copy changed when its grey "
        "level moved more than this (camera noise and compression stay below)")
    threshold: float = Field(
        0.01, ge=0, le=1, description="a frame changed when more than this fraction of the grey "
        "copy's pixels changed since the last analysed frame (not the previous frame, so slow "
        "drift adds up)")
    max_carry_s: float = Field(
        10.0, gt=0, description="analyse afresh at least this often (source seconds), even when "
        "nothing changed, so a missed change cannot persist")


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
    compile: bool = Field(False, description="torch.compile the encoders (CUDA; slow start)")
    image_runtime: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="the fused model's networks: onnx = ONNX Runtime on the CPU, from "
        "graphs exported once into a cache (same outputs, faster, torch never imported: ~230 MB "
        "less); torch; auto: onnx on a CPU in fp32 without compile when onnxruntime is installed")
    cpu_threads: int | None = Field(
        None, ge=1, description="threads of the image and face nets on CPU (ONNX Runtime or "
        "torch); default: the CPUs this process may use")
    keep_freed_memory: bool = Field(
        True, description="CPU: let glibc reuse freed memory (no page faults per batch)")
    checkpoint: str | None = Field(None, description="fusion checkpoint from `mmstream train`")
    vocabulary: str | None = Field(None, description="scene vocabulary YAML (default bundled)")
    image: bool = Field(True, description="use the image encoder (scene tags)")
    face: bool = Field(True, description="use face detection + facial emotion")
    face_detector: Literal["mtcnn", "haar"] = Field(
        "mtcnn", description="mtcnn: faces at many poses + landmarks; haar: frontal cascade")
    voice: bool = Field(True, description="use voice prosody")
    text: bool = Field(True, description="use the transcript's sentiment")
    scene_threshold: float = Field(
        0.5, ge=0, le=1,
        description="lowest calibrated tag score published (0.5: each tag at its own threshold)")
    scene_top_k: int = Field(5, ge=1, description="most tags per scene event")
    change_gate: ChangeGateConfig = ChangeGateConfig()


class StagesConfig(Section):
    transcribe: TranscribeConfig = TranscribeConfig()
    window: WindowConfig = WindowConfig()
    infer: InferConfig = InferConfig()
