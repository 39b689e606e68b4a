"""The JSONL sink: a daemon's file is continued across restarts, a replay's written anew, a
reader that goes away ends the run quietly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mmstream.config import FAST
from mmstream.errors import OutputClosed, SinkError
from mmstream.events import Transcript, TranscriptEvent, decode
from mmstream.runtime.pipeline import Pipeline
from mmstream.runtime.stage import Source
from mmstream.sinks.jsonl import JsonlSink, last_seqs
from tests.conftest import REPO


class Sayings(Source):
    kind = "sayings"

    def __init__(self, streams: tuple[str, ...], count: int) -> None:
        self.stream_id, self.name = streams[-1], "sayings"
        self.streams, self.count = streams, count

    async def __aiter__(self) -> AsyncIterator[Any]:  # type: ignore[override]
        for index in range(self.count):
            for stream in self.streams:
                yield TranscriptEvent(stream_id=stream, t_capture=float(index), payload=Transcript(
                    final=True, text=f"{stream} {index}", start=index, end=index + 0.5))


async def run_into(path: Path, count: int, append: bool = True) -> None:
    await Pipeline([Sayings(("a", "b"), count)], [], [JsonlSink(path, append=append)],
                   device_id="dev", policy=FAST).run()


def seqs(path: Path, stream: str) -> list[int]:
    whole = [line for line in path.read_bytes().splitlines() if line.endswith(b"}")]
    return [e.seq for e in map(decode, whole) if e.stream_id == stream]


async def test_a_restart_appends_and_numbering_goes_on(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    await run_into(out, 3)
    with out.open("ab") as torn:  # a crash mid-line: that line is not counted
        torn.write(b'{"type": "transcript", "stream_id": "a", "se')
    await run_into(out, 2)
    assert last_seqs(out) == {"a": 5, "b": 5}
    assert seqs(out, "a") == seqs(out, "b") == [1, 2, 3, 4, 5]
    assert len(out.read_bytes().splitlines()) == 11  # the torn line stayed on a line of its own


async def test_append_false_starts_the_file_anew(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    await run_into(out, 3)
    await run_into(out, 2, append=False)
    assert seqs(out, "a") == [1, 2]


def test_a_closed_pipe_is_the_end_of_the_output_not_an_error() -> None:
    reader, writer = os.pipe()
    os.close(reader)
    sink = JsonlSink("-")
    event = TranscriptEvent(stream_id="a", t_capture=0.0,
                            payload=Transcript(final=True, text="x", start=0.0, end=0.1))
    with os.fdopen(writer, "wb", buffering=0) as pipe:
        sink._file = pipe  # the sink's own stdout, replaced by a pipe nobody reads
        with pytest.raises(OutputClosed, match="went away"):
            asyncio.run(sink.send(event))


def test_replay_into_head_ends_quietly_with_exit_0(sample_clip: Path) -> None:
    replay = subprocess.Popen(
        [sys.executable, "-m", "mmstream", "replay", str(sample_clip), "--out", "-",
         "--set", "stages.transcribe.enabled=false", "--set", "stages.infer.enabled=false",
         "--set", "stages.window.enabled=false", "--set", "sources.0.audio=false"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert replay.stdout is not None
    replay.stdout.close()  # like `| head -0`
    _, stderr = replay.communicate(timeout=120)
    assert replay.returncode == 0, stderr
    assert b"BrokenPipe" not in stderr and b"error" not in stderr


async def test_a_full_disk_says_so_naming_the_file(small_tmpfs: Path) -> None:
    out = small_tmpfs / "events.jsonl"
    with pytest.raises(BaseExceptionGroup) as caught:
        await run_into(out, 5000)  # ~1 MB of events on a 256 KiB disk
    failure = caught.value.subgroup(SinkError)
    assert failure is not None and len(failure.exceptions) == 1, caught.value
    assert str(failure.exceptions[0]) == f"disk full writing {out}"
