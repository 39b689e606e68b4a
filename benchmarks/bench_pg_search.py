"""Search latency on 10 million fleet events in PostgreSQL, and the table size per million.

The store is bulk-loaded, not collected: a million synthetic events
(mmstream/history/synthetic.py, 4 streams: scene, emotion, fused a second each, a final
transcript in a quarter) are COPYed into a staging table once, then copied into `events` once per
device, each copy stretched over the whole year (one window per stream every few minutes, ~27,000
events a day with 10 devices). Indexes are built after the load, as a restore would. Then the
queries of bench_history.py run through the fleet's query interface (fleet/pg_search.py), with
a device filter added. A real PostgreSQL (tests/fleet/postgres.py), its data under /tmp, removed
afterwards.

    PYTHONPATH=. python3 benchmarks/bench_pg_search.py --events 10000000
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
from typing import Any

import psycopg

from benchmarks.bench_history import latencies
from mmstream.fleet.pg_schema import DAY_S, ensure_partitions
from mmstream.fleet.pg_search import PgHistory
from mmstream.fleet.pg_store import COLUMNS, PgStore, copy_values
from mmstream.history.query import Query
from mmstream.history.rows import event_row
from mmstream.history.synthetic import EMOTIONS, TAGS, WORDS, synthetic_events
from tests.fleet.postgres import running_postgres

YEAR_S = 365 * DAY_S
SEED_EVENTS = 1_000_000
NAMES = ", ".join(COLUMNS)


def load(url: str, count: int, start: float) -> dict[str, Any]:
    """`count` events of `count / SEED_EVENTS` devices over a year from `start`."""
    store = PgStore(url)
    store.open()  # the schema, as the collector makes it
    db = store.db
    assert db is not None
    seed = min(count, SEED_EVENTS)
    devices = max(1, count // seed)
    began = time.perf_counter()
    db.execute("SET maintenance_work_mem = '512MB'")
    indexes = db.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events'"
                         ).fetchall()
    for name, _ in indexes:
        db.execute(f"DROP INDEX {name}")
    ensure_partitions(db, {int((start + s) // DAY_S) for s in range(0, int(YEAR_S) + 2 * DAY_S,
                                                                        DAY_S)})
    db.execute(f"CREATE UNLOGGED TABLE seed AS SELECT {NAMES} FROM events LIMIT 0")
    with db.transaction(), db.cursor() as cursor:
        with cursor.copy(f"COPY seed ({NAMES}) FROM STDIN") as copy:
            for event in synthetic_events(seed, start=start, seed=11):
                copy.write_row(copy_values(event_row(event, anchor=0.0)))
    span = db.execute("SELECT max(t) - min(t) FROM seed").fetchone()[0]
    stretch = (YEAR_S - DAY_S) / max(span, 1.0)  # the seed's seconds spread over the year
    for device in range(devices):
        # every time of a row moves by the same amount, so utterances keep their length
        shift = f"(floor(t - {start}) * {stretch - 1} + {device * 7})"
        db.execute(
            f"INSERT INTO events ({NAMES}) SELECT t + {shift}, t_start + {shift}, "
            f"t_end + {shift}, 'dev{device}', stream, type, seq, final, text, emotion, valence, "
            f"person, media_t + {shift}, source, tags, body FROM seed")
    db.execute("DROP TABLE seed")
    loaded = time.perf_counter()
    for _, definition in indexes:  # pg_indexes says ON ONLY: that would skip the partitions
        db.execute(definition.replace(" ON ONLY ", " ON "))
    db.execute("ANALYZE events")
    done = time.perf_counter()
    rows, size = db.execute(
        "SELECT (SELECT count(*) FROM events), sum(pg_total_relation_size(inhrelid)) "
        "FROM pg_inherits WHERE inhparent = 'events'::regclass").fetchone()
    store.close()
    return {"events": int(rows), "devices": devices, "load_s": round(loaded - began),
            "index_s": round(done - loaded),
            "mb_per_million_events": round(int(size) / int(rows) * 1e6 / 2**20),
            "bytes_per_event": round(int(size) / int(rows))}


def searches(url: str, start: float, devices: int, n: int, slow: bool) -> dict[str, Any]:
    history = PgHistory(url)
    rng = random.Random(3)

    def window() -> tuple[float, float]:
        since = rng.uniform(start, start + YEAR_S - 31 * DAY_S)
        return since, since + rng.choice((DAY_S, 7 * DAY_S, 30 * DAY_S))

    def device() -> tuple[str, ...]:
        return (f"dev{rng.randrange(devices)}",)

    def text_device() -> Any:
        since, until = window()
        return history.search(Query(text=rng.choice(WORDS), devices=device(), since=since,
                                    until=until, limit=20))

    def text_stream() -> Any:
        since, until = window()
        return history.search(Query(text=rng.choice(WORDS), streams=(f"cam{rng.randrange(4)}",),
                                    since=since, until=until, limit=20))

    def tag_emotion() -> Any:
        since, until = window()
        return history.search(Query(tags=(rng.choice(TAGS),), emotions=(rng.choice(EMOTIONS),),
                                    devices=device(), since=since, until=until, limit=20))

    def words_tag_emotion() -> Any:
        since, until = window()
        return history.search(Query(text=rng.choice(WORDS), tags=("person",),
                                    emotions=(rng.choice(EMOTIONS),), devices=device(),
                                    since=since, until=until))

    figures: dict[str, Any] = {
        "moments_found_by_20_warm_up_queries": sum(len(text_device()) for _ in range(20))}
    kinds = [("fulltext_time_device", text_device, n), ("fulltext_time_stream", text_stream, n),
             ("tag_emotion_device", tag_emotion, n)]
    if slow:  # words + tag + emotion: a subquery per sentence, minutes each at 10 M
        kinds.append(("words_tag_emotion_device", words_tag_emotion, 5))
    for name, run, count in kinds:
        figures[name] = latencies(run, count)
        print(name, figures[name], file=sys.stderr, flush=True)  # a long run shows progress
    history.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--slow", action="store_true", help="also words + tag + emotion")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the server is removed all the same
    with running_postgres() as server:  # its data under /tmp, removed afterwards
        url = server.new_database()
        start = time.time() - YEAR_S
        figures: dict[str, Any] = {"store": load(url, args.events, start)}
        print("store", figures["store"], file=sys.stderr, flush=True)
        figures["search"] = searches(url, start, figures["store"]["devices"], args.queries,
                                     args.slow)
        with psycopg.connect(url) as db:
            figures["postgresql"] = db.execute("SHOW server_version").fetchone()[0]
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
