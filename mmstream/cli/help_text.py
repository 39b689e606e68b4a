"""Help that reads as written: click's plain formatter (paragraphs re-wrapped, brackets kept),
value placeholders in words (`--out PATH`, not `<path>`), and the global options accepted
after the command too (`mmstream replay x.mp4 --debug`)."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Sequence
from typing import Any

from typer.core import TyperArgument, TyperOption

# options of the app's callback that a user may also put after the command
GLOBAL_FLAGS = ("--debug",)
GLOBAL_VALUED = ("--log-level", "--log-format")


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """Move `--debug`, `--log-level X`, `--log-format X` in front of the command, where click
    expects them; everything after a bare `--` is left alone."""
    hoisted: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest += args[index:]
            break
        if arg in GLOBAL_FLAGS or (arg.split("=", 1)[0] in GLOBAL_VALUED and "=" in arg):
            hoisted.append(arg)
        elif arg in GLOBAL_VALUED and index + 1 < len(args):
            hoisted += args[index:index + 2]
            index += 1
        else:
            rest.append(arg)
        index += 1
    return hoisted + rest


def _placeholder(param: TyperOption) -> str:
    kind = param.type_descriptor  # typer's description of the annotation
    if kind.is_path:
        return "PATH"
    if kind.is_choice and kind.choices:
        return "|".join(map(str, kind.choices))
    if kind.annotation is int:
        return "N"
    if kind.annotation is float:
        return "NUMBER"
    return "TEXT"


def _keep_hyphenated_words_whole() -> None:
    """`--ray-address` is not split after `--ray-` when help is wrapped (click breaks on
    hyphens by default; typer carries its own copy of click)."""
    for name in ("typer._click._textwrap", "click._textwrap"):
        with contextlib.suppress(ImportError):
            module = importlib.import_module(name)
            wrapper = module.TextWrapper
            if getattr(wrapper, "keeps_hyphenated_words", False):
                continue

            class WholeWords(wrapper):  # type: ignore[misc, valid-type]
                keeps_hyphenated_words = True

                def __init__(self, *args: Any, **kwargs: Any) -> None:
                    super().__init__(*args, **{**kwargs, "break_on_hyphens": False})

            module.TextWrapper = WholeWords


def plain_placeholders(command: Any) -> Any:
    """Name every option's value in words and show arguments by their name alone."""
    _keep_hyphenated_words_whole()
    for param in command.params:
        if isinstance(param, TyperArgument):
            name = (param.metavar or param.name or "ARG").upper()
            param.metavar = name
            # typer's defaults print `{INPUT}` in the usage and `<str>` beside it
            param._usage_display_name = (  # type: ignore[method-assign]
                lambda name=name, p=param: name if p.required else f"[{name}]")
            param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
        elif isinstance(param, TyperOption) and not param.is_flag and param.metavar is None:
            param.metavar = _placeholder(param)
    for sub in getattr(command, "commands", {}).values():  # a group's commands
        plain_placeholders(sub)
    return command
