"""The whole fused model: windows in, per-window scene + emotion results out, one batched pass.

Per window, `prepare` does the CPU work that cannot be batched on an accelerator: face
detection and the grey face crop, prosody features of the audio, affect features of the text.
`forward` then runs every window of a batch through the encoders and the fusion in one pass:
frames (grouped by size, uploaded as uint8, resized and normalised in torch on the device) →
EfficientNet-Lite0; face crops → mini-Xception; all four → `FusionModel`.

`ExecutionPlan` decides how: on CUDA fp16 (or bf16) autocast, channels_last, pinned staging
buffers with non-blocking copies and optionally `torch.compile`; on CPU plain fp32 (bf16
autocast on request), the image encoder run by ONNX Runtime when it is installed
(models/onnx_encoder.py: same outputs, ~1.7x faster there). Every other step is the same code
on both, so CPU tests cover the CUDA logic.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmstream.errors import ModelError
from mmstream.events import EMOTIONS
from mmstream.media import Window
from mmstream.models import prosody, text_affect
from mmstream.models.efficientnet_lite import load_efficientnet_lite0, preprocess_images
from mmstream.models.face_align import face_crop
from mmstream.models.face_detect import FaceBox
from mmstream.models.faces import (
    DEFAULT_FACE_DETECTOR,
    FaceFinder,
    face_confidence,
    make_face_detector,
)
from mmstream.models.fusion import (
    EMOTION_MODALITIES,
    FACE_EMBED,
    IMAGE_EMBED,
    SCENE_MODALITIES,
    FusionInputs,
    FusionModel,
    FusionOutputs,
    checkpoint_version,
    load_checkpoint,
)
from mmstream.models.labels import IMAGENET_CLASSES, load_scene_vocabulary
from mmstream.models.mini_xception import MiniXception, load_mini_xception, preprocess_faces
from mmstream.models.onnx_encoder import OnnxImageEncoder, OnnxModule, onnx_available
from mmstream.models.speedups import optimise_for_inference

MODEL_NAME = "mmstream-fused/1"
MODALITIES: tuple[str, ...] = ("image", "face", "voice", "text")


@dataclass(frozen=True)
class ExecutionPlan:
    """How the forward pass runs on a device."""

    device: torch.device
    autocast: torch.dtype | None = None
    channels_last: bool = False
    pinned: bool = False
    compile: bool = False
    onnx_image: bool = False  # the image encoder and the face net run in ONNX Runtime (CPU)

    @property
    def non_blocking(self) -> bool:
        return self.pinned


def plan_for(device: str, precision: str = "auto", compile: bool = False,
             cuda_available: bool | None = None, image_runtime: str = "auto") -> ExecutionPlan:
    """Resolve `device` (cpu/cuda/auto), `precision` (auto/fp32/fp16/bf16) and the image
    encoder's runtime (auto/torch/onnx) into a plan."""
    has_cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
    if device == "cuda" and not has_cuda:
        raise ModelError("infer.device is 'cuda' but torch sees no CUDA device")
    on_cuda = device == "cuda" or (device == "auto" and has_cuda)
    if precision == "fp16" and not on_cuda:
        raise ModelError("infer.precision fp16 needs CUDA; use fp32 or bf16 on CPU")
    dtypes = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16,
              "auto": torch.float16 if on_cuda else None}
    autocast = dtypes[precision]
    plain_cpu = not on_cuda and autocast is None and not compile
    if image_runtime == "onnx" and not plain_cpu:
        raise ModelError("infer.image_runtime onnx runs on CPU in fp32, without compile")
    if image_runtime == "onnx" and not onnx_available():
        raise ModelError("infer.image_runtime onnx needs the onnx and onnxruntime packages")
    onnx_image = image_runtime == "onnx" or (
        image_runtime == "auto" and plain_cpu and onnx_available())
    # channels_last (NHWC) is the fast layout for these depthwise-heavy nets in torch: cuDNN
    # tensor cores on CUDA, oneDNN's blocked kernels on CPU (about 1.5-2x there); ONNX
    # Runtime takes plain NCHW and picks its own layout.
    return ExecutionPlan(torch.device("cuda" if on_cuda else "cpu"), autocast,
                         channels_last=not onnx_image, pinned=on_cuda, compile=compile,
                         onnx_image=onnx_image)


