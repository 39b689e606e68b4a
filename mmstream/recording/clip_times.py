"""The times a clip is asked for: `--from`/`--to` of `mmstream clip` and the web view's
`/clip?from=&to=` (one parser, so both accept the same forms)."""

from __future__ import annotations

import re
from datetime import datetime

from mmstream.errors import ConfigError

_DURATION = re.compile(r"^\+(\d+(?:\.\d*)?)\s*(s|m|min|h)?$")
_UNIT_S = {None: 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_moment(text: str, what: str) -> float:
    """A moment as epoch seconds: ISO 8601 (without a zone: this machine's local time) or
    epoch seconds (as `mmstream search --json` prints them)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{what} {text!r}: use a time like 2026-12-07T18:02:00 or epoch "
                          "seconds") from None
    return moment.astimezone().timestamp() if moment.tzinfo is None else moment.timestamp()


def parse_end(text: str, start: float, what: str, *, seconds_into: bool) -> float:
    """`--to`: `+20s`/`+2m` after `--from`, else a moment like `--from` (or seconds into a
    recording)."""
    found = _DURATION.match(text.strip())
    if found:
        return start + float(found.group(1)) * _UNIT_S[found.group(2)]
    return parse_seconds(text, what) if seconds_into else parse_moment(text, what)


def parse_seconds(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{what} {text!r}: seconds into the recording, like 2 or 7.5") \
            from None
    if value < 0:
        raise ConfigError(f"{what} {text!r}: seconds into the recording cannot be negative")
    return value
