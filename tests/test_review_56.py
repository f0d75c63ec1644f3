"""Review 56: SLA clocks, check-ins, promises, times and profile linking, through the desk's services.

Some tests pin down bugs a review found (now fixed), so they stay fixed; the others check behaviour the
review verified and found untested.
The policy is test_standards.py's: Mon-Fri 09:00-17:00 Europe/Berlin, normal external tickets answered
within 1h30m, a next reply within 2h, an update every 4h, resolution in 8h; warnings at 80%.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from fakes import Delivering, Harness
from sqlalchemy.ext.asyncio import AsyncEngine
from test_standards import (
    ANA,
    BEN,
    DANA,
    MONDAY,
    berlin,
    berlin_policy,
    clock_of,
    containing,
    desk_at,
    open_ticket,
    sweep_until,
    to_agent,
    to_customer,
    to_thread,
    with_agents,
)

from bot.clock import FakeClock
from bot.commands import Actor, IncomingMessage
from bot.desk import Desk
from bot.domain import CheckinState, ClockState, Metric, Role, Status
from bot.messages import Conversation, CustomerMessage, Person, StaffMessage
from storage.engine import create_engine, session_factory
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWork

PROMISE = "/ticket promise #1 tomorrow 10:00 we'll send the label"


async def promised(h: Harness) -> None:
    """Dana's ticket opens Monday 09:00; at 11:00 Ana promises the label for Tuesday 10:00."""
    await open_ticket(h)
    h.clock.set(berlin("2026-03-02 11:00"))
    await h.run(ANA, PROMISE)


# --- bugs: odd input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["9999999999d", "99999999d"])
async def test_a_promise_due_in_an_absurd_number_of_days_is_refused_politely(when: str) -> None:
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)

    out = await h.run(ANA, f"/ticket promise #1 {when} we'll send the label")

    assert [m for m in out if isinstance(m, StaffMessage)], "a private answer to the agent"
    assert not [m for m in out if isinstance(m, CustomerMessage)]
    assert h.store.promises == {}


async def test_a_profile_timezone_that_names_a_directory_falls_back_to_the_queues() -> None:
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    h.store.customers[1].timezone = "Europe"  # stored before validation, or by an older release

    out = await h.run(ANA, "/ticket promise #1 2h we'll send the label")

    assert containing(to_customer(out), "by 11:00 CET today")


async def test_an_unknown_profile_timezone_falls_back_to_the_queues_in_the_greeting() -> None:
    h = desk_at(MONDAY)
    await open_ticket(h)
    await h.run(ANA, "/ticket resolve #1")
    h.store.customers[1].timezone = "Mars/Olympus_Mons"
    await sweep_until(h, berlin("2026-03-10 09:00"), step=timedelta(hours=6))
    assert h.store.ticket(1).status is Status.CLOSED  # so the next message opens a ticket with a greeting

    out = await h.write(DANA, "A new problem: the kettle whistles at midnight")

    assert containing(to_customer(out, 2), "by 10:30 CET today")


# --- bugs: promises ----------------------------------------------------------------------------------


async def test_a_promise_reminder_follows_the_ticket_into_a_queue() -> None:
    h = await with_agents(desk_at(MONDAY))
    await promised(h)
    h.clock.set(berlin("2026-03-02 12:00"))
    await h.run(ANA, "/ticket transfer #1 general Ben's team knows the courier")
    assert h.store.ticket(1).assignee_id is None

    out = await sweep_until(h, berlin("2026-03-03 09:45"), step=timedelta(minutes=15))

    assert not containing(to_agent(out, ANA), "Reminder: #1 promise 1"), "Ana gave the ticket away"
    assert containing(to_thread(out), "Reminder: #1 promise 1"), "the queue owning it is reminded"


async def test_the_time_a_late_promise_gives_the_customer_is_kept() -> None:
    h = await with_agents(desk_at(MONDAY))
    await promised(h)
    out = await sweep_until(h, berlin("2026-03-03 10:00"))
    assert containing(to_customer(out), "you'll hear from us about #1 by 12:00 CET today")

    assert clock_of(h, Metric.UPDATE).due_at <= berlin("2026-03-03 12:00")
    out = await sweep_until(h, berlin("2026-03-03 12:10"))
    assert containing(to_customer(out), "a quick update on #1")


# --- bugs: clocks ------------------------------------------------------------------------------------


async def test_a_customer_reopening_an_unanswered_ticket_is_owed_a_reply_on_a_clock() -> None:
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket resolve #1")
    h.clock.set(berlin("2026-03-02 10:00"))

    await h.write(DANA, "No, it isn't solved: the parcel is still missing")

    assert h.store.ticket(1).status is Status.OPEN
    replies = [
        c
        for c in h.store.sla_clocks.values()
        if c.metric in (Metric.FIRST_RESPONSE, Metric.NEXT_REPLY) and c.state is ClockState.RUNNING
    ]
    assert replies, "someone owes Dana an answer by a time"


async def test_a_customer_reopening_an_answered_ticket_starts_a_new_next_reply_and_resolution() -> None:
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket reply #1 A replacement ships today.")
    h.clock.set(berlin("2026-03-02 10:00"))
    await h.write(DANA, "Which courier?")
    await h.run(ANA, "/ticket resolve #1")
    assert clock_of(h, Metric.NEXT_REPLY).state is ClockState.CANCELLED

    h.clock.set(berlin("2026-03-02 11:00"))
    await h.write(DANA, "It's still not here, and the tracking number A-99 is unknown")

    reply = clock_of(h, Metric.NEXT_REPLY)
    assert (reply.cycle, reply.state, reply.due_at) == (2, ClockState.RUNNING, berlin("2026-03-02 13:00"))
    resolution = clock_of(h, Metric.RESOLUTION)
    assert (resolution.cycle, resolution.state) == (2, ClockState.RUNNING)


