"""A spool whose disk fills during a run (a real 256 KiB tmpfs) and is then freed: events wait
in memory, then are dropped and counted, writing resumes, and `seq` shows the loss as a jump.
A link thread that dies stops the run with its cause."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mmstream.config import MqttSinkConfig
from mmstream.demo_broker import MosquittoBroker
from mmstream.errors import SinkError
from mmstream.events import Scene, SceneEvent, Tag
from mmstream.sinks.mqtt import MqttSink
from tests.conftest import async_wait_until
from tests.sinks.mqtt.helpers import Subscriber, first_occurrences

HELD = 100  # events the test lets wait in memory (the default is 20,000)


def scene(seq: int) -> SceneEvent:
    return SceneEvent(device_id="edge", stream_id="cam0", seq=seq, t_capture=float(seq),
                      payload=Scene(tags=[Tag(f"label {seq}", 0.5)]))


async def test_a_full_spool_disk_holds_then_drops_then_resumes_and_seq_shows_the_gap(
        mosquitto: MosquittoBroker, small_tmpfs: Path) -> None:
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"\0" * 128 * 1024)  # freed later: "space returns"
    mosquitto.stop()  # the broker is down: every event goes into the spool
    config = MqttSinkConfig(url=mosquitto.url, health_interval_s=0, reconnect_max_s=0.5,
                            spool={"path": small_tmpfs / "spool.db", "max_held_events": HELD})
    sink = MqttSink(config, "edge")
    seq = 0

    async def send(count: int) -> None:
        nonlocal seq
        for _ in range(count):
            seq += 1
            await sink.send(scene(seq))

    async with sink:
        while not sink.health()["spool_held"]:  # 1. the disk fills: events wait in memory
            await send(50)
            await async_wait_until(lambda: sink._link is not None and not sink._link.backlog,
                                   10, "the link taking the events")
        stored = sink.spool.depth
        await send(2 * HELD)  # 2. more than may wait: the oldest are dropped, and counted
        await async_wait_until(lambda: sink.spool.dropped["disk_full"] > 0, 10, "drops")
        assert sink.spool.depth == stored  # nothing was written meanwhile, nothing crashed
        filler.unlink()  # 3. space returns: what waits goes into the spool, in order
        await async_wait_until(lambda: not sink.health()["spool_held"], 10, "writing again")
        await send(10)
        await async_wait_until(lambda: sink._link is not None and not sink._link.held
                               and not sink._link.backlog, 10, "the last events stored")
        dropped = sink.spool.dropped["disk_full"]
        mosquitto.start()
        with Subscriber(mosquitto.port, "mmstream/edge/+/+", client_id="full-disk") as sub:
            await async_wait_until(lambda: len(first_occurrences(sub.events())) >= seq - dropped,
                                   30, "every stored event delivered")
            seqs = first_occurrences(sub.events())
    assert seqs == sorted(set(seqs)) and seqs[-1] == seq  # in order, never repeated
    assert len(seqs) == seq - dropped  # every event not counted as dropped arrived
    missing = seq - len(seqs)
    assert missing == dropped > 0  # the loss shows as a jump in seq, exactly as counted
    assert seqs[:stored] == list(range(1, stored + 1))


async def test_a_restart_after_the_disk_filled_never_reuses_a_seq(small_tmpfs: Path,
                                                                 mosquitto: MosquittoBroker,
                                                                 ) -> None:
    """The issue's case: the process dies while its spool's disk is full; the restart must
    number on past every seq a subscriber may have seen, so the loss shows as a jump."""
    mosquitto.stop()
    path = small_tmpfs / "spool.db"
    (small_tmpfs / "filler").write_bytes(b"\0" * 128 * 1024)
    config = MqttSinkConfig(url=mosquitto.url, health_interval_s=0, flush_timeout_s=0,
                            spool={"path": path, "max_held_events": HELD})
    sink = MqttSink(config, "edge")
    async with sink:
        seq = 0
        while not sink.health()["spool_held"]:
            seq += 1
            await sink.send(scene(seq))
            await async_wait_until(lambda: sink._link is not None and not sink._link.backlog,
                                   10, "the link taking the event")
    with sqlite3.connect(path) as db:
        stored = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert stored < seq  # some events never reached the disk
    again = MqttSink(config, "edge")
    async with again:
        resume = again.resume_seqs()["cam0"]
    assert resume >= seq  # past everything stamped: a jump, never a reuse


async def test_a_link_thread_that_dies_stops_the_run_with_its_cause(
        mosquitto: MosquittoBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = MqttSink(MqttSinkConfig(url=mosquitto.url, health_interval_s=0), "edge")

    def corrupt(*_: object, **__: object) -> None:  # a fault no test can make real cheaply
        raise sqlite3.DatabaseError("database disk image is malformed")

    with pytest.raises(SinkError, match=r"the MQTT link to .* stopped: DatabaseError: database "
                                        r"disk image is malformed"):
        async with sink:
            monkeypatch.setattr(sink.spool, "append", corrupt)
            await sink.send(scene(1))
            await async_wait_until(lambda: sink._link is not None and sink._link.failure, 10,
                                   "the link thread's end")
            await sink.send(scene(2))  # the pipeline's next event stops the run
