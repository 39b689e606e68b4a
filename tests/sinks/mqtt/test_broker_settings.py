"""`mmstream doctor` and the MQTT sink choose the same broker credentials and TLS settings.

First what each of them would connect with, for every combination of where a password can come
from (the config, a password file, the URL) and of the TLS settings; then, against a real
mosquitto with TLS and a password file, that the doctor passes exactly when the sink connects
and fails with the sink's reason when it cannot.
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmstream.config import MqttSinkConfig, load_pipeline
from mmstream.demo_broker import MosquittoBroker
from mmstream.doctor import broker_probe_settings, check_broker
from mmstream.errors import ConfigError, SinkError
from mmstream.sinks.mqtt import BrokerSettings, MqttSink
from tests.sinks.mqtt.certs import Authority
from tests.sinks.mqtt.helpers import tls_broker

SOURCES = ("config", "file", "url")  # where a password comes from, in the order that wins
USERS = {f"u-{source}": f"from-{source}" for source in SOURCES}  # each user's password


def mqtt_fields(port: int, sources: tuple[str, ...], user: str, folder: Path,
                **extra: Any) -> dict[str, Any]:
    """sinks.mqtt for `user` with a password from each of `sources` (`from-<source>`)."""
    login = f"{user}:from-url@" if "url" in sources else ""
    fields: dict[str, Any] = {"url": f"mqtts://{login}127.0.0.1:{port}", "connect_timeout_s": 3}
    if "url" not in sources:
        fields["username"] = user
    if "config" in sources:
        fields["password"] = "from-config"
    if "file" in sources:
        secret = folder / "password"
        secret.write_text("from-file\n")
        fields["password_file"] = str(secret)
    return {**fields, **extra}


def tls_facts(context: ssl.SSLContext | None) -> tuple[Any, ...] | None:
    """What a TLS context checks: host names, certificates, and against which CAs."""
    if context is None:
        return None
    cas = sorted(dict(name[0] for name in cert["subject"]).get("commonName", "?")
                 for cert in context.get_ca_certs())
    return context.check_hostname, context.verify_mode, cas


def chosen(settings: BrokerSettings) -> tuple[Any, ...]:
    return (settings.host, settings.port, settings.username, settings.password,
            tls_facts(settings.tls), settings.client_certificate, settings.label)


def sink_choice(fields: dict[str, Any]) -> tuple[Any, ...]:
    return chosen(MqttSink(MqttSinkConfig.model_validate(fields), "dev").link_settings().broker)


def doctor_choice(fields: dict[str, Any]) -> tuple[Any, ...]:
    return chosen(broker_probe_settings(MqttSinkConfig.model_validate(fields)).broker)


def every_combination() -> Iterator[tuple[str, ...]]:
    for size in range(len(SOURCES) + 1):
        yield from itertools.combinations(SOURCES, size)


@pytest.mark.parametrize("sources", list(every_combination()), ids="+".join)
def test_one_password_priority_config_then_file_then_url(sources: tuple[str, ...],
                                                         tmp_path: Path) -> None:
    fields = mqtt_fields(8883, sources, "edge", tmp_path)
    sink, doctor = sink_choice(fields), doctor_choice(fields)
    assert sink == doctor
    expected = f"from-{sources[0]}" if sources else None
    assert sink[2:4] == ("edge", expected)


def test_the_config_username_wins_over_the_url_s(tmp_path: Path) -> None:
    fields = {"url": "mqtt://url-user:pw@127.0.0.1:1883", "username": "config-user"}
    assert sink_choice(fields) == doctor_choice(fields)
    assert sink_choice(fields)[2:4] == ("config-user", "pw")


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path)


@pytest.mark.parametrize(("scheme", "enabled", "ca", "insecure"), itertools.product(
    ("mqtt", "mqtts"), (None, True, False), (False, True), (False, True)))
def test_the_same_tls_settings(scheme: str, enabled: bool | None, ca: bool, insecure: bool,
                               authority: Authority) -> None:
    client = authority.issue("client", ["edge"], client=True)
    tls: dict[str, Any] = {"enabled": enabled, "insecure": insecure, "cert_file": client.cert,
                           "key_file": client.key}
    if ca:
        tls["ca_file"] = authority.ca_file
    fields = {"url": f"{scheme}://127.0.0.1:1883", "tls": tls}
    sink, doctor = sink_choice(fields), doctor_choice(fields)
    assert sink == doctor
    on = enabled if enabled is not None else scheme == "mqtts"
    facts = sink[4]
    assert (facts is not None) == on
    assert sink[6].startswith("mqtts://" if on else "mqtt://")
    if facts is not None:
        check_hostname, verify_mode, cas = facts
        assert check_hostname == (not insecure) and verify_mode == ssl.CERT_REQUIRED
        assert ("mmstream test CA" in cas) == ca  # beside the system's CAs


def test_an_unreadable_file_is_the_same_error(tmp_path: Path) -> None:
    for fields, named in (
            ({"password_file": str(tmp_path / "missing")}, "sinks.mqtt.password_file"),
            ({"url": "mqtts://127.0.0.1", "tls": {"ca_file": str(tmp_path / "missing-ca")}},
             "sinks.mqtt.tls.ca_file")):
        config = MqttSinkConfig.model_validate(fields)
        with pytest.raises(ConfigError) as by_sink:
            MqttSink(config, "dev").link_settings()
        doctor = check_broker(load_pipeline(None, base=pipeline(fields), environ={}))
        assert doctor is not None and not doctor.ok and doctor.needed
        assert doctor.detail == str(by_sink.value) and str(by_sink.value).startswith(named)
        assert doctor.fix == f"make {named} readable by the service user"


# -- against a real mosquitto: TLS, a password file, one user per password source -------------

@pytest.fixture
def secured(tmp_path: Path, authority: Authority) -> Iterator[MosquittoBroker]:
    broker = tls_broker(tmp_path, authority, ["127.0.0.1"], USERS)  # not "localhost"
    try:
        yield broker
    finally:
        broker.stop()


def pipeline(mqtt: dict[str, Any]) -> dict[str, Any]:
    return {"device_id": "dev", "sources": [{"kind": "synthetic", "id": "cam0"}],
            "sinks": {"mqtt": mqtt}}


async def outcomes(fields: dict[str, Any]) -> tuple[str, str]:
    """(the sink's, the doctor's): "connected", or why not."""
    sink = MqttSink(MqttSinkConfig.model_validate(fields), "dev")
    label = sink.link_settings().label
    try:
        async with sink:
            said_sink = "connected"
    except SinkError as exc:
        said_sink = str(exc).removeprefix(f"cannot connect to MQTT broker {label}: ")
    check = check_broker(load_pipeline(None, base=pipeline(fields), environ={}))
    assert check is not None
    said_doctor = "connected" if check.ok else check.detail.split(": ", 1)[1]
    return said_sink, said_doctor


def login_cases(port: int, folder: Path, ca: Path) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(what, sinks.mqtt, should connect): the winning password logs in only its own user."""
    tls = {"ca_file": str(ca)}
    yield "a wrong password", {**mqtt_fields(port, ("config",), "u-config", folder, tls=tls),
                               "password": "wrong"}, False
    for sources in every_combination():
        if not sources:
            yield "no password", mqtt_fields(port, (), "u-config", folder, tls=tls), False
            continue
        winner = f"u-{sources[0]}"
        yield f"{'+'.join(sources)} as {winner}", mqtt_fields(port, sources, winner, folder,
                                                             tls=tls), True
        for loser in sources[1:]:  # a lower-priority password must not be the one sent
            yield (f"{'+'.join(sources)} as u-{loser}",
                   mqtt_fields(port, sources, f"u-{loser}", folder, tls=tls), False)


