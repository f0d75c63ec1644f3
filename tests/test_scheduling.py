"""APScheduler wakes the due-work sweep; the database says what is due."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fakes import Delivering

from bot.clock import FakeClock
from bot.commands import Actor, IncomingMessage
from bot.desk import Desk
from bot.domain import Role, Status
from bot.messages import Conversation, Outgoing, Person
from bot.policy import load_policy
from bot.scheduling import DueWorkScheduler
from storage.uow import SqlUnitOfWork

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DANA = Actor(Person("console", "dana", "Dana"), Role.CUSTOMER)
ANA = Actor(Person("console", "ana", "Ana"), Role.AGENT)
CHANNEL = Conversation("console", "support")


async def _resolved_ticket(desk: Desk) -> None:
    await desk.receive(IncomingMessage(DANA, "The app crashes on login", CHANNEL, "m-1"))
    await desk.command(ANA, "/ticket claim #1")
    await desk.command(ANA, "/ticket resolve #1")


async def _status(uow_factory: Callable[[], SqlUnitOfWork]) -> Status:
    async with uow_factory() as uow:
        ticket = await uow.tickets.get(1)
        assert ticket is not None
        return ticket.status


async def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)


async def test_the_first_sweep_runs_at_start_and_closes_quiet_resolved_tickets(
    uow_factory: Callable[[], SqlUnitOfWork],
) -> None:
    clock = FakeClock(START)
    desk = Delivering(Desk(uow_factory, clock, load_policy()))
    await _resolved_ticket(desk)
    clock.advance(timedelta(days=7, minutes=1))
    sweeps: list[list[Outgoing]] = []

    async def deliver(messages: list[Outgoing]) -> None:
        sweeps.append(messages)

    scheduler = DueWorkScheduler(desk, deliver, interval=timedelta(hours=1))
    scheduler.start()
    try:
        await _wait_for(lambda: bool(sweeps))
    finally:
        await scheduler.shutdown()
    assert len(sweeps) == 1, "one sweep at start; the next is an hour away"
    assert await _status(uow_factory) is Status.CLOSED


async def test_a_resolved_ticket_stays_resolved_until_its_time(
    uow_factory: Callable[[], SqlUnitOfWork],
) -> None:
    clock = FakeClock(START)
    desk = Delivering(Desk(uow_factory, clock, load_policy()))
    await _resolved_ticket(desk)
    clock.advance(timedelta(days=6, hours=23))
    await desk.run_due_work()
    assert await _status(uow_factory) is Status.RESOLVED
    clock.advance(timedelta(hours=1))
    await desk.run_due_work()
    assert await _status(uow_factory) is Status.CLOSED


async def test_a_failing_sweep_does_not_stop_later_sweeps(
    uow_factory: Callable[[], SqlUnitOfWork],
) -> None:
    desk = Delivering(Desk(uow_factory, FakeClock(START), load_policy()))
    calls: list[int] = []

    async def flaky_deliver(messages: list[Outgoing]) -> None:
        calls.append(len(messages))
        if len(calls) == 1:
            raise ConnectionError("platform unreachable")

    scheduler = DueWorkScheduler(desk, flaky_deliver, interval=timedelta(milliseconds=50))
    scheduler.start()
    try:
        await _wait_for(lambda: len(calls) >= 3)
    finally:
        await scheduler.shutdown()
    assert len(calls) >= 3
