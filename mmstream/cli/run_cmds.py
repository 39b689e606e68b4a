"""Commands that run a pipeline: run, replay, demo."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from mmstream.cli.app import app, user_errors

SET_HELP = "Override a pipeline field: a.b=c (repeatable), e.g. sinks.mqtt.url=mqtt://h:1883."


def execute(config: Any, reload: Callable[[], Any] | None = None) -> None:
    """Run as a daemon (signals, systemd notify, metrics, logging); `reload` serves SIGHUP.
    SIGINT/SIGTERM are a daemon's normal stop: it drains and exits 0."""
    from mmstream.daemon import run_service

    report, _ = asyncio.run(run_service(config, reload))
    say_done(report)


def say_done(report: Any) -> None:
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(report.events.items())) or "no events"
    drops = {where: n for where, n in sorted(report.drops.items()) if n}
    # windows that carried results over (change gating) are counted with drops, but lost nothing
    carried = {where: drops.pop(where) for where in list(drops) if ":carried:" in where}
    why = f" ({', '.join(f'{where} {n}' for where, n in drops.items())})" if drops else ""
    also = (f"; {sum(carried.values())} carried over (frame unchanged, image results reused)"
            if carried else "")
    typer.echo(f"done: {counts}; {sum(drops.values())} dropped{why}{also}", err=True)


