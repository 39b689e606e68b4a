"""Moments of the daemon's recordings in the browser, on the live view's server (same access
rules: the server's guard runs first; docs/web.md):

    GET /clip?stream=S&from=T&to=T         video/mp4 (H.264 + AAC, cut as `mmstream clip`
                                           cuts it); T: ISO time or epoch seconds, `to` also
                                           +20s; nothing recorded: 404, a bad time: 400,
                                           both {"error": "one line"}
    GET /clip/available?stream=S&from=T&to=T
                                           {"available": true|false}: whether to offer "play"

The cut (reading segments, remuxing) runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from mmstream.errors import ConfigError, MmstreamError
from mmstream.recording import format as fmt
from mmstream.recording.clip import LOOK_BACK_S, clip_from_folder
from mmstream.recording.clip_times import parse_end, parse_moment
from mmstream.recording.segments import covering, list_segments

RecordDir = Callable[[], Path | None]
MAX_CLIP_S = 600.0  # one request cuts at most this much


class ClipApi:
    def __init__(self, record_dir: RecordDir) -> None:
        self.record_dir = record_dir

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/clip", self._clip)
        app.router.add_get("/clip/available", self._available)

    def _asked(self, query: Any) -> tuple[Path, str | None, float, float]:
        folder = self.record_dir()
        if folder is None:
            raise MmstreamError("this daemon records no segments (record.dir is not set)")
        t0 = parse_moment(query.get("from", ""), "from")
        t1 = parse_end(query.get("to", "+20s"), t0, "to", seconds_into=False)
        if not 0 < t1 - t0 <= MAX_CLIP_S:
            raise ConfigError(f"a clip lasts more than 0 and at most {MAX_CLIP_S:g} s")
        return folder, query.get("stream") or None, t0, t1

    async def _clip(self, request: web.Request) -> web.StreamResponse:
        try:
            folder, stream, t0, t1 = self._asked(request.query)
        except ConfigError as exc:  # a time that is no time
            return web.json_response({"error": str(exc)}, status=400)
        except MmstreamError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        try:
            body = await asyncio.to_thread(_cut, folder, stream, t0, t1)
        except MmstreamError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        return web.Response(body=body, content_type="video/mp4",
                            headers={"Cache-Control": "no-store"})

    async def _available(self, request: web.Request) -> web.StreamResponse:
        try:
            folder, stream, t0, t1 = self._asked(request.query)
        except MmstreamError as exc:
            return web.json_response({"available": False, "why": str(exc)})
        found = await asyncio.to_thread(_covered, folder, stream, t0, t1)
        return web.json_response({"available": found}, headers={"Cache-Control": "no-store"})


def _cut(folder: Path, stream: str | None, t0: float, t1: float) -> bytes:
    with tempfile.TemporaryDirectory(prefix="mmstream-clip-") as scratch:
        out = Path(scratch) / "clip.mp4"
        clip_from_folder(folder, stream, t0, t1, out)
        return out.read_bytes()


def _covered(folder: Path, stream: str | None, t0: float, t1: float) -> bool:
    return bool(covering(list_segments(folder), stream, fmt.to_ns(t0 - LOOK_BACK_S),
                         fmt.to_ns(t1)))
