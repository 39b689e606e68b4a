"""`mmstream serve --db`: the History page over the fleet's PostgreSQL store."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

import typer

from mmstream.cli.app import app, user_errors

if TYPE_CHECKING:
    from mmstream.web.history.fleet import FleetServer


@app.command()
def serve(
    db: str = typer.Option(..., "--db", envvar="MMSTREAM_DB", help="The fleet's PostgreSQL "
                           "store (postgresql://reader@host/mmstream), written by mmstream "
                           "collect; a read-only user or a replica is enough."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address; any other than "
                             "loopback needs MMSTREAM_WEB__TOKEN."),
    port: int = typer.Option(8788, "--port", min=0, max=65535, help="0 picks a free port."),
    token: str | None = typer.Option(None, "--token", envvar="MMSTREAM_WEB__TOKEN",
                                     show_default=False, help="Required on every request "
                                     "(Authorization: Bearer, or ?token=), 16 characters or "
                                     "more; prefer the environment variable to this option."),
) -> None:
    """Serve the History page and its /api/ over every device's events: read-only, searched
    as on a device, with a device filter. No live view (no pipeline runs here).

    The daemon's access rules: loopback only unless a token is set.
    """
    with user_errors():
        from mmstream.web.history.fleet import FleetServer

        server = FleetServer(db, host, port, token)
        server.check_database()
        asyncio.run(_serve(server))


async def _serve(server: FleetServer) -> None:
    await server.start()
    typer.echo(f"serving the history of {server.label} on {server.url}history", err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()
