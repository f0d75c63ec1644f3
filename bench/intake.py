"""Intake throughput: customer messages through the core into the database, beside the raw rate.

Our path is what an adapter does with each message: `Desk.receive` (the customer found or created, the
ticket found or opened, the message stored with its SLA clocks, check-ins and outbox rows, the replies
produced), then `Desk.settle` once the replies went out. Each message is its own transaction, because an
adapter acknowledges a message only once it is stored.

The raw limit is the same rows written with plain SQLAlchemy Core inserts: every row the core inserted
for a message is captured as it is inserted and replayed into a fresh database in one transaction per
message, with the same concurrency. It does no reading, no updating and no deciding, so it is an upper
bound that no real path reaches.

    python -m bench.intake --messages 5000 --backend both
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Insert, event, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import backends, run, scratch_database
from bot.clock import SystemClock
from bot.commands import Actor, IncomingMessage
from bot.desk import Desk
from bot.domain import Role
from bot.messages import Conversation, Person
from bot.policy import load_policy
from storage.engine import create_engine, session_factory, turn
from storage.migrate import upgrade
from storage.models import Base
from storage.uow import SqlUnitOfWork

Rows = dict[str, list[dict[str, Any]]]


@dataclass
class Capture:
    """The rows each committed transaction inserted, in commit order.

    Every INSERT the engine runs (the repositories' Core inserts and the ORM's flushes alike) is seen
    with its parameters; a transaction's rows are kept when it commits and dropped if it rolls back.
    Parameters do not carry the keys the database assigned, so `resolve` reads back the keys that other
    rows refer to (customers' and tickets'), matching each row by what identifies it in this plan."""

    groups: list[Rows] = field(default_factory=list)
    _open: dict[int, Rows] = field(default_factory=dict)

    def attach(self, engine: AsyncEngine) -> None:
        sync = engine.sync_engine
        event.listen(sync, "after_execute", self._after_execute)
        event.listen(sync, "commit", self._commit)
        event.listen(sync, "rollback", self._rollback)

    def _after_execute(self, connection: Any, statement: Any, multiparams: Any, params: Any, *_: Any) -> None:
        if not isinstance(statement, Insert):
            return
        rows = [dict(row) for row in multiparams] if multiparams else [dict(params)]
        self._open.setdefault(id(connection), {}).setdefault(statement.table.name, []).extend(rows)

    def _commit(self, connection: Any) -> None:
        rows = self._open.pop(id(connection), None)
        if rows:
            self.groups.append(rows)

    def _rollback(self, connection: Any) -> None:
        self._open.pop(id(connection), None)

    async def resolve(self, engine: AsyncEngine) -> None:
        """Fill in the keys of inserted customers (by name) and tickets (by conversation)."""
        async with engine.connect() as connection:
            customers = dict((await connection.execute(text("SELECT display_name, id FROM customers"))).all())
            found = await connection.execute(text("SELECT channel_id, thread_id, number FROM tickets"))
            tickets = {(channel, thread): number for channel, thread, number in found}
        for rows in self.groups:
            for row in rows.get("customers", []):
                row["id"] = customers[row["display_name"]]
            for row in rows.get("tickets", []):
                row["number"] = tickets[(row["channel_id"], row["thread_id"])]


def plan(messages: int, per_customer: int) -> list[IncomingMessage]:
    """Customers writing in a channel, each `per_customer` messages, their turns interleaved: each first
    message opens a ticket in a new thread, the rest are replies in that thread."""
    customers = max(1, messages // per_customer)
    out: list[IncomingMessage] = []
    for round_ in range(per_customer):
        for c in range(customers):
            if len(out) == messages:
                return out
            person = Person("slack", f"U{c:07d}", f"Customer {c}")
            first = f"{1_700_000_000 + c}.000000"
            where = Conversation("slack", "CSUPPORT", first, "T1")
            text = (
                "Hello, the export to CSV fails with a timeout since this morning."
                if round_ == 0
                else (f"More detail ({round_}): it fails on the March report, about 40,000 rows.")
            )
            message_id = f"CSUPPORT:{first if round_ == 0 else f'{1_700_000_000 + c}.{round_:06d}'}"
            out.append(IncomingMessage(Actor(person, Role.CUSTOMER), text, where, message_id=message_id))
    return out


async def in_parallel(items: Sequence[Any], work: Callable[[Any], Awaitable[Any]], concurrency: int) -> None:
    """Run `work` over items with at most `concurrency` in flight, in order of arrival."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            await work(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


@dataclass
class Measured:
    rate: float
    """Messages per second."""
    statements: float
    """SQL statements per message (BEGIN and COMMIT included)."""


def count_statements(engine: AsyncEngine) -> list[int]:
    """A counter of the statements the engine sends (transaction control included)."""
    counter = [0]

    def counted(*_: Any) -> None:
        counter[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", counted)
    event.listen(engine.sync_engine, "commit", counted)
    return counter


async def core_rate(
    url: str, messages: list[IncomingMessage], concurrency: int, settle: bool, capture: Capture
) -> Measured:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        capture.attach(engine)
        desk = Desk(lambda: SqlUnitOfWork(sessions), SystemClock(), load_policy())
        desk.serve(["slack"])

        async def one(message: IncomingMessage) -> None:
            said = await desk.receive(message)
            if settle:
                await desk.settle(said)

        statements = count_statements(engine)
        started = time.perf_counter()
        await in_parallel(messages, one, concurrency)
        elapsed = time.perf_counter() - started
        await capture.resolve(engine)
        return Measured(len(messages) / elapsed, statements[0] / len(messages))
    finally:
        await engine.dispose()


async def raw_rate(url: str, groups: list[Rows], concurrency: int, messages: int) -> Measured:
    """Replay the captured rows: one transaction per unit of work, tables in dependency order."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
        order = list(Base.metadata.sorted_tables)

        async def one(rows: Rows) -> None:
            async with turn(engine) or contextlib.nullcontext(), engine.begin() as connection:
                for table in order:
                    if table.name in rows:
                        await connection.execute(insert(table), rows[table.name])

        statements = count_statements(engine)
        started = time.perf_counter()
        await in_parallel(groups, one, concurrency)
        elapsed = time.perf_counter() - started
        return Measured(messages / elapsed, statements[0] / messages)
    finally:
        await engine.dispose()


async def main(args: argparse.Namespace) -> None:
    messages = plan(args.messages, args.per_customer)
    print(
        f"intake: {len(messages)} messages from {len(messages) // args.per_customer} customers "
        f"(each first message opens a ticket), {args.concurrency} in flight, one transaction per message"
    )
    header = (
        f"{'backend':<11} {'our path':<17} {'msg/s':>7} {'stmts/msg':>9}   {'raw msg/s':>9} {'stmts/msg':>9}"
    )
    print(f"{header} {'ours/raw':>8}")
    for backend in backends(args.backend):
        raw: Measured | None = None
        for settle in (False, True):
            capture = Capture()
            async with scratch_database(backend, "intake") as url:
                ours = await core_rate(url, messages, args.concurrency, settle, capture)
            if raw is None:
                async with scratch_database(backend, "raw") as url:
                    raw = await raw_rate(url, capture.groups, args.concurrency, len(messages))
            path = "receive + settle" if settle else "receive"
            print(
                f"{backend:<11} {path:<17} {ours.rate:>7,.0f} {ours.statements:>9.1f}   "
                f"{raw.rate:>9,.0f} {raw.statements:>9.1f} {ours.rate / raw.rate:>8.2f}"
            )


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--per-customer", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
