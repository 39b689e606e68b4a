"""Commands that look at the contract and the configuration without running anything."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mmstream.cli.app import app, config_app, user_errors


@app.command()
def schema() -> None:
    """Print the JSON Schema of every event mmstream publishes."""
    from mmstream.events import json_schema

    typer.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


@config_app.command("validate")
def config_validate(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML file."),
    set_: list[str] = typer.Option([], "--set", help="Override a field: a.b=c (repeatable)."),
) -> None:
    """Check a pipeline file as `run` would (with env and --set overrides), short of opening
    devices and connecting: fields, files that must exist, folders to write in, the broker URL,
    models. Errors name the field path and where a bad value came from."""
    from mmstream.preflight import load_checked

    with user_errors():
        config = load_checked(pipeline, set_)
    kinds = ", ".join(f"{s.kind}:{s.id}" for s in config.sources)
    typer.echo(f"{pipeline}: valid (device {config.device_id}; sources {kinds})")
