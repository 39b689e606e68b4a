"""Logging for a daemon: plain text or one JSON object per line, levels per module, no secrets.

A device sends its journal or container logs somewhere else, so passwords in broker URLs,
`password=…` pairs and bearer tokens are masked in every record before it is formatted, and
the JSON form keeps the fields (logger, level, message, extras) that a log pipeline indexes.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
MASK = "***"
LEVEL_NAMES = ("debug", "info", "warning", "error", "critical")
HANDLER_NAME = "mmstream"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Every pattern runs in linear time, whatever the text (a log line may carry a command
# someone else sent): a match can only start where the lookbehind allows (the first character
# of a scheme, a key word), and every part that could fail after a long scan is bounded, so no
# start position costs more than a constant. An unbounded `[^@\s]+@` tried at each of many
# starts is what made 40 k characters take 6 s.
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"((?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*+://[^:/@\s]{0,256}:)"
                r"[^@\s]{1,256}@"), rf"\g<1>{MASK}@"),
    # password=..., passwd: ..., secret=..., token=..., api_key=...
    (re.compile(r"(?i)(?<![a-z0-9])((?:password|passwd|pwd|secret|token|api[_-]?key)[\"']?"
                r"\s{0,16}[=:]\s{0,16})(\"[^\"]{0,1024}\"|'[^']{0,1024}'|[^\s,;&}]++)"),
     rf"\g<1>{MASK}"),
    # Authorization: Bearer abc.def
    (re.compile(r"(?i)\b(bearer\s{1,16})[A-Za-z0-9._~+/=-]++"), rf"\g<1>{MASK}"),
)
# A log line is cut to this length before it is redacted: text from outside (a command, a
# file) must not make one record cost more than a bounded amount of work or journal space.
MAX_MESSAGE_CHARS = 8192
MAX_TRACEBACK_CHARS = 65536

# attributes every LogRecord has; anything else came from `extra=` and goes into the JSON
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` cut to about `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def redact(text: str) -> str:
    """Mask credentials in free text (URLs with passwords, key=value secrets, bearer tokens),
    in time linear in the text's length."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Formats the message once, masks secrets in it, and freezes the result on the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = redact(clip(record.getMessage()))
        record.msg, record.args = message, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(clip(record.exc_text, MAX_TRACEBACK_CHARS))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool | None) else redact(
                    clip(str(value)))
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(clip(self.formatException(record.exc_info),
                                          MAX_TRACEBACK_CHARS))
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def parse_level(level: str | int, where: str = "log level") -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.strip().upper())
    if not isinstance(value, int):
        from mmstream.errors import ConfigError

        raise ConfigError(f"{where}: unknown level {level!r} (debug, info, warning, error)")
    return value


def configure_logging(
    level: str | int = "warning",
    fmt: LogFormat = "text",
    levels: Mapping[str, str | int] | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Replace the root handlers with one redacting handler; `levels` sets per-module levels.

    `levels={"mmstream.sinks.mqtt": "debug", "aiohttp.access": "error"}` — names are logger names
    (module paths), so one noisy part can be turned up or down without the rest.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for old in list(root.handlers):  # only ours: a host's (or pytest's) handlers stay
        if old.get_name() == HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(parse_level(level))
    for name, module_level in (levels or {}).items():
        logging.getLogger(name).setLevel(parse_level(module_level, f"log level of {name}"))
    return handler


_pinned: dict[str, str] = {}  # what the command line set explicitly; it wins over the config


def configure_from_cli(level: str | None, fmt: str | None, debug: bool = False) -> None:
    """Logging as the command line asks; explicit flags stay in force when a config is applied."""
    _pinned.clear()
    if debug:
        _pinned["level"] = "debug"
    elif level is not None:
        _pinned["level"] = level
    if fmt is not None:
        _pinned["format"] = fmt
    chosen = _pinned.get("format", "text")
    configure_logging(_pinned.get("level", "warning"), "json" if chosen == "json" else "text")


def configure_from_config(level: str, fmt: LogFormat, levels: Mapping[str, str]) -> None:
    """The pipeline file's `runtime.logging`, under whatever the command line pinned."""
    chosen = _pinned.get("format", fmt)
    configure_logging(_pinned.get("level", level), "json" if chosen == "json" else "text", levels)
