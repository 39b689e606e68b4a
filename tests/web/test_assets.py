"""The vendored chart library and the page files: shipped, unchanged, and installable."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import tomllib

from conftest import REPO

from mmstream.web.assets import UPLOT_VERSION, static_text

WEB = REPO / "mmstream" / "web"


def test_uplot_is_the_version_and_bytes_its_note_records() -> None:
    folder = WEB / "static" / "uplot"
    note = (folder / "VENDORED.md").read_text()
    assert f"uPlot {UPLOT_VERSION} (vendored)" in note
    for name in ("uPlot.iife.min.js", "uPlot.min.css"):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert f"| `{name}` | `package/dist/{name}` | `{digest}` |" in note
    header = static_text("uplot/uPlot.iife.min.js").splitlines()[0]
    assert header == f"/*! https://github.com/leeoniya/uPlot (v{UPLOT_VERSION}) */"
    assert (folder / "LICENSE").read_text().startswith("The MIT License (MIT)")


def test_every_page_file_is_package_data() -> None:
    """A template or script missing from pyproject's package-data is missing once installed."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["mmstream.web"]
    files = [path.relative_to(WEB).as_posix() for folder in ("static", "templates")
             for path in (WEB / folder).rglob("*") if path.is_file()]
    assert len(files) >= 10
    missing = [name for name in files
               if not any(_matches(name, pattern) for pattern in patterns)]
    assert missing == []


def _matches(name: str, pattern: str) -> bool:
    """As setuptools globs: `*` stays inside one folder."""
    parts, wanted = name.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(
        fnmatch.fnmatchcase(part, glob) for part, glob in zip(parts, wanted, strict=True))


def test_no_page_file_links_outside_the_page() -> None:
    for path in [*(WEB / "templates").glob("*.j2"), *(WEB / "static").glob("*.*")]:
        text = path.read_text()
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), path
        assert "@import" not in text and "url(http" not in text, path

