"""Templates and static files shipped inside the package, for pages that need no network.

Scripts and styles are inlined into the page rather than linked, so a report is one file that
can be mailed, archived or opened on an air-gapped machine. The live view reuses the same
environment and assets.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import jinja2

import mmstream

UPLOT_VERSION = "1.6.32"


@functools.cache
def static_text(relative: str) -> str:
    """A file under mmstream/web/static, e.g. `uplot/uPlot.iife.min.js`."""
    text = (resources.files("mmstream.web") / "static" / relative).read_text(encoding="utf-8")
    if "</script" in text.lower() or "</style" in text.lower():
        # inlined verbatim: such a sequence would end the element early
        raise ValueError(f"static/{relative} cannot be inlined: it contains a closing tag")
    return text


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mmstream.web", "templates"),
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(static_text=static_text, mmstream_version=mmstream.__version__,
                       uplot_version=UPLOT_VERSION)
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
