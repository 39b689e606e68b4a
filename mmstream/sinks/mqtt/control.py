"""The control topic `<prefix>/<device>/control` (opt-in, docs/mqtt.md, Control topic).

A JSON command there changes the pipeline's `PipelineControl` (pause, resume, set_fps), which
the sink reads from its `PipelineView`; `stages/control.py` applies it to the media. Only over
an authenticated connection: anyone who can write the topic can pause the device.
"""

from __future__ import annotations

import asyncio
import logging

from mmstream.config import MqttSinkConfig
from mmstream.errors import ConfigError
from mmstream.logs import clip
from mmstream.runtime.observer import PipelineView
from mmstream.sinks.mqtt.broker import BrokerSettings
from mmstream.sinks.mqtt.link import BrokerLink
from mmstream.sinks.mqtt.topics import control_topic

log = logging.getLogger(__name__)


class ControlTopic:
    """Whether the device listens for commands, and what a command does to the pipeline."""

    def __init__(self, config: MqttSinkConfig, device_id: str) -> None:
        self.topic = control_topic(config.prefix, device_id) if config.control else None

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return (self.topic,) if self.topic else ()

    def check_allowed(self, broker: BrokerSettings) -> None:
        """Refuse to start when commands could come from anyone."""
        if self.topic and not broker.authenticated:
            raise ConfigError("sinks.mqtt.control needs an authenticated broker connection "
                              "(username/password or a client certificate)")

    async def wait_subscribed(self, link: BrokerLink, timeout_s: float) -> None:
        """Wait for the broker's SUBACK, so the device obeys commands once the sink is open
        (and the pipeline says READY)."""
        if not self.topic or not link.connected:
            return  # without a connection yet, the link subscribes when it connects
        answered = await asyncio.to_thread(link.suback.wait, timeout_s)
        if not answered:
            log.warning("MQTT broker %s: no answer to the subscription to %s within %g s",
                        link.settings.label, self.topic, timeout_s)

    def apply(self, pipeline: PipelineView | None, topic: str, payload: bytes) -> bool:
        """Apply one message to the pipeline's control; True when the control changed."""
        control = pipeline.control if pipeline is not None else None
        if control is None:
            log.warning("control message on %s ignored: no pipeline control attached", topic)
            return False
        try:
            change = control.apply(payload)
        except ValueError as exc:
            log.warning("control message on %s rejected: %s", topic, exc)
            return False
        except Exception as exc:  # whatever a sender wrote, the device runs on
            log.warning("control message on %s rejected: %s", topic, clip(repr(exc), 200))
            return False
        log.warning("control: %s", change)
        return True
