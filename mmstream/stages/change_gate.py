"""Change gating: which windows' frames need the image models, and which may carry results over.

A camera on a still scene sends the same picture window after window; the image encoder, the
face detector and the face net would say the same thing each time, and they are most of a
window's cost. Per stream, the gate keeps a small grey copy (64x48) of the frame of the last
window it sent to the models (the *reference*: not the previous frame, so slow drift adds up
until it counts) and compares each new window's frame with it: when no more than `threshold`
of its pixels moved by more than `pixel_delta` grey levels, and the reference is younger than
`max_carry_s` (source time), the window carries the reference's image results over.

The decision depends only on the frames and their capture times, taken in window order, so a
replay decides exactly as the live run did.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mmstream.config import ChangeGateConfig
from mmstream.media import Window

THUMB_SIZE = (64, 48)  # width, height: a person crossing a 640x480 room covers 1-10 % of it


def thumbnail(image: np.ndarray) -> np.ndarray:
    """The frame as a 64x48 grey copy (area-averaged, so sensor noise mostly cancels)."""
    small = cv2.resize(image, THUMB_SIZE, interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    return small.astype(np.int16)


def changed_fraction(a: np.ndarray, b: np.ndarray, pixel_delta: int) -> float:
    """The fraction of pixels whose grey level differs by more than `pixel_delta`."""
    return float(np.count_nonzero(np.abs(a - b) > pixel_delta)) / a.size


@dataclass
class _Reference:
    thumb: np.ndarray
    t_capture: float  # the end of the window it was analysed for


class ChangeGate:
    """Per stream, in window order: analyse this window's frame afresh, or carry over?"""

    def __init__(self, config: ChangeGateConfig) -> None:
        self.config = config
        self.references: dict[str, _Reference] = {}

    def carry(self, window: Window) -> bool:
        """True when `window` may reuse the image results of the stream's last analysed frame;
        False makes its frame the new reference (the caller analyses it)."""
        if not self.config.enabled or window.frame is None:
            return False
        thumb = thumbnail(window.frame.image)
        known = self.references.get(window.stream_id)
        if (known is not None and known.thumb.shape == thumb.shape
                and window.t_capture - known.t_capture < self.config.max_carry_s
                and changed_fraction(thumb, known.thumb, self.config.pixel_delta)
                <= self.config.threshold):
            return True
        self.references[window.stream_id] = _Reference(thumb, window.t_capture)
        return False

    def forget(self, stream_id: str) -> None:
        """The stream ended, or its reference was never analysed (shed): start afresh."""
        self.references.pop(stream_id, None)
