"""Scheduled check-ins through `Desk.run_due_work`: waiting on the customer, closing quiet tickets, weekly
reports, update nudges and courtesy updates, and the agents' daily digest; each fires exactly once.

Most tests run over the fakes; the last ones run the same desk on SQLite and PostgreSQL (the `uow_factory`
fixture), with two sweeps at once. The policy is test_standards.py's: Mon-Fri 09:00-17:00 Europe/Berlin,
a check-in after 1 day of waiting, a last reminder after 3, auto-resolve after 5, closing 7 days after
resolution, weekly reports after 7 days, updates every 4h of business time and a digest at 09:00 on
weekdays. Dana's ticket opens Monday 2 March 2026 at 09:00 CET.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from fakes import Delivering, Harness, dm
from test_standards import (
    ANA,
    DANA,
    EVE,
    LEA,
    MONDAY,
    berlin,
    berlin_policy,
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

from bot.clock import FakeClock
from bot.commands import IncomingMessage
from bot.desk import Desk
from bot.domain import CheckinState, Status
from bot.messages import Outgoing, StaffMessage, ToAgents
from bot.policy import Lifecycle
from storage.uow import SqlUnitOfWork

UowFactory = Callable[[], SqlUnitOfWork]

CHECKIN = (
    "Hi Dana, just checking in on #1: we're waiting to hear back from you. Whenever you're ready, reply here "
    "and we'll pick it straight up."
)
LAST_REMINDER = (
    "Hi Dana, we haven't heard back about #1. If we don't hear from you by 10:00 CET on Saturday 7 March, "
    "we'll mark it resolved; you can always reply here to reopen it."
)
AUTO_RESOLVED = (
    "Hi Dana, as we haven't heard back, we've marked #1 as resolved. If you still need help, just reply "
    "here and it reopens with everything kept."
)


async def waiting(h: Harness) -> None:
    """Ana answers Dana's ticket at 10:00 on Monday and waits on her."""
    await open_ticket(h)
    h.clock.set(berlin("2026-03-02 10:00"))
    await h.run(ANA, "/ticket reply #1 Could you send a photo of the parcel label?")
    await h.run(ANA, "/ticket pending #1")


def waiting_words(out: Sequence[Outgoing]) -> list[str]:
    """What the customer heard about waiting on them (check-in, reminder, auto-resolve)."""
    return [t for t in to_customer(out) if "heard back" in t or "checking in" in t]


def digests(out: Sequence[Outgoing], queue: str = "general") -> list[StaffMessage]:
    return [m for m in out if isinstance(m, StaffMessage) and m.text.startswith(f"Daily digest for {queue},")]


# --- waiting on the customer -------------------------------------------------------------------------


async def test_a_waiting_ticket_gets_a_checkin_a_last_reminder_and_then_resolves_itself():
    h = await with_agents(desk_at(MONDAY))
    await waiting(h)

    out = await sweep_until(h, berlin("2026-03-03 09:59"), step=timedelta(hours=1))
    assert waiting_words(out) == []
    out = await sweep_until(h, berlin("2026-03-03 10:00"))
    assert to_customer(out) == [CHECKIN]

    out = await sweep_until(h, berlin("2026-03-05 09:59"), step=timedelta(hours=1))
    assert waiting_words(out) == []
    out = await sweep_until(h, berlin("2026-03-05 10:00"))
    assert to_customer(out) == [LAST_REMINDER]

    out = await sweep_until(h, berlin("2026-03-07 10:00"), step=timedelta(minutes=30))
    assert to_customer(out) == [AUTO_RESOLVED]
    assert to_thread(out) == ["#1 resolved automatically: the customer didn't answer in time."]
    ticket = h.store.ticket(1)
    assert (ticket.status, ticket.resolved_at) == (Status.RESOLVED, berlin("2026-03-07 10:00"))
    last = h.store.events_for(1, "status")[-1]
    assert (last.actor_name, last.detail) == (
        "Relaydesk",
        {"old": "waiting_on_customer", "new": "resolved", "why": "no answer"},
    )

    out = await sweep_until(h, berlin("2026-03-14 10:00"), step=timedelta(hours=6))
    assert to_customer(out) == [], "closing a quiet resolved ticket is silent; no weekly report either"
    assert h.store.ticket(1).status is Status.CLOSED
    assert h.store.ticket(1).closed_at == berlin("2026-03-14 10:00")


