"""Shared storage fixtures: a migrated database on SQLite and on PostgreSQL, and units of work on it.

`database_url` is parametrised over both backends, so any test that asks for it (or for `engine` or
`uow_factory`, which build on it) runs once per backend. PostgreSQL runs only when TEST_DATABASE_URL
points at a server where its user may create databases; otherwise those cases are skipped.

Each pytest session creates its own PostgreSQL database (`relaydesk_test_<hex>`) and drops it at the end,
so parallel runs against one server never see each other. Tests are isolated within it by dropping and
recreating the `public` schema before each test, which takes a few milliseconds.

The PostgreSQL housekeeping is synchronous (each call runs a coroutine on a private event loop in a
worker thread), so it does not depend on pytest-asyncio's loop scopes and works from sync and async
tests alike.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import create_engine, session_factory
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWork

T = TypeVar("T")

TEST_DATABASE_URL = "TEST_DATABASE_URL"
_SKIP_POSTGRES = (
    f"{TEST_DATABASE_URL} is not set; set it to e.g. postgresql://postgres@127.0.0.1:5432/test "
    "(a user that may CREATE DATABASE) to run the PostgreSQL cases"
)


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh event loop in its own thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _server_url() -> URL | None:
    raw = os.environ.get(TEST_DATABASE_URL, "").strip()
    if not raw:
        return None
    url = make_url(raw)
    if url.get_backend_name() != "postgresql":
        pytest.fail(f"{TEST_DATABASE_URL} must be a postgresql:// URL, not {url.drivername}://", False)
    return url


def _asyncpg_dsn(url: URL) -> str:
    """asyncpg takes plain `postgresql://` DSNs: drop any `+asyncpg`/`+psycopg` driver suffix."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlalchemy_url(url: URL) -> str:
    return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


async def _admin(url: URL, *statements: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def _postgres_database() -> Iterator[URL]:
    """This session's own PostgreSQL database, created on first use and dropped at the end."""
    server = _server_url()
    if server is None:
        pytest.skip(_SKIP_POSTGRES)
    name = f"relaydesk_test_{secrets.token_hex(6)}"
    _run_sync(_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name)
    finally:
        _run_sync(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_url(_postgres_database: URL) -> str:
    """An empty PostgreSQL database (`postgresql+asyncpg://` URL) for tests that need PostgreSQL.

    The schema is dropped and recreated first, so nothing from an earlier test remains. A lock timeout
    turns a connection leaked by an earlier test into an error here instead of a hang.
    """
    _run_sync(
        _admin(
            _postgres_database,
            "SET lock_timeout = '10s'",
            "DROP SCHEMA IF EXISTS public CASCADE",
            "CREATE SCHEMA public",
        )
    )
    return _sqlalchemy_url(_postgres_database)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for this test."""
    return f"sqlite+aiosqlite:///{tmp_path / 'relaydesk.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database, once on SQLite and once on PostgreSQL (skipped without TEST_DATABASE_URL)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database migrated to head; disposed after the test."""
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def sqlite_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite engine, for tests that run on SQLite only (the platform adapters' wire tests)."""
    engine = create_engine(sqlite_url)
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def uow_factory(engine: AsyncEngine) -> Callable[[], SqlUnitOfWork]:
    """Makes a new unit of work on the migrated database each time it is called (as the Desk expects)."""
    sessions = session_factory(engine)
    return lambda: SqlUnitOfWork(sessions)
