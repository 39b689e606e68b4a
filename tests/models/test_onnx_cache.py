"""The ONNX cache: exported once, rebuilt when stale or damaged, never trusted blindly; and a
process that builds the run-time models never imports torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mmstream.errors import ModelError
from mmstream.models import onnx_cache
from mmstream.models.onnx_cache import GraphInputs, graph_key, graph_path, load_graphs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MMSTREAM_ONNX_CACHE", str(tmp_path / "onnx"))
    return tmp_path / "onnx"


def _exports(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Count the export child processes (each still runs)."""
    seen: list[list[str]] = []
    real = onnx_cache._export

    def counting(wanted: dict[str, Path], inputs: GraphInputs) -> None:
        seen.append(sorted(wanted))
        real(wanted, inputs)

    monkeypatch.setattr(onnx_cache, "_export", counting)
    return seen


def test_a_graph_is_exported_once_then_read_from_the_cache(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exports = _exports(monkeypatch)
    first = load_graphs(["pnet", "rnet"], GraphInputs())
    assert exports == [["pnet", "rnet"]]  # one child process for both
    again = load_graphs(["pnet", "rnet"], GraphInputs())
    assert exports == [["pnet", "rnet"]] and again == first
    path = graph_path("pnet", graph_key("pnet", GraphInputs()))
    assert path.parent == cache and path.with_name(path.name + ".sha256").exists()
    assert not list(cache.glob("*.partial"))


@pytest.mark.parametrize("damage", ["flipped", "truncated", "no digest"])
def test_a_damaged_graph_is_exported_again_never_loaded(
        cache: Path, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    good = load_graphs(["pnet"], GraphInputs())["pnet"]
    path = graph_path("pnet", graph_key("pnet", GraphInputs()))
    if damage == "flipped":
        path.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    else:
        path.with_name(path.name + ".sha256").unlink()
    exports = _exports(monkeypatch)
    assert load_graphs(["pnet"], GraphInputs())["pnet"] == good
    assert exports == [["pnet"]]


def test_a_changed_vocabulary_or_checkpoint_is_a_new_graph(tmp_path: Path) -> None:
    vocabulary = tmp_path / "tags.yaml"
    vocabulary.write_text("tags:\n  cat: {classes: [281]}\n")
    default = graph_key("fusion", GraphInputs())
    own = graph_key("fusion", GraphInputs(vocabulary=vocabulary))
    vocabulary.write_text("tags:\n  cat: {classes: [281, 282]}\n")
    assert len({default, own, graph_key("fusion", GraphInputs(vocabulary=vocabulary))}) == 3
    checkpoint = tmp_path / "fusion.pt"
    checkpoint.write_bytes(b"one")
    tuned = graph_key("fusion", GraphInputs(checkpoint=checkpoint))
    checkpoint.write_bytes(b"two")
    assert tuned != graph_key("fusion", GraphInputs(checkpoint=checkpoint)) != default
    assert graph_key("pnet", GraphInputs(checkpoint=checkpoint)) == graph_key("pnet",
                                                                                GraphInputs())


def test_a_failed_export_is_one_line_and_leaves_nothing(cache: Path, tmp_path: Path) -> None:
    vocabulary = tmp_path / "tags.yaml"
    vocabulary.write_text("tags: []\n")
    with pytest.raises(ModelError) as error:
        load_graphs(["fusion"], GraphInputs(vocabulary=vocabulary))
    message = str(error.value)
    assert "\n" not in message and "exporting fusion to ONNX failed" in message
    assert "expected a non-empty 'tags:' mapping" in message
    assert not (cache.exists() and list(cache.glob("*")))  # no partial file left
    missing = tmp_path / "nothing.pt"
    with pytest.raises(ModelError, match=r"cannot read .*nothing\.pt for the fusion model"):
        load_graphs(["fusion"], GraphInputs(checkpoint=missing))


def test_an_unusable_cache_folder_is_one_line(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MMSTREAM_ONNX_CACHE", str(tmp_path / "a-file" / "onnx"))
    with pytest.raises(ModelError, match=r"the ONNX cache .*a-file/onnx is not writable "
                       r"\(Not a directory\): set MMSTREAM_ONNX_CACHE"):
        load_graphs(["pnet"], GraphInputs())


# Build what `mmstream run` builds for one camera + microphone, then say whether torch came in.
BUILD = textwrap.dedent("""
    import asyncio, sys
    from mmstream.config import InferConfig
    from mmstream.config.runtime import LIVE
    from mmstream.models.whisper import load_whisper
    from mmstream.stages.infer import InferStage
    import mmstream.build, mmstream.stages.transcribe, mmstream.stages.window

    async def main() -> None:
        load_whisper()
        stage = InferStage(InferConfig(device="cpu"), policy=LIVE)
        await stage.open()  # live: a warm-up window goes through every model
        print(type(stage.model).__name__, "torch" in sys.modules)
        await stage.close()

    asyncio.run(main())
""")


def test_the_run_time_models_are_built_without_importing_torch() -> None:
    if not onnx_cache.runtime_available():
        pytest.skip("onnxruntime is not installed: the torch path is all there is")
    done = subprocess.run([sys.executable, "-c", BUILD], capture_output=True, text=True,
                          cwd=REPO, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["OnnxFusedModel", "False"]
