"""Command line: `mmstream --help`. Each command module registers itself on the app."""

from __future__ import annotations

import sys

import typer

from mmstream.cli import (  # noqa: F401  (registers commands)
    clip_cmd,
    collect_cmd,
    devices_cmd,
    doctor_cmd,
    ha_cmd,
    inspect_cmds,
    listen_cmd,
    record_cmds,
    report_cmd,
    run_cmds,
    search_cmd,
    serve_cmd,
    train_cmd,
)
from mmstream.cli.app import app
from mmstream.cli.help_text import hoist_global_options, plain_placeholders


def main() -> None:
    command = plain_placeholders(typer.main.get_command(app))
    command.main(args=hoist_global_options(sys.argv[1:]), prog_name="mmstream")
