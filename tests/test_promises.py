"""Promises agents make to customers (`/ticket promise`, `/ticket kept`), through the desk over the fakes.

The policy is test_standards.py's: Mon-Fri 09:00-17:00 Europe/Berlin, a reminder 30 minutes before a
promise is due, and a late promise tells the customer they will hear from us within 2h of business time.
The ticket opens Monday 2 March 2026 at 09:00 CET; promises are made at 11:00.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

import pytest
from fakes import Harness
from test_standards import (
    ANA,
    BEN,
    DANA,
    LEA,
    MONDAY,
    berlin,
    clock_of,
    containing,
    desk_at,
    one,
    open_ticket,
    sweep_until,
    to_agent,
    to_customer,
    to_thread,
    with_agents,
)

from bot.commands import Actor
from bot.domain import CheckinState, ClockState, Metric, Promise, PromiseState
from bot.messages import Outgoing, StaffMessage, ToAgent

PROMISE = "/ticket promise #1 tomorrow 10:00 we'll send the label"
LATE_TO_CUSTOMER = (
    "Hi Dana, I'm sorry: we said we'll send the label, and that is running late. We're on it, and you'll "
    "hear from us about #1 by 12:00 CET today."
)
LATE_TO_STAFF = (
    "Late: #1 promise 1 (we'll send the label) is overdue. The customer got an apology and a new time; "
    "Lea (lead) is told."
)


async def promised(h: Harness, command: str = PROMISE) -> list[Outgoing]:
    """Dana's ticket opens Monday 09:00; at 11:00 Ana makes a promise on it."""
    await open_ticket(h)
    h.clock.set(berlin("2026-03-02 11:00"))
    return await h.run(ANA, command)


def promise(h: Harness, number: int = 1) -> Promise:
    return one([p for p in h.store.promises.values() if (p.ticket_number, p.number) == (1, number)])


def lateness(out: Sequence[Outgoing]) -> list[str]:
    """Anything saying a promise on #1 is late, to anyone."""
    return [m.text for m in out if "running late" in m.text or m.text.startswith(("Late:", "Reminder:"))]


def private_answer(out: Sequence[Outgoing]) -> str:
    """The one message a refused command gets: privately, to Ana."""
    message = one(out)
    assert isinstance(message, StaffMessage) and message.audience == ToAgent(ANA.person)
    return message.text


# --- making a promise --------------------------------------------------------------------------------


async def test_a_promise_tells_the_customer_what_will_happen_and_by_when():
    h = await with_agents(desk_at(MONDAY))
    out = await promised(h)

    assert to_customer(out) == [
        "Hi Dana, Ana Lima here: we'll send the label, by 10:00 CET tomorrow. I'll keep you posted on #1."
    ]
    assert containing(
        to_thread(out),
        "#1 promise 1: we'll send the label, by 10:00 CET tomorrow. Mark it kept with /ticket kept #1 1",
    )
    made = promise(h)
    assert (made.what, made.made_by, made.state) == ("we'll send the label", "Ana Lima", PromiseState.OPEN)
    assert made.due_at == berlin("2026-03-03 10:00")
    assert [e.detail["promise"] for e in h.store.events_for(1, "promised")] == ["1"]


async def test_a_promise_is_an_answer_so_an_unclaimed_ticket_becomes_the_agents():
    h = await with_agents(desk_at(MONDAY))
    await promised(h)
    assert h.store.ticket(1).assignee_id == h.store.agent("Ana Lima").id
    assert clock_of(h, Metric.FIRST_RESPONSE).state is ClockState.MET


async def test_the_customer_reads_the_time_in_their_own_timezone():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket profile #1 timezone America/New_York")
    h.clock.set(berlin("2026-03-02 11:00"))
    out = await h.run(ANA, PROMISE)

    assert to_customer(out) == [
        "Hi Dana, Ana Lima here: we'll send the label, by 4:00 EST tomorrow. I'll keep you posted on #1."
    ]
    assert containing(to_thread(out), "by 10:00 CET tomorrow"), "agents read the queue's time"

    late = await sweep_until(h, berlin("2026-03-03 10:00"))
    assert containing(to_customer(late), "you'll hear from us about #1 by 6:00 EST today")


