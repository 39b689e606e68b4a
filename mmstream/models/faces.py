"""The face detector a pipeline uses, by name (`stages.infer.face_detector`).

- "mtcnn" (default): `MtcnnDetector`, faces at many poses, half hidden ones too, with five
  landmarks used to align the crop for the emotion net;
- "haar": OpenCV's frontal Haar cascade (`FaceDetector`), the detector `fer` uses.

Both return `FaceBox`es largest first; `face_confidence` turns either's box into 0..1.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

from mmstream.models.face_detect import FaceBox, FaceDetector

FaceDetectorName = Literal["mtcnn", "haar"]
FACE_DETECTORS: tuple[str, ...] = ("mtcnn", "haar")
DEFAULT_FACE_DETECTOR: FaceDetectorName = "mtcnn"
HAAR_SCORE_HALF = 1.5  # Haar score at which its certainty is 1/2 (typical faces: 3-8)
FULL_SIZE = 48  # faces smaller than this many pixels are less trustworthy


class FaceFinder(Protocol):
    def detect(self, image_rgb: np.ndarray) -> list[FaceBox]: ...


def make_face_detector(name: str = DEFAULT_FACE_DETECTOR) -> FaceFinder:
    if name == "mtcnn":
        from mmstream.models.mtcnn import MtcnnDetector

        return MtcnnDetector()
    if name == "haar":
        return FaceDetector()
    raise ValueError(f"unknown face detector {name!r} (one of {', '.join(FACE_DETECTORS)})")


def face_confidence(box: FaceBox) -> float:
    """0..1 from the detector's certainty and the face's size (small faces count less).

    MTCNN gives a probability; the Haar cascade's stage sum s is mapped to s / (s + 1.5).
    """
    if box.probability is not None:
        certainty = box.probability
    else:
        score = max(box.score, 0.0)
        certainty = score / (score + HAAR_SCORE_HALF)
    return certainty * min(1.0, box.w / FULL_SIZE)
