"""Sink sections of a pipeline file."""

from __future__ import annotations

from pydantic import Field

from mmstream.config.sources import Section


class JsonlSinkConfig(Section):
    path: str = Field("-", description="file path, or '-' for stdout")


class MqttSinkConfig(Section):
    url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://host:port (mqtts:// for TLS)")
    prefix: str = Field("mmstream", description="topic prefix: <prefix>/<device>/<stream>/<type>")
    qos: int = Field(1, ge=0, le=2)
    client_id: str | None = None
    keepalive: int = Field(30, ge=5)
    connect_timeout_s: float = Field(5.0, gt=0)


class SinksConfig(Section):
    jsonl: JsonlSinkConfig | None = None
    mqtt: MqttSinkConfig | None = None
