"""Tickets waiting on their customers, written straight into the tables, so a benchmark can have ten
thousand check-ins fall due without spending minutes opening tickets through the core.

The rows are those of `/ticket pending` that the sweep reads (tests/test_bench_scheduling.py checks that
they fire through the core): the customer and their Slack identity, the ticket waiting on the customer
since `since`, and its three waiting check-ins keyed as `Checkins.after_status` keys them. Only the first
one is due; the last reminder and the auto-resolve stay pending days away, as they would. SLA clocks,
entries and the timeline are left out: the check-in handler does not need them.

The tickets are spread over Slack conversations the way a busy desk's are: most customers in their own
DM, some in shared (Slack Connect) channels with a few tickets each, and the rest as threads in a few busy
support channels.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.checkins import AUTO_RESOLVE, WAITING_CHECKIN, WAITING_REMINDER
from bot.domain import CheckinState, Priority, Status, TicketKind
from storage.models import CheckinRow, CustomerRow, IdentityRow, TicketRow

WORKSPACE = "T1"
"""The fake Slack workspace (tests/slack_fake.py's TEAM_ID)."""
INSERT_ROWS = 2000
"""Rows per INSERT: well under SQLite's and asyncpg's bound-parameter limits."""


@dataclass(frozen=True)
class Mix:
    """How a desk's tickets are spread over conversations: shares of DMs and of shared channels (the rest
    are threads in busy support channels), and tickets per shared and per support channel."""

    dm_share: float = 0.6
    connect_share: float = 0.3
    per_connect: int = 10
    per_support: int = 50


@dataclass(frozen=True)
class Place:
    """Where a ticket lives: `kind` is dm, connect or support; threads only in channels."""

    kind: str
    channel: str
    thread: str | None


def places(count: int, mix: Mix, seed: int = 7) -> list[Place]:
    """`count` tickets' conversations, shuffled so each channel's tickets fall due spread over the
    window (as real ones would), not all together."""
    dms = round(count * mix.dm_share)
    connect = min(count - dms, round(count * mix.connect_share))
    support = count - dms - connect
    out = [Place("dm", f"D{n:08d}", None) for n in range(dms)]
    out += [Place("connect", f"CCON{n // mix.per_connect:05d}", "") for n in range(connect)]
    out += [Place("support", f"CSUP{n // mix.per_support:03d}", "") for n in range(support)]
    random.Random(seed).shuffle(out)
    return [
        Place(p.kind, p.channel, None if p.thread is None else f"{1_700_000_000 + n}.000100")
        for n, p in enumerate(out)
    ]


def distribution(spread: list[Place]) -> list[tuple[str, int, int, int]]:
    """Per kind: (kind, channels, tickets, most tickets in one channel), for the benchmark's output."""
    rows = []
    for kind in ("dm", "connect", "support"):
        per_channel = Counter(p.channel for p in spread if p.kind == kind)
        if per_channel:
            rows.append((kind, len(per_channel), sum(per_channel.values()), max(per_channel.values())))
    return rows


def support_channels(spread: list[Place]) -> list[str]:
    return sorted({p.channel for p in spread if p.kind != "dm"})


async def seed_tickets(engine: AsyncEngine, spread: list[Place], since: datetime) -> None:
    """Customers and their tickets, waiting on them since `since` (numbered 1..len(spread))."""
    customers, identities, tickets = [], [], []
    for number, place in enumerate(spread, start=1):
        user = f"U{number:08d}"
        customers.append(
            {
                "id": number,
                "display_name": f"Customer {number}",
                "kind": TicketKind.EXTERNAL,
                "created_at": since,
            }
        )
        identities.append(
            {
                "customer_id": number,
                "platform": "slack",
                "external_id": user,
                "display_name": f"Customer {number}",
            }
        )
        tickets.append(
            {
                "number": number,
                "kind": TicketKind.EXTERNAL,
                "queue": "general",
                "priority": Priority.NORMAL,
                "status": Status.WAITING_ON_CUSTOMER,
                "subject": f"Order A-{number} never arrived",
                "customer_id": number,
                "customer_user_id": user,
                "platform": "slack",
                "channel_id": place.channel,
                "thread_id": place.thread,
                "workspace_id": WORKSPACE,
                "created_at": since - timedelta(hours=1),
                "updated_at": since,
                "last_customer_message_at": since - timedelta(hours=1),
                "first_agent_reply_at": since,
                "status_changed_at": since,
                "version": 1,
            }
        )
    async with engine.begin() as connection:
        for table, rows in ((CustomerRow, customers), (IdentityRow, identities), (TicketRow, tickets)):
            for start in range(0, len(rows), INSERT_ROWS):
                await connection.execute(insert(table), rows[start : start + INSERT_ROWS])
        if engine.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for table, column in (("customers", "id"), ("tickets", "number")):
                await connection.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), {len(spread)})")
                )


async def seed_checkins(engine: AsyncEngine, dues: list[datetime], since: datetime) -> None:
    """Ticket n's waiting check-in falls due at dues[n-1]; its reminder and auto-resolve days later."""
    iso = since.isoformat()
    rows = []
    for number, due in enumerate(dues, start=1):
        for kind, at in (
            (WAITING_CHECKIN, due),
            (WAITING_REMINDER, due + timedelta(days=2)),
            (AUTO_RESOLVE, due + timedelta(days=4)),
        ):
            rows.append(
                {
                    "key": f"{number}:{kind}:{iso}",
                    "kind": kind,
                    "due_at": at,
                    "ticket_number": number,
                    "detail": {"since": iso},
                    "state": CheckinState.PENDING,
                    "version": 1,
                }
            )
    async with engine.begin() as connection:
        for start in range(0, len(rows), INSERT_ROWS):
            await connection.execute(insert(CheckinRow), rows[start : start + INSERT_ROWS])


def spread_over(start: datetime, window: timedelta, count: int) -> list[datetime]:
    """`count` moments evenly over `window` from `start`: all due "in the same minute"."""
    step = window / max(count, 1)
    return [start + step * n for n in range(count)]


async def fired(engine: AsyncEngine) -> dict[str, int]:
    """Waiting check-ins by state (pending, done, dropped)."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(CheckinRow.state, func.count())
            .where(CheckinRow.kind == WAITING_CHECKIN)
            .group_by(CheckinRow.state)
        )
        return {str(getattr(state, "value", state)): int(n) for state, n in rows}