async def test_nothing_about_waiting_is_sent_once_the_customer_answered():
    h = await with_agents(desk_at(MONDAY))
    await waiting(h)
    await sweep_until(h, berlin("2026-03-03 10:00"))
    h.clock.set(berlin("2026-03-03 15:00"))
    await h.write(DANA, "Here is the photo of the label")
    assert h.store.ticket(1).status is Status.OPEN

    out = await sweep_until(h, berlin("2026-03-10 10:00"), step=timedelta(hours=1))
    assert waiting_words(out) == []
    assert h.store.ticket(1).status is Status.OPEN
    stale = [c for c in h.store.checkins.values() if c.kind in ("waiting_reminder", "auto_resolve")]
    assert {c.state for c in stale} == {CheckinState.DROPPED}


async def test_waiting_again_starts_the_checkins_from_the_new_wait():
    h = await with_agents(desk_at(MONDAY))
    await waiting(h)
    h.clock.set(berlin("2026-03-02 12:00"))
    await h.write(DANA, "Which label, the one on the box?")
    h.clock.set(berlin("2026-03-03 09:00"))
    await h.run(ANA, "/ticket reply #1 Yes, the white one on the box.")
    await h.run(ANA, "/ticket pending #1")

    out = await sweep_until(h, berlin("2026-03-04 08:59"), step=timedelta(minutes=30))
    assert waiting_words(out) == [], "the first wait's check-in (Tuesday 10:00) no longer holds"
    out = await sweep_until(h, berlin("2026-03-04 09:00"))
    assert to_customer(out) == [CHECKIN]
    out = await sweep_until(h, berlin("2026-03-08 09:00"), step=timedelta(hours=1))
    assert len(containing(to_customer(out), "we haven't heard back about #1")) == 1
    assert containing(to_customer(out), "by 9:00 CET on Sunday 8 March")
    assert to_customer(out)[-1] == AUTO_RESOLVED


async def test_no_checkin_reaches_a_closed_ticket():
    """Resolved an hour after it began waiting, and closed an hour later: the wait's check-ins fall due
    on a closed ticket and are dropped."""
    policy = berlin_policy(lifecycle=Lifecycle(close_resolved_after=timedelta(hours=1)))
    h = await with_agents(desk_at(MONDAY, policy=policy))
    await waiting(h)
    h.clock.set(berlin("2026-03-02 11:00"))
    await h.run(ANA, "/ticket resolve #1")
    await sweep_until(h, berlin("2026-03-02 12:00"))
    assert h.store.ticket(1).status is Status.CLOSED

    out = await sweep_until(h, berlin("2026-03-10 12:00"), step=timedelta(hours=2))
    assert to_customer(out) == []
    waits = [c for c in h.store.checkins.values() if c.kind in ("waiting_checkin", "auto_resolve")]
    assert {c.state for c in waits} == {CheckinState.DROPPED}


async def test_a_resolved_ticket_closes_after_the_policy_delay():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket reply #1 A new parcel is on its way.")
    await h.run(ANA, "/ticket resolve #1")

    await sweep_until(h, berlin("2026-03-09 08:59"), step=timedelta(hours=3))
    assert h.store.ticket(1).status is Status.RESOLVED
    out = await sweep_until(h, berlin("2026-03-09 09:00"))
    assert h.store.ticket(1).status is Status.CLOSED
    assert to_customer(out) == []


# --- keeping customers posted on long-running tickets -----------------------------------------------


