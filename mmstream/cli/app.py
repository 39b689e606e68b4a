"""The typer application and the one place that turns errors into one clear line."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

import typer

from mmstream.errors import first_user_error

app = typer.Typer(
    name="mmstream",
    help="Edge daemon: camera + microphone -> transcripts, scene and emotion tags -> MQTT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Check pipeline files.", no_args_is_help=True)
app.add_typer(config_app, name="config")

_state = {"debug": False}


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    log_level: str = typer.Option("warning", "--log-level", help="debug, info, warning, error."),
) -> None:
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else getattr(logging, log_level.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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
        if found is None:
            typer.echo(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug "
                       "for the traceback)", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"error: {found}", err=True)
        raise typer.Exit(found.exit_code) from None
