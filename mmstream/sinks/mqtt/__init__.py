"""MQTT: the sink and everything that talks to a broker (docs/mqtt.md).

    broker.py         where the broker is, credentials and TLS: one place, used by the sink,
                      `doctor`, `ha`, `listen` and the demo
    topics.py         the topic names
    client.py         the paho client as mmstream configures it (settings, factory, errors)
    link.py           the sink's connection: paho driven from a thread of its own
    send_queue.py     which spooled rows go out next; what waits while the disk is full
    spool.py          the durable outbox (SQLite)
    health.py         the retained health payload
    control.py        the control topic
    homeassistant.py  the retained states Home Assistant's entities read
    discovery.py      Home Assistant MQTT discovery
    one_shot.py       short sessions on the same client: `ha` publishes, `listen` and the
                      demo subscribe
    sink.py           MqttSink, composing the above
"""

from mmstream.sinks.mqtt.broker import (
    BrokerAddress,
    BrokerSettings,
    SettingsFileError,
    broker_settings,
    parse_mqtt_url,
)
from mmstream.sinks.mqtt.sink import MqttSink

__all__ = [
    "BrokerAddress",
    "BrokerSettings",
    "MqttSink",
    "SettingsFileError",
    "broker_settings",
    "parse_mqtt_url",
]