async def test_a_long_running_ticket_gets_a_weekly_progress_report():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket reply #1 I've asked the courier to investigate.")
    await h.run(ANA, "/ticket hold #1 courier investigation")

    out = await sweep_until(h, berlin("2026-03-09 08:59"), step=timedelta(hours=1))
    assert not containing(to_customer(out), "weekly update")
    out = await sweep_until(h, berlin("2026-03-09 09:00"))
    report = one(containing(to_customer(out), "weekly update"))
    assert report.startswith("Hi Dana, your weekly update on #1 (week 2): it's waiting on a colleague or ")
    assert report.endswith("You'll hear from us again by 13:00 CET today.")

    out = await sweep_until(h, berlin("2026-03-16 09:00"), step=timedelta(hours=1))
    assert len(containing(to_customer(out), "weekly update")) == 1
    assert containing(to_customer(out), "weekly update on #1 (week 3)")


async def test_a_resolved_ticket_gets_no_weekly_report():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket reply #1 Done: a new parcel is on its way.")
    await h.run(ANA, "/ticket resolve #1")
    out = await sweep_until(h, berlin("2026-03-09 09:00"), step=timedelta(hours=6))
    assert to_customer(out) == []


async def test_the_assignee_is_nudged_and_then_the_customer_gets_a_courtesy_update():
    """Updates every 4h of business time from Ana's reply at 09:30: a nudge at 80% (12:42), and at 13:30
    the customer hears from us anyway, told the next time (4h of business time later)."""
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    h.clock.set(berlin("2026-03-02 09:30"))
    await h.run(ANA, "/ticket reply #1 I'm on it.")

    out = await sweep_until(h, berlin("2026-03-02 12:41"), step=timedelta(minutes=1))
    assert not containing(to_agent(out, ANA), "Nudge")
    out = await sweep_until(h, berlin("2026-03-02 12:42"))
    assert to_agent(out, ANA) == [
        "Nudge: Dana Scully is due an update on #1 by 13:30 CET today. If you have nothing new, a short note "
        "that you're on it helps; otherwise I'll send a courtesy update then."
    ]
    assert to_customer(out) == []

    out = await sweep_until(h, berlin("2026-03-02 13:30"), step=timedelta(minutes=1))
    assert to_customer(out) == [
        "Hi Dana, a quick update on #1: we're still working on it and haven't forgotten you. You'll hear "
        "from us again by 9:30 CET tomorrow at the latest."
    ]
    assert containing(to_thread(out), "Breach: #1 missed its update to the customer target (4h of")
    assert containing(to_agent(out, LEA), "missed its update to the customer target")
    assert [e.kind for e in h.store.entries_for(1)][-1] == "bot", "the courtesy update is on the record"


async def test_an_agents_update_in_time_means_no_courtesy_update():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    h.clock.set(berlin("2026-03-02 09:30"))
    await h.run(ANA, "/ticket reply #1 I'm on it.")
    h.clock.set(berlin("2026-03-02 13:00"))
    await h.run(ANA, "/ticket reply #1 The courier has found the parcel.")

    out = await sweep_until(h, berlin("2026-03-02 14:00"), step=timedelta(minutes=5))
    assert not containing(to_customer(out), "quick update")


async def test_an_unclaimed_tickets_update_nudge_goes_to_the_agents_channel():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    h.clock.set(berlin("2026-03-02 09:30"))
    await h.run(ANA, "/ticket reply #1 I'm on it.")
    await h.run(ANA, "/ticket release #1")

    out = await sweep_until(h, berlin("2026-03-02 12:42"), step=timedelta(minutes=6))
    assert one(containing(to_thread(out), "Nudge:")).startswith("Nudge: Dana Scully is due an update on #1")
    assert not to_agent(out, ANA)


async def test_a_waiting_customer_reads_the_resolve_time_in_their_own_timezone():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket profile #1 timezone America/New_York")
    h.clock.set(berlin("2026-03-02 10:00"))
    await h.run(ANA, "/ticket pending #1")

    out = await sweep_until(h, berlin("2026-03-05 10:00"), step=timedelta(hours=2))
    assert containing(to_customer(out), "If we don't hear from you by 4:00 EST on Saturday 7 March,")


