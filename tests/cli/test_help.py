"""Every command's help, rendered as a user sees it: nothing eaten by markup (`[ray]`), no
`<bool>`/`<str>` labels, every description whole; global options work after the command."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer

import mmstream.cli as cli_module
from mmstream.cli.help_text import hoist_global_options, plain_placeholders


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, (*path, name))


def words(text: str) -> str:
    return " ".join(text.split())


def test_every_help_keeps_its_brackets_and_whole_descriptions(
        capsys: pytest.CaptureFixture[str]) -> None:
    root = plain_placeholders(typer.main.get_command(cli_module.app))
    seen = 0
    for path, command in commands(root):
        with pytest.raises(SystemExit) as done:
            root.main(args=[*path, "--help"], prog_name="mmstream")
        assert done.value.code == 0
        shown = capsys.readouterr().out
        flat = words(shown)
        assert not re.search(r"<(bool|str|path|int|float)[^>]*>", shown), (path, shown)
        assert "{" not in shown.split("\n", 1)[0], shown  # the usage line: INPUT, not {INPUT}
        for paragraph in (command.help or "").split("\n\n"):
            assert words(paragraph) in flat, (path, paragraph)
        for param in command.params:
            for bracketed in re.findall(r"\S*\[[^\]]*\]\S*", param.help or ""):
                assert bracketed in flat, (path, bracketed)
            if param.help:
                assert words(param.help) in flat, (path, param.help)
        seen += 1
    assert seen >= 15


def test_the_ray_extra_is_printed_as_written(cli: Any) -> None:
    shown = cli("replay", "--help", timeout=60)
    assert shown.returncode == 0
    assert "pip install 'mmstream[ray]'" in words(shown.stdout)
    assert "--out PATH" in shown.stdout and "<" not in shown.stdout


def test_global_options_after_the_command(cli: Any, tmp_path: Any) -> None:
    assert hoist_global_options(["replay", "x.mp4", "--debug", "--log-level", "info"]) == [
        "--debug", "--log-level", "info", "replay", "x.mp4"]
    assert hoist_global_options(["run", "p.yaml", "--", "--debug"]) == [
        "run", "p.yaml", "--", "--debug"]
    missing = tmp_path / "missing.mp4"
    after = cli("replay", str(missing), "--debug", timeout=60)
    assert "No such option" not in after.stderr
    assert after.returncode != 0 and "Traceback" in after.stderr, after.stderr
    assert "media file not found" in after.stderr


def test_replay_names_cpu_fp32_and_hides_its_old_name(capsys: pytest.CaptureFixture[str]) -> None:
    root = plain_placeholders(typer.main.get_command(cli_module.app))
    with pytest.raises(SystemExit):
        root.main(args=["replay", "--help"], prog_name="mmstream")
    shown = capsys.readouterr().out
    assert "--cpu-fp32" in shown and "--deterministic" not in shown
    replay = root.commands["replay"]  # type: ignore[attr-defined]
    old = next(p for p in replay.params if "--deterministic" in p.opts)
    assert old.hidden, "--deterministic still works (tests/replay/test_replay_cli.py)"
