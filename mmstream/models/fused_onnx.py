"""The fused model in ONNX Runtime, without torch: the run-time path on a CPU.

The same networks and weights as `FusedModel` (fused_model.py), exported once into the ONNX
cache (onnx_cache.py) and run by one ONNX Runtime session each: EfficientNet-Lite0,
mini-Xception, MTCNN's three nets and the fusion itself. Inputs are prepared with numpy as the
torch path prepares them, so the results agree to float rounding (tests/models/test_onnx_runtime
compares them on the sample's frames, faces and speech). torch is never imported here: a
process running this model holds ~230 MB less (docs/deploy.md, Memory).

`load_fused_model` picks the runtime: this one on a CPU in fp32 (unless `image_runtime: torch`
or `compile` asks for torch); the torch `FusedModel` for CUDA, fp16/bf16 or when ONNX Runtime
is missing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mmstream.errors import ModelError
from mmstream.media import Window
from mmstream.models import prosody, text_affect
from mmstream.models.faces import DEFAULT_FACE_DETECTOR, FaceDetector, FaceFinder
from mmstream.models.fused_windows import (
    FUSION_OUTPUTS,
    MODALITIES,
    MODEL_NAME,
    DetectorPerThread,
    FusedRunner,
    PreparedWindow,
    WindowResult,
    carry_over,
    checkpoint_version,
    encoder_rows,
    prepare_window,
    window_result,
)
from mmstream.models.labels import IMAGENET_CLASSES
from mmstream.models.onnx_cache import (
    GraphInputs,
    exporter_available,
    load_graphs,
    runtime_available,
    torch_installed,
)
from mmstream.models.onnx_models import (
    OnnxMtcnn,
    graph_metadata,
    make_session,
    preprocess_faces,
    preprocess_frames,
    softmax,
)

IMAGE_EMBED, FACE_EMBED = 1280, 128
# Frames go through the image encoder this many at a time, whatever the batch: activations of
# 16 frames at once took ~150 MB more at peak, and per frame a chunk of 4 is as fast (its
# depthwise layers are bound by memory traffic, which a bigger batch does not share) and gives
# the same outputs bit for bit (docs/deploy.md, Memory).
IMAGE_CHUNK = 4
CUDA_NODES = ("/dev/nvidiactl", "/proc/driver/nvidia")


_ALONGSIDE: list[ThreadPoolExecutor] = []
_ALONGSIDE_LOCK = threading.Lock()


def alongside() -> ThreadPoolExecutor:
    """The one thread of the process that makes a window's image encoding and prosody while
    its face is sought (at the prepare threads' priority: fused_windows.prepare_window)."""
    with _ALONGSIDE_LOCK:
        if not _ALONGSIDE:
            _ALONGSIDE.append(ThreadPoolExecutor(1, thread_name_prefix="mmstream-prepare-side"))
        return _ALONGSIDE[0]


class _Outputs:
    """The fusion's outputs by name, as `window_result` reads them."""

    def __init__(self, values: Sequence[np.ndarray]) -> None:
        for name, value in zip(FUSION_OUTPUTS, values, strict=True):
            setattr(self, name, value)


class OnnxFusedModel:
    """Encoders + fusion in ONNX Runtime; `prepare` per window, `forward` per batch (CPU)."""

    device_name = "cpu (ONNX Runtime)"

    def __init__(self, *, checkpoint: str | None = None, vocabulary: str | None = None,
                 modalities: Sequence[str] = MODALITIES,
                 face_detector: str = DEFAULT_FACE_DETECTOR, threads: int | None = None) -> None:
        self.modalities = frozenset(modalities)
        unknown = self.modalities - set(MODALITIES)
        if unknown:
            raise ModelError(f"unknown modalities {sorted(unknown)} (known: {MODALITIES})")
        if face_detector not in ("mtcnn", "haar"):
            raise ModelError(f"unknown face detector {face_detector!r} (mtcnn or haar)")
        names = ["fusion", *(["image"] if "image" in self.modalities else []),
                 *(["face"] if "face" in self.modalities else []),
                 *(["pnet", "rnet", "onet"] if "face" in self.modalities
                   and face_detector == "mtcnn" else [])]
        inputs = GraphInputs(Path(checkpoint) if checkpoint else None,
                             Path(vocabulary) if vocabulary else None)
        graphs = load_graphs(names, inputs)
        threads = threads or len(os.sched_getaffinity(0))
        self.fusion = make_session(graphs["fusion"], threads=1)  # a few small matrices
        self.tags = graph_metadata(self.fusion)["tags"].split("\n")
        self.image = make_session(graphs["image"], threads) if "image" in graphs else None
        self.face = make_session(graphs["face"], threads) if "face" in graphs else None
        self.fusion_version = checkpoint_version(Path(checkpoint)) if checkpoint else "default"
        if face_detector == "mtcnn":
            from mmstream.models.mtcnn import MtcnnDetector

            nets = OnnxMtcnn(graphs) if "pnet" in graphs else None

            def make() -> FaceFinder:
                return MtcnnDetector(nets=nets)  # the sessions are shared
        else:
            make = FaceDetector  # type: ignore[assignment]
        del graphs  # the sessions hold the weights now; no second copy
        self.detector = DetectorPerThread(make)

    @property
    def version(self) -> str:
        return f"{MODEL_NAME}+fusion:{self.fusion_version}"

    def prepare(self, window: Window, carry_from: PreparedWindow | None = None
                ) -> PreparedWindow:
        encode = self._encode_image if self.image is not None else None
        return prepare_window(window, self.modalities, self.detector, carry_from,
                              alongside=alongside(), encode_image=encode)

    def _encode_image(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame through the image encoder (as fast per frame as a batch of 4 here)."""
        embed, logits = self.image.run(  # type: ignore[union-attr]
            None, {"x": preprocess_frames([frame])})
        return embed[0], softmax(logits)[0]

    def forward(self, batch: Sequence[PreparedWindow]) -> list[WindowResult]:
        """One pass over the batch; results in the batch's order."""
        n = len(batch)
        image_embed = np.zeros((n, IMAGE_EMBED), np.float32)
        image_probs = np.zeros((n, 1000), np.float32)
        rows, faces = encoder_rows(batch)  # carried rows skip the encoders
        for i in [i for i in rows if batch[i].image_encoded is not None]:  # done in prepare
            image_embed[i], image_probs[i] = batch[i].image_encoded  # type: ignore[misc]
        rows = [i for i in rows if batch[i].image_encoded is None]
        for start in range(0, len(rows) if self.image is not None else 0, IMAGE_CHUNK):
            chunk = rows[start:start + IMAGE_CHUNK]
            x = preprocess_frames([batch[i].frame for i in chunk])  # type: ignore[misc]
            embed, logits = self.image.run(None, {"x": x})  # type: ignore[union-attr]
            image_embed[chunk], image_probs[chunk] = embed, softmax(logits)
        face_embed = np.zeros((n, FACE_EMBED), np.float32)
        face_logits = np.zeros((n, 7), np.float32)
        if faces and self.face is not None:
            crops = preprocess_faces(np.stack([batch[i].face_crop for i in faces]))  # type: ignore
            face_embed[faces], face_logits[faces] = self.face.run(  # type: ignore[attr-defined]
                None, {"x": crops})
        carry_over(batch, (image_embed, image_probs, face_embed, face_logits), np.copy)
        voice = [p.voice for p in batch]
        text = [p.text for p in batch]

        def floats(values: list[float]) -> np.ndarray:
            return np.asarray(values, np.float32)

        def masks(values: list[bool]) -> np.ndarray:
            return np.asarray(values, bool)

        def vectors(feats: list[object], width: int) -> np.ndarray:
            return np.stack([f.vector if f is not None else np.zeros(width, np.float32)  # type: ignore[attr-defined]
                             for f in feats]).astype(np.float32)

        feeds = {
            "image_embed": image_embed, "image_probs": image_probs,
            "image_mask": masks([p.frame is not None for p in batch]),
            "face_embed": face_embed, "face_logits": face_logits,
            "face_conf": floats([p.face_conf for p in batch]),
            "face_mask": masks([p.face_crop is not None for p in batch]),
            "voice_feats": vectors(voice, prosody.N_FEATURES),
            "voice_conf": floats([v.confidence if v else 0.0 for v in voice]),
            "voice_mask": masks([bool(v and v.present) for v in voice]),
            "text_feats": vectors(text, text_affect.N_FEATURES),
            "text_conf": floats([t.confidence if t else 0.0 for t in text]),
            "text_mask": masks([bool(t and t.present) for t in text]),
        }
        out = _Outputs(self.fusion.run(None, feeds))  # type: ignore[attr-defined]
        return [window_result(p, out, i, self._top(image_probs[i]) if p.frame is not None
                              else [], self.tags) for i, p in enumerate(batch)]

    @staticmethod
    def _top(probs: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        best = np.argsort(-probs, kind="stable")[:k]
        return [(IMAGENET_CLASSES[c], round(float(probs[c]), 4)) for c in best]


def cuda_possible() -> bool:
    """Whether a CUDA device might be there, without importing torch: no NVIDIA driver node,
    no CUDA."""
    return any(Path(node).exists() for node in CUDA_NODES)


def onnx_fits(device: str, precision: str, compile: bool, image_runtime: str) -> bool:
    """The ONNX runtime runs this configuration (CPU, fp32, no compile, onnxruntime there)."""
    if image_runtime == "torch" or compile or precision in ("fp16", "bf16"):
        return False
    if device == "cuda" or (device == "auto" and cuda_possible()):
        return False
    # With torch but without the onnx exporter, torch runs it (as before the cache existed);
    # without torch the cached graphs are all there is.
    return runtime_available() and (exporter_available() or not torch_installed())


def load_fused_model(*, device: str = "auto", precision: str = "auto", compile: bool = False,
                     image_runtime: str = "auto", threads: int | None = None,
                     checkpoint: str | None = None, vocabulary: str | None = None,
                     modalities: Sequence[str] = MODALITIES,
                     face_detector: str = DEFAULT_FACE_DETECTOR) -> FusedRunner:
    """The fused model for these settings: ONNX Runtime where it fits, else torch."""
    if onnx_fits(device, precision, compile, image_runtime):
        return OnnxFusedModel(checkpoint=checkpoint, vocabulary=vocabulary,
                              modalities=modalities, face_detector=face_detector,
                              threads=threads)
    import torch

    from mmstream.models.fused_model import FusedModel, plan_for

    if threads:
        torch.set_num_threads(threads)
    plan = plan_for(device, precision, compile, image_runtime=image_runtime)
    return FusedModel(plan, checkpoint=checkpoint, vocabulary=vocabulary,
                      modalities=modalities, face_detector=face_detector)