# --- the agents' daily digest -----------------------------------------------------------------------


async def test_the_daily_digest_goes_to_the_agents_channel_at_nine_on_weekdays_once():
    h = await with_agents(desk_at(berlin("2026-03-02 08:00")))
    await h.write(EVE, "My invoice INV-7 is wrong")

    out = await sweep_until(h, berlin("2026-03-02 08:59"), step=timedelta(minutes=10))
    assert digests(out) == []
    out = await sweep_until(h, berlin("2026-03-02 09:00"))
    digest = one(digests(out))
    assert digest.audience == ToAgents()
    assert digest.text.splitlines() == [
        "Daily digest for general, Monday 02 March:",
        "  Unclaimed: 1: #1 (normal)",
        "  Due or breaching today: #1",
        "  Promises due today: none.",
    ]
    assert one(digests(out, "internal")).audience == ToAgents()

    out = await sweep_until(h, berlin("2026-03-02 23:59"), step=timedelta(minutes=7))
    assert digests(out) == [], "once a day"


async def test_the_digest_lists_the_promises_due_today():
    h = await with_agents(desk_at(berlin("2026-03-02 08:00")))
    await h.write(DANA, "My parcel never arrived")
    await h.run(ANA, "/ticket promise #1 16:00 we'll send the label")
    out = await sweep_until(h, berlin("2026-03-02 09:00"))
    lines = one(digests(out)).text.splitlines()
    assert lines[1] == "  Unclaimed: none."
    assert lines[3] == "  Promises due today: #1.1 we'll send the label"


async def test_no_digest_on_a_weekend():
    h = await with_agents(desk_at(berlin("2026-03-07 00:00")))
    out = await sweep_until(h, berlin("2026-03-08 23:59"), step=timedelta(minutes=30))
    assert digests(out) == []
    out = await sweep_until(h, berlin("2026-03-09 09:00"), step=timedelta(minutes=30))
    assert one(digests(out)).text.startswith("Daily digest for general, Monday 09 March:")


async def test_the_digest_follows_the_queues_timezone_into_summer_time():
    """09:00 in Berlin is 08:00 UTC in March before the change and 07:00 UTC after it."""
    h = await with_agents(desk_at(berlin("2026-03-30 08:30")))
    out = await sweep_until(h, datetime.fromisoformat("2026-03-30T06:59+00:00"), step=timedelta(minutes=1))
    assert digests(out) == []
    out = await sweep_until(h, datetime.fromisoformat("2026-03-30T07:00+00:00"))
    assert one(digests(out)).text.startswith("Daily digest for general, Monday 30 March:")


async def test_a_missed_digest_is_sent_late_within_twelve_hours():
    """The bot was down from 08:00 to 20:00: Monday's digest still goes out when it is back."""
    h = await with_agents(desk_at(berlin("2026-03-02 08:00")))
    await h.desk.run_due_work()
    h.clock.set(berlin("2026-03-02 20:00"))
    out = await h.desk.run_due_work()
    assert one(digests(out)).text.startswith("Daily digest for general, Monday 02 March:")


async def test_a_digest_missed_by_more_than_twelve_hours_is_dropped():
    h = await with_agents(desk_at(berlin("2026-03-02 08:00")))
    await h.desk.run_due_work()
    h.clock.set(berlin("2026-03-02 21:01"))
    out = await h.desk.run_due_work()
    assert digests(out) == []
    missed = one([c for c in h.store.checkins.values() if c.key == "digest:general:2026-03-02"])
    assert missed.state is CheckinState.DROPPED
    out = await sweep_until(h, berlin("2026-03-03 09:00"), step=timedelta(hours=1))
    assert one(digests(out)).text.startswith("Daily digest for general, Tuesday 03 March:")