async def test_a_promise_by_duration_counts_from_now():
    h = await with_agents(desk_at(MONDAY))
    out = await promised(h, "/ticket promise #1 2h I'll call the courier and get back to you")
    assert containing(to_customer(out), "I'll call the courier and get back to you, by 13:00 CET today")
    assert promise(h).due_at == berlin("2026-03-02 13:00")


async def test_an_agent_with_a_timezone_of_their_own_is_read_in_it():
    """Ana works from New York (the platform says so): her "tomorrow 10:00" is 16:00 in Berlin."""
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    h.clock.set(berlin("2026-03-02 11:00"))
    in_new_york = Actor(replace(ANA.person, timezone="America/New_York"), ANA.role)
    out = await h.run(in_new_york, PROMISE)

    assert promise(h).due_at == berlin("2026-03-03 16:00")
    assert containing(to_customer(out), "we'll send the label, by 16:00 CET tomorrow.")


# --- reminders and kept promises -------------------------------------------------------------------


async def test_the_owner_is_reminded_before_the_promise_is_due():
    h = await with_agents(desk_at(MONDAY))
    await promised(h)

    out = await sweep_until(h, berlin("2026-03-03 09:29"), step=timedelta(hours=1))
    assert not lateness(out)
    out = await sweep_until(h, berlin("2026-03-03 09:45"), step=timedelta(minutes=1))
    assert to_agent(out, ANA) == [
        "Reminder: #1 promise 1 (we'll send the label) is due by 10:00 CET today. "
        "/ticket kept #1 1 when done."
    ]
    assert lateness(out) == to_agent(out, ANA), "the reminder is private"


async def test_promises_move_with_the_ticket_when_it_is_transferred():
    h = await with_agents(desk_at(MONDAY))
    await promised(h)
    h.clock.set(berlin("2026-03-02 12:00"))
    await h.run(ANA, "/ticket transfer #1 @ben knows the courier")

    out = await sweep_until(h, berlin("2026-03-03 09:30"), step=timedelta(hours=1))
    assert containing(to_agent(out, BEN), "Reminder: #1 promise 1")
    assert not containing(to_agent(out, ANA), "Reminder")

    out = await sweep_until(h, berlin("2026-03-03 10:00"))
    assert to_agent(out, BEN) == [LATE_TO_STAFF]
    assert to_agent(out, LEA) == [LATE_TO_STAFF]
    assert not to_agent(out, ANA)


async def test_a_kept_promise_sends_nothing_late_afterwards():
    h = await with_agents(desk_at(MONDAY))
    await promised(h)
    h.clock.set(berlin("2026-03-02 15:00"))
    out = await h.run(ANA, "/ticket kept #1")

    assert to_thread(out) == ["#1 promise 1 (we'll send the label) kept."]
    kept = promise(h)
    assert (kept.state, kept.kept_at, kept.broken_at) == (
        PromiseState.KEPT,
        berlin("2026-03-02 15:00"),
        None,
    )
    assert [e.detail["late"] for e in h.store.events_for(1, "promise_kept")] == ["False"]

    out = await sweep_until(h, berlin("2026-03-04 17:00"), step=timedelta(minutes=30))
    assert not lateness(out)
    planned = [c for c in h.store.checkins.values() if c.key.startswith("1:promise:1:")]
    assert {c.state for c in planned} == {CheckinState.DROPPED}


# --- late promises ---------------------------------------------------------------------------------


async def test_an_overdue_promise_alerts_agent_and_lead_and_tells_the_customer_when_they_hear_next():
    h = await with_agents(desk_at(MONDAY))
    await promised(h)

    out = await sweep_until(h, berlin("2026-03-03 09:59"), step=timedelta(hours=1))
    assert not containing(to_customer(out), "running late")
    out = await sweep_until(h, berlin("2026-03-03 10:00"))

    assert containing(to_thread(out), LATE_TO_STAFF)
    assert to_agent(out, ANA) == [LATE_TO_STAFF]
    assert to_agent(out, LEA) == [LATE_TO_STAFF]
    assert containing(to_customer(out), LATE_TO_CUSTOMER)
    assert promise(h).broken_at == berlin("2026-03-03 10:00")
    assert promise(h).state is PromiseState.OPEN, "still to be kept"

    again = await sweep_until(h, berlin("2026-03-04 17:00"), step=timedelta(minutes=15))
    assert not lateness(again), "a late promise is announced once"


