"""SIGINT/SIGTERM: the first asks for an orderly drain, a second one stops at once."""

from __future__ import annotations

import asyncio
import signal

from mmstream.runtime.pipeline import Pipeline, PipelineReport


async def run_until_signalled(pipeline: Pipeline) -> PipelineReport:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and main is not None:
            main.cancel()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        return await pipeline.run(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
