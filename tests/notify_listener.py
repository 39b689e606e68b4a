"""A systemd notify socket for tests: what `mmstream run` tells systemd, as systemd hears it."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable


class NotifyListener:
    """Receives datagrams in a thread (so it keeps listening while the loop under test blocks)."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def texts(self) -> list[str]:
        return [text for _, text in self.messages]

    def wait_for(self, needle: str, timeout: float = 20.0, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for text in self.texts()[after:]:
                if needle in text:
                    return text
            time.sleep(0.02)
        raise AssertionError(f"no {needle!r} in {self.texts()}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def reload_then_stop(daemon: subprocess.Popen[str], received: NotifyListener,
                     published: Callable[[], int], events: int = 6) -> str:
    """SIGHUP once `events` are published, wait for READY=1 again and `events` more, then
    SIGTERM: the daemon's stderr (killed if it does not stop)."""
    from tests.conftest import wait_until

    try:
        wait_until(lambda: published() >= events, 120, "events before the reload")
        mark = len(received.texts())
        daemon.send_signal(signal.SIGHUP)
        received.wait_for("READY=1", after=mark, timeout=60)
        before = published()
        wait_until(lambda: published() >= before + events, 120, "events after the reload")
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    return stderr
