"""MTCNN face detection: faces at any pose the nets learnt, with five landmarks each.

The three-stage cascade of Zhang et al. (2016), the nets in `mtcnn_nets.py`:

1. P-Net over an image pyramid (scales from `min_face` up to the whole frame, factor 0.709):
   every 12×12 window (stride 2) with face probability ≥ thresholds[0] is a candidate; NMS per
   scale (IoU 0.5), then over all scales (0.7); boxes refined by the regressed offsets and
   made square;
2. R-Net re-scores 24×24 crops of the candidates (≥ thresholds[1]), NMS 0.7, refine, square;
3. O-Net re-scores 48×48 crops (≥ thresholds[2]), regresses the landmarks, refines the boxes,
   and NMS (0.7, by the smaller box's area) leaves one box per face.

Unlike the frontal Haar cascade it finds faces turned or half hidden (a photographer behind
his camera). Its `score` is O-Net's face probability (0..1). Frames larger than `max_side`
are searched downscaled, as the Haar detector does; boxes and landmarks are in input pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from mmstream.models.face_detect import FaceBox, to_gray

PYRAMID_FACTOR = 0.709
CELL, STRIDE = 12, 2  # P-Net's window and step, in pixels of its scaled input


class MtcnnRunner(Protocol):
    """The three nets on float32 numpy input [N,3,H,W] (see `_preprocess`), numpy out: torch
    (`mtcnn_nets.TorchMtcnn`) or ONNX Runtime (`onnx_models.OnnxMtcnn`)."""

    def pnet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
    def rnet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
    def onet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def _preprocess(pixels: np.ndarray) -> np.ndarray:
    """[N,H,W,3] uint8 RGB → [N,3,H,W] float32 in [-1, 1] (the Caffe models' input)."""
    x = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32)
    return (x - np.float32(127.5)) * np.float32(0.0078125)


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-averaged when shrinking (antialiased, as PIL's resize the nets were ported with)."""
    shrink = size[0] < image.shape[1] or size[1] < image.shape[0]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def nms(boxes: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression of [N, ≥5] (x1,y1,x2,y2,score) boxes."""
    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2, score = (boxes[:, i] for i in range(5))
    area = (x2 - x1 + 1.0) * (y2 - y1 + 1.0)
    order = np.argsort(score, kind="stable")[::-1]
    keep = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1.0)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1.0)
        inter = w * h
        union = np.minimum(area[i], area[rest]) if by_min else area[i] + area[rest] - inter
        order = rest[inter / union <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _refine(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Shift each box's corners by the regressed offsets (in units of its width/height)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    out[:, 0:4] = boxes[:, 0:4] + np.stack([w, h, w, h], axis=1) * offsets
    return out


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre, corners rounded to pixels."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    side = np.maximum(w, h)
    out[:, 0] = np.round(boxes[:, 0] + w * 0.5 - side * 0.5)
    out[:, 1] = np.round(boxes[:, 1] + h * 0.5 - side * 0.5)
    out[:, 2] = out[:, 0] + np.round(side) - 1.0
    out[:, 3] = out[:, 1] + np.round(side) - 1.0
    return out


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """[N,size,size,3] crops of the boxes; parts outside the image are black (zero)."""
    height, width = image.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), dtype=np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes[:, :4].astype(np.int64)):
        w, h = x2 - x1 + 1, y2 - y1 + 1
        if w < 2 or h < 2:
            continue
        patch = np.zeros((h, w, 3), dtype=np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width - 1), min(y2, height - 1)
        if sx2 < sx1 or sy2 < sy1:
            continue
        patch[sy1 - y1 : sy2 - y1 + 1, sx1 - x1 : sx2 - x1 + 1] = image[sy1 : sy2 + 1,
                                                                        sx1 : sx2 + 1]
        out[i] = _resize(patch, (size, size))
    return out


class MtcnnDetector:
    """MTCNN face detector; `detect` returns boxes with landmarks, largest first."""

    def __init__(self, min_face: int = 40, thresholds: Sequence[float] = (0.6, 0.7, 0.8),
                 max_side: int | None = 640, nets: MtcnnRunner | None = None) -> None:
        self.min_face = min_face
        self.thresholds = tuple(thresholds)
        self.max_side = max_side
        if nets is None:
            from mmstream.models.mtcnn_nets import TorchMtcnn, load_mtcnn_nets

            nets = TorchMtcnn(load_mtcnn_nets())
        self.nets = nets

    def detect(self, image_rgb: np.ndarray) -> list[FaceBox]:
        """Faces in an RGB uint8 image [H,W,3] (or grey [H,W]), largest first."""
        image = image_rgb if image_rgb.ndim == 3 else np.repeat(to_gray(image_rgb)[..., None],
                                                                3, axis=2)
        scale = 1.0
        if self.max_side and max(image.shape[:2]) > self.max_side:
            scale = self.max_side / max(image.shape[:2])
            image = _resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
        boxes, landmarks = self._cascade(np.ascontiguousarray(image))
        faces = [self._face_box(b, lm, scale) for b, lm in zip(boxes, landmarks, strict=True)]
        return sorted(faces, key=lambda f: f.area, reverse=True)

    @staticmethod
    def _face_box(box: np.ndarray, landmarks: np.ndarray, scale: float) -> FaceBox:
        x1, y1, x2, y2 = (float(v) / scale for v in box[:4])
        points = tuple((float(landmarks[i]) / scale, float(landmarks[i + 5]) / scale)
                       for i in range(5))
        return FaceBox(round(x1), round(y1), round(x2 - x1 + 1), round(y2 - y1 + 1),
                       float(box[4]), landmarks=points, probability=float(box[4]))

    def _cascade(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        none = np.zeros((0, 5)), np.zeros((0, 10))
        boxes = self._propose(image)
        if not len(boxes):
            return none
        offsets, probs = self.nets.rnet(_preprocess(_crops(image, boxes, 24)))
        keep = probs >= self.thresholds[1]
        boxes, offsets = boxes[keep], offsets[keep]
        boxes[:, 4] = probs[keep]
        kept = nms(boxes, 0.7)
        boxes = _square(_refine(boxes[kept], offsets[kept]))
        if not len(boxes):
            return none
        points, offsets, probs = self.nets.onet(_preprocess(_crops(image, boxes, 48)))
        keep = probs >= self.thresholds[2]
        boxes, offsets, points = boxes[keep], offsets[keep], points[keep]
        boxes[:, 4] = probs[keep]
        w = (boxes[:, 2] - boxes[:, 0] + 1.0)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1.0)[:, None]
        points = np.concatenate([boxes[:, 0:1] + w * points[:, :5],
                                 boxes[:, 1:2] + h * points[:, 5:]], axis=1)
        boxes = _refine(boxes, offsets)
        kept = nms(boxes, 0.7, by_min=True)
        return boxes[kept], points[kept]

    def _propose(self, image: np.ndarray) -> np.ndarray:
        """Stage 1: P-Net candidates over the pyramid, squared, [N,5] x1,y1,x2,y2,score."""
        height, width = image.shape[:2]
        scale = CELL / self.min_face
        # Shrinking every level from the whole frame reads all of it each time (~1.2 ms a level
        # at 640x480, ~10 ms a frame); each level is shrunk from the smallest halving of the
        # frame at least twice its size instead (2x2 means, as a mip-map): ~2 ms a frame, and
        # the levels differ from the direct ones by about a grey level.
        halvings = [image]
        found = []
        while min(height, width) * scale > CELL:
            size = (math.ceil(width * scale), math.ceil(height * scale))
            while scale <= 0.5 ** (len(halvings) + 1) and min(halvings[-1].shape[:2]) >= 4 * CELL:
                last = halvings[-1]
                halvings.append(_resize(last, (last.shape[1] // 2, last.shape[0] // 2)))
            source = next(h for h in reversed(halvings) if h.shape[1] >= 2 * size[0]
                          and h.shape[0] >= 2 * size[1])
            offsets, probs = self.nets.pnet(_preprocess(_resize(source, size)[None]))
            boxes = self._windows(probs[0], offsets[0], scale)
            found.append(boxes[nms(boxes, 0.5)])
            scale *= PYRAMID_FACTOR
        boxes = np.concatenate(found) if found else np.zeros((0, 9))
        boxes = boxes[nms(boxes, 0.7)]
        return _square(_refine(boxes[:, :5], boxes[:, 5:]))

    def _windows(self, probs: np.ndarray, offsets: np.ndarray, scale: float) -> np.ndarray:
        """P-Net output cells above threshold → [N,9] boxes in image pixels + their offsets."""
        ys, xs = np.nonzero(probs >= self.thresholds[0])
        left, top = STRIDE * xs + 1.0, STRIDE * ys + 1.0
        corners = [np.round(v / scale) for v in (left, top, left + CELL, top + CELL)]
        return np.stack([*corners, probs[ys, xs], *(offsets[i, ys, xs] for i in range(4))],
                        axis=1).reshape(-1, 9)
