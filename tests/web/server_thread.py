"""A web server on an event loop of its own thread, for a browser (or urllib) to visit."""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class LoopThread:
    """Starts `server` (anything with `start()`, `close()` and `url`) on a loop of its own."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)

    @property
    def url(self) -> str:
        return str(self.server.url).rstrip("/")

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
