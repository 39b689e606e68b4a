"""Batch reprocessing: many recordings or media files through one pipeline, one after another.

Each input writes `<out>/<name>.jsonl` (or `.parquet`) through a `.partial` file renamed only on
success, so an interrupted batch resumes where it stopped (finished outputs are skipped) and a
failed file never leaves an output that looks complete. A file that fails is reported (to the
runner's `BatchProgress`) and the batch goes on; `summary.json` in the output folder records
every file's outcome.

`replay_file` is the unit of work: the in-process runner here and the Ray workers
(`mmstream.replay.on_ray`) both call it, so a file gives the same events either way.
"""

from __future__ import annotations

import asyncio
import glob
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from mmstream.config import PipelineConfig
from mmstream.errors import ConfigError, first_user_error
from mmstream.paths import PartialFile
from mmstream.replay.progress import BatchProgress, MediaRead, NoProgress, followed

INPUT_SUFFIXES = frozenset({".mcap", ".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".wav",
                            ".flac", ".mp3", ".ogg", ".opus", ".m4a"})
EXIT_PARTIAL = 3  # some files failed, others finished
Status = Literal["ok", "damaged", "skipped", "failed", "not run"]
OutputFormat = Literal["jsonl", "parquet"]
ConfigFor = Callable[[Path, Path], PipelineConfig]  # (input, output jsonl) -> pipeline


@dataclass
class FileResult:
    path: str
    output: str
    status: Status
    media_s: float = 0.0
    wall_s: float = 0.0
    events: int = 0
    error: str = ""

    @property
    def speed(self) -> float:
        return self.media_s / self.wall_s if self.wall_s > 0 else 0.0


def is_batch_input(text: str) -> bool:
    path = Path(text)
    return path.is_dir() or (not path.exists() and glob.has_magic(text))


def expand_inputs(text: str) -> tuple[list[Path], Path]:
    """The files a directory (recursively) or a glob names, sorted, and the folder they are
    named relative to."""
    path = Path(text)
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES]
        base = path
    else:
        found = [Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()]
        base = _common_folder(found) if found else Path(".")
    if not found:
        raise ConfigError(f"{text}: no recordings or media files to replay "
                          f"({', '.join(sorted(INPUT_SUFFIXES))})")
    return sorted(found), base


def _common_folder(paths: list[Path]) -> Path:
    parents = [p.resolve().parent for p in paths]
    common = parents[0]
    while not all(common == parent or common in parent.parents for parent in parents):
        common = common.parent
    return common


def output_name(path: Path, base: Path, fmt: OutputFormat = "jsonl") -> str:
    """`sub/dir/cam0.mcap` -> `sub__dir__cam0.mcap.jsonl`: unique per input, readable."""
    try:
        relative = path.resolve().relative_to(base.resolve())
    except ValueError:
        relative = Path(path.name)
    return "__".join(relative.parts) + "." + fmt


def probe_duration(path: Path) -> float | None:
    """Media seconds in a file, cheaply (summary of a recording, container header of media)."""
    try:
        if path.suffix.lower() == ".mcap":
            from mcap.reader import make_reader

            with path.open("rb") as file:
                summary = make_reader(file).get_summary()
            stats = summary.statistics if summary else None
            if stats is None or not stats.message_count:
                return None
            return (stats.message_end_time - stats.message_start_time) / 1e9
        import av

        with av.open(str(path)) as container:
            return container.duration / 1e6 if container.duration else None
    except Exception:  # a file that cannot be probed is reported when replayed
        return None


