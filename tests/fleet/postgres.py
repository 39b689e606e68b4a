"""A real PostgreSQL for tests and benchmarks, started the way the tests start mosquitto: Debian's
binaries, `initdb` in a temporary folder, the server on 127.0.0.1 and a free port. As root it
runs as the unprivileged `nobody` (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mmstream.demo_broker import free_port

USER = "mmstream"
PASSWORD = "s3cret-for-tests"
RUN_AS = "nobody"


def postgres_bindir() -> Path | None:
    """Where `initdb` and `postgres` are: `pg_config --bindir`, else Debian's folders."""
    candidates: list[str] = []
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(found.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "postgres").exists():
            return Path(folder)
    return None


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A started server of its own, removed (data and all) afterwards; pytest skips, saying
    why, where the binaries are missing."""
    bindir = postgres_bindir()
    if bindir is None:
        import pytest

        pytest.skip("no PostgreSQL binaries (initdb, postgres): apt-get install postgresql")
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.remove()


class PostgresServer:
    """`start()`, `stop()` (fast shutdown) and `start()` again on the same port and data."""

    def __init__(self, bindir: Path, port: int | None = None) -> None:
        self.bindir = bindir
        self.port = port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="mmstream-postgres-"))
        self.data = self.workdir / "data"
        self.process: subprocess.Popen[bytes] | None = None
        self._as_user = ["runuser", "-u", RUN_AS, "--"] if os.geteuid() == 0 else []
        self._initdb()

    def _initdb(self) -> None:
        password_file = self.workdir / "pw"
        password_file.write_text(PASSWORD + "\n")
        if self._as_user:
            shutil.chown(self.workdir, RUN_AS)
            shutil.chown(password_file, RUN_AS)
        subprocess.run([*self._as_user, str(self.bindir / "initdb"), "-D", str(self.data),
                        "-U", USER, f"--pwfile={password_file}", "--auth-local=trust",
                        "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
                       check=True, capture_output=True)

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        log = (self.workdir / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            [*self._as_user, str(self.bindir / "postgres"), "-D", str(self.data),
             "-p", str(self.port), "-k", str(self.workdir), "-c", "listen_addresses=127.0.0.1",
             "-c", "fsync=off", "-c", "max_connections=50"],  # fsync off: tests, not durability
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        import psycopg

        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("PostgreSQL did not start: "
                                       + (self.workdir / "postgres.log").read_text()[-2000:]
                                       ) from None
                time.sleep(0.1)

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            # the server runs under runuser: signal the whole session, then wait for it
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