async def test_doctor_passes_exactly_when_the_sink_connects(
        secured: MosquittoBroker, authority: Authority, tmp_path: Path) -> None:
    for what, fields, should_connect in login_cases(secured.port, tmp_path, authority.ca_file):
        sink, doctor = await outcomes(fields)
        assert sink == doctor, what
        assert (sink == "connected") == should_connect, (what, sink)
        if not should_connect:
            assert sink.startswith("refused: "), (what, sink)


async def test_doctor_fails_with_the_sink_s_tls_reasons(
        secured: MosquittoBroker, authority: Authority, tmp_path: Path) -> None:
    port, ca = secured.port, str(authority.ca_file)
    login = mqtt_fields(port, ("file",), "u-file", tmp_path)
    cases = [  # (what, sinks.mqtt, a piece of the sink's own words: "connected" or its reason)
        ("mqtt:// with tls.enabled", {**login, "url": f"mqtt://127.0.0.1:{port}",
                                      "tls": {"enabled": True, "ca_file": ca}}, "connected"),
        ("mqtts:// without our CA", {**login, "tls": {}}, "certificate is not trusted"),
        ("mqtts:// with tls.enabled false", {**login, "tls": {"enabled": False}},
         "connection closed before CONNACK"),
        ("a host name the certificate lacks", {**login, "url": f"mqtts://localhost:{port}",
                                               "tls": {"ca_file": ca}}, "not trusted"),
        ("... with tls.insecure", {**login, "url": f"mqtts://localhost:{port}",
                                   "tls": {"ca_file": ca, "insecure": True}}, "connected"),
    ]
    for what, fields, expected in cases:
        sink, doctor = await outcomes(fields)
        assert sink == doctor, what
        assert expected in sink, (what, sink)
