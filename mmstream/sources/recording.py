"""Recording source: feeds the raw inputs of an MCAP recording back through a pipeline.

Items carry the recording's own capture times, so a replay sees exactly the timestamps the
recorded run saw. Whether a busy channel may shed a frame is the run policy's, not the
source's: a fast replay never sheds (which frame a full channel sheds depends on timing), a
paced one (`speed`) behaves like live input.

All streams of the recording come from this one source, merged in capture-time order, so the
order items enter the pipeline is a property of the file, not of task scheduling. A truncated
recording is read up to its last complete chunk; where it stopped is logged and published as
a `status` event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import av

from mmstream.config import RecordingSourceConfig
from mmstream.errors import SourceError
from mmstream.events import Status, StatusEvent
from mmstream.media import AudioChunk, EndOfStream, VideoFrame
from mmstream.recording.inputs import InputDecoder
from mmstream.recording.reader import RecordedMessage, RecordingReader, in_time_order
from mmstream.runtime.stage import Source

log = logging.getLogger(__name__)

ITEMS_PER_HOP = 16
REORDER_WINDOW_NS = 2_000_000_000  # live streams land in a file up to ~this far out of order


@dataclass
class _Progress:
    """What the reader thread saw, for the end-of-replay bookkeeping."""

    origin_ns: int | None = None
    last: dict[str, float] | None = None
    yielded: int = 0


class RecordingSource(Source):
    """`async with RecordingSource(cfg) as src: async for item in src: ...`"""

    kind = "recording"

    def __init__(self, config: RecordingSourceConfig) -> None:
        super().__init__(config)  # stream_id becomes the last stream to end (see __aiter__)
        self.reader: RecordingReader | None = None
        self.progress = _Progress(last={})
        self.clock_rate = config.speed or 1.0

    async def __aenter__(self) -> RecordingSource:
        self.reader = await asyncio.to_thread(RecordingReader, self.config.path)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    async def __aiter__(self) -> AsyncIterator[Any]:  # type: ignore[override]
        if self.reader is None:
            raise SourceError(f"{self.name}: iterate inside `async with`")
        items = self._items(self.reader)
        started = time.monotonic()
        first_t: float | None = None
        while True:
            batch = await asyncio.to_thread(_take, items)
            for item in batch:
                if self.config.speed is not None:
                    first_t = item.t_capture if first_t is None else first_t
                    delay = started + (item.t_capture - first_t) / self.config.speed
                    if delay > time.monotonic():
                        await asyncio.sleep(delay - time.monotonic())
                yield item
            if len(batch) < ITEMS_PER_HOP:
                break
        for item in self._finish(self.reader):
            yield item

    def _items(self, reader: RecordingReader) -> Iterator[VideoFrame | AudioChunk]:
        """Reader thread: decoded inputs of the chosen streams and range, in time order."""
        cfg = self.config
        messages = reader.messages(kinds=("video", "audio"), streams=cfg.streams)
        decoder = InputDecoder()
        origin: int | None = None
        for message in in_time_order(messages, REORDER_WINDOW_NS, {}):
            if origin is None:
                origin = self.progress.origin_ns = message.log_time
            offset_s = (message.log_time - origin) / 1e9
            before = cfg.start_s is not None and offset_s < cfg.start_s
            if cfg.end_s is not None and offset_s >= cfg.end_s:
                continue  # not break: another stream may still be inside the range
            if before and not message.topic.codec:
                continue  # images and PCM stand alone; H.264 and AAC decode from before
            item = self._decode(decoder, message)
            if before or item is None:
                continue
            assert self.progress.last is not None
            self.progress.last[item.stream_id] = item.t_capture
            self.progress.yielded += 1
            yield item

    def _decode(self, decoder: InputDecoder,
                message: RecordedMessage) -> VideoFrame | AudioChunk | None:
        try:
            return decoder.decode(message)
        # msgspec.DecodeError is a ValueError; damaged H.264/AAC raises FFmpegError
        except (ValueError, TypeError, av.error.FFmpegError) as exc:
            raise SourceError(f"{self.config.path}: bad {message.topic.kind} message on "
                              f"{message.topic.name} at t={message.log_time / 1e9:.3f}: "
                              f"{exc}") from None

    def _finish(self, reader: RecordingReader) -> list[Any]:
        """End-of-stream markers for every stream but the last (the runner ends that one) and
        a status event when the file was cut short."""
        last = dict(self.progress.last or {})
        self._check_streams(reader, last)
        if not last:
            where = f" ({reader.stop.describe(self.config.path)})" if reader.stop else ""
            raise SourceError(f"{self.config.path}: no video or audio to replay in the chosen "
                              f"streams and time range{where}")
        ordered = sorted(last, key=lambda stream: (last[stream], stream))
        self.stream_id = ordered[-1]
        items: list[Any] = [EndOfStream(s, last[s]) for s in ordered[:-1]]
        if reader.stop is not None and not reader.complete:
            report = reader.stop.describe(self.config.path)
            log.warning("recording cut short: %s", report)
            self.damage = f"recording cut short: {report}"
            items.append(StatusEvent(
                stream_id=self.stream_id, t_capture=last[self.stream_id],
                payload=Status(state="degraded", message=f"recording cut short: {report}",
                               details={"stopped_at_byte": reader.stop.offset,
                                        "file_size": reader.stop.size,
                                        "complete_chunks": reader.stop.complete_chunks})))
        return items

    def _check_streams(self, reader: RecordingReader, seen: dict[str, float]) -> None:
        if self.config.streams is None:
            return
        missing = [s for s in self.config.streams if s not in seen]
        recorded = sorted({c.topic.stream_id for c in reader.channels.values()
                           if c.topic is not None and c.topic.kind != "event"})
        if missing and not (self.config.start_s or self.config.end_s):
            raise SourceError(f"{self.config.path}: no stream {', '.join(missing)} to replay "
                              f"(recorded: {', '.join(recorded) or 'none'})")


def _take(iterator: Iterator[Any]) -> list[Any]:
    return list(islice(iterator, ITEMS_PER_HOP))
