"""`mmstream replay ... --db`: an archive's events in the fleet's PostgreSQL store, found by
`mmstream search --db` (mmstream/fleet/archive.py, mmstream/cli/replay_db.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgspec
import psycopg
import pytest

from mmstream.events import Transcript, TranscriptEvent, encode
from mmstream.fleet.archive import load_events
from mmstream.fleet.pg_store import PgStore
from mmstream.history.synthetic import synthetic_events
from tests.conftest import SAMPLE_CLIP, words_of
from tests.fleet.postgres import PASSWORD


def test_events_files_are_loaded_back_to_back_ending_now_with_their_source(
        tmp_path: Path, pg_url: str) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    # media seconds, as a fast replay stamps them; an id with a quote, a semicolon, Unicode
    odd = "cam'; DROP TABLE events; --ü"
    events = list(synthetic_events(400, start=0.0, device_id="garage"))
    first.write_bytes(b"".join(encode(e) + b"\n" for e in events)
                      + b'{"not": "an event"}\n\n')
    said = TranscriptEvent(device_id="garage", stream_id=odd, seq=1, t_capture=5.0,
                           payload=Transcript(final=True, text="The parcel is here.",
                                              start=3.0, end=4.5))
    second.write_bytes(encode(said) + b"\n")
    store = PgStore(pg_url)
    store.open()
    now = time.time()
    loaded = load_events(store, [(first, "/archive/a.mp4"), (second, "/archive/b.mp4")], now)
    store.close()
    assert (loaded.inserted, loaded.duplicates, loaded.unreadable) == (401, 0, 1)
    last_of_first = max(e.t_capture for e in events)
    with psycopg.connect(pg_url) as db:
        per_source = dict(db.execute("SELECT source, count(*) FROM events GROUP BY 1"))
        t, stream = db.execute("SELECT t, stream FROM events WHERE text IS NOT NULL AND "
                               "source = '/archive/b.mp4'").fetchone()
        earliest = db.execute("SELECT min(t) FROM events").fetchone()[0]
    assert per_source == {"/archive/a.mp4": 400, "/archive/b.mp4": 1}
    assert stream == odd  # data, never SQL
    assert t == pytest.approx(now, abs=1e-3)  # b ends now, a right before it
    assert earliest == pytest.approx(now - 5.0 - last_of_first + min(
        e.t_capture for e in events), abs=1e-3)


@pytest.mark.slow
def test_replay_db_then_search_db_finds_the_clips_sentences(cli, pg_url: str) -> None:
    done = cli("replay", str(SAMPLE_CLIP), "--db", pg_url, "--set", "device_id=kitchen",
               timeout=600)
    assert done.returncode == 0, done.stderr
    assert "events into postgresql://mmstream@127.0.0.1" in done.stderr
    assert PASSWORD not in done.stderr + done.stdout
    found = cli("search", "coffee", "--db", pg_url, "--device", "kitchen", "--json")
    assert found.returncode == 0, found.stderr
    moments = json.loads(found.stdout)
    assert [words_of(m["text"]) for m in moments] == [words_of(
        "The coffee is ready on the table.")]
    assert moments[0]["recording"] == str(SAMPLE_CLIP.resolve())
    wrong = cli("replay", str(SAMPLE_CLIP), "--db", pg_url.replace(PASSWORD, "nope"))
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1
    assert "nope" not in wrong.stderr and "password" in wrong.stderr


@pytest.mark.slow
def test_replay_ray_db_writes_an_archive_from_the_driver(
        cli, pg_url: str, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="--ray needs mmstream[ray]")
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "porch.mp4").symlink_to(SAMPLE_CLIP)
    done = cli("replay", str(archive), "--ray", "--ray-workers", "1", "--out",
               str(tmp_path / "out"), "--db", pg_url, "--set", "device_id=porch", timeout=900)
    assert done.returncode == 0, done.stderr
    found = cli("search", "kitchen", "--db", pg_url, "--json")
    moments = json.loads(found.stdout)
    assert [m["device"] for m in moments] == ["porch"]
    assert moments[0]["recording"] == str(archive / "porch.mp4")
    with psycopg.connect(pg_url) as db:
        stored = db.execute("SELECT count(*) FROM events").fetchone()[0]
    [output] = (tmp_path / "out").glob("porch*.jsonl")
    events = output.read_bytes().splitlines()
    assert stored == len([msgspec.json.decode(line) for line in events])
