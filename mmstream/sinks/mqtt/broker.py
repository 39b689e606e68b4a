"""Where the broker is and how to log in: address, credentials and TLS, decided in one place.

The sink, `mmstream doctor`, `mmstream ha`, `mmstream listen` and the demo all call
`broker_settings(config)`, so they cannot disagree about which password or which CA is used:

- the username: `username`, else the URL's;
- the password: `password`, else `password_file`, else the URL's (never logged);
- TLS: `tls.enabled` when set, else on for mqtts:// URLs; the certificate and host name are
  checked against `tls.ca_file` (or the system's CAs), `tls.insecure` skips the host name;
  `tls.cert_file`/`key_file` log in with a client certificate.

A file that cannot be read is a `SettingsFileError` naming the setting it came from (by default
`sinks.mqtt.<field>`; `listen` names its own command-line options).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mmstream.config import MqttSinkConfig
from mmstream.errors import ConfigError

SETTINGS_PREFIX = "sinks.mqtt"


class SettingsFileError(ConfigError):
    """A password, CA or certificate file that cannot be read; `setting` says which."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True)
class BrokerAddress:
    """What the URL says: host, port, TLS by scheme, and any user:password in it."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:  # never shows the password
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"BrokerAddress({self})"


def parse_mqtt_url(url: str) -> BrokerAddress:
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ConfigError(f"MQTT URL {parts.scheme}://{parts.hostname}: scheme must be mqtt:// "
                          "or mqtts://")
    if not parts.hostname:
        raise ConfigError(f"MQTT URL {parts.scheme}://…: no host")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ConfigError(f"MQTT URL {parts.scheme}://{parts.hostname}: bad port") from None
    return BrokerAddress(
        parts.hostname, port, tls,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


@dataclass(frozen=True)
class BrokerSettings:
    """Everything needed to reach and log in to the broker; the same for every client."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: ssl.SSLContext | None = None
    client_certificate: Path | None = None

    @property
    def label(self) -> str:
        """What errors and logs call the broker (never with the password)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def authenticated(self) -> bool:
        """The broker knows who we are: a username (with its password) or a client certificate."""
        return self.username is not None or self.client_certificate is not None


def broker_settings(config: MqttSinkConfig,
                    setting_names: Mapping[str, str] | None = None) -> BrokerSettings:
    """The broker address, credentials and TLS context for `config`: the one place they are
    decided. `setting_names` renames settings in errors (`{"password_file": "--password-file"}`).
    """
    renamed = setting_names or {}

    def name(setting: str) -> str:
        return renamed.get(setting, f"{SETTINGS_PREFIX}.{setting}")

    address = parse_mqtt_url(config.url)
    return BrokerSettings(
        host=address.host, port=address.port,
        username=config.username or address.username,
        password=_password(config, address, name),
        tls=_tls_context(config, address, name),
        client_certificate=config.tls.cert_file)


def _password(config: MqttSinkConfig, address: BrokerAddress,
              names: Callable[[str], str]) -> str | None:
    """The password from the config, else its file, else the URL (never logged)."""
    if config.password:
        return config.password
    if config.password_file is not None:
        try:
            return config.password_file.read_text().strip()
        except OSError as exc:
            setting = names("password_file")
            raise SettingsFileError(setting, f"{setting} {config.password_file}: "
                                             f"{exc.strerror}") from None
    return address.password


def _tls_context(config: MqttSinkConfig, address: BrokerAddress,
                 names: Callable[[str], str]) -> ssl.SSLContext | None:
    """Certificate and hostname checks on, unless `tls.insecure` turns the hostname check off."""
    tls = config.tls
    if not (tls.enabled if tls.enabled is not None else address.tls):
        return None

    def load(what: str, path: Path, action: Callable[[], Any]) -> None:
        try:
            action()
        except (OSError, ssl.SSLError, ValueError) as exc:
            setting = names(f"tls.{what}")
            raise SettingsFileError(setting, f"{setting} {path}: "
                                             f"{getattr(exc, 'strerror', None) or exc}") from None

    context = ssl.create_default_context()
    if tls.ca_file is not None:
        load("ca_file", tls.ca_file, lambda: context.load_verify_locations(cafile=tls.ca_file))
    if tls.cert_file is not None:
        load("cert_file", tls.cert_file,
             lambda: context.load_cert_chain(tls.cert_file, tls.key_file))  # type: ignore[arg-type]
    if tls.insecure:
        context.check_hostname = False
    return context
