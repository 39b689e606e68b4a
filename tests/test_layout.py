"""The package's layering, read from the source (docs/architecture.md, "Layers"): a module
imports its own package, the foundation and lower layers, never a sibling of its layer or
anything above; `recording/` is a leaf; neither it nor `replay/` draws on a console (that is
the CLI's)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mmstream"
LEAF_MAY_USE = ("mmstream.recording", "mmstream.events", "mmstream.media", "mmstream.config",
                "mmstream.errors")
CONSOLE_LIBRARIES = ("rich", "typer")
#: The vocabulary every layer may use; its modules may use each other.
FOUNDATION = ("paths", "errors", "events", "media", "logs", "drop_reasons", "display", "snapshot")
#: Lowest first: a package or module may import the foundation and the layers below its own.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("config", "audio"),
    ("recording", "runtime", "models"),
    ("sources", "stages", "sinks", "history"),
    ("build", "preflight", "training", "fleet"),
    ("replay", "web"),
    ("daemon", "doctor", "demo_broker"),
    ("cli",),
    ("__main__",),
)


def imports_of(folder: Path) -> dict[str, set[str]]:
    """The absolute module names each file under `folder` imports, wherever in the file."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[path.relative_to(PACKAGE.parent).as_posix()] = names
    return found


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def test_recording_imports_nothing_of_pipelines_sinks_sources_or_the_cli() -> None:
    modules = imports_of(PACKAGE / "recording")
    assert {"mmstream/recording/format.py", "mmstream/recording/reader.py",
            "mmstream/recording/writer.py", "mmstream/recording/info.py"} <= set(modules)
    for file, names in modules.items():
        ours = {name for name in names if _within(name, ("mmstream",)) and name != "mmstream"}
        beyond = sorted(name for name in ours if not _within(name, LEAF_MAY_USE))
        assert not beyond, f"{file} imports {beyond}: recording/ is a leaf"


def test_recording_and_replay_draw_nothing_on_a_console() -> None:
    for folder in ("recording", "replay"):
        for file, names in imports_of(PACKAGE / folder).items():
            drawing = sorted(name for name in names if _within(name, CONSOLE_LIBRARIES))
            assert not drawing, f"{file} imports {drawing}: console rendering lives in cli/"


def _part(module: str) -> str:
    """`mmstream.sinks.mqtt.link` -> `sinks`; `mmstream.build` -> `build`."""
    return module.split(".")[1]


def _layer_of(part: str) -> int:
    if part in FOUNDATION:
        return -1
    for index, layer in enumerate(LAYERS):
        if part in layer:
            return index
    raise AssertionError(f"mmstream.{part} has no layer: add it to LAYERS (and the doc)")


def test_every_package_and_module_has_a_layer() -> None:
    parts = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()
             if (path.suffix == ".py" and path.stem != "__init__")
             or (path.is_dir() and (path / "__init__.py").exists())}
    assert parts >= {"runtime", "sources", "stages", "sinks", "models", "web", "cli"}
    for part in parts:
        _layer_of(part)


def test_every_module_imports_only_its_own_package_the_foundation_and_lower_layers() -> None:
    wrong = []
    for file, names in imports_of(PACKAGE).items():
        mine = _part(file.removesuffix(".py").replace("/", "."))
        for name in sorted(names):
            if not _within(name, ("mmstream",)) or name == "mmstream":
                continue
            theirs = _part(name)
            if theirs == mine or theirs in FOUNDATION:
                continue
            if _layer_of(theirs) >= _layer_of(mine):
                wrong.append(f"{file} imports {name}")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)
