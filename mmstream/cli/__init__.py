"""Command line: `mmstream --help`. Each command module registers itself on the app."""

from __future__ import annotations

from mmstream.cli import (  # noqa: F401  (registers commands)
    devices_cmd,
    doctor_cmd,
    ha_cmd,
    inspect_cmds,
    listen_cmd,
    record_cmds,
    report_cmd,
    run_cmds,
    train_cmd,
)
from mmstream.cli.app import app


def main() -> None:
    app()
