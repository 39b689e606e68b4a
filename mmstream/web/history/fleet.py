"""`mmstream serve --db`: the History page and its `/api/` over the fleet's PostgreSQL store.

Read-only (a read-only connection per worker thread: fleet/pg_search.py), no live view (no
pipeline runs here), the daemon's access rules (web/access.py): loopback by default, a token
anywhere else. `/` leads to the page.
"""

from __future__ import annotations

import errno

from aiohttp import web

from mmstream.config.web import is_loopback
from mmstream.errors import ConfigError
from mmstream.fleet.pg_schema import connect, database_label
from mmstream.fleet.pg_search import PgHistory
from mmstream.web.access import guard
from mmstream.web.history.api import HistoryApi

DEFAULT_PORT = 8788  # beside a daemon's live view on 8787
MIN_TOKEN_CHARS = 16


def check_access(host: str, token: str | None) -> None:
    """The daemon's rule (config/web.py), as one line: off loopback only with a token."""
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"the web token has {len(token)} characters: use {MIN_TOKEN_CHARS} "
                          "or more")
    if not is_loopback(host) and not token:
        raise ConfigError(f"--host {host} is reachable from other machines: set "
                          "MMSTREAM_WEB__TOKEN to a secret of 16 or more characters, or keep "
                          "the host on 127.0.0.1 and use an SSH tunnel (docs/fleet.md)")


class FleetServer:
    """`await FleetServer(url, host, port, token).start()`; `await close()` when done."""

    def __init__(self, db_url: str, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 token: str | None = None) -> None:
        check_access(host, token)
        self.db_url, self.host, self.port, self.token = db_url, host, port, token
        self.label = database_label(db_url)
        self._runner: web.AppRunner | None = None
        self._api: HistoryApi | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def check_database(self) -> None:
        """A wrong URL or password: one line now, not an error on every search (blocking:
        call it before the loop runs, or in a thread)."""
        connect(self.db_url, read_only=True).close()

    async def start(self) -> None:
        app = web.Application(middlewares=[guard(lambda: self.token)])
        self._api = HistoryApi(lambda: None, lambda: "fleet", fleet=PgHistory(self.db_url))
        self._api.add_routes(app)
        app.router.add_get("/", self._home)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            why = ("address already in use: pick another --port, 0 for a free one"
                   if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc))
            raise ConfigError(f"--host/--port: cannot listen on {self.host}:{self.port}: {why}"
                              ) from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])  # the one port 0 picked

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self._api is not None:
            self._api.close()

    async def _home(self, request: web.Request) -> web.StreamResponse:
        query = request.query_string  # a ?token= goes along
        raise web.HTTPFound("history" + (f"?{query}" if query else ""))
