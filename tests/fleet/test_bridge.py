"""Fleet fan-in: two mmstream processes -> site broker -> bridge -> central broker -> two
shared-subscription consumers. Every event arrives centrally exactly as published."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path

import aiomqtt
import pytest
from conftest import REPO
from paho.mqtt.enums import MQTTProtocolVersion

from mmstream.demo_broker import MosquittoBroker
from mmstream.events import decode

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("mosquitto"), reason="needs mosquitto"),
]

SITE_CONF = REPO / "deploy" / "fleet" / "site-broker.conf"
# settings the test broker sets itself, or that need real certificates / passwords
REPLACED = ("per_listener_settings", "listener", "allow_anonymous", "persistence",
            "persistence_location", "autosave_interval",
            "max_queued_messages", "max_inflight_messages", "bridge_cafile", "remote_username",
            "remote_password", "address")


def site_bridge_config(central_port: int) -> str:
    """The shipped site config's bridge section, pointed at a loopback central broker."""
    kept = [line for line in SITE_CONF.read_text().splitlines()
            if line.strip() and not line.startswith("#") and line.split()[0] not in REPLACED]
    at = kept.index(next(line for line in kept if line.startswith("connection ")))
    kept.insert(at + 1, f"address 127.0.0.1:{central_port}")
    return "\n".join(kept) + "\n"


async def wait_bridge_up(central: MosquittoBroker) -> None:
    async with aiomqtt.Client("127.0.0.1", central.port) as client:
        await client.subscribe("mmstream-bridges/+/state", qos=1)
        async with asyncio.timeout(20):
            async for message in client.messages:
                if message.payload == b"1":
                    return


async def consume(port: int, name: str, into: list[bytes], stop: asyncio.Event,
                  ready: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=name,
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe("$share/backend/mmstream/+/+/+", qos=1)
        ready.set()
        async for message in client.messages:
            into.append(bytes(message.payload))  # type: ignore[arg-type]
            if stop.is_set():
                return


async def replay(sample: Path, url: str, device: str, out: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mmstream", "replay", str(sample), "--mqtt", url, "--out",
        str(out), "--set", f"device_id={device}", cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode == 0, stderr.decode()


async def test_events_from_two_devices_reach_central_consumers_exactly_once(
        sample_clip: Path, tmp_path: Path) -> None:
    assert MQTTProtocolVersion.MQTTv5  # shared subscriptions are an MQTT 5 feature
    central = MosquittoBroker()
    central.start()
    site = MosquittoBroker(extra_config=site_bridge_config(central.port))
    site.start()
    try:
        await wait_bridge_up(central)
        received: dict[str, list[bytes]] = {"c1": [], "c2": []}
        stop = asyncio.Event()
        readies = [asyncio.Event(), asyncio.Event()]
        consumers = [asyncio.create_task(consume(central.port, name, received[name], stop, r))
                     for name, r in zip(received, readies, strict=True)]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 10)
        outs = [tmp_path / "dev-a.jsonl", tmp_path / "dev-b.jsonl"]
        await asyncio.gather(replay(sample_clip, site.url, "dev-a", outs[0]),
                             replay(sample_clip, site.url, "dev-b", outs[1]))
        published = [line for out in outs for line in out.read_bytes().splitlines()]
        for _ in range(300):  # bounded: at most 30 s for the last events to cross the bridge
            if sum(map(len, received.values())) >= len(published):
                break
            await asyncio.sleep(0.1)
        stop.set()
        for consumer in consumers:
            consumer.cancel()
        arrived = received["c1"] + received["c2"]
        assert Counter(arrived) == Counter(published), "byte-identical, no loss, no duplicates"
        assert received["c1"] and received["c2"], "the shared subscription splits the load"
        for device in ("dev-a", "dev-b"):
            seqs = sorted(e.seq for e in map(decode, arrived) if e.device_id == device)
            assert seqs == list(range(1, len(seqs) + 1)), "seq intact per stream"
    finally:
        site.stop()
        central.stop()
