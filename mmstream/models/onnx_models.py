"""The exported graphs in ONNX Runtime, with numpy around them instead of torch: one session
per model, the input preparation the torch path does in torch, and MTCNN's three nets.

Sessions allocate without ONNX Runtime's CPU memory arena: the arena grows to the largest
batch seen and keeps it (an arena sized for 16 frames holds ~100 MB it seldom needs); the
allocator below it (glibc, `speedups.keep_freed_memory`) reuses freed blocks anyway
(docs/deploy.md, Memory). Worker threads do not spin while idle: a spinning pool takes CPU that
whisper needs between two forward passes.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

INPUT_SIZE = 224  # EfficientNet-Lite0's input side
PIXEL_MEAN, PIXEL_STD = np.float32(127.0), np.float32(128.0)


def make_session(graph: bytes, threads: int, arena: bool = False) -> object:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = arena
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def graph_metadata(session: object) -> dict[str, str]:
    return dict(session.get_modelmeta().custom_metadata_map)  # type: ignore[attr-defined]


@lru_cache(maxsize=16)
def resize_weights(size_in: int, size_out: int) -> np.ndarray:
    """[size_out, size_in] weights of torch's antialiased bilinear resize (`F.interpolate`,
    `antialias=True`, `align_corners=False`): PIL's triangle filter, widened by the scale
    when shrinking. One matrix product per axis gives the same pixels to float rounding."""
    scale = size_in / size_out
    support = max(scale, 1.0)
    weights = np.zeros((size_out, size_in), np.float64)
    for i in range(size_out):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), size_in)
        taps = np.clip(1.0 - np.abs((np.arange(lo, hi) - centre + 0.5) / support), 0.0, None)
        weights[i, lo:hi] = taps / taps.sum()
    return weights.astype(np.float32)


def preprocess_frames(frames: list[np.ndarray]) -> np.ndarray:
    """RGB uint8 frames [H,W,3] of any sizes → the encoder's input [N,3,224,224] float32, as
    `efficientnet_lite.preprocess_images` makes it (whole frame resized, (x - 127) / 128)."""
    out = np.empty((len(frames), 3, INPUT_SIZE, INPUT_SIZE), np.float32)
    for k, frame in enumerate(frames):
        h, w = frame.shape[:2]
        rows = resize_weights(h, INPUT_SIZE) @ frame.reshape(h, w * 3).astype(np.float32)
        both = rows.reshape(INPUT_SIZE, w, 3).transpose(0, 2, 1).reshape(-1, w) \
            @ resize_weights(w, INPUT_SIZE).T
        out[k] = both.reshape(INPUT_SIZE, 3, INPUT_SIZE).transpose(1, 0, 2)
    out -= PIXEL_MEAN
    out /= PIXEL_STD
    return out


def preprocess_faces(crops: np.ndarray) -> np.ndarray:
    """Grey face crops uint8 [B,64,64] → [B,1,64,64] in [-1, 1], as
    `mini_xception.preprocess_faces` scales them."""
    x = crops.astype(np.float32) / np.float32(255.0)
    return ((x - np.float32(0.5)) * np.float32(2.0))[:, None]


def softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class OnnxMtcnn:
    """MTCNN's nets in ONNX Runtime behind `mtcnn.MtcnnRunner`. One thread each: the nets are
    small, and the prepare threads already run several frames at once."""

    def __init__(self, graphs: dict[str, bytes]) -> None:
        self.sessions = {name: make_session(graphs[name], threads=1)
                         for name in ("pnet", "rnet", "onet")}

    def _run(self, name: str, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self.sessions[name].run(None, {"x": x}))  # type: ignore[attr-defined]

    def pnet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run("pnet", x)  # type: ignore[return-value]

    def rnet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run("rnet", x)  # type: ignore[return-value]

    def onet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._run("onet", x)  # type: ignore[return-value]
