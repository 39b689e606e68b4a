"""The topics mmstream publishes and listens on (docs/mqtt.md, Topics)."""

from __future__ import annotations

from mmstream.events import Event, event_type


def event_topic(prefix: str, event: Event) -> str:
    """`<prefix>/<device>/<stream>/<type>`: one event."""
    return f"{prefix}/{event.device_id}/{event.stream_id}/{event_type(event)}"


def availability_topic(prefix: str, device_id: str) -> str:
    """Retained `online`/`offline`; also the Last Will's topic."""
    return f"{prefix}/{device_id}/status"


def health_topic(prefix: str, device_id: str) -> str:
    """The retained health status event."""
    return f"{prefix}/{device_id}/health"


def control_topic(prefix: str, device_id: str) -> str:
    """Commands to the device (opt-in)."""
    return f"{prefix}/{device_id}/control"
