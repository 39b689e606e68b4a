"""What the collector accepts: one MQTT message in, an event row or a reason it was refused.

Nothing from the wire is trusted: the size is checked before parsing, the envelope is validated
against the event schema (events.decode), the schema version must be ours, ids must be short
and printable, and the time must fall inside what the store keeps. A refusal is counted per
device (the envelope's, else the topic's) and said once per device and reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import msgspec

from mmstream.events import SCHEMA_VERSION, decode
from mmstream.history.rows import EventRow, event_row

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 256 * 1024  # the largest event we publish is a few kB
MAX_ID_CHARS = 200
MAX_FUTURE_S = 86_400.0  # a device clock this far ahead is wrong, not early
MAX_DEVICE_LABELS = 1000  # beyond, refusals are counted under "(other)": bounded metrics
REASONS = ("oversized", "malformed", "schema", "bad_id", "out_of_range")


@dataclass
class Refusals:
    """Refused messages by (device, reason); each pair is logged the first time only."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, device: str, reason: str, detail: str) -> None:
        known = {d for d, _ in self.counts}
        if device not in known and len(known) >= MAX_DEVICE_LABELS:
            device = "(other)"
        key = (device, reason)
        if key not in self.counts:
            log.warning("collect: refused a message from device %r (%s): %s — counted, "
                        "said once", device, reason, detail[:200])
        self.counts[key] = self.counts.get(key, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def topic_device(topic: str) -> str:
    """`<prefix>/<device>/<stream>/<type>` -> device (what a refusal is counted under)."""
    parts = topic.split("/")
    return parts[1][:MAX_ID_CHARS] if len(parts) > 1 else "(unknown)"


def _bad_id(value: str) -> bool:
    return not value or len(value) > MAX_ID_CHARS or not value.isprintable()


def accept(topic: str, payload: bytes, refusals: Refusals, *, oldest_t: float,
           now: float | None = None) -> EventRow | None:
    """The row of a valid message; None (and counted) for one refused."""
    now = time.time() if now is None else now
    if len(payload) > MAX_PAYLOAD_BYTES:
        refusals.add(topic_device(topic), "oversized", f"{len(payload)} bytes")
        return None
    try:
        event = decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        refusals.add(topic_device(topic), "malformed", str(exc))
        return None
    if event.schema != SCHEMA_VERSION:
        refusals.add(event.device_id[:MAX_ID_CHARS] or topic_device(topic), "schema",
                     f"schema {event.schema!r}, this collector reads {SCHEMA_VERSION!r}")
        return None
    if _bad_id(event.device_id) or _bad_id(event.stream_id):
        refusals.add(topic_device(topic), "bad_id", "an empty, overlong or unprintable id")
        return None
    row = event_row(event, anchor=0.0)  # media seconds stay as they are: see out_of_range
    if not oldest_t <= row.t <= now + MAX_FUTURE_S:
        refusals.add(event.device_id, "out_of_range",
                     f"time {row.t:.0f} is outside what the store keeps (older than its "
                     "retention, a day ahead, or media seconds of a replay)")
        return None
    return row
