"""Which spooled rows go out next, and what waits in memory while the spool's disk is full.

A full disk is a state, not a crash (docs/mqtt.md, A full disk): events that cannot be stored
wait in memory, in order, up to `spool.max_held_events` / `HOLD_MAX_BYTES`; beyond that the oldest
of the lowest priority are dropped (counted as `disk_full`). Storing is retried every
`STORE_RETRY_S` and as soon as the held events fit they go into the spool, ahead of newer ones.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections import OrderedDict, deque

from mmstream.runtime import metrics
from mmstream.sinks.mqtt.spool import (
    PAGE,
    READY_MAX,
    SHED_FIRST,
    SHED_LAST,
    SHED_TARGET,
    Outgoing,
    Row,
    Spool,
    SpoolFull,
)

log = logging.getLogger(__name__)

ACK_BATCH = 500  # delete acknowledged rows after this many acks ...
ACK_INTERVAL_S = 0.05  # ... or this long, whichever comes first
HOLD_MAX_BYTES = 32 * 2**20  # events held in memory while the disk is full: bytes at most
STORE_CHUNK = 1000  # held events stored per transaction: partial room is used
STORE_RETRY_S = 1.0


class SendQueue:
    """Which spooled rows go out next, which await their PUBACK, and what can be deleted.

    Rows go out in id order; `cursor` is the last one handed to the client. Every row up to
    the oldest still in flight (or up to the cursor) is acknowledged, so one range delete
    settles a whole batch of acks, in whatever order they came.
    """

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.cursor = 0
        self.in_flight: OrderedDict[int, int] = OrderedDict()  # row id -> size, in id order
        self._ready: deque[Row] = deque()
        self._backlog = spool.depth > 0  # rows left by the last run go out first
        self._mid_rows: dict[int, int] = {}
        self.acked_since = 0
        self._acked_bytes = 0
        self._settled_at = 0.0
        self.held: deque[Outgoing] = deque()  # not stored yet: the disk is full
        self._held_bytes = 0
        self._retry_at = 0.0
        self.stored: list[Outgoing] = []  # what the last add/retry stored (qos 0 goes out now)
        self.stamped: dict[str, int] = {}  # the highest seq per stream handed to the queue

    @property
    def empty(self) -> bool:
        return not (self.in_flight or self._ready or self._backlog)

    @property
    def disk_full(self) -> bool:
        return bool(self.held)

    def add(self, items: list[Outgoing]) -> tuple[int, int]:
        """Store in the spool (one transaction) behind whatever is held; returns how many rows
        were shed for room and how many held events were dropped (the disk is full)."""
        self.stored = []
        for item in items:
            if item.seq > self.stamped.get(item.stream_id, 0):
                self.stamped[item.stream_id] = item.seq
        self.held.extend(items)
        self._held_bytes += sum(len(i.payload) for i in items)
        if len(self.held) == len(items) or time.monotonic() >= self._retry_at:
            return self.retry()
        return 0, self._drop_over_bound()

    def retry(self) -> tuple[int, int]:
        """Try to store what is held; (rows shed, held events dropped)."""
        self.stored, shed = [], 0
        while self.held:
            chunk = list(itertools.islice(self.held, STORE_CHUNK))
            try:
                rows, shed_now = self.spool.append(chunk, protect_through=self.cursor)
            except SpoolFull:
                self._retry_at = time.monotonic() + STORE_RETRY_S
                return shed, self._drop_over_bound()
            for _ in chunk:
                self._held_bytes -= len(self.held.popleft().payload)
            self.stored += chunk
            shed += shed_now
            if shed_now:
                self._reread()
            elif self._backlog or len(self._ready) + len(rows) > READY_MAX:
                self._backlog = True
            else:
                self._ready.extend(rows)
        return shed, 0

    def account(self, was_full: bool, shed: int, dropped: int) -> list[str]:
        """Count what a store or a retry shed or dropped; what the log and health should say."""
        if shed:
            metrics.count_drop("mqtt:spool", "spool_full", shed)
        if dropped:
            metrics.count_drop("mqtt:spool", "disk_full", dropped)
        path, said = self.spool.path, []
        if dropped:
            said.append(f"{dropped} events dropped: the spool's disk is full and more than "
                        f"{self.spool.limits.max_held_events} wait in memory")
        if not was_full and self.disk_full:
            said.append(f"the disk of the MQTT spool {path} is full: events wait in memory "
                        f"(up to {self.spool.limits.max_held_events}) until there is room")
        elif was_full and not self.disk_full:
            said.append(f"the MQTT spool {path} has room again "
                        f"({self.spool.dropped['disk_full']} events dropped while it was full)")
        return said

    def leave(self) -> None:
        """A clean stop: the next run numbers on right after the last seq stamped."""
        if held := len(self.held):
            self.spool.dropped["disk_full"] += held
            log.warning("MQTT spool %s: its disk is still full; %d events held in memory are "
                        "lost", self.spool.path, held)
        with contextlib.suppress(SpoolFull):  # then the next run continues after the
            self.spool.release_seqs(self.stamped)  # reserved block: a jump, never a reuse

    def _drop_over_bound(self) -> int:
        """Over the bound: drop down to 90 % of it, oldest of the lowest priority first."""
        most = self.spool.limits.max_held_events
        if len(self.held) <= most and self._held_bytes <= HOLD_MAX_BYTES:
            return 0
        excess_events = len(self.held) - int(most * SHED_TARGET)
        excess_bytes = self._held_bytes - int(HOLD_MAX_BYTES * SHED_TARGET)
        dropped: set[int] = set()
        for priority in range(SHED_FIRST, SHED_LAST + 1):
            for index, item in enumerate(self.held):
                if excess_events <= 0 and excess_bytes <= 0:
                    break
                if item.priority == priority:
                    dropped.add(index)
                    excess_events -= 1
                    excess_bytes -= len(item.payload)
        self.held = deque(item for index, item in enumerate(self.held) if index not in dropped)
        self._held_bytes = sum(len(i.payload) for i in self.held)
        self.spool.dropped["disk_full"] += len(dropped)
        return len(dropped)

    def _reread(self) -> None:
        """Rows may have gone from under the in-memory list: read back what is left."""
        self._ready.clear()
        self._backlog = True

    def next_row(self) -> Row | None:
        if not self._ready:
            if not self._backlog:
                return None
            page = self.spool.read_after(self.cursor, PAGE)
            self._backlog = len(page) == PAGE
            if not page:
                return None
            self._ready.extend(page)
        return self._ready.popleft()

    def sent(self, row: Row, mid: int) -> None:
        self._mid_rows[mid] = row[0]
        self.in_flight[row[0]] = len(row[2]) + len(row[1])
        self.cursor = row[0]

    def acked(self, mid: int) -> bool:
        """False for a message that was not a spooled row (status, health, discovery)."""
        row_id = self._mid_rows.pop(mid, None)
        if row_id is None:
            return False
        self._acked_bytes += self.in_flight.pop(row_id, 0)
        self.acked_since += 1
        return True

    def settle(self, force: bool = False) -> None:
        """Delete every acknowledged row, in one statement per batch of acks."""
        if not self.acked_since:
            return
        now = time.monotonic()
        if not force and self.acked_since < ACK_BATCH and now - self._settled_at < ACK_INTERVAL_S:
            return
        through = next(iter(self.in_flight)) - 1 if self.in_flight else self.cursor
        self._settled_at = now
        try:
            self.spool.ack_through(through, self._acked_bytes)
        except SpoolFull:
            return  # the rows stay (a restart would send them again); the next settle retries
        self.acked_since = self._acked_bytes = 0

    def expire(self) -> int:
        try:
            expired = self.spool.expire(protect_through=self.cursor)
        except SpoolFull:
            return 0
        if expired:
            self._reread()
        return expired
