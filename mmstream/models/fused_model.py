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

This is the torch path: CUDA, fp16/bf16, compile, `image_runtime: torch`, and training. A
daemon on a CPU in fp32 runs the same model without torch (fused_onnx.py, `load_fused_model`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmstream.errors import ModelError
from mmstream.media import Window
from mmstream.models import prosody, text_affect
from mmstream.models.efficientnet_lite import load_efficientnet_lite0, preprocess_images
from mmstream.models.faces import (
    DEFAULT_FACE_DETECTOR,
    FaceFinder,
    make_face_detector,
)
from mmstream.models.folding import optimise_for_inference
from mmstream.models.fused_windows import (
    MODALITIES,
    MODEL_NAME,
    DetectorPerThread,
    PreparedWindow,
    WindowResult,
    carry_over,
    encoder_rows,
    prepare_window,
    window_result,
)
from mmstream.models.fusion import (
    FACE_EMBED,
    IMAGE_EMBED,
    FusionInputs,
    FusionModel,
    FusionOutputs,
    checkpoint_version,
    load_checkpoint,
)
from mmstream.models.labels import IMAGENET_CLASSES, load_scene_vocabulary
from mmstream.models.mini_xception import MiniXception, load_mini_xception, preprocess_faces
from mmstream.models.onnx_encoder import OnnxImageEncoder, OnnxModule, onnx_available


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
        make = detector or (lambda: make_face_detector(face_detector))
        if "face" in self.modalities:  # an unknown name or missing weights fail here
            make()
        self.detector = DetectorPerThread(make)
        self._staging: dict[tuple[int, ...], torch.Tensor] = {}

    @property
    def version(self) -> str:
        return f"{MODEL_NAME}+fusion:{self.fusion_version}"

    @property
    def device_name(self) -> str:
        return str(self.plan.device)

    # ---- per window, CPU ------------------------------------------------------------------
    def prepare(self, window: Window, carry_from: PreparedWindow | None = None
                ) -> PreparedWindow:
        return prepare_window(window, self.modalities, self.detector, carry_from)

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
        rows, face_rows = encoder_rows(batch)
        if rows:
            with self._autocast():
                embed, logits = self.image_encoder.forward_both(
                    self._frames([batch[i].frame for i in rows]))  # type: ignore[misc]
            index = torch.tensor(rows, device=device)
            image_embed[index] = embed.float()
            image_probs[index] = torch.softmax(logits.float(), dim=-1)
        face_embed, face_logits = self._faces(batch, face_rows)
        carry_over(batch, (image_embed, image_probs, face_embed, face_logits), torch.clone)
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

    def _faces(self, batch: Sequence[PreparedWindow], rows: list[int]
               ) -> tuple[torch.Tensor, torch.Tensor]:
        n, device = len(batch), self.plan.device
        embed = torch.zeros(n, FACE_EMBED, device=device)
        logits = torch.zeros(n, 7, device=device)
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
        return window_result(prepared, out, i, top, self.fusion.tags)
