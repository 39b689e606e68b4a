"""Bounded channel between stages, with a declared overflow policy per item kind.

Items whose class says `droppable = True` (video frames) are shed oldest-first when the
channel is full, so the newest frame always gets through and a slow model never makes the
camera lag. Every other item (audio, transcripts, events) is lossless: the producer waits
for space (backpressure). Each drop is counted by item kind.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import AsyncIterator
from typing import Any


class ChannelClosed(Exception):
    """Raised when putting into a channel whose producers have all finished."""


def is_droppable(item: Any) -> bool:
    return bool(getattr(item, "droppable", False))


class Channel:
    """An async FIFO with a capacity, several producers, and one consumer."""

    def __init__(
        self, name: str, capacity: int = 64, producers: int = 1, *, sheds: bool = True
    ) -> None:
        if capacity < 1:
            raise ValueError("channel capacity must be >= 1")
        self.name = name
        self.capacity = capacity
        # not `sheds`: even frames wait for space (fast replays: no clock to keep up with, and
        # shedding by timing would make the output differ from run to run)
        self.sheds = sheds
        self.drops: Counter[str] = Counter()
        self.high_water = 0
        self._items: deque[Any] = deque()
        self._open_producers = producers
        self._changed = asyncio.Condition()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._open_producers <= 0

    async def put(self, item: Any) -> None:
        async with self._changed:
            if self.closed:
                raise ChannelClosed(self.name)
            while len(self._items) >= self.capacity:
                if self.sheds and is_droppable(item) and self._drop_oldest_droppable():
                    break
                await self._changed.wait()
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._changed.notify_all()

    def _drop_oldest_droppable(self) -> bool:
        for index, queued in enumerate(self._items):
            if is_droppable(queued):
                del self._items[index]
                self.drops[f"overflow:{type(queued).__name__}"] += 1
                return True
        return False

    async def close(self) -> None:
        """One producer is done; the consumer ends once all are done and the queue is empty."""
        async with self._changed:
            self._open_producers -= 1
            self._changed.notify_all()

    async def get(self) -> Any:
        """Next item, or raise StopAsyncIteration when closed and drained."""
        async with self._changed:
            while not self._items:
                if self.closed:
                    raise StopAsyncIteration
                await self._changed.wait()
            item = self._items.popleft()
            self._changed.notify_all()
            return item

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        return await self.get()
