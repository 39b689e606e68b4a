"""Two processes with the same settings give the same numbers, whatever thread pools their
environment asked for (a Ray worker has OMP_NUM_THREADS=1, a shell does not)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

ONE_THREAD = ("--set", "stages.infer.cpu_threads=1", "--set", "stages.infer.prepare_threads=1",
              "--set", "stages.transcribe.cpu_threads=1")


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_every_blas_library_gets_one_thread() -> None:
    probe = ("import json; from mmstream.models.numerics import pin_math_threads, blas_threads;"
             "pin_math_threads(); print(json.dumps(blas_threads()))")
    found = json.loads(subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "4"}).stdout)
    assert len(found) >= 1  # numpy's OpenBLAS at least
    assert set(found.values()) == {1}, found


@pytest.mark.slow
def test_blas_threads_from_the_environment_do_not_change_events(
        cli: Any, sample_clip: Path, tmp_path: Path) -> None:
    """OpenBLAS's Haswell kernel (CPUs without AVX-512) splits a product differently with 1 and
    2 threads; before the pools were pinned, a partial's confidence moved 0.564 -> 0.568."""
    if not {"avx2", "fma"} <= _cpu_flags():
        pytest.skip("this CPU cannot run OpenBLAS's Haswell kernel")
    outputs = []
    for threads in ("1", "2"):
        out = tmp_path / f"threads{threads}.jsonl"
        env = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": threads,
               "OMP_NUM_THREADS": threads}
        result = cli("replay", str(sample_clip), "--cpu-fp32", *ONE_THREAD,
                     "--out", str(out), env=env)
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    assert outputs[0].count(b"\n") > 20  # transcripts, scenes, emotions, fused windows
    assert outputs[0] == outputs[1]
