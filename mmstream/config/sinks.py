"""Sink sections of a pipeline file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from mmstream.config.sources import Section


class JsonlSinkConfig(Section):
    path: str = Field("-", description="file path, or '-' for stdout")
    append: bool = Field(
        True, description="continue an existing file (seq goes on from its last events); "
        "false: start it anew")


class MqttSpoolConfig(Section):
    """The on-disk outbox (docs/mqtt.md): events wait here until the broker acknowledges them."""

    path: Path | Literal["memory"] | None = Field(
        None, description="SQLite file, or 'memory' (lost on exit); unset: `mmstream run` "
        "spools on disk ($STATE_DIRECTORY or ~/.local/state/mmstream, <device_id>.spool.db), "
        "replays and the demo in memory")
    max_events: int = Field(1_000_000, ge=100, description="shed (lowest priority first) above")
    max_mb: float = Field(256.0, gt=0, description="shed (lowest priority first) above this size")
    max_age_s: float = Field(7 * 24 * 3600.0, gt=0, description="drop spooled events older")
    max_held_events: int = Field(
        20_000, ge=1, description="while the spool's disk is full, events wait in memory up "
        "to this many (and 32 MiB), then the oldest of the lowest priority are dropped")
    synchronous: Literal["normal", "full"] = Field(
        "normal", description="normal survives a crash of mmstream; full also a power cut")


class MqttTlsConfig(Section):
    enabled: bool | None = Field(None, description="unset: on for mqtts:// URLs")
    ca_file: Path | None = Field(None, description="CA bundle; unset = the system's CAs")
    cert_file: Path | None = Field(None, description="client certificate (certificate auth)")
    key_file: Path | None = Field(None, description="client key (unset: in cert_file)")
    insecure: bool = Field(False, description="skip the hostname check (never in production)")


class HomeAssistantConfig(Section):
    enabled: bool = Field(False, description="publish Home Assistant MQTT discovery configs")
    prefix: str = Field("homeassistant", description="Home Assistant's discovery prefix")
    name: str | None = Field(None, description="device name shown in HA (default: device_id)")
    snapshot_interval_s: float = Field(
        2.0, gt=0, description="the camera entity's picture: at most one per stream this often")
    snapshot_width: int = Field(640, ge=64, le=3840, description="the picture's width (pixels)")
    presence_hold_s: float = Field(
        10.0, ge=0, description="'person present' stays on this long (media seconds) after "
        "the last window with a face or a person, so it does not flap")
    event_max_age_s: float = Field(
        60.0, gt=0, description="the utterance event entity ignores transcripts older than "
        "this (a restart, a spool delivering after an outage): automations see only fresh ones")


class CoalesceConfig(Section):
    """Scene/emotion/fused events whose tags did not change are not republished every frame."""

    enabled: bool = False
    min_interval_s: float = Field(1.0, ge=0, description="at most one change per stream and type")
    max_interval_s: float = Field(60.0, gt=0, description="republish unchanged tags this often")
    hysteresis: float = Field(0.1, ge=0, le=1, description="score moves below this are no change")
    min_score: float = Field(0.0, ge=0, le=1, description="tags under this score are ignored")


class MqttSinkConfig(Section):
    url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://host:port (mqtts:// for TLS)")
    prefix: str = Field("mmstream", description="topic prefix: <prefix>/<device>/<stream>/<type>")
    qos: int = Field(1, ge=0, le=2)
    client_id: str | None = Field(None, description="default: mmstream-<device_id> if persistent")
    keepalive: int = Field(30, ge=5)
    connect_timeout_s: float = Field(5.0, gt=0)
    username: str | None = Field(None, description="overrides a user in the URL")
    password: str | None = Field(None, repr=False,
                                 description="prefer MMSTREAM_SINKS__MQTT__PASSWORD or a file")
    password_file: Path | None = Field(None, description="file holding the password")
    tls: MqttTlsConfig = MqttTlsConfig()
    protocol: Literal["auto", "5", "3.1.1"] = Field("auto", description="auto: 5, else 3.1.1")
    clean_session: bool = Field(True, description="false: the broker keeps the session")
    session_expiry_s: int = Field(3600, ge=0, description="MQTT 5 persistent session lifetime")
    message_expiry_s: int | None = Field(None, gt=0, description="MQTT 5: brokers drop later")
    max_in_flight: int = Field(1000, ge=1, le=65000, description="publishes awaiting PUBACK")
    reconnect_min_s: float = Field(0.5, gt=0, description="first reconnect delay (then doubles)")
    reconnect_max_s: float = Field(30.0, gt=0, description="longest delay between reconnects")
    flush_timeout_s: float = Field(10.0, ge=0, description="on exit, wait this long for PUBACKs")
    health_interval_s: float = Field(30.0, ge=0, description="retained health payload; 0: off")
    spool: MqttSpoolConfig = MqttSpoolConfig()
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()
    control: bool = Field(False, description="obey <prefix>/<device>/control (needs auth)")
    coalesce: CoalesceConfig = CoalesceConfig()

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value


class SinksConfig(Section):
    jsonl: JsonlSinkConfig | None = None
    mqtt: MqttSinkConfig | None = None