async def test_a_promise_kept_after_it_ran_late_counts_as_broken():
    h = await with_agents(desk_at(MONDAY))
    await promised(h)
    await sweep_until(h, berlin("2026-03-03 10:00"))
    h.clock.set(berlin("2026-03-03 11:00"))
    out = await h.run(ANA, "/ticket kept #1")

    assert to_thread(out) == ["#1 promise 1 (we'll send the label) kept, late."]
    kept = promise(h)
    assert (kept.state, kept.broken_at) == (PromiseState.KEPT, berlin("2026-03-03 10:00"))


async def test_a_promise_kept_late_before_any_sweep_still_counts_as_broken():
    """Regression: marked kept after its time but before a sweep saw it late, it was never broken."""
    h = await with_agents(desk_at(MONDAY))
    await promised(h)
    h.clock.set(berlin("2026-03-03 10:20"))
    out = await h.run(ANA, "/ticket kept #1")

    assert to_thread(out) == ["#1 promise 1 (we'll send the label) kept, late."]
    assert promise(h).broken_at is not None


async def test_several_promises_are_kept_by_number():
    h = await with_agents(desk_at(MONDAY))
    await promised(h)
    await h.run(ANA, "/ticket promise #1 fri 12:00 the refund will be on your card")

    refused = private_answer(await h.run(ANA, "/ticket kept #1"))
    assert refused == "#1 has several open promises (1, 2). Which one? /ticket kept #1 <n>"

    out = await h.run(ANA, "/ticket kept #1 2")
    assert to_thread(out) == ["#1 promise 2 (the refund will be on your card) kept."]
    out = await h.run(ANA, "/ticket kept #1")
    assert to_thread(out) == ["#1 promise 1 (we'll send the label) kept."]
    assert {p.state for p in h.store.promises.values()} == {PromiseState.KEPT}


# --- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("/ticket promise #1 someday send the label", "'someday' is not a time I understand."),
        ("/ticket promise #1 25:00 send the label", "'25:00' is not a time I understand."),
        ("/ticket promise #1 tomorrow", "What will happen by then?"),
        ("/ticket promise #1 2026-02-30 10:00 send it", "'2026-02-30' is not a date."),
        ("/ticket promise #1 2026-03-01 10:00 send it", "2026-03-01 10:00 has already passed"),
        ("/ticket promise #1 today 08:00 call you back", "today 08:00 has already passed"),
        ("/ticket promise #1 2h " + "x" * 301, "A promise can be at most 300 characters"),
        ("/ticket promise #7 2h send the label", "#7"),
        ("/ticket kept #1", "#1 has no open promise."),
        ("/ticket kept #1 3", "#1 has no open promise 3."),
        ("/ticket kept #1 two", "'two' is not a promise number."),
    ],
)
async def test_promises_that_cannot_be_made_or_kept_are_refused_and_change_nothing(command: str, answer: str):
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    h.clock.set(berlin("2026-03-02 11:00"))
    before = h.store.snapshot()

    assert answer in private_answer(await h.run(ANA, command))
    assert h.store.snapshot() == before


async def test_a_promise_on_a_resolved_or_closed_ticket_is_refused():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket resolve #1")
    assert private_answer(await h.run(ANA, "/ticket promise #1 2h call back")) == (
        "#1 is resolved. Reopen it first with /ticket reopen #1."
    )

    await sweep_until(h, MONDAY + timedelta(days=7), step=timedelta(days=1))
    before = h.store.snapshot()
    answer = private_answer(await h.run(ANA, "/ticket promise #1 2h call back"))
    assert answer.startswith("#1 is closed and stays closed")
    assert h.store.snapshot() == before


async def test_a_customer_cannot_make_a_promise():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    before = h.store.snapshot()
    out = await h.run(DANA, "/ticket promise #1 2h I'll pay")
    assert [m.text for m in out] == [
        "Sorry Dana, I didn't catch that. Just write what you need here and someone from our support team "
        "will help."
    ]
    assert h.store.snapshot() == before


async def test_an_open_promise_on_a_resolved_ticket_is_not_chased():
    h = await with_agents(desk_at(MONDAY))
    await promised(h)
    await h.run(ANA, "/ticket resolve #1")
    out = await sweep_until(h, berlin("2026-03-04 17:00"), step=timedelta(hours=1))
    assert not lateness(out)
