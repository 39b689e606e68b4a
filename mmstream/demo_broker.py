"""An MQTT broker on loopback for the demo and the tests: mosquitto if installed, else amqtt."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmstream.errors import MmstreamError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise MmstreamError(f"MQTT broker did not start listening on {host}:{port}")


class MosquittoBroker:
    """A real mosquitto on 127.0.0.1; `stop()`/`start()` again on the same port for fault tests."""

    kind = "mosquitto"

    def __init__(self, port: int | None = None, extra_config: str = "") -> None:
        self.port = port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="mmstream-mosquitto-"))
        self.config_path = self.workdir / "mosquitto.conf"
        self.config_path.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.workdir}/\n"
            f"max_inflight_messages 0\nmax_queued_messages 100000\n{self._stay_user(extra_config)}"
            f"{extra_config}"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _stay_user(extra_config: str) -> str:
        """As root, mosquitto drops to user `mosquitto`, which cannot write the temporary
        persistence folder; the sessions kept across a restart (fault tests) need it."""
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            return ""
        chosen = any(line.split()[:1] == ["user"] for line in extra_config.splitlines())
        return "" if chosen else "user root\n"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        log_path = self.workdir / "mosquitto.log"
        with log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                ["mosquitto", "-c", str(self.config_path)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(self.port)
        except MmstreamError:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise MmstreamError(f"mosquitto did not start on port {self.port}: "
                                f"{' | '.join(tail)}") from None

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=10)
        self.process = None


class AmqttBroker:
    """amqtt in a background thread with its own event loop (fallback without mosquitto)."""

    kind = "amqtt"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._thread: threading.Thread | None = None
        self._stop: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        import asyncio

        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {
                "allow_anonymous": True}},
        }
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            stopped = asyncio.Event()
            self._stop = (loop, stopped)

            async def main() -> None:
                broker = Broker(config)
                await broker.start()
                ready.set()
                await stopped.wait()
                await broker.shutdown()

            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=serve, name="amqtt-broker", daemon=True)
        self._thread.start()
        ready.wait(10)
        wait_for_port(self.port)

    def stop(self, kill: bool = False) -> None:
        if self._thread is None:
            return
        loop, stopped = self._stop
        loop.call_soon_threadsafe(stopped.set)
        self._thread.join(timeout=10)
        self._thread = None


@contextlib.contextmanager
def embedded_broker(prefer: str = "mosquitto") -> Iterator[MosquittoBroker | AmqttBroker]:
    """Start a loopback broker for the duration of the block."""
    broker: MosquittoBroker | AmqttBroker
    if prefer == "mosquitto" and shutil.which("mosquitto"):
        broker = MosquittoBroker()
    else:
        broker = AmqttBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
