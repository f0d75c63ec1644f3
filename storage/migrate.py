"""Schema migrations with Alembic, run from our own code (`relaydesk db upgrade`, and on start)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_WAIT = 120.0
LOCK_PAUSE = 0.1
_LOCK_ID = 0x52454C4159  # any constant: serialises concurrent upgrades on PostgreSQL


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to `revision`; safe to run from several processes at once. On SQLite, one
    that finds another upgrading waits its turn asleep (SQLite itself waits only briefly for a lock:
    storage/sqlite_driver.py), for up to LOCK_WAIT seconds."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            async with engine.begin() as connection:
                await connection.run_sync(_upgrade, revision)
            return
        except OperationalError as error:
            if "database is locked" not in str(error.orig) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(LOCK_PAUSE)


def _upgrade(connection: Connection, revision: str) -> None:
    # Take the database's write lock first, so a second process waits and then finds the work done
    # (on SQLite every transaction begins by taking it: see storage/engine.py).
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)
