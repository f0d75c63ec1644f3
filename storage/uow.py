"""The SQLAlchemy unit of work: one session, one transaction, rolled back unless committed."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Self

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from bot.ports import Conflict, Unavailable
from storage.engine import turn
from storage.repositories import (
    SqlAgents,
    SqlAnchors,
    SqlAudit,
    SqlCheckins,
    SqlClocks,
    SqlCustomers,
    SqlDeliveries,
    SqlEntries,
    SqlProfiles,
    SqlPromises,
    SqlSnippets,
    SqlSurveys,
    SqlTickets,
    SqlTimeline,
    flush,
    is_lost_race,
    is_unavailable,
    is_unique_violation,
)

log = logging.getLogger(__name__)

NOTHING_WRITTEN = "none"
"""The transaction id of one that wrote nothing (PostgreSQL assigns ids only to writers)."""
OUTCOME_PAUSES = (0.05, 0.2, 0.5, 1.0, 2.0)
"""Pauses while asking whether a COMMIT that went unanswered took effect."""


class SqlUnitOfWork:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        bind = sessions.kw.get("bind")
        self._engine = bind if isinstance(bind, AsyncEngine) else None

    async def __aenter__(self) -> Self:
        self._turn = turn(self._engine) if self._engine is not None else None
        if self._turn is not None:
            await self._turn.acquire()
        self.session = self._sessions()
        self._committing = False
        self.customers = SqlCustomers(self.session)
        self.agents = SqlAgents(self.session)
        self.tickets = SqlTickets(self.session)
        self.entries = SqlEntries(self.session)
        self.timeline = SqlTimeline(self.session)
        self.anchors = SqlAnchors(self.session)
        self.snippets = SqlSnippets(self.session)
        self.audit = SqlAudit(self.session)
        self.profiles = SqlProfiles(self.session)
        self.clocks = SqlClocks(self.session)
        self.promises = SqlPromises(self.session)
        self.checkins = SqlCheckins(self.session)
        self.surveys = SqlSurveys(self.session)
        self.deliveries = SqlDeliveries(self.session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.session.rollback()
            await self.session.close()
        except Exception:  # a connection that died: the pool replaces it, and nothing here was pending
            log.debug("closing a unit of work's session failed", exc_info=True)
        finally:
            if self._turn is not None:
                self._turn.release()
        if exc is not None and not self._committing and is_unavailable(exc):
            # Lost before the commit was sent: nothing was written, so the caller may run it again.
            raise Unavailable(str(exc)) from exc

    async def commit(self) -> None:
        for repository in (
            self.customers,
            self.agents,
            self.tickets,
            self.clocks,
            self.promises,
            self.checkins,
            self.surveys,
            self.deliveries,
        ):
            await repository.sync()
        await flush(self.session)  # what fails here wrote nothing yet; only the COMMIT itself is in doubt
        transaction = await self._transaction_id()
        self._committing = True
        try:
            await self.session.commit()
        except IntegrityError as error:
            await self.session.rollback()
            if not is_unique_violation(error):
                raise
            raise Conflict(str(error.orig)) from error
        except StaleDataError as error:
            await self.session.rollback()
            raise Conflict(str(error)) from error
        except DBAPIError as error:
            if is_lost_race(error):
                await self.session.rollback()
                raise Conflict(str(error.orig)) from error
            if transaction is None:
                raise
            # The answer to COMMIT was lost with the connection: ask the server what became of it.
            if transaction == NOTHING_WRITTEN:
                raise Unavailable(str(error)) from error  # a transaction that wrote nothing may run again
            outcome = await self._outcome(transaction)
            if outcome == "committed":
                return
            if outcome == "aborted":
                raise Unavailable(str(error)) from error  # nothing was written: it may run again
            raise

    async def _transaction_id(self) -> str | None:
        """PostgreSQL's id of this transaction, so a COMMIT whose answer was lost can be looked up
        (NOTHING_WRITTEN for a transaction without one: asking does not assign one); None elsewhere."""
        bind = self.session.bind
        if bind is None or bind.dialect.name != "postgresql":
            return None
        found = await self.session.scalar(text("SELECT pg_current_xact_id_if_assigned()::text"))
        return str(found) if found is not None else NOTHING_WRITTEN

    async def _outcome(self, transaction: str) -> str | None:
        """Whether a transaction whose COMMIT went unanswered committed, asked on a new connection:
        'committed', 'aborted', or None when the server cannot say yet (or cannot be reached)."""
        bind = self.session.bind
        assert bind is not None
        engine = bind if isinstance(bind, AsyncEngine) else bind.engine
        for pause in OUTCOME_PAUSES:
            try:
                async with engine.connect() as connection:
                    status = await connection.scalar(
                        text("SELECT pg_xact_status(CAST(CAST(:xid AS TEXT) AS xid8))"), {"xid": transaction}
                    )
            except (DBAPIError, OSError):
                status = None
            if status in ("committed", "aborted"):
                return str(status)
            await asyncio.sleep(pause)
        return None

    async def rollback(self) -> None:
        await self.session.rollback()
