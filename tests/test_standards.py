"""SLA clocks through the desk: business-time targets, pausing, re-targeting, warnings and breaches.

Everything goes through `Desk.receive`, `Desk.command` and `Desk.run_due_work` over the fakes, with a
policy fixed here (not the packaged one, so the numbers below stay true): Mon-Fri 09:00-17:00 in
Europe/Berlin, normal external tickets due a first response in 1h30m, a next reply in 2h, an update every
4h and resolution in 8h of business time, warnings at 80% and breaches escalated to the support lead, Lea.

The helpers at the top (`POLICY_TOML`, `berlin_policy`, `berlin`, the message filters) are shared with
test_promises.py and test_checkins.py.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from fakes import FakeClock as _FakeClock
from fakes import FakeStore, Harness, agent, build_desk, customer

from bot.commands import Actor
from bot.domain import CheckinState, ClockState, Metric, SlaClock, Status
from bot.messages import CustomerMessage, MessageRef, Outgoing, StaffMessage, ToAgent, ToAgents
from bot.policy import Policy

T = TypeVar("T")
BERLIN = ZoneInfo("Europe/Berlin")

POLICY_TOML = """\
default_queue = "general"
internal_queue = "internal"

[[queues]]
name = "general"
label = "support team"

[[queues]]
name = "internal"
label = "internal help desk"

[hours.office]
timezone = "Europe/Berlin"
days = ["mon", "tue", "wed", "thu", "fri"]
blocks = ["09:00-17:00"]

[[teams]]
name = "support"
queues = ["general"]
lead = "lea"

[[teams]]
name = "it"
queues = ["internal"]

[standards]
warn_at = 0.8

[standards.external]
urgent = { first_response = "15m", next_reply = "30m", update_interval = "1h", resolution = "2h" }
high = { first_response = "30m", next_reply = "1h", update_interval = "2h", resolution = "4h" }
normal = { first_response = "1h30m", next_reply = "2h", update_interval = "4h", resolution = "8h" }
low = { first_response = "3h", next_reply = "4h", update_interval = "8h", resolution = "16h" }

[standards.internal]
urgent = { first_response = "15m", next_reply = "30m", update_interval = "1h", resolution = "2h" }
high = { first_response = "30m", next_reply = "1h", update_interval = "2h", resolution = "4h" }
normal = { first_response = "1h30m", next_reply = "2h", update_interval = "4h", resolution = "8h" }
low = { first_response = "3h", next_reply = "4h", update_interval = "8h", resolution = "16h" }

[waiting]
checkin_after = "1d"
last_reminder_after = "3d"
auto_resolve_after = "5d"

[promises]
remind_before = "30m"
late_update_in = "2h"

[checkins]
weekly_report_after = "7d"
digest_at = "09:00"
digest_days = ["mon", "tue", "wed", "thu", "fri"]

[lifecycle]
close_resolved_after = "7d"

# Surveys after a resolution have tests of their own; here they would only add messages.
[satisfaction]
enabled = false
"""
"""The policy these tests run on, as a file (the console tests write it to disk as it is)."""


def berlin_policy(**changes: object) -> Policy:
    """The policy above; `changes` replace top-level sections (e.g. `waiting=Waiting(...)`)."""
    policy = Policy.model_validate(tomllib.loads(POLICY_TOML))
    return policy.model_copy(update=changes) if changes else policy


def berlin(moment: str) -> datetime:
    """A Berlin wall time, `2026-03-02 09:00`, as an aware datetime."""
    return datetime.fromisoformat(moment).replace(tzinfo=BERLIN)


MONDAY = berlin("2026-03-02 09:00")
"""Monday 2 March 2026, 09:00 CET: the office has just opened."""

DANA = customer("Dana Scully")
EVE = customer("Eve Moss")
ANA = agent("Ana Lima")
BEN = agent("Ben")
LEA = agent("Lea")
"""The support team's lead (`teams[].lead = "lea"`): breaches and late promises go to her."""


def desk_at(
    start: datetime = MONDAY, store: FakeStore | None = None, policy: Policy | None = None
) -> Harness:
    """A desk over the fakes on the policy above, its clock at `start`."""
    return build_desk(store=store, clock=_FakeClock(start), policy=policy or berlin_policy())


async def with_agents(h: Harness) -> Harness:
    """Make the agents known, so the lead can be found by name and Ben can receive transfers."""
    await h.desk.register_agents([ANA.person, BEN.person, LEA.person])
    return h


# --- reading what the desk said ------------------------------------------------------------------


