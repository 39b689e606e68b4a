"""Archive reprocessing on a real local Ray (2 CPUs): same events as a single-process replay,
bad files reported without stopping the job, Parquet output, resume, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmstream.replay.batch import BatchRunner, FileResult, exit_code
from mmstream.replay.setup import ReplayPlan
from tests.conftest import REPO, SAMPLE_CLIP, SAMPLE_SENTENCES, speak

ray = pytest.importorskip("ray", reason="the Ray extra is not installed")

from mmstream.replay.on_ray import RayBatchRunner, RayOptions  # noqa: E402
from mmstream.replay.parquet import read_parquet_events  # noqa: E402
from tests.replay.ray_faults import CrashingWorker  # noqa: E402


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    # Workers import the test's crashing worker class from this checkout.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three good inputs in two folders (video+speech, a cut of it, speech only) and a
    truncated mp4."""
    root = tmp_path_factory.mktemp("archive")
    (root / "porch").mkdir()
    shutil.copy(SAMPLE_CLIP, root / "kitchen.mp4")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(SAMPLE_CLIP), "-t", "4",
                    "-c", "copy", str(root / "porch" / "door.mp4")], check=True)
    speak("The parcel is on the porch next to the blue door.", root / "porch" / "voice.wav")
    (root / "broken.mp4").write_bytes(SAMPLE_CLIP.read_bytes()[:5000])
    return root


def _inputs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _lines(folder: Path) -> dict[str, list[dict[str, Any]]]:
    return {p.name: [json.loads(line) for line in p.read_text().splitlines()]
            for p in sorted(folder.glob("*.jsonl"))}


def _meaning(event: dict[str, Any]) -> tuple[Any, ...]:
    """What a consumer acts on: labels and words, not the 4th decimal of a score."""
    payload = event["payload"]
    labels = tuple(tag["label"] for tag in payload.get("tags", []))
    return (event["type"], event["stream_id"], event["seq"], event["t_capture"],
            payload.get("text"), payload.get("label"), labels)


@pytest.mark.slow
def test_ray_replay_matches_single_process_replay(local_ray: None, archive: Path,
                                                  tmp_path: Path) -> None:
    plan = ReplayPlan(cpu_fp32=True)
    on_ray = RayBatchRunner(_inputs(archive), archive, tmp_path / "ray", plan,
                            RayOptions(workers=2, threads=1)).run()
    by_name = {Path(r.path).name: r for r in on_ray}
    assert by_name["broken.mp4"].status == "failed"
    assert "broken.mp4: corrupt media" in by_name["broken.mp4"].error
    assert "mmstream-ray-" not in by_name["broken.mp4"].error  # the user's path, not ours
    assert all(r.status == "ok" for name, r in by_name.items() if name != "broken.mp4")
    assert exit_code(on_ray) == 3  # some failed, the rest finished
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert [r["path"] for r in summary["results"]] == [str(p) for p in _inputs(archive)]

    # The same files in this process, same options and threads: byte-identical events.
    import asyncio

    local = BatchRunner(_inputs(archive), archive, tmp_path / "local",
                        ReplayPlan(cpu_fp32=True, threads=1).config_for)
    asyncio.run(local.run(asyncio.Event()))
    ray_events, _ = _lines(tmp_path / "ray"), _lines(tmp_path / "local")
    assert set(ray_events) == {"kitchen.mp4.jsonl", "porch__door.mp4.jsonl",
                               "porch__voice.wav.jsonl"}
    for name in ray_events:
        assert ((tmp_path / "ray" / name).read_bytes()
                == (tmp_path / "local" / name).read_bytes()), name

    # Against a default replay (all threads): the same tags and transcripts.
    default = BatchRunner(_inputs(archive), archive, tmp_path / "default", plan.config_for)
    asyncio.run(default.run(asyncio.Event()))
    for name, events in _lines(tmp_path / "default").items():
        assert [_meaning(e) for e in events] == [_meaning(e) for e in ray_events[name]], name

    kitchen = ray_events["kitchen.mp4.jsonl"]
    heard = " ".join(e["payload"]["text"] for e in kitchen
                     if e["type"] == "transcript" and e["payload"]["final"]).lower()
    assert "kitchen camera" in heard and "coffee" in heard
    assert {e["payload"]["tags"][0]["label"] for e in kitchen if e["type"] == "scene"} == \
        {"person"}
    voice = ray_events["porch__voice.wav.jsonl"]
    assert any("parcel" in e["payload"]["text"].lower() for e in voice
               if e["type"] == "transcript" and e["payload"]["final"])


