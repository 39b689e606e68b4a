"""A small mmstream process for the fault tests: a paced stream of final transcripts -> MqttSink.

Runs the real Pipeline (seq stamping, resume from the spool) and the real MqttSink, so a test
can SIGKILL it mid-stream and start it again on the same spool (from the repository root, so
the worktree's mmstream is the one that runs):

    python -m tests.sinks.mqtt.producer URL --spool PATH --count 2000 --rate 500
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mmstream.config import LIVE, MqttSinkConfig
from mmstream.events import Transcript, TranscriptEvent
from mmstream.runtime.observer import PipelineObserver
from mmstream.runtime.pipeline import Pipeline
from mmstream.runtime.stage import Source
from mmstream.sinks.mqtt import MqttSink


class TranscriptSource(Source):
    """`count` final transcripts at `rate` per second (they reach the sinks unchanged);
    `produced` counts those yielded so far."""

    def __init__(self, stream_id: str, count: int, rate: float, label: str) -> None:
        self.stream_id = stream_id
        self.name = f"transcripts:{stream_id}"
        self.count = count
        self.rate = rate
        self.label = label
        self.produced = 0

    async def __aiter__(self) -> AsyncIterator[Any]:  # type: ignore[override]
        loop = asyncio.get_running_loop()
        started = loop.time()
        for index in range(self.count):
            delay = started + index / self.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.produced += 1
            yield TranscriptEvent(
                stream_id=self.stream_id, t_capture=index / self.rate,
                payload=Transcript(final=True, text=f"{self.label} event {index}",
                                   start=index / self.rate, end=(index + 1) / self.rate))


class SayReady(PipelineObserver):
    def ready(self) -> None:
        print("ready", flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--spool", type=Path)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--device", default="edge")
    parser.add_argument("--stream", default="s0")
    parser.add_argument("--label", default="run")
    parser.add_argument("--keepalive", type=int, default=30)
    args = parser.parse_args(argv)
    config = MqttSinkConfig(url=args.url, spool={"path": args.spool}, reconnect_min_s=0.1,
                            reconnect_max_s=0.5, keepalive=args.keepalive, flush_timeout_s=30)
    pipeline = Pipeline([TranscriptSource(args.stream, args.count, args.rate, args.label)], [],
                        [MqttSink(config, args.device)], device_id=args.device,
                        policy=LIVE, observers=[SayReady()])
    report = asyncio.run(pipeline.run())
    print(f"done {dict(report.last_seq)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