def one(items: Sequence[T]) -> T:
    assert len(items) == 1, items
    return items[0]


def to_customer(out: Sequence[Outgoing], ticket: int = 1) -> list[str]:
    """What the ticket's customer was told."""
    return [m.text for m in out if isinstance(m, CustomerMessage) and m.audience.ticket_number == ticket]


def to_thread(out: Sequence[Outgoing], ticket: int = 1) -> list[str]:
    """What went to the agents about the ticket (its staff thread, or the channel without a card)."""
    return [
        m.text
        for m in out
        if isinstance(m, StaffMessage)
        and isinstance(m.audience, ToAgents)
        and m.audience.ticket_number == ticket
    ]


def to_agent(out: Sequence[Outgoing], who: Actor) -> list[str]:
    """What one agent was told privately."""
    return [
        m.text
        for m in out
        if isinstance(m, StaffMessage) and isinstance(m.audience, ToAgent) and m.audience.person == who.person
    ]


def containing(texts: Sequence[str], words: str) -> list[str]:
    return [t for t in texts if words in t]


async def sweep_until(h: Harness, end: datetime, step: timedelta = timedelta(minutes=10)) -> list[Outgoing]:
    """Run the sweep every `step` from now until `end` (inclusive), as the scheduler would; all it said."""
    said: list[Outgoing] = []
    while h.clock.now() < end:
        h.clock.advance(min(step, end - h.clock.now()))
        said += await h.desk.run_due_work()
    return said


def clock_of(h: Harness, metric: Metric, ticket: int = 1, cycle: int | None = None) -> SlaClock:
    """The ticket's clock for a metric (its latest cycle unless told)."""
    clocks = [c for c in h.store.sla_clocks.values() if c.ticket_number == ticket and c.metric is metric]
    assert clocks, f"#{ticket} has no {metric} clock"
    if cycle is not None:
        return one([c for c in clocks if c.cycle == cycle])
    return max(clocks, key=lambda c: c.cycle)


async def open_ticket(h: Harness, who: Actor = DANA, text: str = "My parcel never arrived") -> list[Outgoing]:
    return await h.write(who, text)


# --- the first response, in business time, stated in the greeting --------------------------------


async def test_the_greeting_states_the_first_response_time_and_our_hours():
    h = desk_at(MONDAY)
    greeting = one(to_customer(await open_ticket(h)))

    assert "will reply right here by 10:30 CET today (our hours are Mon-Fri 9:00-17:00 CET)" in greeting
    first = clock_of(h, Metric.FIRST_RESPONSE)
    assert (first.state, first.target) == (ClockState.RUNNING, timedelta(hours=1, minutes=30))
    assert first.due_at == berlin("2026-03-02 10:30")


async def test_a_ticket_opened_friday_at_1659_is_due_on_monday():
    """One minute of Friday counts; the weekend does not."""
    h = desk_at(berlin("2026-03-06 16:59"))
    greeting = one(to_customer(await open_ticket(h)))

    assert "by 10:29 CET on Monday 9 March (our hours are Mon-Fri 9:00-17:00 CET)" in greeting
    assert clock_of(h, Metric.FIRST_RESPONSE).due_at == berlin("2026-03-09 10:29")
    assert clock_of(h, Metric.RESOLUTION).due_at == berlin("2026-03-09 16:59")


async def test_a_ticket_opened_on_sunday_night_is_due_on_monday_morning():
    h = desk_at(berlin("2026-03-08 23:30"))
    greeting = one(to_customer(await open_ticket(h)))
    assert "by 10:30 CET tomorrow" in greeting
    assert clock_of(h, Metric.FIRST_RESPONSE).due_at == berlin("2026-03-09 10:30")


async def test_the_greeting_crosses_the_change_to_summer_time():
    """Friday 27 March 16:30 CET + 1h30m of open time ends Monday 30 March 10:00 CEST."""
    h = desk_at(berlin("2026-03-27 16:30"))
    greeting = one(to_customer(await open_ticket(h)))
    assert "by 10:00 CEST on Monday 30 March (our hours are Mon-Fri 9:00-17:00 CET)" in greeting
    assert clock_of(h, Metric.FIRST_RESPONSE).due_at == berlin("2026-03-30 10:00")


# --- which clocks stop and start -------------------------------------------------------------------


