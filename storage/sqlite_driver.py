"""SQLite for SQLAlchemy's asyncio engine without a thread hop per call.

aiosqlite runs every driver call (cursor, execute, fetch, close, commit) on a thread of its own and
wakes the event loop for each answer. Measured here, a hop costs about 75 µs, a query four hops, so a
message's dozen queries spent most of their time crossing threads (bench/intake.py: 92 messages/s).
SQLite is a library working on a local file: a statement on a desk's database takes microseconds, less
than the hop. This module gives SQLAlchemy's aiosqlite dialect a connection with aiosqlite's async face
whose calls run at once on the calling thread, through the standard `sqlite3` module.

What this trades: a statement blocks the event loop while it runs. That is why the engine keeps one
connection (units of work queue for it in asyncio, first come first served, instead of spinning in
SQLite's busy handler) and a short busy timeout (a lock held by another process is waited for by the
desk's retries, asleep, rather than inside SQLite). PostgreSQL, for larger desks, runs on asyncpg.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Self

BUSY_TIMEOUT_MS = 250
"""How long one statement waits inside SQLite for another process's write lock before the unit of work
gives up and the desk tries again after a pause (the event loop waits that long at most)."""


class InlineCursor:
    """aiosqlite's Cursor, answered at once."""

    arraysize = 1

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Self:
        if parameters is None:
            self._cursor.execute(sql)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> Self:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid


class InlineConnection:
    """aiosqlite's Connection, answered at once. `_connection` is what SQLAlchemy's adapter checks to
    know whether the connection is still open."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection: sqlite3.Connection | None = connection

    @property
    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    @property
    def isolation_level(self) -> str | None:
        return self._open.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._open.cursor())

    async def commit(self) -> None:
        self._open.commit()

    async def rollback(self) -> None:
        self._open.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._open.create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def connector(path: str) -> Callable[[], Awaitable[InlineConnection]]:
    """The `async_creator` for an engine on the SQLite file at `path`. The driver begins no transaction
    by itself (isolation_level None): the engine issues BEGIN IMMEDIATE when a unit of work starts."""

    async def connect() -> InlineConnection:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return InlineConnection(connection)

    return connect
