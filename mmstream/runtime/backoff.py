"""How long to wait before trying again: the pipeline reopening a device, the MQTT link
reconnecting to its broker."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter, so many devices do not retry in lockstep."""
    return random.uniform(base / 2, min(cap, base * 2 ** (attempt - 1)))
