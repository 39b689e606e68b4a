"""The recorder's tap: the first stage, so a recording holds every raw input.

It sits before anything that may thin the input out (the overload governor sheds frames,
control drops media while paused, analysis stages consume items) and hands each video frame
and audio chunk to the recorder (`sinks/recorder.py`) on the way; everything passes on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mmstream.media import AudioChunk, MediaItem, VideoFrame
from mmstream.runtime.stage import Item, Stage


class RecordTap(Stage):
    name = "record"

    def __init__(self, record: Callable[[MediaItem], Awaitable[None]]) -> None:
        self.record = record

    async def process(self, item: Item) -> None:
        if isinstance(item, VideoFrame | AudioChunk):
            await self.record(item)
        await self.emit(item)
