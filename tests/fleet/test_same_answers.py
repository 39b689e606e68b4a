"""One query interface, two backends: the same events in the device's SQLite store and in the
fleet's PostgreSQL store give the same moments and the same day for the same queries."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import msgspec

from mmstream.events import Event, Scene, SceneEvent, Tag, Transcript, TranscriptEvent
from mmstream.fleet.pg_search import PgHistory
from mmstream.fleet.pg_store import PgStore
from mmstream.history.query import Moment, Query
from mmstream.history.rows import event_row
from mmstream.history.search import open_history
from mmstream.history.synthetic import synthetic_events
from tests.fleet.postgres import PASSWORD
from tests.history.helpers import written_store

START = time.time() - 3 * 3600


def the_events() -> list[Event]:
    events = [*synthetic_events(3000, start=START, device_id="kitchen"),
              *synthetic_events(2000, start=START + 100, device_id="porch", seed=7)]
    t = START + 150
    events.append(TranscriptEvent(device_id="porch", stream_id="cam1", seq=10_000, t_capture=t,
                                  payload=Transcript(final=True, text="Two packages arrived.",
                                                     start=t - 2, end=t - 0.5)))
    # no two streams at the same instant: moments at equal times have no defined order
    apart = [msgspec.structs.replace(e, t_capture=e.t_capture + 0.01 * int(e.stream_id[-1])
                                     + 0.05 * (e.device_id == "porch")) for e in events]
    return sorted(apart, key=lambda e: e.t_capture)  # as they are published: in time order


QUERIES = (
    Query(text="coffee", limit=50),
    Query(text="package", limit=50),  # stemmed: finds "packages" in both
    Query(text="kitchen", streams=("cam1",), since=START + 20, until=START + 200),
    Query(tags=("dog",), limit=30),
    Query(tags=("person", "car"), since=START + 30),
    Query(emotions=("angry", "sad"), limit=25),
    Query(tags=("cup",), emotions=("happy",)),
    Query(types=("scene",), streams=("cam2",), limit=10),
    Query(limit=40),
    Query(text="milk", devices=("porch",), limit=40),
    Query(tags=("cat",), devices=("kitchen",), streams=("cam0",)),
)


def comparable(moments: list[Moment]) -> list[Moment]:
    """Row ids differ between stores, and pictures stay on the device."""
    return [dataclasses.replace(m, event_ids=(), thumbnail=None) for m in moments]


def test_sqlite_and_postgresql_answer_the_same(tmp_path: Path, pg_url: str) -> None:
    events = the_events()
    written_store(tmp_path / "device.history.db", events)
    store = PgStore(pg_url)
    store.open()
    store.write([event_row(e, 0) for e in events])
    store.close()
    device, fleet = open_history(tmp_path / "device.history.db"), PgHistory(pg_url)
    try:
        for query in QUERIES:
            expected = comparable(device.search(query))
            assert expected, f"{query} finds nothing: not a comparison"
            assert comparable(fleet.search(query)) == expected, query
        assert fleet.timeline(START, START + 3600) == device.timeline(START, START + 3600)
        assert fleet.timeline(START, START + 3600, ["cam3"]) == device.timeline(
            START, START + 3600, ["cam3"])
        assert fleet.streams() == sorted(device.streams())
        assert fleet.devices() == ["kitchen", "porch"]
    finally:
        device.close()
        fleet.close()


def test_search_db_on_the_command_line(cli, pg_url: str) -> None:
    store = PgStore(pg_url)
    store.open()
    store.write([event_row(e, 0) for e in the_events()])
    store.close()
    done = cli("search", "arrive", "--db", pg_url, "--device", "porch", "--json")
    assert done.returncode == 0, done.stderr
    moments = json.loads(done.stdout)
    assert [m["text"] for m in moments] == ["Two packages arrived."]
    assert moments[0]["device"] == "porch"
    wrong = pg_url.replace(PASSWORD, "nope")
    done = cli("search", "packages", "--db", wrong)
    assert done.returncode == 2 and PASSWORD not in done.stderr and "nope" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_moment_shows_its_own_devices_windows(tmp_path: Path, pg_url: str) -> None:
    """Two devices, one stream name, the same second: each sentence keeps its own scene."""
    t = START + 500
    events: list[Event] = []
    for seq, (device, tag) in enumerate((("kitchen", "dog"), ("porch", "car")), 1):
        events += [SceneEvent(device_id=device, stream_id="cam0", seq=seq, t_capture=t,
                              payload=Scene(tags=[Tag(tag, 0.9)])),
                   TranscriptEvent(device_id=device, stream_id="cam0", seq=seq + 10,
                                   t_capture=t + 0.5, payload=Transcript(
                                       final=True, text=f"Look at the {tag}.", start=t - 1.5,
                                       end=t - 0.2))]
    written_store(tmp_path / "two.history.db", events)
    store = PgStore(pg_url)
    store.open()
    store.write([event_row(e, 0) for e in events])
    store.close()
    device, fleet = open_history(tmp_path / "two.history.db"), PgHistory(pg_url)
    try:
        for history in (device, fleet):
            found = {m.device: m.tags for m in history.search(Query(text="look"))}
            assert found == {"kitchen": ("dog",), "porch": ("car",)}
    finally:
        device.close()
        fleet.close()
