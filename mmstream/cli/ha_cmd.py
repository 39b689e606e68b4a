"""`mmstream ha PIPELINE [--remove]`: publish or remove Home Assistant discovery configs.

The daemon publishes the configs itself when `sinks.mqtt.homeassistant.enabled`; this command
does it once without running the pipeline, and `--remove` (or `--ha-remove`) makes Home
Assistant forget the device's entities (empty retained configs).
"""

from __future__ import annotations

from pathlib import Path

import typer

from mmstream.cli.app import app, user_errors


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
        from mmstream.sinks.mqtt.one_shot import publish_retained

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
