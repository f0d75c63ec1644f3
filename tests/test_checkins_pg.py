"""Exactly once across processes.

- PostgreSQL under contention: two desks with engines of their own on one database (as two bot processes
  would be) sweep a thousand due check-ins at the same time; `FOR UPDATE SKIP LOCKED` and the rows'
  versions must let each fire exactly once. Skipped unless TEST_DATABASE_URL is set (see conftest.py).
- Restarts: the console desk as real processes on one SQLite file; what fired before a restart never
  fires again after it.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from fakes import Delivering
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_console import console, said_to
from test_standards import ANA, LEA, MONDAY, POLICY_TOML

from bot.clock import FakeClock
from bot.commands import Actor, IncomingMessage
from bot.desk import Desk
from bot.domain import Role
from bot.messages import Conversation, CustomerMessage, Outgoing, Person
from bot.policy import Policy
from storage.engine import create_engine, session_factory
from storage.migrate import upgrade
from storage.models import CheckinRow, EntryRow
from storage.uow import SqlUnitOfWork

TICKETS = 1000
AT_ONCE = 25
"""Tickets opened (and put on waiting) concurrently while setting up."""

CHECKING_IN = "just checking in on"

SLOW_TARGETS = """\
urgent = { first_response = "100h", next_reply = "100h", update_interval = "100h", resolution = "200h" }
high = { first_response = "100h", next_reply = "100h", update_interval = "100h", resolution = "200h" }
normal = { first_response = "100h", next_reply = "100h", update_interval = "100h", resolution = "200h" }
low = { first_response = "100h", next_reply = "100h", update_interval = "100h", resolution = "200h" }
"""


def waiting_only_policy() -> Policy:
    """test_standards.py's policy with targets so long that only the waiting check-ins fall due."""
    text = POLICY_TOML
    for kind in ("external", "internal"):
        start = text.index(f"[standards.{kind}]\n") + len(f"[standards.{kind}]\n")
        end = text.index("\n\n", start) + 1
        text = text[:start] + SLOW_TARGETS + text[end:]
    return Policy.model_validate(tomllib.loads(text))


def customer_number(n: int) -> Actor:
    return Actor(Person("slack", f"U{n:04d}", f"Customer {n}"), Role.CUSTOMER)


@pytest.fixture
async def two_engines(pg_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines (two connection pools, as in two processes) on one migrated PostgreSQL database."""
    first, second = create_engine(pg_url), create_engine(pg_url)
    try:
        await upgrade(first)
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


def desk_on(engine: AsyncEngine, clock: FakeClock, policy: Policy) -> Desk:
    sessions = session_factory(engine)
    return Delivering(Desk(lambda: SqlUnitOfWork(sessions), clock, policy))


async def waiting_tickets(desks: tuple[Desk, Desk], count: int) -> None:
    """`count` customers write in; Ana puts each ticket on waiting. Both desks share the work."""

    async def one(n: int) -> None:
        desk = desks[n % 2]
        who = customer_number(n)
        out = await desk.receive(
            IncomingMessage(who, f"Order A-{n} never arrived", Conversation("slack", f"D-{n}"), f"m-{n}")
        )
        number = next(m.audience.ticket_number for m in out if isinstance(m, CustomerMessage))
        await desk.command(ANA, f"/ticket pending #{number}")

    for start in range(1, count + 1, AT_ONCE):
        await asyncio.gather(*(one(n) for n in range(start, min(start + AT_ONCE, count + 1))))


async def test_two_processes_sweeping_a_thousand_due_checkins_fire_each_exactly_once(
    two_engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    clock = FakeClock(MONDAY)
    policy = waiting_only_policy()
    desks = (desk_on(two_engines[0], clock, policy), desk_on(two_engines[1], clock, policy))
    await desks[0].register_agents([ANA.person, LEA.person])
    await waiting_tickets(desks, TICKETS)

    clock.advance(policy.waiting.checkin_after + timedelta(minutes=1))
    said: tuple[list[Outgoing], list[Outgoing]] = ([], [])
    for _ in range(100):
        first, second = await asyncio.gather(desks[0].run_due_work(), desks[1].run_due_work())
        said[0].extend(first)
        said[1].extend(second)
        if not first and not second:
            break

    checkins = [m for out in said for m in out if isinstance(m, CustomerMessage) and CHECKING_IN in m.text]
    per_ticket = Counter(m.audience.ticket_number for m in checkins)
    assert sorted(per_ticket) == list(range(1, TICKETS + 1))
    assert set(per_ticket.values()) == {1}, [n for n, times in per_ticket.items() if times > 1][:10]
    assert all(any(CHECKING_IN in m.text for m in out if isinstance(m, CustomerMessage)) for out in said), (
        "both processes did some of the work"
    )
    for queue in ("general", "internal"):
        digest = f"Daily digest for {queue},"
        assert len([m for out in said for m in out if m.text.startswith(digest)]) == 1

    async with two_engines[1].connect() as connection:
        states = (
            await connection.execute(
                select(CheckinRow.state, func.count())
                .where(CheckinRow.kind == "waiting_checkin")
                .group_by(CheckinRow.state)
            )
        ).all()
        assert dict(states) == {"done": TICKETS}
        recorded = await connection.scalar(
            select(func.count()).select_from(EntryRow).where(EntryRow.body.contains(CHECKING_IN))
        )
        assert recorded == TICKETS, "each check-in is on its ticket's record once"


# --- restarts ----------------------------------------------------------------------------------------

RESTART_AGENTS = {"RELAYDESK_CONSOLE_AGENTS": "ana,ben,lea"}


def policy_env(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY_TOML, "utf-8")
    return {"RELAYDESK_POLICY": str(path), **RESTART_AGENTS}


def due_lines(lines: list[str]) -> dict[str, list[str]]:
    """The lines that only the sweep prints, by what they are."""
    text = [line for line in lines if not line.startswith("[console]")]
    return {
        "check-in": [line for line in text if line.startswith("[to dana]") and CHECKING_IN in line],
        "reminder": [line for line in text if line.startswith("[private ana] Reminder: #2 promise 1")],
        "late to staff": [line for line in text if line.startswith("[agents] Late: #2 promise 1")],
        "late to lead": [line for line in text if line.startswith("[private lea] Late: #2 promise 1")],
        "late to customer": [line for line in text if line.startswith("[to eve]") and "running late" in line],
    }


def test_checkins_fire_once_across_console_restarts(tmp_path: Path) -> None:
    env = policy_env(tmp_path)
    first = console(
        "/at 2026-03-02T09:00+01:00\n"
        "dana: My parcel never arrived\n"
        "eve: My invoice INV-7 is wrong\n"
        "/at 2026-03-02T10:00+01:00\n"
        "ana: /ticket reply #1 Could you send a photo of the label?\n"
        "ana: /ticket pending #1\n"
        "ana: /ticket promise #2 tomorrow 10:00 we'll correct the invoice\n"
        "/quit\n",
        tmp_path,
        env,
    )
    assert "by 10:00 CET tomorrow" in said_to(first, "to eve")
    assert all(lines == [] for lines in due_lines(first).values())

    second = console("/at 2026-03-02T10:00+01:00\n/advance 1d1m\n/quit\n", tmp_path, env)
    fired = due_lines(second)
    assert {what: len(lines) for what, lines in fired.items()} == dict.fromkeys(fired, 1), second

    third = console("/at 2026-03-03T10:05+01:00\n/advance 1h\n/advance 3h\n", tmp_path, env)
    assert all(lines == [] for lines in due_lines(third).values()), "nothing repeats after a restart"
