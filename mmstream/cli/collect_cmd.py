"""`mmstream collect`: the fleet's events from the central broker into PostgreSQL."""

from __future__ import annotations

import signal
import socket
import threading

import typer

from mmstream.cli.app import app, user_errors


@app.command()
def collect(
    broker: str = typer.Argument(..., metavar="MQTT_URL", help="The central broker, e.g. "
                                 "mqtt://central:1883 (mqtts:// for TLS; user:password@ allowed)."),
    db: str = typer.Option(..., "--db", envvar="MMSTREAM_DB", help="postgresql://user@host/"
                           "mmstream (or MMSTREAM_DB; a password is never printed)."),
    group: str = typer.Option("mmstream-collect", "--group", help="Shared-subscription group: "
                              "collectors in one group split the messages."),
    client_id: str | None = typer.Option(None, "--client-id", help="This collector's session "
                                         "on the broker (default: mmstream-collect-<host>); "
                                         "keep it across restarts."),
    prefix: str = typer.Option("mmstream", "--prefix", help="The devices' topic prefix."),
    max_age_days: float = typer.Option(30.0, "--max-age-days", help="Days kept: older daily "
                                       "partitions are dropped."),
    listen: str = typer.Option("127.0.0.1:9466", "--listen", help="HOST:PORT of /health and "
                               "/metrics ('' for none)."),
) -> None:
    """Subscribe to every device's events and write them into PostgreSQL, each exactly once.

    The schema is created or migrated at start; search it with `mmstream search --db`.
    """
    with user_errors():
        from mmstream.fleet.collect_health import HealthServer
        from mmstream.fleet.collector import Collector, CollectSettings
        from mmstream.fleet.pg_schema import database_label

        settings = CollectSettings(
            mqtt_url=broker, db_url=db, group=group, prefix=prefix, max_age_days=max_age_days,
            client_id=client_id or f"mmstream-collect-{socket.gethostname()}")
        collector = Collector(settings)
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda *_: stop.set())
        collector.start()
        server = None
        if listen:
            host, _, port = listen.rpartition(":")
            server = HealthServer(host or "127.0.0.1", int(port), collector.stats,
                                  lambda: collector.refusals.counts)
            server.start()
        where = f"; health on http://{host}:{server.port}/health" if server else ""
        typer.echo(f"collecting {settings.topic} from {broker.split('@')[-1]} into "
                   f"{database_label(db)}{where}", err=True)
        try:
            stop.wait()
        finally:
            collector.stop()
            if server is not None:
                server.stop()
        typer.echo(f"collect: stopped after {collector.stats.rows} rows "
                   f"({collector.stats.duplicates} duplicates, {collector.stats.refused} "
                   "refused)", err=True)
