"""`mmstream ha PIPELINE [--remove]`: publish or remove Home Assistant discovery configs.

The daemon publishes the configs itself when `sinks.mqtt.homeassistant.enabled`; this command
does it once without running the pipeline, and `--remove` (or `--ha-remove`) makes Home
Assistant forget the device's entities (empty retained configs).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mmstream.cli.app import app, user_errors

if TYPE_CHECKING:
    from mmstream.sinks.mqtt.client import LinkSettings

PUBLISH_TIMEOUT_S = 10.0


def publish_retained(settings: LinkSettings, messages: list[tuple[str, bytes]]) -> None:
    """Connect once, publish every message retained with QoS 1, wait for each PUBACK."""
    import paho.mqtt.client as paho

    from mmstream.errors import SinkError
    from mmstream.sinks.mqtt.client import describe_connect_error, make_client

    client = make_client(settings, paho.MQTTv311)
    connack = threading.Event()
    outcome: dict[str, object] = {}

    def on_connect(_c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        outcome["reason"] = reason
        connack.set()

    client.on_connect = on_connect
    try:
        client.connect(settings.broker.host, settings.broker.port, settings.keepalive)
    except (OSError, ValueError) as exc:
        raise SinkError(f"cannot connect to MQTT broker {settings.label}: "
                        f"{describe_connect_error(exc)[0]}") from None
    client.loop_start()
    try:
        reason = outcome.get("reason") if connack.wait(settings.connect_timeout_s) else None
        if reason is None or getattr(reason, "is_failure", True):
            raise SinkError(f"cannot connect to MQTT broker {settings.label}: "
                            f"refused: {reason or 'no CONNACK'}")
        infos = [client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(PUBLISH_TIMEOUT_S)
            if not info.is_published():
                raise SinkError(f"MQTT broker {settings.label}: no PUBACK within "
                                f"{PUBLISH_TIMEOUT_S:g} s")
    except (RuntimeError, ValueError) as exc:
        raise SinkError(f"MQTT broker {settings.label}: publish failed: {exc}") from None
    finally:
        client.disconnect()
        client.loop_stop()


@app.command("ha")
def home_assistant(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML file with a sinks.mqtt section."),
    ha_remove: bool = typer.Option(False, "--remove", "--ha-remove",
                                   help="Remove the device's entities from Home Assistant."),
    set_: list[str] = typer.Option([], "--set", help="Override a field: a.b=c (repeatable)."),
) -> None:
    """Publish the Home Assistant MQTT discovery configs of a pipeline (or remove them)."""
    with user_errors():
        from mmstream.build import web_link
        from mmstream.config import load_pipeline
        from mmstream.errors import ConfigError
        from mmstream.sinks.mqtt.client import one_off_settings
        from mmstream.sinks.mqtt.discovery import discovery_messages, removal_messages

        config = load_pipeline(pipeline, sets=set_)
        mqtt = config.sinks.mqtt
        if mqtt is None:
            raise ConfigError(f"{pipeline}: no sinks.mqtt section to take the broker from")
        streams = [source.id for source in config.sources]
        # the web view's link where `web.public_url` names it (the running daemon
        # republishes the configs with the address it serves on)
        entities = discovery_messages(mqtt.homeassistant, mqtt.prefix, config.device_id,
                                      streams, control=mqtt.control,
                                      configuration_url=web_link(config))
        messages = entities
        if ha_remove:  # also the control entities an earlier configuration may have had
            messages = removal_messages(mqtt.homeassistant, mqtt.prefix, config.device_id,
                                        streams)
        settings = one_off_settings(mqtt)  # the sink's broker and credentials; not its session
        publish_retained(settings, messages)
        done = "removed" if ha_remove else "published"
        # the same count both ways: the entities this pipeline has
        typer.echo(f"{done} {len(entities)} Home Assistant entities of {config.device_id} "
                   f"({len(streams)} streams) on {settings.label}", err=True)
