"""A picture of what the analysis saw: an analysed frame with its face boxes, scene tags and
emotion drawn on it, as a JPEG (Home Assistant's camera entity, the web view).

Drawing and encoding cost a few milliseconds per frame: call `render_snapshot` in a worker
thread, and only as often as someone looks.
"""

from __future__ import annotations

import cv2
import numpy as np

from mmstream.media import AnalysedFrame

BOX = (80, 220, 80)  # BGR: a calm green for faces
INK = (255, 255, 255)
SHADE = (0, 0, 0)


def render_snapshot(frame: AnalysedFrame, width: int = 640, quality: int = 80) -> bytes:
    """JPEG bytes of `frame` scaled to `width` (never up), with what was found drawn on it."""
    image = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
    scale = min(1.0, width / image.shape[1])
    if scale < 1.0:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    thick = max(1, round(2 * scale))
    for face in frame.faces:
        corner = (round(face.x * scale), round(face.y * scale))
        far = (round((face.x + face.w) * scale), round((face.y + face.h) * scale))
        cv2.rectangle(image, corner, far, BOX, thick)
        for x, y in face.landmarks:
            cv2.circle(image, (round(x * scale), round(y * scale)), thick + 1, BOX, -1)
    _caption(image, _lines(frame))
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return jpeg.tobytes()


def _lines(frame: AnalysedFrame) -> list[str]:
    lines = [", ".join(f"{label} {score:.2f}" for label, score in frame.tags) or "no tag"]
    if frame.emotion is not None:
        valence = f" ({frame.valence:+.2f})" if frame.valence is not None else ""
        lines.append(f"{frame.emotion}{valence}")
    return lines


def _caption(image: np.ndarray, lines: list[str]) -> None:
    """Text in the top-left corner on a dark band, readable on any picture."""
    size = max(0.4, image.shape[1] / 1100)
    height = round(22 * size / 0.6)
    band = image[: height * len(lines) + 6]
    band[:] = (band * 0.45).astype(np.uint8)
    for row, line in enumerate(lines):
        origin = (6, height * (row + 1) - 2)
        cv2.putText(image, line, origin, cv2.FONT_HERSHEY_SIMPLEX, size, SHADE, 3, cv2.LINE_AA)
        cv2.putText(image, line, origin, cv2.FONT_HERSHEY_SIMPLEX, size, INK, 1, cv2.LINE_AA)
