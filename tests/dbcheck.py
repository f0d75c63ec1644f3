"""Reading the database straight from a test, to check what the desk stored (platform tests share it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.domain import EntryKind
from storage.models import AgentRow, AnchorRow, EntryRow, TicketRow, TimelineRow


class DatabaseChecks:
    """Mixed into a test harness that has an `engine`."""

    engine: AsyncEngine
    counted: tuple[Any, ...] = (TicketRow, EntryRow, TimelineRow, AnchorRow, AgentRow)

    async def scalars(self, statement: Any) -> list[Any]:
        async with AsyncSession(self.engine) as session:
            return list((await session.scalars(statement)).all())

    async def count(self, model: Any, *where: Any) -> int:
        async with AsyncSession(self.engine) as session:
            return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    async def ticket(self, number: int) -> TicketRow:
        rows = await self.scalars(select(TicketRow).where(TicketRow.number == number))
        assert rows, f"no ticket #{number}"
        return rows[0]

    async def entries(self, number: int, kind: EntryKind | None = None) -> list[EntryRow]:
        statement = select(EntryRow).where(EntryRow.ticket_number == number).order_by(EntryRow.id)
        if kind is not None:
            statement = statement.where(EntryRow.kind == kind)
        return await self.scalars(statement)

    async def snapshot(self) -> dict[str, int]:
        """How many rows each table holds, to show that something changed nothing."""
        return {model.__tablename__: await self.count(model) for model in self.counted}
