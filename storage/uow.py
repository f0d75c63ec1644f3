"""The SQLAlchemy unit of work: one session, one transaction, rolled back unless committed."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from bot.ports import Conflict
from storage.repositories import (
    SqlAgents,
    SqlAnchors,
    SqlAudit,
    SqlCheckins,
    SqlClocks,
    SqlCustomers,
    SqlEntries,
    SqlProfiles,
    SqlPromises,
    SqlSnippets,
    SqlSurveys,
    SqlTickets,
    SqlTimeline,
    is_lost_race,
    is_unique_violation,
)


class SqlUnitOfWork:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
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
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.session.rollback()
        await self.session.close()

    async def commit(self) -> None:
        for repository in (
            self.customers,
            self.agents,
            self.tickets,
            self.clocks,
            self.promises,
            self.checkins,
            self.surveys,
        ):
            repository.sync()
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
