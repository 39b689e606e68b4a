"""The package's layering, read from the source: `recording/` is a leaf, and neither it nor
`replay/` draws on a console (that is the CLI's)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mmstream"
LEAF_MAY_USE = ("mmstream.recording", "mmstream.events", "mmstream.media", "mmstream.config",
                "mmstream.errors")
CONSOLE_LIBRARIES = ("rich", "typer")


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