@dataclass
class PreparedWindow:
    """A window after the per-window CPU work, ready to batch.

    A *carried* window (change gating, stages/change_gate.py) reuses the face and the
    encoder outputs of `carry_from`, an earlier window of its stream whose frame looked the
    same; only its voice and text are its own, and the fusion runs on them afresh."""

    window: Window
    frame: np.ndarray | None = None
    face_box: FaceBox | None = None
    face_crop: np.ndarray | None = None
    face_conf: float = 0.0
    voice: prosody.ProsodyFeatures | None = None
    text: text_affect.TextFeatures | None = None
    carried: bool = False
    carry_from: PreparedWindow | None = None  # until encoded; then released
    # set by `encode` for windows carried later: image embed + probs, face embed + logits
    image_outputs: tuple[torch.Tensor, ...] | None = None


@dataclass
class WindowResult:
    """Everything the fused model said about one window (plain Python values)."""

    prepared: PreparedWindow
    emotion: dict[str, float]
    valence: float
    present: dict[str, bool]
    confidence: dict[str, float]
    weights: dict[str, float]  # emotion gate weights of face, voice, text
    expert_emotion: dict[str, dict[str, float]]  # each modality's own distribution
    expert_valence: dict[str, float]
    scene: dict[str, float]  # calibrated fused tag scores: ≥ 0.5 clears the tag's threshold
    image_tags: dict[str, float]  # the same for what the image alone said
    scene_weights: dict[str, float]
    face_person: float
    top_classes: list[tuple[str, float]] = field(default_factory=list)
    scene_evidence: dict[str, float] = field(default_factory=dict)  # before calibration


