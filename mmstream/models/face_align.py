"""Five-point face alignment: the grey face crop mini-Xception reads, upright and framed alike.

With landmarks (MTCNN), the crop is a similarity warp (rotation, uniform scale, shift; least
squares over the five points) that puts the eyes, nose and mouth corners where they fall in
fer's crop of a frontal face: fer squares the Haar box, widens it by 10 px a side and resizes
it to 64×64, which puts the eyes at about 32% and 68% of the width and 40% of the height
(measured on scikit-image's astronaut and matplotlib's Grace Hopper portraits, both frontal,
and made left-right symmetric). So a tilted or turned head reaches the emotion net framed as
the faces it was used with, not as a rotated box. Without landmarks (Haar), fer's own crop.
"""

from __future__ import annotations

import cv2
import numpy as np

from mmstream.models.face_detect import FaceBox, crop_gray, to_gray

# Left eye, right eye, nose tip, left and right mouth corner, as fractions of the crop side.
TEMPLATE = np.array([[0.32, 0.40], [0.68, 0.40], [0.50, 0.61], [0.34, 0.77], [0.66, 0.77]])


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2×3 similarity transform mapping `source` points onto `target` (least squares)."""
    src_mean, dst_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - src_mean, target - dst_mean
    # Umeyama (1991) without reflection: rotation from the SVD of the covariance.
    u, s, vt = np.linalg.svd(dst.T @ src / len(source))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = float(np.trace(np.diag(s) @ d) / max((src**2).sum() / len(source), 1e-12))
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])


def align_gray(image_rgb: np.ndarray, landmarks: np.ndarray, size: int = 64) -> np.ndarray:
    """The face as an upright grey uint8 [size,size] crop, landmarks on `TEMPLATE`."""
    gray = to_gray(image_rgb)
    matrix = similarity(np.asarray(landmarks, dtype=np.float64), TEMPLATE * size)
    # Outside the frame, fer's fill: the mean grey of the bottom rows.
    fill = float(gray[-2:].mean())
    return cv2.warpAffine(gray, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def face_crop(image_rgb: np.ndarray, box: FaceBox, size: int = 64) -> np.ndarray:
    """Aligned crop when the detector gave landmarks, else fer's crop of the box."""
    if box.landmarks is not None:
        return align_gray(image_rgb, np.asarray(box.landmarks), size)
    return crop_gray(image_rgb, box, size)
