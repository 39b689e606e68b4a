"""A picture of what the analysis saw: an analysed frame as JPEG, with what was found drawn on
it (the web view's picture, Home Assistant's camera entity).

Face boxes, the scene tags along the top and the emotion with its valence along the bottom,
drawn with OpenCV. Blocking work (a few ms): callers run it in a thread, only for a frame
someone will see, and at most at their frame rate.
"""

from __future__ import annotations

import cv2
import numpy as np

from mmstream.media import AnalysedFrame

MAX_WIDTH = 640  # larger camera frames are scaled down: a dashboard picture, not a recording
JPEG_QUALITY = 80
FACE_COLOR = (60, 220, 60)  # BGR
TEXT_COLOR = (255, 255, 255)
BAND_COLOR = (32, 32, 32)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def render_snapshot(frame: AnalysedFrame, max_width: int = MAX_WIDTH,
                    quality: int = JPEG_QUALITY) -> bytes:
    """The frame (RGB) with its faces, tags and emotion drawn on, encoded as JPEG."""
    image = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)  # a new array: the frame stays as is
    scale = min(1.0, max_width / image.shape[1])
    if scale < 1.0:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    _draw_faces(image, frame, scale)
    tags = ", ".join(f"{label} {score:.2f}" for label, score in frame.tags)
    if tags:
        _label(image, tags, top=True)
    if frame.emotion:
        valence = f" {frame.valence:+.2f}" if frame.valence is not None else ""
        _label(image, f"{frame.emotion}{valence}", top=False)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode the frame of {frame.stream_id} as JPEG")
    return encoded.tobytes()


def _draw_faces(image: np.ndarray, frame: AnalysedFrame, scale: float) -> None:
    thickness = max(2, round(image.shape[1] / 240))
    for face in frame.faces:
        x, y = round(face.x * scale), round(face.y * scale)
        w, h = round(face.w * scale), round(face.h * scale)
        cv2.rectangle(image, (x, y), (x + w, y + h), FACE_COLOR, thickness)


def _label(image: np.ndarray, text: str, *, top: bool) -> None:
    """White text on a dark band across the top or bottom edge, shortened to fit."""
    font_scale, thickness = max(0.35, image.shape[1] / 800), 1
    text = _fit(text, font_scale, thickness, image.shape[1] - 8)
    (width, height), baseline = cv2.getTextSize(text, FONT, font_scale, thickness)
    band = height + baseline + 8
    y0 = 0 if top else image.shape[0] - band
    cv2.rectangle(image, (0, y0), (min(image.shape[1], width + 8), y0 + band), BAND_COLOR, -1)
    cv2.putText(image, text, (4, y0 + 4 + height), FONT, font_scale, TEXT_COLOR, thickness,
                cv2.LINE_AA)


def _fit(text: str, font_scale: float, thickness: int, room: int) -> str:
    def width(candidate: str) -> int:
        return int(cv2.getTextSize(candidate, FONT, font_scale, thickness)[0][0])

    if width(text) <= room:
        return text
    while len(text) > 1 and width(text + "...") > room:
        text = text[:-1]
    return text.rstrip(", ") + "..."
