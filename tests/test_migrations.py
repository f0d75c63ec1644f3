"""The Alembic migrations build exactly the schema the models describe, and run both ways.

Runs on SQLite and PostgreSQL (see `database_url` in conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import DateTime, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain import Agent
from storage.engine import create_engine, session_factory
from storage.migrate import alembic_config, current_revision, upgrade
from storage.models import Base, UtcDateTime
from storage.uow import SqlUnitOfWork


def _head() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"the migrations must have one head, not {heads}"
    return heads[0]


def _is_datetime_decorator_noise(diff: Any) -> bool:
    """A type-only difference between DateTime(timezone=True) and the UtcDateTime decorator over it."""
    if not (isinstance(diff, tuple) and diff[0] == "modify_type"):
        return False
    old, new = diff[5], diff[6]
    kinds = {type(old), type(new)}
    return UtcDateTime in kinds and all(
        isinstance(t, UtcDateTime) or (isinstance(t, DateTime) and t.timezone) for t in (old, new)
    )


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    found = []
    for diff in compare_metadata(context, Base.metadata):
        # Column changes come grouped in a list; everything else is a tuple.
        items = diff if isinstance(diff, list) else [diff]
        found += [item for item in items if not _is_datetime_decorator_noise(item)]
    return found


async def _assert_schema_matches_models(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    assert differences == [], "models and migrations disagree:\n" + "\n".join(map(repr, differences))


async def _downgrade(engine: AsyncEngine, revision: str) -> None:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    await _assert_schema_matches_models(engine)


async def test_downgrade_to_base_then_upgrade_to_head(engine: AsyncEngine) -> None:
    model_tables = set(Base.metadata.tables)
    assert await _tables(engine) == model_tables | {"alembic_version"}

    await _downgrade(engine, "base")
    assert await current_revision(engine) is None
    assert await _tables(engine) <= {"alembic_version"}

    await upgrade(engine)
    assert await current_revision(engine) == _head()
    assert await _tables(engine) == model_tables | {"alembic_version"}
    await _assert_schema_matches_models(engine)

    # The rebuilt schema works.
    sessions = session_factory(engine)
    async with SqlUnitOfWork(sessions) as uow:
        agent = await uow.agents.add(Agent("slack", "U-ana", "Ana"))
        await uow.commit()
    async with SqlUnitOfWork(sessions) as uow:
        assert await uow.agents.get(agent.id) == Agent("slack", "U-ana", "Ana", agent.id)  # type: ignore[arg-type]


ROOT = str(Path(__file__).resolve().parents[1])
_UPGRADE_SCRIPT = """
import asyncio, sys
from storage.engine import create_engine
from storage.migrate import upgrade

async def main():
    engine = create_engine(sys.argv[1])
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()

asyncio.run(main())
"""


async def _upgrade_in_a_process(url: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _UPGRADE_SCRIPT,
        url,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, "timed out (blocked on another upgrade?)"
    return process.returncode or 0, output.decode(errors="replace")[-2000:]


async def test_concurrent_upgrades_are_serialised(database_url: str) -> None:
    """Several bot processes starting at once all upgrade; a lock lets one do the work.

    PostgreSQL takes an advisory lock; SQLite takes its write lock (BEGIN IMMEDIATE) before looking.
    """
    results = await asyncio.gather(*(_upgrade_in_a_process(database_url) for _ in range(4)))
    for code, output in results:
        assert code == 0, output

    engine = create_engine(database_url)
    try:
        assert await current_revision(engine) == _head()
        await _assert_schema_matches_models(engine)
    finally:
        await engine.dispose()