@pytest.mark.slow
def test_parquet_results_and_resume(local_ray: None, archive: Path, tmp_path: Path) -> None:
    inputs = [archive / "porch" / "door.mp4", archive / "porch" / "voice.wav"]
    out = tmp_path / "out"
    first = RayBatchRunner(inputs, archive, out, ReplayPlan(cpu_fp32=True),
                           RayOptions(workers=1), fmt="parquet").run()
    assert [r.status for r in first] == ["ok", "ok"]
    rows = read_parquet_events(out / "porch__door.mp4.parquet")
    assert rows and len(rows) == first[0].events
    assert [r["seq"] for r in rows if r["stream_id"] == "door"] == \
        list(range(1, len(rows) + 1))
    assert any(r["type"] == "fused" and r["payload"]["scene"] for r in rows)
    assert not list(out.glob("*.partial"))
    again = RayBatchRunner(inputs, archive, out, ReplayPlan(cpu_fp32=True),
                           RayOptions(workers=1), fmt="parquet").run()
    assert [r.status for r in again] == ["skipped", "skipped"]  # finished outputs are kept


@pytest.mark.slow
def test_a_worker_crash_fails_its_file_not_the_job(local_ray: None, archive: Path,
                                                   tmp_path: Path) -> None:
    inputs = [archive / "porch" / "door.mp4", archive / "porch" / "voice.wav"]
    results = RayBatchRunner(inputs, archive, tmp_path, ReplayPlan(),
                             RayOptions(workers=1), worker=CrashingWorker).run()
    by_name = {Path(r.path).name: r for r in results}
    assert by_name["door.mp4"].status == "ok"
    assert by_name["voice.wav"].status == "failed"
    assert "Ray worker" in by_name["voice.wav"].error
    assert isinstance(results[0], FileResult)


@pytest.mark.slow
def test_cli_replays_a_folder_on_a_local_ray(cli: Any, archive: Path, tmp_path: Path) -> None:
    result = cli("replay", "--ray", "--ray-workers", "2", str(archive / "porch"),
                 "--out", str(tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "2/2 files" in result.stderr and "media h" in result.stderr
    assert "door.mp4" in result.stdout and "voice.wav" in result.stdout  # the summary table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["door.mp4.jsonl", "summary.json",
                                                          "voice.wav.jsonl"]


@pytest.mark.slow
def test_ray_replay_writes_one_searchable_history(cli: Any, archive: Path,
                                                 tmp_path: Path) -> None:
    """`--history PATH` with --ray: the workers write one store, found like a device's."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(SAMPLE_CLIP, inputs / "kitchen.mp4")
    shutil.copy(archive / "porch" / "voice.wav", inputs / "voice.wav")
    store = tmp_path / "archive.history.db"
    result = cli("replay", "--ray", "--ray-workers", "2", str(inputs), "--out",
                 str(tmp_path / "out"), "--history", str(store), timeout=300)
    assert result.returncode == 0, result.stderr
    expected = {**{sentence: "kitchen.mp4" for sentence in SAMPLE_SENTENCES},
                "The parcel is on the porch next to the blue door.": "voice.wav"}
    for sentence, source in expected.items():
        word = {"kitchen.mp4": sentence.split()[3], "voice.wav": "parcels"}[source]
        found = cli("search", word, "--json", "--history", str(store))
        assert found.returncode == 0, found.stderr
        moments = [m for m in json.loads(found.stdout) if m["text"] == sentence]
        assert [Path(m["recording"]).name for m in moments] == [source], (word, found.stdout)


def test_ray_needs_a_folder_or_glob(cli: Any, sample_clip: Path) -> None:
    result = cli("replay", "--ray", str(sample_clip), "--out", "x.jsonl")
    assert result.returncode == 2
    assert "--ray and --format work on a folder or glob" in result.stderr