async def test_the_first_agent_reply_meets_the_first_response_but_a_note_or_a_claim_does_not():
    h = desk_at(MONDAY)
    await open_ticket(h)

    h.clock.set(berlin("2026-03-02 09:10"))
    await h.run(ANA, "/ticket note #1 checking with the courier")
    await h.run(ANA, "/ticket claim #1")
    assert clock_of(h, Metric.FIRST_RESPONSE).state is ClockState.RUNNING

    h.clock.set(berlin("2026-03-02 09:20"))
    await h.run(ANA, "/ticket reply #1 Sorry about that, I'm checking with the courier now.")
    first = clock_of(h, Metric.FIRST_RESPONSE)
    assert (first.state, first.met_at, first.breached_at) == (ClockState.MET, MONDAY.replace(minute=20), None)
    assert clock_of(h, Metric.RESOLUTION).state is ClockState.RUNNING


async def test_a_customer_message_after_our_reply_starts_the_next_reply_clock():
    h = desk_at(MONDAY)
    await open_ticket(h)
    await h.write(DANA, "It was order A-1234, by the way")
    assert not [c for c in h.store.sla_clocks.values() if c.metric is Metric.NEXT_REPLY], (
        "before the first response, a follow-up waits on the first response clock"
    )

    h.clock.set(berlin("2026-03-02 10:00"))
    await h.run(ANA, "/ticket reply #1 Thanks, looking at A-1234 now.")
    h.clock.set(berlin("2026-03-02 16:00"))
    await h.write(DANA, "Any news?")
    first_cycle = clock_of(h, Metric.NEXT_REPLY)
    assert (first_cycle.cycle, first_cycle.state) == (1, ClockState.RUNNING)
    assert first_cycle.due_at == berlin("2026-03-03 10:00"), "1h on Monday, 1h on Tuesday"

    h.clock.set(berlin("2026-03-02 16:30"))
    await h.write(DANA, "Hello?")
    assert clock_of(h, Metric.NEXT_REPLY).cycle == 1, "one next-reply clock runs at a time"

    h.clock.set(berlin("2026-03-03 09:15"))
    await h.run(ANA, "/ticket reply #1 The courier found it; it arrives tomorrow.")
    assert clock_of(h, Metric.NEXT_REPLY).state is ClockState.MET
    h.clock.set(berlin("2026-03-03 09:30"))
    await h.write(DANA, "Great, which time?")
    second = clock_of(h, Metric.NEXT_REPLY)
    assert (second.cycle, second.state, second.due_at) == (2, ClockState.RUNNING, berlin("2026-03-03 11:30"))


async def test_resolution_and_update_pause_while_waiting_and_resume_with_the_time_left():
    h = desk_at(MONDAY)
    await open_ticket(h)
    h.clock.set(berlin("2026-03-02 10:00"))
    await h.run(ANA, "/ticket reply #1 Could you send a photo of the label?")
    assert clock_of(h, Metric.UPDATE).due_at == berlin("2026-03-02 14:00")

    h.clock.set(berlin("2026-03-02 11:00"))
    await h.run(ANA, "/ticket pending #1")
    resolution, update = clock_of(h, Metric.RESOLUTION), clock_of(h, Metric.UPDATE)
    assert (resolution.state, resolution.consumed) == (ClockState.PAUSED, timedelta(hours=2))
    assert (update.state, update.consumed) == (ClockState.PAUSED, timedelta(hours=1))

    h.clock.set(berlin("2026-03-03 10:00"))
    await h.write(DANA, "Here is the photo")
    assert h.store.ticket(1).status is Status.OPEN
    resolution, update = clock_of(h, Metric.RESOLUTION), clock_of(h, Metric.UPDATE)
    assert resolution.state is ClockState.RUNNING
    assert resolution.due_at == berlin("2026-03-03 16:00"), "6h of the 8h were left"
    assert update.state is ClockState.RUNNING
    assert update.due_at == berlin("2026-03-03 13:00"), "3h of the 4h were left"


async def test_the_first_response_never_pauses():
    """Waiting on the customer before we ever answered does not stop the first-response clock."""
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    h.clock.set(berlin("2026-03-02 09:30"))
    await h.run(ANA, "/ticket pending #1")

    first, resolution = clock_of(h, Metric.FIRST_RESPONSE), clock_of(h, Metric.RESOLUTION)
    assert (first.state, first.due_at) == (ClockState.RUNNING, berlin("2026-03-02 10:30"))
    assert resolution.state is ClockState.PAUSED

    out = await sweep_until(h, berlin("2026-03-02 10:30"))
    assert containing(to_thread(out), "missed its first response target"), "it breaches while waiting"
    assert not containing(to_thread(out), "missed its resolution target")


