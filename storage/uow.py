"""The SQLAlchemy unit of work: one session, one transaction, rolled back unless committed."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from bot.ports import Conflict, Unavailable
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


class SqlUnitOfWork:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def __aenter__(self) -> Self:
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
        except Exception as error:
            if exc is None and not is_unavailable(error):
                raise
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
            repository.sync()
        await flush(self.session)  # what fails here wrote nothing yet; only the COMMIT itself is in doubt
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
            await self.session.rollback()
            if not is_lost_race(error):
                raise
            raise Conflict(str(error.orig)) from error

    async def rollback(self) -> None:
        await self.session.rollback()
