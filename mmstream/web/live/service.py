"""The live view as the daemon runs it (daemon.py calls this).

One `LiveWeb` for the daemon's whole life, holding one `LiveView` (what the page shows), so a
reload (SIGHUP) keeps what the page shows and the open pages stay connected; one server, moved
only when a reload changes where it listens (a new token only ends the open streams: they must
come back with it).
"""

from __future__ import annotations

import logging

from mmstream.config import PipelineConfig
from mmstream.errors import ConfigError
from mmstream.web.live.server import WebServer
from mmstream.web.live.sink import LiveSink
from mmstream.web.live.view import LiveView

log = logging.getLogger(__name__)
ENDED_GRACE_S = 2.0  # how long open pages get to receive the end of a finished run


class LiveWeb:
    def __init__(self) -> None:
        self.view: LiveView | None = None
        self.server: WebServer | None = None

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    async def apply(self, config: PipelineConfig, *, first: bool) -> bool:
        """Serve as `config` asks (or stop serving). Returns whether a server started now.

        A port that cannot be had is a ConfigError at the daemon's start; at a reload it is
        logged and the pipeline runs on without the view (the next reload may fix it)."""
        wanted = config.web
        if not config.serves_web:
            await self.close()
            return False
        if self.view is None:
            self.view = LiveView(wanted, config.device_id)
        server = self.server
        if server is not None and wanted.host == server.host and wanted.port in (0, server.port):
            server.set_token(wanted.token)
            return False
        await self.close()
        server = WebServer(self.view, wanted.host, wanted.port, wanted.token)
        try:
            await server.start()
        except ConfigError as exc:
            if first:
                raise
            log.error("reload: the web view is off until the next reload: %s", exc)
            return False
        self.server = server
        return True

    def public_url(self, config: PipelineConfig) -> str | None:
        """Where others reach the view: the configured `web.public_url`, else the server's."""
        if self.server is None:
            return None
        return config.web.public_url or self.server.public_url()

    def sink_for(self, config: PipelineConfig, reloads: int) -> LiveSink | None:
        if self.server is None or self.view is None:
            return None
        return self.view.sink_for(config, reloads)

    async def close(self, *, ended: bool = False) -> None:
        """Stop serving; `ended`: the run finished by itself, and open pages are told so
        first (a daemon stopped by a signal may come back: its pages keep reconnecting)."""
        server, self.server = self.server, None
        if server is None:
            return
        if ended and self.view is not None:
            await self.view.end(ENDED_GRACE_S)
        await server.close()