async def test_a_clock_paused_past_its_due_time_still_breaches_after_it_resumes():
    """Resolution: 2h used before waiting; the sweep runs all through the wait (the bot stays up);
    the customer answers on Wednesday, so 6h are left: warned at 14:24 (80% of 8h), due at 16:00.

    Regression: the check-ins that fell due during the pause were dropped and never planned again."""
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket reply #1 Could you send a photo of the label?")
    h.clock.set(berlin("2026-03-02 11:00"))
    await h.run(ANA, "/ticket pending #1")
    await sweep_until(h, berlin("2026-03-04 10:00"), step=timedelta(hours=1))
    await h.write(DANA, "Sorry for the wait, here is the photo")
    assert clock_of(h, Metric.RESOLUTION).due_at == berlin("2026-03-04 16:00")

    out = await sweep_until(h, berlin("2026-03-04 16:00"))
    assert len(containing(to_agent(out, ANA), "needs its resolution by 16:00 CET today")) == 1
    assert len(containing(to_thread(out), "missed its resolution target")) == 1


# --- targets are copied when a clock starts ---------------------------------------------------------


async def test_a_priority_change_retargets_the_running_clocks():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    h.clock.set(berlin("2026-03-02 09:10"))
    await h.run(ANA, "/ticket priority #1 high")

    first, resolution = clock_of(h, Metric.FIRST_RESPONSE), clock_of(h, Metric.RESOLUTION)
    assert (first.target, first.due_at) == (timedelta(minutes=30), berlin("2026-03-02 09:30"))
    assert (resolution.target, resolution.due_at) == (timedelta(hours=4), berlin("2026-03-02 13:00"))

    out = await sweep_until(h, berlin("2026-03-02 09:23"), step=timedelta(minutes=1))
    assert not containing(to_thread(out), "Heads-up")
    out = await sweep_until(h, berlin("2026-03-02 09:30"), step=timedelta(minutes=1))
    assert containing(to_thread(out), "Heads-up: #1 (unclaimed) needs its first response by 9:30 CET today.")
    assert containing(to_thread(out), "Breach: #1 missed its first response target (30m of business time)")


async def test_a_lower_priority_moves_the_warning_and_breach_later():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket priority #1 low")
    assert clock_of(h, Metric.FIRST_RESPONSE).due_at == berlin("2026-03-02 12:00")

    out = await sweep_until(h, berlin("2026-03-02 11:00"))
    assert not containing(to_thread(out), "first response"), "the old 10:12 and 10:30 no longer hold"
    out = await sweep_until(h, berlin("2026-03-02 12:00"))
    assert len(containing(to_thread(out), "needs its first response by 12:00 CET today")) == 1
    assert len(containing(to_thread(out), "missed its first response target (3h of business time)")) == 1


async def test_a_policy_change_does_not_rewrite_a_running_clocks_target():
    """A ticket opened under 1h30m keeps 1h30m when the desk restarts on a policy that says 4h; new
    tickets get 4h."""
    before = await with_agents(desk_at(MONDAY))
    await open_ticket(before)
    slower = POLICY_TOML.replace('normal = { first_response = "1h30m"', 'normal = { first_response = "4h"')
    new_policy = Policy.model_validate(tomllib.loads(slower))
    after = desk_at(MONDAY, store=before.store, policy=new_policy)

    await after.write(EVE, "My invoice is wrong", message_id="eve-1")
    assert clock_of(after, Metric.FIRST_RESPONSE, ticket=2).target == timedelta(hours=4)
    out = await sweep_until(after, berlin("2026-03-02 10:30"))
    first = clock_of(after, Metric.FIRST_RESPONSE, ticket=1)
    assert (first.target, first.due_at) == (timedelta(hours=1, minutes=30), berlin("2026-03-02 10:30"))
    assert containing(to_thread(out, 1), "missed its first response target (1h30 of business time)")
    assert not containing(to_thread(out, 2), "missed")


# --- warnings and breaches ------------------------------------------------------------------------


async def test_an_unclaimed_tickets_warning_goes_to_the_agents_channel_at_80_percent():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)

    out = await sweep_until(h, berlin("2026-03-02 10:11"), step=timedelta(minutes=1))
    assert not containing(to_thread(out), "Heads-up")
    out = await sweep_until(h, berlin("2026-03-02 10:12"))
    warning = one(containing(to_thread(out), "Heads-up"))
    assert warning == "Heads-up: #1 (unclaimed) needs its first response by 10:30 CET today."
    assert not [m for m in out if isinstance(m.audience, ToAgent)], "nobody owns it: nobody in private"