def face_embed_and_logits(model: MiniXception, x: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """mini-Xception in one pass: (pooled last block [B,128], logits [B,7])."""
    x = F.relu(model.bn1(model.conv1(x)))
    x = F.relu(model.bn2(model.conv2(x)))
    feats = model.blocks(x)
    return feats.mean(dim=(2, 3)), model.head(feats).mean(dim=(2, 3))


class FusedModel:
    """Encoders + fusion; `prepare` per window (CPU), `forward` per batch (device)."""

    def __init__(self, plan: ExecutionPlan | None = None, *, checkpoint: str | None = None,
                 vocabulary: str | None = None, modalities: Sequence[str] = MODALITIES,
                 face_detector: str = DEFAULT_FACE_DETECTOR,
                 detector: Callable[[], FaceFinder] | None = None) -> None:
        self.plan = plan or plan_for("cpu")
        self.modalities = frozenset(modalities)
        unknown = self.modalities - set(MODALITIES)
        if unknown:
            raise ModelError(f"unknown modalities {sorted(unknown)} (known: {MODALITIES})")
        device = self.plan.device
        self.image_encoder: Any = optimise_for_inference(load_efficientnet_lite0(device))
        if self.plan.onnx_image:
            self.image_encoder = OnnxImageEncoder(self.image_encoder)
        elif self.plan.channels_last:
            self.image_encoder = self.image_encoder.to(memory_format=torch.channels_last)
        self.face_model = load_mini_xception(device)
        self._face_net: Callable[[torch.Tensor], tuple[torch.Tensor, ...]] = functools.partial(
            face_embed_and_logits, self.face_model)
        if self.plan.onnx_image:  # ~3x faster per face on CPU, same outputs
            self._face_net = OnnxModule(self.face_model, self._face_net,
                                        torch.zeros(1, 1, 64, 64), ("embed", "logits"))
        self.vocabulary = load_scene_vocabulary(vocabulary)
        self.fusion = FusionModel(self.vocabulary)
        self.fusion_version = "default"
        if checkpoint:
            load_checkpoint(self.fusion, checkpoint)
            self.fusion_version = checkpoint_version(Path(checkpoint))
        self.fusion = self.fusion.to(device).eval()
        if self.plan.compile:
            self.image_encoder = torch.compile(self.image_encoder, dynamic=True)
        # `prepare` runs in several threads at once: each gets its own detector.
        self._make_detector = detector or (lambda: make_face_detector(face_detector))
        if "face" in self.modalities:  # an unknown name or missing weights fail here
            self._make_detector()
        self._local = threading.local()
        self._staging: dict[tuple[int, ...], torch.Tensor] = {}

    @property
    def version(self) -> str:
        return f"{MODEL_NAME}+fusion:{self.fusion_version}"

    def detector(self) -> FaceFinder:
        found = getattr(self._local, "detector", None)
        if found is None:
            found = self._local.detector = self._make_detector()
        return found

    # ---- per window, CPU ------------------------------------------------------------------
    def prepare(self, window: Window, carry_from: PreparedWindow | None = None
                ) -> PreparedWindow:
        """`carry_from`: an earlier window of the stream whose face and image outputs this one
        reuses (no face detection here, no encoders in `forward`)."""
        prepared = PreparedWindow(window)
        frame = window.frame.image if window.frame is not None else None
        if frame is not None and "image" in self.modalities:
            prepared.frame = frame
        if frame is not None and carry_from is not None:
            prepared.carried, prepared.carry_from = True, carry_from
            prepared.face_box, prepared.face_crop = carry_from.face_box, carry_from.face_crop
            prepared.face_conf = carry_from.face_conf
        elif frame is not None and "face" in self.modalities:
            faces = self.detector().detect(frame)
            if faces:  # the largest face speaks for the window
                prepared.face_box = faces[0]
                prepared.face_crop = face_crop(frame, faces[0])
                prepared.face_conf = face_confidence(faces[0])
        if window.has_audio and "voice" in self.modalities:
            prepared.voice = prosody.prosody_features(window.audio)
        if "text" in self.modalities:
            confidences = [t.confidence for t in window.transcripts if t.confidence > 0]
            asr = float(np.mean(confidences)) if confidences else None
            prepared.text = text_affect.text_features(window.text, asr)
        return prepared

    # ---- per batch, device ------------------------------------------------------------------
    def forward(self, batch: Sequence[PreparedWindow]) -> list[WindowResult]:
        """One pass over the batch; results in the batch's order."""
        with torch.inference_mode():
            inputs, top = self.encode(batch)
            with self._autocast(enabled=False):
                outputs = self.fusion(inputs).detach_cpu()
        return [self._result(p, outputs, i, top[i]) for i, p in enumerate(batch)]

    def encode(self, batch: Sequence[PreparedWindow]
               ) -> tuple[FusionInputs, list[list[tuple[str, float]]]]:
        """Run the frozen encoders; returns fusion inputs and each window's top ImageNet classes."""
        n, device = len(batch), self.plan.device
        image_embed = torch.zeros(n, IMAGE_EMBED, device=device)
        image_probs = torch.zeros(n, 1000, device=device)
        rows = [i for i, p in enumerate(batch) if p.frame is not None and not p.carried]
        if rows:
            with self._autocast():
                embed, logits = self.image_encoder.forward_both(
                    self._frames([batch[i].frame for i in rows]))  # type: ignore[misc]
            index = torch.tensor(rows, device=device)
            image_embed[index] = embed.float()
            image_probs[index] = torch.softmax(logits.float(), dim=-1)
        face_embed, face_logits = self._faces(batch)
        self._carry_over(batch, image_embed, image_probs, face_embed, face_logits)
        top_values, top_index = image_probs.topk(5, dim=-1)
        top = [[(IMAGENET_CLASSES[c], round(float(v), 4)) for v, c in zip(vr, cr, strict=True)]
               if batch[i].frame is not None else []
               for i, (vr, cr) in enumerate(zip(top_values.cpu().tolist(),
                                                top_index.cpu().tolist(), strict=True))]
        voice = [p.voice for p in batch]
        text = [p.text for p in batch]
        inputs = FusionInputs(
            image_embed=image_embed, image_probs=image_probs,
            image_mask=self._mask([p.frame is not None for p in batch]),
            face_embed=face_embed, face_logits=face_logits,
            face_conf=self._floats([p.face_conf for p in batch]),
            face_mask=self._mask([p.face_crop is not None for p in batch]),
            voice_feats=self._vectors(voice, prosody.N_FEATURES),
            voice_conf=self._floats([v.confidence if v else 0.0 for v in voice]),
            voice_mask=self._mask([bool(v and v.present) for v in voice]),
            text_feats=self._vectors(text, text_affect.N_FEATURES),
            text_conf=self._floats([t.confidence if t else 0.0 for t in text]),
            text_mask=self._mask([bool(t and t.present) for t in text]),
        )
        return inputs, top

    @staticmethod
    def _carry_over(batch: Sequence[PreparedWindow], *outputs: torch.Tensor) -> None:
        """Fresh rows keep their encoder outputs (a later window may carry them); carried rows
        get those of the window they carry from, in this batch or an earlier one (a stream's
        windows reach the model in order)."""
        for carried in (False, True):
            for i, p in enumerate(batch):
                if p.frame is None or p.carried != carried:
                    continue
                if p.carry_from is not None:
                    source = p.carry_from.image_outputs
                    assert source is not None, "carried from a window that was never encoded"
                    for tensor, row in zip(outputs, source, strict=True):
                        tensor[i] = row
                    p.carry_from = None  # release the source window (its frame and audio)
                p.image_outputs = tuple(tensor[i].clone() for tensor in outputs)

    def _faces(self, batch: Sequence[PreparedWindow]) -> tuple[torch.Tensor, torch.Tensor]:
        n, device = len(batch), self.plan.device
        embed = torch.zeros(n, FACE_EMBED, device=device)
        logits = torch.zeros(n, 7, device=device)
        rows = [i for i, p in enumerate(batch) if p.face_crop is not None and not p.carried]
        if rows:
            crops = self._upload(np.stack([batch[i].face_crop for i in rows]))  # type: ignore
            with self._autocast():
                e, lg = self._face_net(preprocess_faces(crops))
            index = torch.tensor(rows, device=device)
            embed[index], logits[index] = e.float(), lg.float()
        return embed, logits

    def _frames(self, frames: list[np.ndarray]) -> torch.Tensor:
        """Frames of any sizes → one normalised [N,3,224,224] batch, in the given order."""
        dtype = self.plan.autocast or torch.float32
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, frame in enumerate(frames):
            groups.setdefault(frame.shape, []).append(i)
        out: torch.Tensor | None = None
        for indices in groups.values():
            pixels = self._upload(np.stack([frames[i] for i in indices]))
            x = preprocess_images(pixels, dtype=dtype, channels_last=self.plan.channels_last)
            if len(groups) == 1:
                return x
            if out is None:
                out = torch.empty((len(frames), *x.shape[1:]), dtype=x.dtype, device=x.device)
            out[torch.tensor(indices, device=x.device)] = x
        assert out is not None
        return out.contiguous(memory_format=torch.channels_last) if self.plan.channels_last \
            else out

    def _upload(self, array: np.ndarray) -> torch.Tensor:
        """Host array → device tensor; on CUDA through a reused pinned buffer, non-blocking."""
        host = torch.from_numpy(np.ascontiguousarray(array))
        if not self.plan.pinned:
            return host.to(self.plan.device)
        key = (*host.shape, host.element_size())
        staging = self._staging.get(key)
        if staging is None:
            staging = self._staging[key] = torch.empty(host.shape, dtype=host.dtype,
                                                       pin_memory=True)
        staging.copy_(host)
        # The copy is queued on the stream before any kernel that reads it, and the staging
        # buffer is reused only by the next batch, after this batch's results were read back.
        return staging.to(self.plan.device, non_blocking=True)

    def _mask(self, values: list[bool]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.bool, device=self.plan.device)

    def _floats(self, values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=self.plan.device)

    def _vectors(self, feats: list[Any], width: int) -> torch.Tensor:
        rows = [f.vector if f is not None else np.zeros(width, np.float32) for f in feats]
        return self._upload(np.stack(rows).astype(np.float32))

    @contextlib.contextmanager
    def _autocast(self, enabled: bool = True) -> Iterator[None]:
        dtype = self.plan.autocast
        if dtype is None:
            yield
            return
        with torch.autocast(self.plan.device.type, dtype=dtype, enabled=enabled):
            yield

    def _result(self, prepared: PreparedWindow, out: FusionOutputs, i: int,
                top: list[tuple[str, float]]) -> WindowResult:
        def named(values: torch.Tensor, names: Sequence[str]) -> dict[str, float]:
            return {k: float(v) for k, v in zip(names, values.tolist(), strict=True)}

        tags = self.fusion.tags
        return WindowResult(
            prepared=prepared,
            emotion=named(out.emotion_probs[i], EMOTIONS),
            valence=float(out.valence[i]),
            present={m: bool(v) for m, v in zip(EMOTION_MODALITIES,
                                                 out.expert_mask[i].tolist(), strict=True)}
            | {"image": prepared.frame is not None},
            confidence=named(out.expert_conf[i], EMOTION_MODALITIES),
            weights=named(out.emotion_weights[i], EMOTION_MODALITIES),
            expert_emotion={m: named(out.expert_probs[i, j], EMOTIONS)
                            for j, m in enumerate(EMOTION_MODALITIES)},
            expert_valence=named(out.expert_valence[i], EMOTION_MODALITIES),
            scene=named(out.scene_scores[i], tags),
            image_tags=named(out.image_tag_scores[i], tags),
            scene_weights=named(out.scene_weights[i], SCENE_MODALITIES),
            face_person=float(out.face_person[i]),
            top_classes=top,
            scene_evidence=named(out.scene_evidence[i], tags),
        )
