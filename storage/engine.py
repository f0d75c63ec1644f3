"""Engines for SQLite (the default, one file) and PostgreSQL (several bot processes)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from storage import sqlite_driver

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def async_url(url: str) -> str:
    """Accept the URLs people paste (`postgresql://`, `sqlite:///`) and pick the async driver."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False) if driver else url


def create_engine(url: str, **options: Any) -> AsyncEngine:
    """An async engine.

    On PostgreSQL, pooled connections are tested before use, so one the server dropped (a restart, a
    failover) is replaced instead of failing the next unit of work.

    On a SQLite file: one connection, driven on the event loop's thread (`storage.sqlite_driver`), in
    WAL mode with foreign keys, and transactions that take the write lock when they begin (BEGIN
    IMMEDIATE). SQLite has one writer at a time anyway; with one connection, units of work wait their
    turn in order in asyncio instead of in SQLite's busy handler."""
    parsed = make_url(async_url(url))
    if parsed.get_backend_name() != "sqlite":
        options.setdefault("pool_pre_ping", True)
        return create_async_engine(parsed, **options)
    if parsed.database and parsed.database != ":memory:" and not parsed.query:
        options.setdefault("async_creator", sqlite_driver.connector(parsed.database))
        options.setdefault("pool_size", 1)
        options.setdefault("max_overflow", 0)
    inline = "async_creator" in options
    engine = create_async_engine(parsed, **options)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas if inline else _sqlite_threaded_pragmas)
    event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


_TURNS: weakref.WeakKeyDictionary[Engine, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]]
_TURNS = weakref.WeakKeyDictionary()


def turn(engine: AsyncEngine) -> asyncio.Lock | None:
    """On SQLite, the lock units of work take in turn, first come first served; None elsewhere.

    SQLAlchemy's pool hands a returned connection to whoever asks first, so a task that finishes one
    unit of work and starts the next at once takes the only connection again ahead of those waiting,
    and under load one message could wait behind hundreds. asyncio's lock is fair."""
    sync = engine.sync_engine
    if sync.dialect.name != "sqlite":
        return None
    locks = _TURNS.setdefault(sync, weakref.WeakKeyDictionary())
    return locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())


CONNECTION = "connection"
"""Where a session keeps its transaction's connection for Core statements (see `connection`)."""


class UnitOfWorkSession(Session):
    """A session whose transaction's connection is looked up once (`connection`), not per statement."""


@event.listens_for(UnitOfWorkSession, "after_transaction_end")
def _forget_connection(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the transaction itself, not a flush's subtransaction within it
        session.info.pop(CONNECTION, None)


async def connection(session: AsyncSession) -> AsyncConnection:
    """The connection of the session's transaction (begun if need be), kept until the transaction ends."""
    found = session.info.get(CONNECTION)
    if found is None:
        found = session.info[CONNECTION] = await session.connection()
    return found  # type: ignore[no-any-return]


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, sync_session_class=UnitOfWorkSession
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    if dbapi_connection.isolation_level is not None:
        dbapi_connection.isolation_level = None  # the driver begins nothing by itself: _sqlite_begin does
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_threaded_pragmas(dbapi_connection: Any, record: Any) -> None:
    """aiosqlite's thread may wait in SQLite's busy handler without holding up the event loop."""
    _sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