async def test_a_warning_dropped_while_waiting_is_rearmed_on_resume_and_sent_once() -> None:
    """The resolution warning (80% of 8h) falls due while the clock is paused: dropped, then planned
    again when the customer answers, and sent once at the new time."""
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket reply #1 Could you send a photo of the label?")
    h.clock.set(berlin("2026-03-02 13:00"))  # 4h of 8h used
    await h.run(ANA, "/ticket pending #1")

    await sweep_until(h, berlin("2026-03-02 16:00"), step=timedelta(minutes=30))
    warning = h.store.checkins  # the 1:resolution:1 warning fell due at 15:24 while paused
    [dropped] = [c for c in warning.values() if c.key == "1:resolution:1:warning"]
    assert dropped.state is CheckinState.DROPPED

    h.clock.set(berlin("2026-03-03 09:00"))
    await h.write(DANA, "Here is the photo")
    [rearmed] = [c for c in h.store.checkins.values() if c.key == "1:resolution:1:warning"]
    assert (rearmed.state, rearmed.due_at) == (CheckinState.PENDING, berlin("2026-03-03 11:24"))

    out = await sweep_until(h, berlin("2026-03-03 12:00"), step=timedelta(minutes=6))
    assert len(containing(to_agent(out, ANA), "resolution")) == 1


async def test_the_sweep_resolving_and_closing_a_quiet_ticket_leaves_no_clock_running() -> None:
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket reply #1 Could you send a photo of the label?")
    await h.run(ANA, "/ticket pending #1")

    await sweep_until(h, berlin("2026-03-07 10:00"), step=timedelta(hours=2))
    assert h.store.ticket(1).status is Status.RESOLVED
    live = [c for c in h.store.sla_clocks.values() if c.state in (ClockState.RUNNING, ClockState.PAUSED)]
    assert live == [], "the auto-resolve message must not start a new update clock"

    out = await sweep_until(h, berlin("2026-03-20 10:00"), step=timedelta(hours=6))
    assert h.store.ticket(1).status is Status.CLOSED
    assert to_customer(out) == []
    assert not [c for c in h.store.sla_clocks.values() if c.state in (ClockState.RUNNING, ClockState.PAUSED)]


async def test_a_transfer_to_another_agent_sends_the_packet_only_to_staff() -> None:
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket note #1 SECRET-courier-contact 0171 555")
    await h.run(ANA, "/ticket hold #1 SECRET-hold-reason waiting on the warehouse")

    out = await h.run(ANA, "/ticket transfer #1 @ben knows the courier")

    assert to_customer(out) and all("SECRET" not in text for text in to_customer(out))
    assert containing(to_agent(out, BEN), "SECRET-courier-contact")


# --- bugs: profiles ----------------------------------------------------------------------------------

UowFactory = Callable[[], Any]


@pytest.fixture
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated PostgreSQL engine (skipped without TEST_DATABASE_URL): a race needs real transactions."""
    engine = create_engine(pg_url)
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


class _MeetAfterEmailLookup:
    """A unit of work whose first two email look-ups wait for each other, as two first messages that
    arrive together do on two workers."""

    def __init__(self, inner: SqlUnitOfWork, barrier: asyncio.Barrier, calls: list[int]) -> None:
        self._inner = inner
        self._barrier = barrier
        self._calls = calls

    async def __aenter__(self) -> SqlUnitOfWork:
        uow = await self._inner.__aenter__()
        original = uow.customers.with_email

        async def with_email(email: str) -> list[Any]:
            found = await original(email)
            self._calls.append(1)
            if len(self._calls) <= 2:
                await asyncio.wait_for(self._barrier.wait(), timeout=5)
            return found

        uow.customers.with_email = with_email  # type: ignore[method-assign]
        return uow

    async def __aexit__(self, *exc: object) -> None:
        await self._inner.__aexit__(*exc)  # type: ignore[arg-type]


async def test_two_first_messages_with_one_verified_email_end_as_one_customer(pg_engine: AsyncEngine):
    sessions = session_factory(pg_engine)
    barrier, calls = asyncio.Barrier(2), []
    clock = FakeClock(MONDAY)
    desk = Delivering(
        Desk(lambda: _MeetAfterEmailLookup(SqlUnitOfWork(sessions), barrier, calls), clock, berlin_policy())
    )
    slack = Actor(Person("slack", "Udana", "Dana Scully", email="dana@example.com"), Role.CUSTOMER)
    discord = Actor(Person("discord", "4711", "dana", email="dana@example.com"), Role.CUSTOMER)

    def message(who: Actor, text: str, mid: str) -> IncomingMessage:
        return IncomingMessage(who, text, Conversation(who.person.platform, f"D-{who.person.user_id}"), mid)

    await asyncio.gather(
        desk.receive(message(slack, "My parcel A-1234 never arrived", "s1")),
        desk.receive(message(discord, "Parcel A-1234 is missing", "d1")),
    )
    clock.advance(timedelta(hours=1))
    await desk.receive(message(slack, "Any news on A-1234?", "s2"))
    await desk.receive(message(discord, "Any news on A-1234?", "d2"))

    async with SqlUnitOfWork(sessions) as uow:
        slack_customer = await uow.customers.by_identity("slack", "Udana")
        discord_customer = await uow.customers.by_identity("discord", "4711")
        assert slack_customer is not None and discord_customer is not None
        assert slack_customer.id == discord_customer.id
