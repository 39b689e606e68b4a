"""systemd's notify protocol, spoken directly: datagrams to the socket in $NOTIFY_SOCKET.

`Type=notify` units wait for `READY=1`; `WatchdogSec=` units expect `WATCHDOG=1` at least every
$WATCHDOG_USEC microseconds or get restarted. The pings come from a task on the event loop, so
a loop that is stuck (a blocking call, a deadlock) stops pinging and systemd restarts the
daemon, which a thread-based pinger would hide. Without $NOTIFY_SOCKET (a terminal, a container)
every call is a cheap no-op. A socket path that starts with '@' is in the abstract namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def socket_address(value: str) -> str | bytes:
    """'@name' is Linux's abstract namespace (a leading NUL byte); anything else is a path."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class Notifier:
    """Sends `KEY=value` lines to systemd; never raises (a lost notification is only logged)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        target = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = socket_address(target) if target else None
        self.watchdog_interval_s = _watchdog_interval(env)
        self.sent: list[str] = []
        self._socket: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **fields: str | int) -> bool:
        """notify(READY=1, STATUS="running") sends 'READY=1\\nSTATUS=running'."""
        if self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            if self._socket is None:
                kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                self._socket = socket.socket(socket.AF_UNIX, kind)
                self._socket.setblocking(False)
            self._socket.sendto(message.encode(), self.address)
        except OSError as exc:
            log.warning("systemd notify (%s) failed: %s", message.replace("\n", " "), exc)
            return False
        self.sent.append(message)
        return True

    def ready(self, status: str = "running") -> bool:
        return self.notify(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def reloading(self) -> bool:
        return self.notify(RELOADING=1, STATUS="reloading the pipeline file")

    def stopping(self) -> bool:
        return self.notify(STOPPING=1, STATUS="draining and stopping")

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    async def feed_watchdog(self, interval_s: float | None = None) -> None:
        """Ping WATCHDOG=1 from the event loop until cancelled (half the systemd timeout)."""
        interval = interval_s or self.watchdog_interval_s
        if not self.enabled or not interval:
            return
        while True:
            self.watchdog()
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of $WATCHDOG_USEC, if the watchdog is meant for this process ($WATCHDOG_PID)."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1e6 / 2
