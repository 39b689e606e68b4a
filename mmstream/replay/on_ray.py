"""Archive reprocessing on Ray: a folder of recordings through the analyses on many workers.

Ray Data reads the input files (`read_binary_files`, so workers need no shared filesystem with
the driver) and hands each one to a pool of actors. An actor keeps its models loaded between
files (whisper and the VAD are cached per process) and runs the very pipeline a local replay
runs: `replay_file` with the same `ReplayPlan`, so stages, batching and model code are shared,
not reimplemented. The events come back to the driver, which writes `<out>/<name>.jsonl` (or
`.parquet`) through a `.partial` file and the same `summary.json` as a local batch, and tells
its `BatchProgress` (the CLI's bar of files and media hours) how far it is. A file that fails
to decode is a failed row, not a failed job; a worker that dies (a crashing decoder) costs only
its block, which is then reported failed.

Ray is an optional extra: `pip install 'mmstream[ray]'`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmstream.errors import ConfigError
from mmstream.paths import PartialFile
from mmstream.replay.batch import (
    FileResult,
    OutputFormat,
    output_name,
    probe_duration,
    replay_file,
    write_summary,
)
from mmstream.replay.progress import BatchProgress, NoProgress
from mmstream.replay.setup import ReplayPlan

RESULT_FIELDS = ("path", "status", "media_s", "wall_s", "events", "error")
# A file that kills its worker twice is failed, not retried forever (Ray Data's default); the
# worker is restarted for the next file. Ray 2.60 has no named parameter for these yet.
RESTART_POLICY = {"max_restarts": -1, "max_task_retries": 1}


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: RAY_ADDRESS, else a new local Ray just for this run
    workers: int | None = None  # None: one per `threads` CPUs of the cluster
    threads: int = 1  # CPU threads (and Ray CPUs) per worker
    gpus: float = 0.0  # GPUs per worker (fractions share a GPU); > 0 runs the models on CUDA


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ConfigError("--ray needs Ray: pip install 'mmstream[ray]'") from exc
    return ray


class FileWorker:
    """A Ray actor: one input file (its bytes) in, its events file (bytes) and outcome out."""

    def __init__(self, plan: ReplayPlan, fmt: OutputFormat, threads: int) -> None:
        # `threads` reach the models through the plan's config (stages.*.cpu_threads): the
        # ONNX path never imports torch, and the torch path sets its threads from there.
        del threads
        self.plan = plan
        self.fmt = fmt
        logging.basicConfig(level=logging.WARNING)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        rows: dict[str, list[Any]] = {name: [] for name in (*RESULT_FIELDS, "data")}
        for path, data in zip(batch["path"], batch["bytes"], strict=True):
            result, output = self._one(Path(str(path)), bytes(data))
            for name in RESULT_FIELDS:
                rows[name].append(getattr(result, name))
            rows["data"].append(output)
        return rows

    def _one(self, path: Path, data: bytes) -> tuple[FileResult, bytes]:
        # The pipeline reads a file: the input is written under its own name (stream ids
        # come from it) in a private folder, and its events are read back from there.
        with tempfile.TemporaryDirectory(prefix="mmstream-ray-") as folder:
            local = Path(folder) / path.name
            local.write_bytes(data)
            output = Path(folder) / f"events.{self.fmt}"
            result = asyncio.run(self._replay(local, output))
            result.path = str(path)
            result.error = result.error.replace(str(local), str(path))
            if result.status != "ok":
                return result, b""
            result.output = ""
            return result, output.read_bytes()

    async def _replay(self, local: Path, output: Path) -> FileResult:
        return await replay_file(local, output, self.plan.config_for, lambda _s: None,
                                 asyncio.Event())


class RayBatchRunner:
    """Every input on a Ray cluster; `run()` returns one result per input, in input order.

    `progress` hears how far the job is (the CLI draws a bar from it); nothing by default.
    """

    def __init__(self, inputs: list[Path], base: Path, out_dir: Path, plan: ReplayPlan,
                 options: RayOptions, *, resume: bool = True, fmt: OutputFormat = "jsonl",
                 progress: BatchProgress | None = None,
                 worker: type[FileWorker] = FileWorker) -> None:
        self.inputs = inputs
        self.base = base
        self.out_dir = out_dir
        # the worker's threads and device (the user's --set still wins over them)
        self.plan = replace(plan, threads=options.threads, cuda=options.gpus > 0)
        self.options = options
        self.resume = resume
        self.fmt = fmt
        self.progress = progress or NoProgress()
        self.worker = worker

    def output_for(self, path: Path) -> Path:
        return self.out_dir / output_name(path, self.base, self.fmt)

    def run(self) -> list[FileResult]:
        ray = _ray()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        results: dict[str, FileResult] = {}
        todo: list[Path] = []
        for path in self.inputs:
            if self.resume and self.output_for(path).exists():
                results[str(path)] = FileResult(str(path), str(self.output_for(path)),
                                                "skipped")
            else:
                todo.append(path)
        durations = {str(p): probe_duration(p) or 0.0 for p in todo}
        started_here = not ray.is_initialized()
        if started_here:
            local = self.options.address is None and not os.environ.get("RAY_ADDRESS")
            for name in ("ray", "ray.data"):  # the caller's progress and summary say enough
                logging.getLogger(name).setLevel(logging.ERROR)
            # A Ray started here serves this process only: loopback, no dashboard.
            ray.init(address="local" if local else self.options.address,
                     include_dashboard=False,
                     log_to_driver=False, logging_level=logging.ERROR,
                     **({"_node_ip_address": "127.0.0.1"} if local else {}))
        try:
            if todo:
                self._process(ray, todo, durations, results)
        finally:
            if started_here:
                ray.shutdown()
        ordered = [results[str(p)] for p in self.inputs]
        write_summary(self.out_dir, ordered)
        return ordered

    def workers(self, ray: Any, files: int) -> int:
        if self.options.workers:
            return min(self.options.workers, files)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return max(1, min(files, cpus // self.options.threads))

    def _process(self, ray: Any, todo: list[Path], durations: dict[str, float],
                 results: dict[str, FileResult]) -> None:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the caller's BatchProgress shows ours
        context.max_errored_blocks = len(todo)  # a crashed worker loses its block, not the job
        context.actor_task_retry_on_errors = False
        workers = self.workers(ray, len(todo))
        # Reading bytes is I/O: asking no CPU for it keeps the reads from waiting forever
        # for CPUs that the workers hold (a deadlock on a small machine).
        dataset = ray.data.read_binary_files(
            [str(p.resolve()) for p in todo], include_paths=True, override_num_blocks=len(todo),
            num_cpus=0)
        with warnings.catch_warnings():  # "ray_remote_args is deprecated": see RESTART_POLICY
            warnings.simplefilter("ignore", DeprecationWarning)
            events = dataset.map_batches(
                self.worker, fn_constructor_kwargs={"plan": self.plan, "fmt": self.fmt,
                                                   "threads": self.options.threads},
                batch_size=1, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=self.options.threads, num_gpus=self.options.gpus or None,
                **RESTART_POLICY)
        by_resolved = {str(p.resolve()): p for p in todo}
        total_media = sum(durations.values())
        self.progress.started(total_media, len(todo), workers)
        done_media = 0.0
        try:
            for row in events.iter_rows():
                path = by_resolved.get(str(row["path"]), Path(str(row["path"])))
                result = self._write(path, row)
                results[str(path)] = result
                done_media += result.media_s or durations.get(str(path), 0.0)
                self.progress.advanced(done_media)
                self.progress.file_done(result)
        except KeyboardInterrupt:  # what finished is written; the rest is "not run"
            for path in todo:
                results.setdefault(str(path), FileResult(str(path), "", "not run",
                                                         error="interrupted"))
        finally:
            self.progress.finished()
        for path in todo:  # blocks lost with a crashed worker never came back
            results.setdefault(str(path), FileResult(
                str(path), "", "failed", error="the Ray worker processing it failed "
                "(see the Ray logs)"))

    def _write(self, path: Path, row: dict[str, Any]) -> FileResult:
        result = FileResult(str(path), "", row["status"], float(row["media_s"]),
                            float(row["wall_s"]), int(row["events"]), str(row["error"]))
        if result.status != "ok":
            return result
        output = self.output_for(path)
        written = PartialFile(output)
        written.path.write_bytes(bytes(row["data"]))
        written.complete()
        result.output = str(output)
        return result

