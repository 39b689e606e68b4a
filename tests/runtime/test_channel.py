"""Channel overflow policies: video keeps the newest frames, everything else is lossless."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from mmstream.media import AudioChunk, VideoFrame
from mmstream.runtime.channel import Channel, ChannelClosed

BLANK = np.zeros((2, 2, 3), dtype=np.uint8)


def frame(index: int) -> VideoFrame:
    return VideoFrame("cam0", index / 30, BLANK, index)


def chunk(index: int) -> AudioChunk:
    return AudioChunk("mic0", index / 10, np.full(1600, index, dtype=np.float32))


async def test_slow_consumer_sees_newest_frames_and_drops_are_counted() -> None:
    channel = Channel("cam", capacity=4)
    received: list[int] = []

    async def slow_consumer() -> None:
        async for item in channel:
            received.append(item.index)
            await asyncio.sleep(0.01)

    consumer = asyncio.create_task(slow_consumer())
    for index in range(100):
        await channel.put(frame(index))  # never blocks: frames are shed instead
    await channel.close()
    await consumer
    assert received[-1] == 99, "the newest frame must always get through"
    assert received == sorted(received), "order is kept"
    assert channel.drops["overflow:VideoFrame"] == 100 - len(received)
    assert channel.drops["overflow:VideoFrame"] > 50


async def test_audio_is_never_dropped_producer_waits_instead() -> None:
    channel = Channel("mic", capacity=2)
    received: list[int] = []

    async def slow_consumer() -> None:
        async for item in channel:
            received.append(int(item.samples[0]))
            await asyncio.sleep(0.001)

    consumer = asyncio.create_task(slow_consumer())
    for index in range(200):
        await channel.put(chunk(index))
    await channel.close()
    await consumer
    assert received == list(range(200))
    assert not channel.drops
    assert channel.high_water <= 2


async def test_frames_are_shed_before_audio_in_a_mixed_channel() -> None:
    channel = Channel("av", capacity=3)
    await channel.put(chunk(0))
    await channel.put(frame(1))
    await channel.put(chunk(2))
    await channel.put(frame(3))  # full: the queued frame 1 goes, audio stays
    await channel.close()
    kept = [item async for item in channel]
    assert [type(item).__name__ for item in kept] == ["AudioChunk", "AudioChunk", "VideoFrame"]
    assert channel.drops == {"overflow:VideoFrame": 1}


async def test_channel_ends_only_when_every_producer_closed() -> None:
    channel = Channel("merge", capacity=8, producers=2)
    await channel.put(chunk(0))
    await channel.close()
    await channel.put(chunk(1))  # the second producer is still open
    await channel.close()
    assert len([item async for item in channel]) == 2
    with pytest.raises(ChannelClosed):
        await channel.put(chunk(2))


async def test_a_channel_that_does_not_shed_keeps_every_frame() -> None:
    channel = Channel("replay", capacity=2, sheds=False)
    received: list[int] = []

    async def slow_consumer() -> None:
        async for item in channel:
            received.append(item.index)
            await asyncio.sleep(0.001)

    consumer = asyncio.create_task(slow_consumer())
    for index in range(50):
        await channel.put(frame(index))
    await channel.close()
    await consumer
    assert received == list(range(50))
    assert not channel.drops