async def test_a_digest_never_planned_while_the_bot_was_down_is_not_sent_after_twelve_hours():
    """First start Monday 21:30: Monday's digest is past its grace period; Tuesday's comes on time."""
    h = await with_agents(desk_at(berlin("2026-03-02 21:30")))
    out = await h.desk.run_due_work()
    assert digests(out) == []
    out = await sweep_until(h, berlin("2026-03-03 09:00"), step=timedelta(hours=1))
    assert one(digests(out)).text.startswith("Daily digest for general, Tuesday 03 March:")


# --- exactly once --------------------------------------------------------------------------------------


Said = list[tuple[datetime, str, str]]
"""What sweeps said: when, to whom (the audience's repr) and what."""


async def working_week(desk: Desk, clock: FakeClock, sweep: Callable[[], Awaitable[list[Outgoing]]]) -> Said:
    """Two tickets from Monday to Saturday noon with `sweep` run every hour: one waits on its customer
    until it resolves itself, the other has a promise that runs late. Everything the sweeps said."""
    await desk.register_agents([ANA.person, LEA.person])
    await desk.receive(IncomingMessage(DANA, "My parcel never arrived", dm(DANA), "d-1"))
    await desk.receive(IncomingMessage(EVE, "My invoice INV-7 is wrong", dm(EVE), "e-1"))
    clock.set(berlin("2026-03-02 10:00"))
    await desk.command(ANA, "/ticket reply #1 Could you send a photo of the label?")
    await desk.command(ANA, "/ticket pending #1")
    await desk.command(ANA, "/ticket promise #2 tomorrow 10:00 we'll correct the invoice")
    said: Said = []
    while clock.now() < berlin("2026-03-07 12:00"):
        clock.advance(timedelta(hours=1))
        said += [(clock.now(), repr(m.audience), m.text) for m in await sweep()]
    return said


async def one_sweep_at_a_time() -> Said:
    """The week with a single sweep each hour, on the fakes: what exactly-once looks like."""
    h = desk_at(MONDAY)
    return await working_week(h.desk, h.clock, h.desk.run_due_work)


def assert_each_checkin_once(said: Said, expected: Said) -> None:
    assert [s for s, n in Counter(said).items() if n > 1] == [], "nothing is said twice at one time"
    assert Counter(said) == Counter(expected)
    texts = [text for _, _, text in said]
    to_dana = [text for _, audience, text in said if audience.startswith("ToCustomer") and "#1" in text]
    assert to_dana == [CHECKIN, LAST_REMINDER, AUTO_RESOLVED]
    assert len([t for t in texts if "running late" in t]) == 1
    assert len([t for t in texts if t.startswith("Reminder: #2 promise 1")]) == 1
    assert len([t for t in texts if t.startswith("Daily digest for general,")]) == 5, "Monday to Friday"


async def test_every_checkin_fires_once_however_often_the_sweep_runs():
    h = desk_at(MONDAY)

    async def three_times() -> list[Outgoing]:
        return [m for _ in range(3) for m in await h.desk.run_due_work()]

    assert_each_checkin_once(await working_week(h.desk, h.clock, three_times), await one_sweep_at_a_time())


async def test_two_sweeps_at_once_on_the_fakes_fire_each_checkin_once():
    h = desk_at(MONDAY)

    async def together() -> list[Outgoing]:
        first, second = await asyncio.gather(h.desk.run_due_work(), h.desk.run_due_work())
        return first + second

    assert_each_checkin_once(await working_week(h.desk, h.clock, together), await one_sweep_at_a_time())


async def test_two_sweeps_at_once_on_the_database_fire_each_checkin_once(uow_factory: UowFactory):
    clock = FakeClock(MONDAY)
    desk = Delivering(Desk(uow_factory, clock, berlin_policy()))

    async def together() -> list[Outgoing]:
        first, second = await asyncio.gather(desk.run_due_work(), desk.run_due_work())
        return first + second

    said = await working_week(desk, clock, together)
    assert_each_checkin_once(said, await one_sweep_at_a_time())
    async with uow_factory() as uow:
        ticket = await uow.tickets.get(1)
        assert ticket is not None and ticket.status is Status.RESOLVED
