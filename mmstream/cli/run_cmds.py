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


# What --deterministic forces: media-time stamps, no shedding, batches that do not depend on
# timing, and CPU maths (GPU kernels may pick different algorithms or reduction orders).
DETERMINISTIC_SETS = (
    "runtime.clock=media",
    "runtime.overload.mode='off'",  # quoted: YAML reads a bare off as false
    "stages.infer.batching=deterministic",
    "stages.infer.device=cpu",
    "stages.infer.precision=fp32",
    "stages.transcribe.device=cpu",
)


def replay_source(
    media: Path,
    *,
    realtime: bool = False,
    speed: float | None = None,
    start: float | None = None,
    end: float | None = None,
    streams: list[str] | None = None,
) -> dict[str, Any]:
    """The source section for one input: a recording (.mcap) or a media file."""
    if media.suffix.lower() == ".mcap":
        source: dict[str, Any] = {"kind": "recording", "id": stream_id_for(media),
                                  "path": str(media)}
        if speed is not None or realtime:
            source["speed"] = speed or 1.0
        for key, value in (("start_s", start), ("end_s", end), ("streams", streams)):
            if value is not None:
                source[key] = value
        return source
    if speed is not None or start is not None or end is not None or streams is not None:
        from mmstream.errors import ConfigError

        raise ConfigError(f"--speed, --start, --end and --streams work on .mcap recordings; "
                          f"{media} is a media file (use --realtime to pace it)")
    return {"kind": "file", "id": stream_id_for(media), "path": str(media), "realtime": realtime}


def replay_config(
    media: Path,
    *,
    pipeline: Path | None,
    out: Path | None,
    mqtt: str | None,
    realtime: bool,
    sets: list[str],
    device_id: str | None = None,
    source: dict[str, Any] | None = None,
    deterministic: bool = False,
    stdout_by_default: bool = True,
) -> Any:
    """The pipeline a replay runs: the given (or default) pipeline with `media` as its source."""
    from mmstream.config import load_pipeline, read_yaml

    base: dict[str, Any] = read_yaml(pipeline) if pipeline else {"device_id": "replay"}
    base["sources"] = [source or replay_source(media, realtime=realtime)]
    sinks = dict(base.get("sinks") or {})
    if out is not None:
        sinks["jsonl"] = {"path": str(out)}
    if mqtt is not None:
        sinks["mqtt"] = {**(sinks.get("mqtt") or {}), "url": mqtt}
    if not sinks and stdout_by_default:
        sinks["jsonl"] = {"path": "-"}
    base["sinks"] = sinks
    if device_id:
        base["device_id"] = device_id
    forced = list(DETERMINISTIC_SETS) if deterministic else []
    return load_pipeline(None, base=base, sets=[*sets, *forced])


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
    source: str = typer.Argument(..., metavar="INPUT", help="A recording (.mcap), a media "
                                 "file (mp4, mkv, wav ...), or a folder or glob of them."),
    pipeline: Path | None = typer.Option(None, "--pipeline", "-p",
                                         help="Pipeline file; default: every analysis."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write events as JSONL here; "
                                    "for a folder or glob: the folder for one JSONL per input."),
    mqtt: str | None = typer.Option(None, "--mqtt", help="Publish to this broker, mqtt://h:p."),
    realtime: bool = typer.Option(False, "--realtime", help="Pace at the input's own rate."),
    speed: float | None = typer.Option(None, "--speed", min=0.01,
                                       help="Pace a recording at this multiple of real time."),
    start: float | None = typer.Option(None, "--start", min=0,
                                       help="Recording: start this many seconds in."),
    end: float | None = typer.Option(None, "--end", min=0,
                                     help="Recording: stop this many seconds in."),
    streams: str | None = typer.Option(None, "--streams", help="Recording: comma-separated "
                                       "stream ids to replay, e.g. cam0,mic0."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Force the settings that "
                                       "make runs byte-identical (media clock, CPU, no "
                                       "shedding, deterministic batches)."),
    resume: bool = typer.Option(True, "--resume/--no-resume",
                                help="Batch: skip inputs whose output already exists."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Run a recording or media file (or a folder/glob of them) through the analyses.

    As fast as possible (the default), `t_capture` and `t_publish` are the input's own time,
    so the same input always gives the same events. A folder or glob is a batch: one JSONL
    per input in --out, a progress bar, a summary table; exit code 3 when some inputs failed.
    """
    with user_errors():
        from mmstream.replay.batch import is_batch_input

        picked = [s.strip() for s in streams.split(",") if s.strip()] if streams else None
        options = {"realtime": realtime, "speed": speed, "start": start, "end": end,
                   "streams": picked}
        if is_batch_input(source):
            _replay_batch(source, pipeline=pipeline, out=out, mqtt=mqtt, options=options,
                          deterministic=deterministic, resume=resume, sets=set_)
            return
        media = Path(source)
        execute(replay_config(media, pipeline=pipeline, out=out, mqtt=mqtt, realtime=realtime,
                              sets=set_, source=replay_source(media, **options),
                              deterministic=deterministic))


def _replay_batch(pattern: str, *, pipeline: Path | None, out: Path | None, mqtt: str | None,
                  options: dict[str, Any], deterministic: bool, resume: bool,
                  sets: list[str]) -> None:
    from mmstream.errors import ConfigError
    from mmstream.replay.batch import BatchRunner, exit_code, expand_inputs, summary_table

    if out is None:
        raise ConfigError(f"replaying a folder or glob ({pattern}) needs --out DIR for the "
                          "results")
    inputs, base = expand_inputs(pattern)

    def config_for(media: Path, events: Path) -> Any:
        return replay_config(media, pipeline=pipeline, out=events, mqtt=mqtt,
                             realtime=bool(options["realtime"]), sets=sets,
                             source=replay_source(media, **options),
                             deterministic=deterministic)

    runner = BatchRunner(inputs, base, out, config_for, resume=resume)
    results = asyncio.run(_run_until_signal(runner.run))
    from rich.console import Console

    Console().print(summary_table(results, base))  # the result: stdout; progress: stderr
    code = exit_code(results)
    if code:
        failed = [r.path for r in results if r.status != "ok" and r.status != "skipped"]
        typer.echo(f"error: {len(failed)} of {len(results)} inputs failed: "
                   f"{', '.join(failed)}", err=True)
        raise typer.Exit(code)


async def _run_until_signal(work: Callable[[asyncio.Event], Any]) -> Any:
    """SIGINT/SIGTERM stop the current input cleanly and end the batch."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await work(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


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