@app.command()
def run(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML file (see pipelines/)."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Run a pipeline file until its sources end or SIGINT/SIGTERM (then drain and exit 0).

    SIGHUP re-reads the file: if it is valid the pipeline drains and restarts with it,
    otherwise the error is logged and the running pipeline goes on.

    A window whose frame did not change since the stream's last analysed one reuses that
    frame's scene and face results (its events say carried: true);
    --set stages.infer.change_gate.enabled=false analyses every window (docs/models.md).
    """
    with user_errors():
        from mmstream.preflight import load_checked

        execute(load_checked(pipeline, set_), reload=lambda: load_checked(pipeline, set_))


@app.command()
def replay(
    source: str = typer.Argument(..., metavar="INPUT", help="A recording (.mcap), a media "
                                 "file (mp4, mkv, wav ...), or a folder or glob of them."),
    pipeline: Path | None = typer.Option(None, "--pipeline", "-p",
                                         help="Pipeline file; default: every analysis."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write events as JSONL here; "
                                    "for a folder or glob: the folder for one JSONL per input."),
    mqtt: str | None = typer.Option(None, "--mqtt", help="Publish to this broker, mqtt://h:p."),
    ha: bool = typer.Option(False, "--ha", help="With --mqtt: publish Home Assistant discovery "
                            "too, so the replayed device appears there (docs/mqtt.md)."),
    realtime: bool = typer.Option(False, "--realtime", help="Pace at the input's own rate."),
    speed: float | None = typer.Option(None, "--speed", min=0.01,
                                       help="Pace a recording at this multiple of real time."),
    start: float | None = typer.Option(None, "--start", min=0,
                                       help="Recording: start this many seconds in."),
    end: float | None = typer.Option(None, "--end", min=0,
                                     help="Recording: stop this many seconds in."),
    streams: str | None = typer.Option(None, "--streams", help="Recording: comma-separated "
                                       "stream ids to replay, e.g. cam0,mic0."),
    cpu_fp32: bool = typer.Option(False, "--cpu-fp32", help="Run the models on the CPU in "
                                  "fp32, so a replay gives the same bytes on any machine (a "
                                  "fast replay already stamps media time, never sheds and "
                                  "batches by count)."),
    cpu_fp32_old_name: bool = typer.Option(False, "--deterministic", hidden=True),  # its old name
    resume: bool = typer.Option(True, "--resume/--no-resume",
                                help="Batch: skip inputs whose output already exists."),
    output_format: str = typer.Option("jsonl", "--format", help="Batch: jsonl or parquet "
                                      "(parquet needs pyarrow, in mmstream[ray])."),
    on_ray: bool = typer.Option(False, "--ray", help="Batch: process the files on a Ray "
                                "cluster (pip install 'mmstream[ray]'); a local one unless "
                                "--ray-address or RAY_ADDRESS names one."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="With --ray: the "
                                           "cluster, e.g. auto or ray://head:10001."),
    ray_workers: int | None = typer.Option(None, "--ray-workers", min=1, help="With --ray: "
                                           "parallel workers (default: cluster CPUs / "
                                           "threads)."),
    ray_threads: int = typer.Option(1, "--ray-threads", min=1,
                                    help="With --ray: CPU threads per worker."),
    ray_gpus: float = typer.Option(0.0, "--ray-gpus", min=0.0, help="With --ray: GPUs per "
                                   "worker (0.5 = two workers share one); runs models on CUDA."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    report: Path | None = typer.Option(None, "--report", help="With --out: also write an HTML "
                                       "report of the events (mmstream report); for a folder "
                                       "or glob, this is the index page, and each input's "
                                       "report goes beside its events."),
    history: Path | None = typer.Option(None, "--history", help="Also keep the events in this "
                                        "history store (SQLite), searchable with mmstream "
                                        "search --history PATH; a batch's inputs share it."),
    db: str | None = typer.Option(None, "--db", help="Also write the events into the fleet's "
                                  "PostgreSQL store (postgresql://user@host/mmstream), "
                                  "searchable with mmstream search --db; with --ray too (the "
                                  "driver writes what the workers send back)."),
) -> None:
    """Run a recording or media file (or a folder/glob of them) through the analyses.

    As fast as possible (the default), `t_capture` and `t_publish` are the input's own time,
    so the same input always gives the same events. A folder or glob is a batch: one JSONL
    per input in --out, a progress bar, a summary table; exit code 3 when some inputs failed.
    With --ray the batch's files are spread over the workers of a Ray cluster.
    """
    cpu_fp32 = cpu_fp32 or cpu_fp32_old_name
    with user_errors():
        from mmstream.errors import ConfigError
        from mmstream.replay.batch import is_batch_input

        if output_format not in ("jsonl", "parquet"):
            raise ConfigError(f"--format {output_format}: use jsonl or parquet")
        from mmstream.replay.setup import ReplayOptions, ReplayPlan, replay_config

        if history is not None:
            from mmstream.history.setup import check_history_target

            check_history_target(history, "--history")
        if db is not None and output_format != "jsonl":
            raise ConfigError("--db loads the events as JSONL: use --format jsonl")
        from mmstream.cli import replay_db

        store = replay_db.opened_store(db) if db is not None else None
        picked = tuple(s.strip() for s in streams.split(",") if s.strip()) if streams else None
        options = ReplayOptions(realtime, speed, start, end, picked)
        ray_options = None
        if on_ray:
            from mmstream.replay.on_ray import RayOptions

            ray_options = RayOptions(ray_address, ray_workers, ray_threads, ray_gpus)
        if report is not None and out is None:
            raise ConfigError("--report needs --out (events.jsonl, or a folder for a batch)")
        if report is not None and output_format != "jsonl":
            raise ConfigError("--report reads the events as JSONL: use --format jsonl")
        if is_batch_input(source):
            plan = ReplayPlan(pipeline, mqtt, tuple(set_), options, cpu_fp32,
                              history=history)
            _replay_batch(source, plan, out=out, resume=resume, fmt=output_format,
                          ray_options=ray_options, report=report, db=(db, store))
            return
        if on_ray or output_format != "jsonl":
            raise ConfigError(f"--ray and --format work on a folder or glob of inputs; "
                              f"{source} is one file")
        from mmstream.cli.one_replay import run_one

        media = Path(source)
        with replay_db.events_file(out) as written:
            target = out if store is None else written
            done = run_one(media, lambda events: replay_config(
                media, pipeline=pipeline, out=events, mqtt=mqtt, options=options, sets=set_,
                home_assistant=ha, cpu_fp32=cpu_fp32, history=history), target)
            say_done(done)
            if store is not None and db is not None:
                replay_db.load(store, [(written, str(media.absolute()))], db)
        if report is not None and out is not None:
            from mmstream.cli.report_cmd import write_replay_report

            write_replay_report(out, media, report)
    exit_if_damaged(done, out)


def exit_if_damaged(report: Any, out: Path | None) -> None:
    """A cut recording is replayed as far as it is readable, and that is not success."""
    if report.damage:
        from mmstream.errors import DAMAGED_INPUT_EXIT

        kept = f"; the events of its readable part are in {out}" if out is not None else ""
        typer.echo(f"warning: damaged input: {'; '.join(report.damage)}{kept}", err=True)
        raise typer.Exit(DAMAGED_INPUT_EXIT)


def _replay_batch(pattern: str, plan: Any, *, out: Path | None, resume: bool,
                  fmt: Any, ray_options: Any, report: Path | None = None,
                  db: tuple[str | None, Any] = (None, None)) -> None:
    from rich.console import Console

    from mmstream.cli.replay_view import ConsoleProgress, RayConsoleProgress, summary_table
    from mmstream.errors import ConfigError
    from mmstream.replay.batch import BatchRunner, exit_code, expand_inputs

    if out is None:
        raise ConfigError(f"replaying a folder or glob ({pattern}) needs --out DIR for the "
                          "results")
    inputs, base = expand_inputs(pattern)
    if fmt == "parquet":  # say so before the first file, not once per file
        from mmstream.replay.parquet import require_pyarrow

        require_pyarrow()
    if ray_options is not None:
        from mmstream.replay.on_ray import RayBatchRunner

        results = RayBatchRunner(inputs, base, out, plan, ray_options, resume=resume,
                                 fmt=fmt, progress=RayConsoleProgress()).run()
    else:
        runner = BatchRunner(inputs, base, out, plan.config_for, resume=resume, fmt=fmt,
                             progress=ConsoleProgress())
        results = asyncio.run(_run_until_signal(runner.run))
    Console().print(summary_table(results, base))  # the result: stdout; progress: stderr
    url, store = db
    if url is not None:  # what this run made (a resumed input was loaded when it was made)
        from mmstream.cli.replay_db import load

        load(store, [(Path(r.output), str(Path(r.path).absolute())) for r in results
                     if r.status in ("ok", "damaged") and r.output], url)
    if report is not None:
        from mmstream.cli.report_cmd import write_batch_reports

        write_batch_reports(results, base, report)
    code = exit_code(results)
    if code:
        failed = [r.path for r in results if r.status in ("failed", "not run")]
        damaged = [r.path for r in results if r.status == "damaged"]
        if failed:
            typer.echo(f"error: {len(failed)} of {len(results)} inputs failed: "
                       f"{', '.join(failed)}", err=True)
        if damaged:
            typer.echo(f"warning: {len(damaged)} of {len(results)} inputs were damaged (their "
                       f"readable part was replayed): {', '.join(damaged)}", err=True)
        raise typer.Exit(code)


async def _run_until_signal(work: Callable[[asyncio.Event], Any]) -> Any:
    """SIGINT/SIGTERM stop the current input cleanly and end the batch."""
    from mmstream.runtime.signals import stop_on_signals

    with stop_on_signals() as signals:
        return await work(signals.stop)


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
    from mmstream.replay.setup import sample_clip

    with user_errors():
        run_demo(sample_clip(), mqtt=mqtt, realtime=not fast, sets=set_)
