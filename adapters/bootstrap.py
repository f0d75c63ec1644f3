"""Wiring in one place: settings in, a running desk out. Nothing connects at import time."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock
from bot.config import Settings
from bot.desk import Desk
from bot.mood import MoodReader
from bot.policy import Policy, load_policy
from bot.ports import UnitOfWork
from storage.engine import create_engine, session_factory
from storage.migrate import upgrade
from storage.report_queries import keep_durations
from storage.uow import SqlUnitOfWork


class StartupError(RuntimeError):
    """Relaydesk cannot start; the message says what to fix."""


@dataclass
class Runtime:
    settings: Settings
    policy: Policy
    engine: AsyncEngine
    desk: Desk
    uow_factory: Callable[[], UnitOfWork]
    """Units of work on the database, for work outside the desk (data-rights exports and erasures)."""

    async def close(self) -> None:
        await self.engine.dispose()


async def build(settings: Settings, clock: Clock) -> Runtime:
    """Load the policy, open and migrate the database, and assemble the desk."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    policy = load_policy(settings.policy_path)
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
    except (DBAPIError, OSError) as error:
        await engine.dispose()
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        reason = getattr(error, "orig", None) or error
        raise StartupError(f"DATABASE_URL: cannot open the database at {where}: {reason}") from error
    sessions = session_factory(engine)

    def uow_factory() -> UnitOfWork:
        return SqlUnitOfWork(sessions)

    desk = Desk(uow_factory, clock, policy)
    MoodReader.from_policy(policy.complaints).warm()
    # What start-up made lives as long as the process: the collector need not go over it again in
    # every full pass (those were 80-170 ms pauses under load, inside a handoff packet, say).
    gc.freeze()
    return Runtime(settings, policy, engine, desk, uow_factory)


async def migrate(settings: Settings) -> tuple[str, int]:
    """`relaydesk db upgrade`: bring the database to the newest schema, and keep the business time of
    met clocks that have none (met before migration 0012: reports measure those one by one, slowly);
    returns where it went and how many clocks it measured."""
    policy = load_policy(settings.policy_path)
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        async with session_factory(engine)() as session:
            measured = await keep_durations(session, policy.hours_for)
    except (DBAPIError, OSError) as error:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        raise StartupError(f"DATABASE_URL: cannot open the database at {where}: {error}") from error
    finally:
        await engine.dispose()
    return make_url(settings.database_url).render_as_string(hide_password=True), measured
