"""A process that feeds the history sink synthetic events until signalled (tests of what a
SIGKILL or SIGTERM leaves). Usage: python -m tests.history.ingest_process STORE"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

from mmstream.config import HistoryConfig
from mmstream.history.sink import HistorySink
from mmstream.history.synthetic import synthetic_events


async def main(path: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    submitted = 0
    async with HistorySink(HistoryConfig(path=path, commit_interval_s=0.2), path) as sink:
        print("ready", flush=True)
        for event in synthetic_events(10_000_000, start=time.time(), streams=2):
            await sink.send(event)
            submitted += 1
            if submitted % 200 == 0:
                await asyncio.sleep(0.01)  # a steady stream, as a pipeline delivers
            if stop.is_set():
                break
    print(f"submitted {submitted}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
