"""Dotted-path overrides from the environment and from `--set a.b=c`."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from mmstream.errors import ConfigError

ENV_PREFIX = "MMSTREAM_"


def parse_value(text: str) -> Any:
    """Interpret a value as YAML, so `true`, `3`, `[a, b]` get their types."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


Override = tuple[list[str], Any]  # (["sinks", "mqtt", "url"], "mqtt://h:1883")


def parse_set_options(options: Iterable[str]) -> list[Override]:
    parsed = []
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key.path=value, got {option!r}")
        parsed.append((key.strip().split("."), parse_value(value)))
    return parsed


def set_origins(options: Iterable[str]) -> dict[tuple[str, ...], str]:
    """Where each `--set` override came from, by path (for error messages)."""
    return {tuple(path): f"--set {option}"
            for option, (path, _) in zip(options, parse_set_options(options), strict=True)}


def env_overrides(
    environ: Mapping[str, str] | None, top_level_fields: set[str]
) -> list[tuple[list[str], Any, str]]:
    """`MMSTREAM_SINKS__MQTT__URL` -> (['sinks', 'mqtt', 'url'], value, name), known sections
    only (other MMSTREAM_ variables, such as test knobs, are not config)."""
    environ = os.environ if environ is None else environ
    found = []
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX):].split("__")]
        if path[0] in top_level_fields:
            found.append((path, parse_value(value), f"environment variable {name}"))
    return found


def apply_overrides(data: dict[str, Any], overrides: Iterable[Override]) -> dict[str, Any]:
    result = copy.deepcopy(data)
    for path, value in overrides:
        _set_path(result, path, value)
    return result


def _set_path(data: Any, path: list[str], value: Any) -> None:
    node = data
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        where = ".".join(path[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"override {'.'.join(path)}: no list item {where}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise ConfigError(f"override {'.'.join(path)}: {where} is not a section")
