"""Frames a report can show: from a recording's video messages or decoded from a media file.

Frames are handed out undecoded (`FrameRef`): the thumbnail picker decodes only the few it
keeps, so a long recording costs one pass and a few dozen JPEG decodes. H.264 frames depend on
the ones before them, so a compact recording's frames are decoded on the way (the analysed
frames only, by default: a few a second).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from mmstream.recording.format import decode_frame
from mmstream.recording.inputs import InputDecoder
from mmstream.recording.reader import RecordedMessage, RecordingReader

MEDIA_FPS = 2.0  # frames decoded from a media file: the analysis rate, enough to pick from


@dataclass(frozen=True, slots=True)
class FrameRef:
    """A frame not decoded yet: `decode()` gives its RGB uint8 pixels."""

    stream_id: str
    t: float
    decode: Callable[[], np.ndarray]


def recording_frames(path: Path) -> Iterator[FrameRef]:
    """The video frames of a recording, in file order (stops quietly at a damaged end)."""
    decoder = InputDecoder()
    with RecordingReader(path) as reader:
        for message in reader.messages(kinds=("video",)):
            if message.topic.codec:
                frame = decoder.decode(message)
                if frame is not None:
                    yield FrameRef(message.topic.stream_id, message.log_time / 1e9,
                                   partial(np.asarray, frame.image))  # type: ignore[union-attr]
                continue
            yield FrameRef(message.topic.stream_id, message.log_time / 1e9,
                           partial(_decode_recorded, message))


def media_frames(path: Path, stream_id: str) -> Iterator[FrameRef]:
    """Frames of a media file at MEDIA_FPS, stamped in media time as a replay stamps them."""
    from mmstream.config import FileSourceConfig
    from mmstream.sources.media_file import decode_media

    config = FileSourceConfig(id=stream_id, path=path, audio=False, fps=MEDIA_FPS)
    for item in decode_media(config):
        image = item.image  # type: ignore[union-attr]  (audio=False: frames only)
        yield FrameRef(stream_id, item.t_capture, partial(np.asarray, image))  # decoded already


def _decode_recorded(message: RecordedMessage) -> np.ndarray:
    return decode_frame(message.data, message.topic.stream_id)[2]
