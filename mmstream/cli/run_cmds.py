"""Commands that run a pipeline: run, replay, demo."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import typer

from mmstream.cli.app import app, user_errors

SET_HELP = "Override a pipeline field: a.b=c (repeatable), e.g. sinks.mqtt.url=mqtt://h:1883."


def stream_id_for(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-") or "file0"


def sample_clip() -> Path:
    return Path(str(resources.files("mmstream") / "assets" / "sample.mp4"))


def replay_config(
    media: Path,
    *,
    pipeline: Path | None,
    out: Path | None,
    mqtt: str | None,
    realtime: bool,
    sets: list[str],
    device_id: str | None = None,
) -> Any:
    """The pipeline a replay runs: the given (or default) pipeline with `media` as its source."""
    from mmstream.config import load_pipeline, read_yaml

    base: dict[str, Any] = read_yaml(pipeline) if pipeline else {"device_id": "replay"}
    source = {"kind": "file", "id": stream_id_for(media), "path": str(media),
              "realtime": realtime}
    base["sources"] = [source]
    sinks = dict(base.get("sinks") or {})
    if out is not None:
        sinks["jsonl"] = {"path": str(out)}
    if mqtt is not None:
        sinks["mqtt"] = {**(sinks.get("mqtt") or {}), "url": mqtt}
    if not sinks:
        sinks["jsonl"] = {"path": "-"}
    base["sinks"] = sinks
    if device_id:
        base["device_id"] = device_id
    return load_pipeline(None, base=base, sets=sets)


def execute(config: Any, reload: Callable[[], Any] | None = None) -> None:
    """Run as a daemon (signals, systemd notify, metrics, logging); `reload` serves SIGHUP."""
    from mmstream.runtime.service import run_service

    report = asyncio.run(run_service(config, reload))
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(report.events.items())) or "no events"
    drops = sum(report.drops.values())
    typer.echo(f"done: {counts}; {drops} dropped", err=True)


@app.command()
def run(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML file (see pipelines/)."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Run a pipeline file until its sources end or SIGINT/SIGTERM (then drain and exit 0).

    SIGHUP re-reads the file: if it is valid the pipeline drains and restarts with it,
    otherwise the error is logged and the running pipeline goes on.
    """
    with user_errors():
        from mmstream.config import load_pipeline

        execute(load_pipeline(pipeline, sets=set_),
                reload=lambda: load_pipeline(pipeline, sets=set_))


@app.command()
def replay(
    media: Path = typer.Argument(..., help="Media file to analyse (mp4, mkv, webm, wav, ...)."),
    pipeline: Path | None = typer.Option(None, "--pipeline", "-p",
                                         help="Pipeline file; default: every analysis."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write events as JSONL here."),
    mqtt: str | None = typer.Option(None, "--mqtt", help="Publish to this broker, mqtt://h:p."),
    realtime: bool = typer.Option(False, "--realtime", help="Pace at the media's own rate."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Run a media file through the analyses; events go to --out, --mqtt or stdout.

    As fast as possible (the default), `t_capture` and `t_publish` are media time, so the same
    file always gives the same events.
    """
    with user_errors():
        execute(replay_config(media, pipeline=pipeline, out=out, mqtt=mqtt, realtime=realtime,
                              sets=set_))


@app.command()
def demo(
    mqtt: str | None = typer.Option(None, "--mqtt",
                                    help="Use this broker instead of an embedded one."),
    fast: bool = typer.Option(False, "--fast", help="Do not pace the clip in real time."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Play the bundled sample clip through every analysis, publish to MQTT, show the events.

    With no --mqtt, an MQTT broker is started on 127.0.0.1 (mosquitto if installed, else
    amqtt) and the events shown are the ones a subscriber received from it.
    """
    from mmstream.cli.demo import run_demo

    with user_errors():
        run_demo(sample_clip(), mqtt=mqtt, realtime=not fast, sets=set_)
