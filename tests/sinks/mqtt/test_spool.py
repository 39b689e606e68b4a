"""The durable outbox on a real SQLite file: order, acks, shedding policy, expiry, restart."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from mmstream.errors import SinkError
from mmstream.events import (
    Emotion,
    EmotionEvent,
    Scene,
    SceneEvent,
    Status,
    StatusEvent,
    Transcript,
    TranscriptEvent,
)
from mmstream.sinks.mqtt.send_queue import SendQueue
from mmstream.sinks.mqtt.spool import (
    SEQ_BLOCK,
    SHED_FIRST,
    SHED_LAST,
    SHED_LATER,
    Outgoing,
    Spool,
    SpoolLimits,
    shed_priority,
)


def item(n: int, priority: int = SHED_LAST, stream: str = "s0") -> Outgoing:
    return Outgoing(f"mm/d/{stream}/transcript", f"event {n}".encode(), 1, priority, stream, n)


def opened(path: Path | None, **limits: float) -> Spool:
    spool = Spool(path, SpoolLimits(**limits))  # type: ignore[arg-type]
    spool.open()
    return spool


def payloads(spool: Spool) -> list[bytes]:
    return [row[2] for row in spool.read_after(0, 10_000)]


def test_priorities_follow_the_documented_policy() -> None:
    def transcript(final: bool) -> TranscriptEvent:
        return TranscriptEvent(stream_id="s", t_capture=0,
                               payload=Transcript(final=final, text="x", start=0, end=1))

    assert shed_priority(transcript(final=False)) == SHED_FIRST
    assert shed_priority(SceneEvent(stream_id="s", t_capture=0, payload=Scene(tags=[]))) \
        == SHED_FIRST
    assert shed_priority(StatusEvent(stream_id="s", t_capture=0,
                                     payload=Status(state="online"))) == SHED_LATER
    assert shed_priority(transcript(final=True)) == SHED_LAST
    assert shed_priority(EmotionEvent(stream_id="s", t_capture=0, payload=Emotion(
        label="happy", scores={"happy": 1.0}, valence=0.5))) == SHED_LAST


def test_rows_survive_a_reopen_in_order_with_the_last_seq(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = opened(path)
    rows, shed = spool.append([item(n) for n in range(1, 6)], protect_through=0)
    assert shed == 0 and [r[0] for r in rows] == sorted(r[0] for r in rows)
    spool.append([item(7, stream="s1")], protect_through=0)
    spool.ack_through(rows[1][0], 0)  # the broker has the first two
    spool.release_seqs({"s0": 5, "s1": 7})  # a clean close
    spool.close()
    again = opened(path)
    assert payloads(again) == [b"event 3", b"event 4", b"event 5", b"event 7"]
    assert again.depth == 4
    assert again.last_seqs() == {"s0": 5, "s1": 7}


def test_after_an_unclean_end_numbering_jumps_past_every_seq_that_may_have_been_used(
        tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = opened(path)
    spool.append([item(n) for n in range(1, 124)], protect_through=0)
    spool.close()  # no release: killed, or its disk was full when it stopped
    again = opened(path)
    assert again.last_seqs() == {"s0": 123 + SEQ_BLOCK}  # reserved with the rows, ahead
    again.append([item(n) for n in range(SEQ_BLOCK + 124, SEQ_BLOCK + 127)], protect_through=0)
    again.release_seqs({"s0": SEQ_BLOCK + 130, "s1": 9})  # stamped, though not all stored
    again.close()
    assert opened(path).last_seqs() == {"s0": SEQ_BLOCK + 130, "s1": 9}


def test_an_old_spool_without_reservations_opens_and_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with contextlib.closing(sqlite3.connect(path)) as db:  # the schema of earlier releases
        db.execute("CREATE TABLE streams (stream_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)")
        db.execute("INSERT INTO streams VALUES ('s0', 41)")
        db.commit()
    assert opened(path).last_seqs() == {"s0": 41}


def test_a_second_process_cannot_share_the_spool(tmp_path: Path) -> None:
    first = opened(tmp_path / "spool.db")
    first.append([item(1)], protect_through=0)
    with pytest.raises(SinkError, match="another mmstream"):
        opened(tmp_path / "spool.db")
    first.close()


def test_full_spool_sheds_partials_and_tags_first_then_status_then_finals(tmp_path: Path) -> None:
    spool = opened(tmp_path / "spool.db", max_events=100)
    batch = [item(n, priority=(SHED_LAST, SHED_FIRST, SHED_LATER)[n % 3]) for n in range(90)]
    spool.append(batch, protect_through=0)
    _, shed = spool.append([item(n, SHED_LAST) for n in range(90, 120)], protect_through=0)
    assert spool.depth == 90 and shed == 30  # down to 90 % of the limit
    kept = payloads(spool)
    first_class = {f"event {n}".encode() for n in range(90) if n % 3 == 1}
    assert first_class.isdisjoint(kept)  # every shed-first row went ...
    assert all(f"event {n}".encode() in kept for n in range(90) if n % 3 != 1)  # ... and only them
    # over the limit again with nothing sheddable left but status and finals: status goes next
    _, shed = spool.append([item(n, SHED_LAST) for n in range(120, 135)], protect_through=0)
    assert shed == 15 and spool.dropped["spool_full:priority1"] == 15
    assert spool.dropped["spool_full:priority0"] == 30


def test_rows_with_the_broker_are_never_shed(tmp_path: Path) -> None:
    spool = opened(tmp_path / "spool.db", max_events=100)
    rows, _ = spool.append([item(n, SHED_FIRST) for n in range(100)], protect_through=0)
    protect = rows[49][0]  # the first 50 are in flight
    spool.append([item(n, SHED_LAST) for n in range(100, 110)], protect_through=protect)
    kept = payloads(spool)
    assert kept[:50] == [f"event {n}".encode() for n in range(50)]
    assert len(kept) == 90


def test_byte_limit_and_age_limit(tmp_path: Path) -> None:
    spool = opened(tmp_path / "spool.db", max_bytes=10_000, max_age_s=60)
    big = [Outgoing("t", bytes(1000), 1, SHED_FIRST, "s0", n) for n in range(12)]
    spool.append(big, protect_through=0)
    assert spool.bytes <= 9000 and spool.depth == 8
    assert spool.expire(protect_through=0, now=1e12) == 8  # everything is old by then
    assert spool.depth == 0 and spool.dropped["spool_expired"] == 8
    assert spool.expire(protect_through=0) == 0


def test_send_queue_settles_out_of_order_acks_with_one_range_delete(tmp_path: Path) -> None:
    spool = opened(tmp_path / "spool.db")
    queue = SendQueue(spool)
    queue.add([item(n) for n in range(1, 5)])
    sent = []
    while (row := queue.next_row()) is not None:
        queue.sent(row, mid=100 + row[0])
        sent.append(row)
    assert [r[2] for r in sent] == [b"event 1", b"event 2", b"event 3", b"event 4"]
    assert queue.acked(100 + sent[2][0]) and queue.acked(100 + sent[0][0])
    assert not queue.acked(9999)  # not a spooled row (status, health)
    queue.settle(force=True)
    assert payloads(spool) == [b"event 2", b"event 3", b"event 4"]  # only up to the oldest open
    queue.acked(100 + sent[1][0])
    queue.acked(100 + sent[3][0])
    queue.settle(force=True)
    assert spool.depth == 0 and queue.empty


def test_send_queue_replays_rows_left_by_the_last_run_first(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = opened(path)
    spool.append([item(n) for n in range(1, 2501)], protect_through=0)
    spool.close()
    queue = SendQueue(opened(path))
    queue.add([item(2501)])
    order = []
    while (row := queue.next_row()) is not None:
        queue.sent(row, mid=row[0])
        order.append(row[2])
    assert order == [f"event {n}".encode() for n in range(1, 2502)]


def test_in_memory_spool_is_not_durable() -> None:
    spool = opened(None)
    spool.append([item(1)], protect_through=0)
    assert not spool.durable and spool.depth == 1