async def test_a_claimed_tickets_warning_goes_to_its_assignee_only():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket claim #1")

    out = await sweep_until(h, berlin("2026-03-02 10:12"), step=timedelta(minutes=1))
    assert one(to_agent(out, ANA)) == "Heads-up: #1 needs its first response by 10:30 CET today."
    assert not containing(to_thread(out), "Heads-up")
    assert not to_agent(out, LEA)


async def test_a_breach_goes_to_the_staff_thread_and_the_queue_leads_private_messages():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    card = MessageRef("C-agents", "card-1")
    await h.desk.attach_card(1, "slack", card)

    out = await sweep_until(h, berlin("2026-03-02 10:30"), step=timedelta(minutes=1))
    text = "Breach: #1 missed its first response target (1h30 of business time); escalated to Lea."
    breach = one([m for m in out if isinstance(m.audience, ToAgents) and m.text == text])
    assert breach.audience == ToAgents(1, "slack", staff_thread=card)
    assert one(to_agent(out, LEA)) == text
    assert clock_of(h, Metric.FIRST_RESPONSE).breached_at == berlin("2026-03-02 10:30")
    assert [e.detail for e in h.store.events_for(1, "breached")] == [
        {"metric": "first_response", "cycle": "1"}
    ]


async def test_a_breach_in_a_queue_without_a_lead_stays_in_the_staff_thread():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket transfer #1 internal needs IT")

    out = await sweep_until(h, berlin("2026-03-02 10:30"))
    breach = one(containing(to_thread(out), "Breach"))
    assert "no lead to escalate to" in breach
    assert not to_agent(out, LEA)


async def test_a_warning_and_a_breach_are_sent_once_however_often_the_sweep_runs():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await h.run(ANA, "/ticket claim #1")

    out = await sweep_until(h, berlin("2026-03-02 12:00"), step=timedelta(minutes=1))
    for _ in range(3):
        out += await h.desk.run_due_work()
    assert len(containing(to_agent(out, ANA), "needs its first response")) == 1
    assert len(containing(to_thread(out), "missed its first response target")) == 1
    assert len(containing(to_agent(out, LEA), "missed its first response target")) == 1
    keys = [c for c in h.store.checkins.values() if c.key.startswith("1:first_response:1:")]
    assert sorted((c.key, c.state) for c in keys) == [
        ("1:first_response:1:breach", CheckinState.DONE),
        ("1:first_response:1:warning", CheckinState.DONE),
    ]


async def test_an_answer_in_time_cancels_the_warning_and_the_breach():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    h.clock.set(berlin("2026-03-02 10:00"))
    await h.run(ANA, "/ticket reply #1 On it!")

    out = await sweep_until(h, berlin("2026-03-02 11:00"))
    assert not containing(to_thread(out) + to_agent(out, ANA), "first response")
    warning = next(c for c in h.store.checkins.values() if c.key == "1:first_response:1:warning")
    assert warning.state is CheckinState.DROPPED


async def test_warnings_count_business_time_across_the_weekend():
    """Opened Friday 16:00: the warning comes Monday 09:12 (72 of the 90 minutes), not Friday night."""
    h = await with_agents(desk_at(berlin("2026-03-06 16:00")))
    await open_ticket(h)

    out = await sweep_until(h, berlin("2026-03-09 09:11"), step=timedelta(hours=1))
    assert not containing(to_thread(out), "Heads-up")
    out = await sweep_until(h, berlin("2026-03-09 09:12"))
    assert containing(to_thread(out), "Heads-up: #1 (unclaimed) needs its first response by 9:30 CET today.")


async def test_a_first_response_met_late_records_when_it_was_breached():
    """Without a sweep in between, the late reply itself marks the breach."""
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    h.clock.set(berlin("2026-03-02 10:45"))
    await h.run(ANA, "/ticket reply #1 Sorry for the wait!")

    first = clock_of(h, Metric.FIRST_RESPONSE)
    assert first.state is ClockState.MET
    assert first.met_at == first.breached_at == berlin("2026-03-02 10:45")


async def test_a_breach_escalated_by_the_sweep_keeps_its_time_when_the_answer_comes():
    h = await with_agents(desk_at(MONDAY))
    await open_ticket(h)
    await sweep_until(h, berlin("2026-03-02 10:30"))
    h.clock.set(berlin("2026-03-02 11:00"))
    await h.run(ANA, "/ticket reply #1 Sorry for the wait!")

    first = clock_of(h, Metric.FIRST_RESPONSE)
    assert (first.state, first.met_at) == (ClockState.MET, berlin("2026-03-02 11:00"))
    assert first.breached_at == berlin("2026-03-02 10:30")
