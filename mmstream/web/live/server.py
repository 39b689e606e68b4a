"""The live view's web server: aiohttp on the daemon's own event loop (docs/web.md).

    GET /                    the page (template live.html.j2, scripts and styles inlined)
    GET /updates             Server-Sent Events: what changed (updates.py)
    GET /frame/<stream>.jpg  the stream's newest analysed frame, drawn on (view.py)
    GET /status              JSON: viewers, streams, whether a pipeline runs
    GET /clip?stream=&from=&to=  a moment of the recordings as mp4 (web/clips.py)

Every request needs the token when one is set; without one the server is on loopback and
answers only loopback names (mmstream/web/access.py, shared with `mmstream serve --db`).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Any

from aiohttp import web

from mmstream.errors import ConfigError
from mmstream.web.access import guard
from mmstream.web.assets import render
from mmstream.web.live.updates import stream_updates
from mmstream.web.live.view import LiveView

log = logging.getLogger(__name__)

SHUTDOWN_S = 2.0  # open update streams are cancelled on close; requests get this long
PAGE_POLICY = ("default-src 'none'; connect-src 'self'; img-src 'self' data:; "
               "style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'")


class WebServer:
    """`await WebServer(view, host, port, token).start()`; `await close()` when done."""

    def __init__(self, view: LiveView, host: str, port: int, token: str | None = None) -> None:
        self.view = view
        self.host = host
        self.requested_port = port
        self.port = port
        self.token = token  # read per request: a reload may change it without a new bind
        self._streams: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def public_url(self) -> str:
        """The address to give others (Home Assistant): a wildcard bind is named by the
        machine's name."""
        if self.host in ("0.0.0.0", "::", ""):
            return f"http://{socket.getfqdn()}:{self.port}/"
        return self.url

    async def start(self) -> None:
        app = web.Application(middlewares=[guard(lambda: self.token)])
        app.router.add_get("/", self._page)
        app.router.add_get("/updates", self._updates)
        app.router.add_get("/frame/{stream}.jpg", self._frame)
        app.router.add_get("/status", self._status)
        from mmstream.web.history.api import HistoryApi

        self.history = HistoryApi(lambda: self.view.history_path, lambda: self.view.device_id)
        self.history.add_routes(app)  # the History page and /api/: docs/web.md
        from mmstream.web.clips import ClipApi

        ClipApi(lambda: self.view.record_dir).add_routes(app)  # /clip: docs/web.md
        app.on_shutdown.append(self._end_streams)
        # no access log: requests may carry the token in their query; handlers of a page that
        # went away are cancelled, so a closed tab stops costing anything at once
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                               shutdown_timeout=SHUTDOWN_S)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(_bind_error(self.host, self.port, exc)) from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])  # the one port 0 picked

    def set_token(self, token: str | None) -> None:
        """A reload's token: the open streams end, and come back only with the new one."""
        if token != self.token:
            self.token = token
            for task in list(self._streams):
                task.cancel()

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _end_streams(self, app: web.Application) -> None:
        for task in list(self._streams):
            task.cancel()

    # ---- requests ---------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.StreamResponse:
        wanted = self.view.config
        page = render("live.html.j2", device_id=self.view.device_id,
                      settings={"history_s": wanted.history_s, "max_events": wanted.max_events,
                                "max_transcripts": wanted.max_transcripts})
        return web.Response(text=page, content_type="text/html",
                            headers={"Content-Security-Policy": PAGE_POLICY,
                                     "Cache-Control": "no-store"})

    async def _updates(self, request: web.Request) -> web.StreamResponse:
        return await stream_updates(request, self.view, self._streams)

    async def _frame(self, request: web.Request) -> web.StreamResponse:
        jpeg = await self.view.picture(request.match_info["stream"])
        if jpeg is None:
            raise web.HTTPNotFound()
        return web.Response(body=jpeg, content_type="image/jpeg",
                            headers={"Cache-Control": "no-store"})

    async def _status(self, request: web.Request) -> web.StreamResponse:
        state = self.view.state
        return web.json_response({
            "device_id": self.view.device_id, "viewers": self.view.viewers,
            "running": self.view.health.pipeline is not None, "phase": self.view.phase,
            "revision": state.revision,
            "reloads": self.view.health.reloads,
            "streams": {stream_id: {"frames": stream.frame_no, "events": len(stream.events)}
                        for stream_id, stream in state.streams.items()}})


def _bind_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (f"web.port {port}: address already in use on {host}: another program (another "
                "mmstream?) listens there; set web.port (or MMSTREAM_WEB__PORT) to a free "
                "port, 0 picks one, or web.enabled: false")
    return f"web.host/web.port: cannot listen on {host}:{port}: {exc.strerror or exc}"
