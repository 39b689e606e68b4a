"""`mmstream doctor [PIPELINE]`: is this box ready? `mmstream health`: is the daemon alive?"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import typer

from mmstream.cli.app import app, user_errors

HEARTBEAT = "mmstream_loop_heartbeat_timestamp_seconds"


@app.command()
def doctor(
    pipeline: Path | None = typer.Argument(None, help="Pipeline file: check what it needs."),
    set_: list[str] = typer.Option([], "--set", help="Override a pipeline field: a.b=c."),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Check Python/torch/CUDA, cameras, audio devices, models, broker and writable dirs.

    Exits 1 only when something the given pipeline needs is missing (without a pipeline:
    only Python and torch are needed); each problem comes with its fix.
    """
    from mmstream.doctor import run_checks

    with user_errors():
        config = None
        if pipeline is not None:
            from mmstream.config import load_pipeline
            from mmstream.preflight import durable_spool

            config = durable_spool(load_pipeline(pipeline, sets=set_))  # as `run` takes it
        checks = run_checks(config)
    failed = [check for check in checks if check.failed_needed]
    if as_json:
        typer.echo(json.dumps({"ok": not failed, "checks": [c.as_dict() for c in checks]},
                              indent=2))
    else:
        _print_table(checks, pipeline)
    raise typer.Exit(1 if failed else 0)


def _print_table(checks: list, pipeline: Path | None) -> None:  # type: ignore[type-arg]
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mmstream doctor{f' — {pipeline}' if pipeline else ''}")
    for column in ("check", "status", "found", "fix"):
        table.add_column(column, overflow="fold")
    for check in checks:
        if check.ok:
            status = "[green]ok[/]"
        elif check.needed:
            status = "[red]MISSING[/]"
        else:
            status = "[yellow]absent (not needed)[/]"
        table.add_row(check.name, status, check.detail, "" if check.ok else check.fix)
    console = Console(width=160)
    console.print(table)
    failed = [c.name for c in checks if c.failed_needed]
    console.print(f"[red]not ready: {', '.join(failed)}[/]" if failed else "[green]ready[/]")


def heartbeat_age(text: str, now: float) -> float | None:
    match = re.search(rf"^{HEARTBEAT} ([0-9.e+]+)$", text, re.MULTILINE)
    if match is None or float(match.group(1)) == 0:
        return None
    return now - float(match.group(1))


@app.command()
def health(
    url: str = typer.Option("http://127.0.0.1:9108/metrics", "--url",
                            help="The daemon's metrics endpoint (runtime.metrics)."),
    max_age: float = typer.Option(30.0, "--max-age", help="Oldest acceptable loop heartbeat (s)."),
) -> None:
    """Exit 0 when the daemon's event loop beat recently (a container HEALTHCHECK)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        typer.echo(f"unhealthy: {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    age = heartbeat_age(text, time.time())
    if age is None or age > max_age:
        shown = "no heartbeat yet" if age is None else f"last heartbeat {age:.0f} s ago"
        typer.echo(f"unhealthy: {shown} (event loop stuck or pipeline not running)", err=True)
        raise typer.Exit(1)
    typer.echo(f"healthy: event loop beat {age:.1f} s ago")