class BatchRunner:
    """Runs every input in turn; `await runner.run(stop)` returns one result per input.

    `progress` hears how far the batch is (the CLI draws a bar from it); nothing by default.
    """

    def __init__(self, inputs: list[Path], base: Path, out_dir: Path, config_for: ConfigFor,
                 *, resume: bool = True, fmt: OutputFormat = "jsonl",
                 progress: BatchProgress | None = None) -> None:
        self.inputs = inputs
        self.base = base
        self.out_dir = out_dir
        self.config_for = config_for
        self.resume = resume
        self.fmt = fmt
        self.progress = progress or NoProgress()
        self.results: list[FileResult] = []

    async def run(self, stop: asyncio.Event) -> list[FileResult]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        durations = await asyncio.to_thread(lambda: [probe_duration(p) for p in self.inputs])
        self.progress.started(sum(d or 0.0 for d in durations), len(self.inputs))
        try:
            done_media = 0.0
            for path, probed in zip(self.inputs, durations, strict=True):
                if stop.is_set():
                    self._record(FileResult(str(path), "", "not run", error="interrupted"))
                    continue
                result = await self._replay_one(path, stop, done_media)
                done_media += result.media_s or (probed or 0.0)  # skipped, failed: as probed
                self.progress.advanced(done_media)
                self.progress.file_done(result)
                self._record(result)
        finally:
            self.progress.finished()
        return self.results

    async def _replay_one(self, path: Path, stop: asyncio.Event, before: float) -> FileResult:
        """One input, or its finished output kept; `before`: media seconds done before it."""
        output = self.out_dir / output_name(path, self.base, self.fmt)
        if self.resume and output.exists():
            return FileResult(str(path), str(output), "skipped")

        def advance(media_s: float) -> None:
            self.progress.advanced(before + media_s)

        return await replay_file(path, output, self.config_for, advance, stop)

    def _record(self, result: FileResult) -> None:
        self.results.append(result)
        write_summary(self.out_dir, self.results)


def write_summary(out_dir: Path, results: list[FileResult]) -> None:
    summary = {"results": [asdict(r) for r in results]}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


async def replay_file(path: Path, output: Path, config_for: ConfigFor,
                      advance: Callable[[float], None], stop: asyncio.Event) -> FileResult:
    """One input through its pipeline into `output` (.jsonl, or .parquet made from the JSONL);
    never raises for a bad input: the error is in the result."""
    written = PartialFile(output)
    events = written if output.suffix == ".jsonl" else PartialFile(
        output.with_name(output.name + ".jsonl"))
    read = MediaRead()  # how far the input is read, told to `advance` as the run goes
    started = time.monotonic()
    try:
        from mmstream.build import build_pipeline

        pipeline = build_pipeline(config_for(path, events.path), observers=[read])
        report = await followed(pipeline.run(stop), read, advance)
        if events is not written and not stop.is_set():
            from mmstream.replay.parquet import jsonl_to_parquet

            await asyncio.to_thread(jsonl_to_parquet, events.path, written.path)
    except Exception as exc:  # one bad file must not stop the batch
        written.discard()
        events.discard()
        return FileResult(str(path), "", "failed", read.seconds, time.monotonic() - started,
                          error=_explain(exc))
    wall, reached = time.monotonic() - started, read.seconds
    if stop.is_set():
        written.discard()
        events.discard()
        return FileResult(str(path), "", "not run", reached, wall, error="interrupted")
    if events is not written:
        events.discard()
    written.complete()
    if report.damage:  # its readable part was replayed: the events are kept, and it says so
        return FileResult(str(path), str(output), "damaged", reached, wall,
                          sum(report.events.values()), error="; ".join(report.damage))
    return FileResult(str(path), str(output), "ok", reached, wall, sum(report.events.values()))


def _explain(exc: BaseException) -> str:
    found = first_user_error(exc)
    return str(found) if found is not None else f"{type(exc).__name__}: {exc}"


def exit_code(results: list[FileResult]) -> int:
    """0: nothing failed; EXIT_PARTIAL: some failed, or were damaged (replayed as far as they
    were readable); 1: every attempted file failed."""
    failed = sum(r.status in ("failed", "not run") for r in results)
    if failed == len(results) and failed:
        return 1
    return EXIT_PARTIAL if failed or any(r.status == "damaged" for r in results) else 0
