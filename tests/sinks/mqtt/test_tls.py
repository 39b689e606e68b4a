"""TLS and passwords against a real mosquitto: a throwaway CA, a TLS listener, a password file."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmstream.config import MqttSinkConfig
from mmstream.demo_broker import MosquittoBroker
from mmstream.errors import SinkError
from mmstream.events import Transcript, TranscriptEvent, decode
from mmstream.sinks.mqtt import MqttSink
from tests.conftest import REPO
from tests.sinks.mqtt.certs import Authority
from tests.sinks.mqtt.helpers import async_read_until, tls_broker

PASSWORD = "s3cret-Pa55-do-not-log"
USERS = {"edge": PASSWORD}
pytestmark = pytest.mark.skipif(not shutil.which("mosquitto_passwd"),
                                reason="mosquitto_passwd is not installed")


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path)


@pytest.fixture
def broker(tmp_path: Path, authority: Authority) -> Iterator[MosquittoBroker]:
    instance = tls_broker(tmp_path, authority, ["localhost", "127.0.0.1"], USERS)
    try:
        yield instance
    finally:
        instance.stop()


def sink_for(port: int, tmp_path: Path, ca: Path, **overrides: object) -> MqttSink:
    secret = tmp_path / "mqtt-password"
    secret.write_text(PASSWORD + "\n")
    fields: dict[str, object] = {"url": f"mqtts://127.0.0.1:{port}", "username": "edge",
                                 "password_file": secret, "tls": {"ca_file": ca},
                                 "connect_timeout_s": 3, **overrides}
    return MqttSink(MqttSinkConfig.model_validate(fields), "secure")


def transcript(n: int) -> TranscriptEvent:
    return TranscriptEvent(device_id="secure", stream_id="mic0", seq=n, t_capture=float(n),
                           payload=Transcript(final=True, text=f"line {n}", start=n, end=n + 1))


async def test_good_credentials_over_tls_deliver(broker: MosquittoBroker, authority: Authority,
                                                 tmp_path: Path) -> None:
    sink = sink_for(broker.port, tmp_path, authority.ca_file)  # writes the password file
    listener = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mmstream", "listen", f"mqtts://edge@127.0.0.1:{broker.port}",
        "--password-file", str(tmp_path / "mqtt-password"), "--ca-file", str(authority.ca_file),
        "--jsonl", "--count", "3", "--seconds", "60", cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert listener.stderr is not None
    said = await asyncio.wait_for(async_read_until(listener.stderr, "subscribed on"), 60)
    (tmp_path / "mqtt-password").write_text(PASSWORD)  # no newline: read the same
    async with sink:
        for n in range(1, 4):
            await sink.send(transcript(n))
    assert sink.published == 3
    out, rest = await asyncio.wait_for(listener.communicate(), 60)
    err = "".join(said) + rest.decode()
    assert listener.returncode == 0, err
    assert [decode(line).seq for line in out.splitlines()] == [1, 2, 3]
    assert "0 gaps" in err and PASSWORD not in err


async def test_wrong_password_fails_clearly_without_the_secret(
        broker: MosquittoBroker, authority: Authority, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sink = sink_for(broker.port, tmp_path, authority.ca_file, password_file=None,
                    password="wrong-" + PASSWORD)
    refused = (r"cannot connect to MQTT broker mqtts://127\.0\.0\.1:\d+: "
               r"refused: (Bad user name or password|Not authorized)")
    with pytest.raises(SinkError, match=refused) as err:
        await sink.__aenter__()
    assert PASSWORD not in str(err.value) and PASSWORD not in caplog.text
    assert PASSWORD not in repr(sink.config) and PASSWORD not in repr(sink.broker)


async def test_untrusted_ca_fails_clearly(broker: MosquittoBroker, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    stranger = Authority(tmp_path / "other", name="some other CA")
    sink = sink_for(broker.port, tmp_path, stranger.ca_file)
    with pytest.raises(SinkError, match="TLS: the broker's certificate is not trusted"):
        await sink.__aenter__()


async def test_hostname_is_checked_unless_insecure(tmp_path: Path, authority: Authority) -> None:
    elsewhere = tls_broker(tmp_path, authority, ["broker.example"], USERS)  # not 127.0.0.1
    try:
        with pytest.raises(SinkError, match=r"not trusted.*(IP address mismatch|hostname)"):
            await sink_for(elsewhere.port, tmp_path, authority.ca_file).__aenter__()
        sink = sink_for(elsewhere.port, tmp_path, authority.ca_file,
                        tls={"ca_file": authority.ca_file, "insecure": True})
        async with sink:
            await sink.send(transcript(1))
        assert sink.published == 1
    finally:
        elsewhere.stop()


async def test_client_certificate_authenticates(tmp_path: Path, authority: Authority) -> None:
    secured = tls_broker(tmp_path, authority, ["127.0.0.1"], USERS,
                         "require_certificate true\nuse_identity_as_username true\n")
    client = authority.issue("client-edge", ["edge"], client=True)
    try:
        sink = MqttSink(MqttSinkConfig.model_validate({
            "url": f"mqtts://127.0.0.1:{secured.port}", "connect_timeout_s": 3,
            "tls": {"ca_file": authority.ca_file, "cert_file": client.cert,
                    "key_file": client.key}}), "secure")
        async with sink:
            await sink.send(transcript(1))
        assert sink.published == 1
        without = MqttSink(MqttSinkConfig.model_validate({
            "url": f"mqtts://127.0.0.1:{secured.port}", "connect_timeout_s": 3,
            "tls": {"ca_file": authority.ca_file}}), "secure")
        with pytest.raises(SinkError, match="cannot connect to MQTT broker"):
            await without.__aenter__()
    finally:
        secured.stop()


def test_doctor_checks_the_broker_with_the_sinks_tls_settings(
        broker: MosquittoBroker, authority: Authority, tmp_path: Path) -> None:
    from mmstream.config import load_pipeline
    from mmstream.doctor import check_broker

    secret = tmp_path / "mqtt-password"
    secret.write_text(PASSWORD + "\n")
    base = {"device_id": "secure", "sources": [{"kind": "synthetic", "id": "cam0"}],
            "sinks": {"mqtt": {"url": f"mqtts://127.0.0.1:{broker.port}", "username": "edge",
                               "password_file": str(secret),
                               "tls": {"ca_file": str(authority.ca_file)}}}}
    good = check_broker(load_pipeline(None, base=base), timeout_s=5)
    assert good is not None and good.ok, good
    # Without our CA, the same broker's certificate is not trusted: said, not "connected".
    base["sinks"]["mqtt"]["tls"] = {}
    untrusted = check_broker(load_pipeline(None, base=base), timeout_s=5)
    assert untrusted is not None and not untrusted.ok
    assert "TLS: the broker's certificate is not trusted" in untrusted.detail  # as the sink says
    base["sinks"]["mqtt"]["tls"] = {"ca_file": str(tmp_path / "missing-ca.pem")}
    missing = check_broker(load_pipeline(None, base=base), timeout_s=5)
    assert missing is not None and not missing.ok and "missing-ca.pem" in missing.detail
