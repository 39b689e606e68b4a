"""The typer application and the one place that turns errors into one clear line."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import typer

from mmstream.errors import OutputClosed, first_user_error

app = typer.Typer(
    name="mmstream",
    help="Edge daemon: camera + microphone -> transcripts, scene and emotion tags -> MQTT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # click's plain help: paragraphs re-wrapped to the terminal, `[ray]` printed as written
    # (rich markup would eat it), no `<bool>`/`<str>` type labels on every option
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Check pipeline files.", no_args_is_help=True,
                         rich_markup_mode=None)
app.add_typer(config_app, name="config")

_state = {"debug": False}


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs (before "
                               "or after the command: mmstream replay x.mp4 --debug)."),
    log_level: str | None = typer.Option(
        None, "--log-level", help="debug, info, warning, error (default: the pipeline's "
        "runtime.logging.level, else warning)."),
    log_format: str | None = typer.Option(
        None, "--log-format", help="text or json (one object per line); secrets are masked."),
) -> None:
    from mmstream.logs import LEVEL_NAMES, configure_from_cli

    _state["debug"] = debug
    if log_level is not None and log_level.lower() not in LEVEL_NAMES:
        raise typer.BadParameter(f"{log_level!r}: use one of {', '.join(LEVEL_NAMES)}",
                                 param_hint="--log-level")
    if log_format is not None and log_format not in ("text", "json"):
        raise typer.BadParameter(f"{log_format!r}: use text or json", param_hint="--log-format")
    configure_from_cli(log_level, log_format, debug)


def _silence_stdout() -> None:
    """Python flushes stdout at exit: into a closed pipe that prints a BrokenPipeError."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print `error: <message>` and exit non-zero; the traceback only with --debug."""
    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except BaseException as exc:
        if _state["debug"]:
            raise
        found = first_user_error(exc)
        if isinstance(found, OutputClosed):
            _silence_stdout()
            raise typer.Exit(0) from None
        if found is None:
            typer.echo(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug "
                       "for the traceback)", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"error: {found}", err=True)
        raise typer.Exit(found.exit_code) from None
