"""A real PostgreSQL per test session (tests/fleet/postgres.py), a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fleet.postgres import PostgresServer, running_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """The URL of an empty database of its own (password included)."""
    return postgres_server.new_database()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of the test's own, for tests that stop and start it."""
    with running_postgres() as server:
        yield server
