"""The collector's health (`GET /health`, JSON) and Prometheus metrics (`GET /metrics`), like the
daemon's: served from a thread of their own on loopback by default, reading counters the writer
thread keeps."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class CollectStats:
    received: int = 0
    rows: int = 0
    duplicates: int = 0
    refused: int = 0
    batches: int = 0
    db_errors: int = 0
    connects: int = 0
    lag_s: float = 0.0  # age of the oldest message received and not yet committed
    broker: str = "starting"
    database: str = "ok"
    _recent: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))

    def count_batch(self, inserted: int, duplicates: int) -> None:
        self.rows += inserted
        self.duplicates += duplicates
        self.batches += 1
        self._recent.append((time.monotonic(), self.rows))

    def rows_per_s(self) -> float:
        """Over the last batches (up to ~10 s)."""
        now = time.monotonic()
        recent = [(t, n) for t, n in self._recent if now - t <= 10.0]
        if len(recent) < 2 or recent[-1][0] <= recent[0][0]:
            return 0.0
        return (recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0])


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def health(stats: CollectStats, refusals: dict[tuple[str, str], int]) -> dict[str, Any]:
    state = "ok" if stats.database == "ok" and stats.broker == "connected" else "degraded"
    by_device: dict[str, dict[str, int]] = {}
    for (device, reason), n in refusals.items():
        by_device.setdefault(device, {})[reason] = n
    return {"state": state, "broker": stats.broker, "database": stats.database,
            "received": stats.received, "rows": stats.rows, "duplicates": stats.duplicates,
            "refused": stats.refused, "refused_by_device": by_device,
            "rows_per_s": round(stats.rows_per_s(), 1), "lag_s": round(stats.lag_s, 3)}


def prometheus_text(stats: CollectStats, refusals: dict[tuple[str, str], int]) -> str:
    lines = []

    def metric(name: str, kind: str, text: str, value: float, labels: str = "") -> None:
        if not any(line.startswith(f"# HELP {name} ") for line in lines):
            lines.extend([f"# HELP {name} {text}", f"# TYPE {name} {kind}"])
        lines.append(f"{name}{labels} {value}")

    metric("mmstream_collect_received_total", "counter", "Messages received", stats.received)
    metric("mmstream_collect_rows_total", "counter", "Rows committed", stats.rows)
    metric("mmstream_collect_duplicates_total", "counter", "Redeliveries already stored",
           stats.duplicates)
    metric("mmstream_collect_db_errors_total", "counter", "Failed database writes",
           stats.db_errors)
    metric("mmstream_collect_lag_seconds", "gauge", "Age of the oldest uncommitted message",
           stats.lag_s)
    metric("mmstream_collect_database_up", "gauge", "1 while PostgreSQL takes writes",
           int(stats.database == "ok"))
    metric("mmstream_collect_broker_up", "gauge", "1 while connected to the broker",
           int(stats.broker == "connected"))
    for (device, reason), n in sorted(refusals.items()):
        metric("mmstream_collect_refused_total", "counter", "Messages refused, by device",
               n, f'{{device="{_label(device)}",reason="{reason}"}}')
    return "\n".join(lines) + "\n"


class HealthServer:
    """`/health` and `/metrics` on (host, port); port 0 takes a free one (`port` says which)."""

    def __init__(self, host: str, port: int, stats: CollectStats,
                 refusals: Callable[[], dict[tuple[str, str], int]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                counts = dict(refusals())
                if self.path == "/health":
                    body = json.dumps(health(stats, counts)).encode()
                    kind = "application/json"
                elif self.path == "/metrics":
                    body, kind = prometheus_text(stats, counts).encode(), "text/plain"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name="mmstream-collect-health")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
