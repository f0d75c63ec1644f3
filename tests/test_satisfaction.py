"""Satisfaction surveys through the desk: after each resolution the customer is asked for a 1-5 rating
(a number in a reply, or a button that calls `Desk.rate`), then may leave a comment. One survey per
resolution; it expires after `satisfaction.expires_after` and is withdrawn when the ticket reopens;
`sample_rate` and `cooldown` decide which resolutions get one; a rating at or below `alert_at_or_below`
alerts the queue's lead and offers the customer a reopen.

Every scenario runs three times, on the fakes, on SQLite and on PostgreSQL (the `factory` fixture; the
PostgreSQL case is skipped without TEST_DATABASE_URL), and reads what was stored back through the
repositories. The policy is test_standards.py's (Mon-Fri 09:00-17:00 Europe/Berlin, the support team's
lead is Lea, resolved tickets close after 7 days) with surveys on, the packaged intake phrases ("thanks"
after a resolution reopens nothing) and the packaged survey settings: open 3 days, every resolution,
no cooldown, an alert at 2 or below. The console, which has no buttons, is tested at the end through the
real `relaydesk console`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes import Delivering, FakeStore, customer
from test_console import console, said_to
from test_standards import ANA, BEN, DANA, EVE, LEA, MONDAY, berlin_policy, one

from bot.clock import FakeClock
from bot.commands import Actor, IncomingMessage
from bot.desk import Desk
from bot.domain import EntryKind, Status, Survey, SurveyState, Ticket
from bot.messages import (
    Conversation,
    CustomerMessage,
    InternalText,
    Outgoing,
    StaffMessage,
    SurveyPrompt,
    ToAgent,
    ToAgents,
    ToCustomer,
    is_private_answer,
)
from bot.policy import Policy, Satisfaction, load_policy
from bot.ports import UnitOfWork
from storage.engine import create_engine, session_factory
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWork

UowFactory = Callable[[], UnitOfWork]

ASK = (
    "One quick question, Dana: how did we do with #1? Please rate us from 1 (poor) to 5 (excellent); "
    "just reply with the number."
)
THANKS = "Thank you, Dana! If you'd like to tell us more, just reply here; we read every word."
SORRY = (
    "I'm sorry we let you down, Dana. Tell us what went wrong and a team lead will look at it, or reply "
    '"reopen" and we\'ll pick #1 straight back up.'
)
COMMENT_THANKS = "Thank you, Dana. We've passed that on to the team."
CLOSED = "Thanks, Dana, but that survey has closed. If you need anything, just write here and we'll help."
DONE = "Thanks, Dana, we already have your rating."
SECRET = "NOTE-SECRET courier lost it, refund 40 EUR"


def policy(**settings: Any) -> Policy:
    """test_standards.py's policy with surveys on (`settings` change the packaged survey settings) and
    the packaged intake phrases."""
    return berlin_policy(satisfaction=Satisfaction(**settings), intake=load_policy().intake)


# --- three backends -------------------------------------------------------------------------------


@pytest.fixture(params=["fakes", "sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """None for the fakes; otherwise an empty database (PostgreSQL skipped without TEST_DATABASE_URL)."""
    if request.param == "fakes":
        return None
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest.fixture
async def factory(backend_url: str | None) -> AsyncIterator[UowFactory]:
    """Units of work on the fakes or on a database migrated to head."""
    if backend_url is None:
        yield FakeStore().uow
        return
    engine = create_engine(backend_url)
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        yield lambda: SqlUnitOfWork(sessions)
    finally:
        await engine.dispose()


@dataclass
class Desked:
    """A desk on one backend with a clock that moves only when told; reads go through the repositories."""

    desk: Desk
    clock: FakeClock
    factory: UowFactory
    said: list[Outgoing] = field(default_factory=list)
    _messages: int = 0

    async def write(self, actor: Actor, text: str) -> list[Outgoing]:
        """The actor writes in their DM with the bot; every message has its own platform id."""
        self._messages += 1
        where = Conversation(actor.person.platform, f"D-{actor.person.user_id}")
        out = await self.desk.receive(IncomingMessage(actor, text, where, f"m{self._messages}"))
        self.said += out
        return out

    async def run(self, actor: Actor, command: str) -> list[Outgoing]:
        out = await self.desk.command(actor, command)
        self.said += out
        return out

    async def rate(self, actor: Actor, number: int, rating: int) -> list[Outgoing]:
        out = await self.desk.rate(actor, number, rating)
        self.said += out
        return out

    async def sweep_until(self, end: datetime, step: timedelta = timedelta(hours=1)) -> list[Outgoing]:
        said: list[Outgoing] = []
        while self.clock.now() < end:
            self.clock.advance(min(step, end - self.clock.now()))
            said += await self.desk.run_due_work()
        self.said += said
        return said

    async def surveys(self, number: int = 1) -> list[Survey]:
        async with self.factory() as uow:
            return await uow.surveys.for_ticket(number)

    async def survey(self, number: int = 1) -> Survey:
        return one(await self.surveys(number))

    async def ticket(self, number: int = 1) -> Ticket:
        async with self.factory() as uow:
            found = await uow.tickets.get(number)
        assert found is not None, f"no ticket #{number}"
        return found

    async def customer_entries(self, number: int = 1) -> list[str]:
        async with self.factory() as uow:
            entries = await uow.entries.for_ticket(number)
        return [str(e.body) for e in entries if e.kind is EntryKind.CUSTOMER]

    async def checkin_keys(self) -> set[str]:
        async with self.factory() as uow:
            found = [await uow.checkins.get(f"1:survey:{cycle}:expire") for cycle in (1, 2, 3)]
        return {c.key for c in found if c is not None}


async def desk_on(factory: UowFactory, the_policy: Policy | None = None) -> Desked:
    desked = Desked(
        Delivering(Desk(factory, clock := FakeClock(MONDAY), the_policy or policy())), clock, factory
    )
    await desked.desk.register_agents([ANA.person, BEN.person, LEA.person])
    return desked


async def resolved(factory: UowFactory, the_policy: Policy | None = None) -> tuple[Desked, list[Outgoing]]:
    """Dana's ticket #1: she writes Monday 09:00, Ana answers, notes and resolves it at 10:00."""
    d = await desk_on(factory, the_policy)
    await d.write(DANA, "My parcel never arrived")
    d.clock.advance(timedelta(hours=1))
    await d.run(ANA, "/ticket reply #1 I'm sorry, Dana. A replacement ships today.")
    await d.run(ANA, f"/ticket note #1 {SECRET}")
    return d, await d.run(ANA, f"/ticket resolve #1 {SECRET}")


# --- reading what the desk said -------------------------------------------------------------------


def to_dana(out: Sequence[Outgoing], number: int = 1) -> list[str]:
    """What Dana was told in her ticket's conversation."""
    return [
        m.text
        for m in out
        if isinstance(m, CustomerMessage)
        and m.audience.ticket_number == number
        and m.audience.person.user_id == DANA.person.user_id
    ]


def surveys_in(out: Sequence[Outgoing]) -> list[CustomerMessage]:
    return [m for m in out if isinstance(m, CustomerMessage) and m.survey is not None]


def privately(out: Sequence[Outgoing], actor: Actor) -> list[str]:
    """Answers only the actor sees."""
    return [m.text for m in out if is_private_answer(m, actor.person)]


def to_staff_thread(out: Sequence[Outgoing], number: int = 1) -> list[str]:
    return [
        m.text
        for m in out
        if isinstance(m, StaffMessage)
        and isinstance(m.audience, ToAgents)
        and m.audience.ticket_number == number
    ]


def to_lead(out: Sequence[Outgoing]) -> list[str]:
    return [
        m.text
        for m in out
        if isinstance(m, StaffMessage) and isinstance(m.audience, ToAgent) and m.audience.person == LEA.person
    ]


# --- asking ---------------------------------------------------------------------------------------


async def test_a_resolution_tells_the_customer_then_asks_for_a_rating_once(factory: UowFactory) -> None:
    d, out = await resolved(factory)

    told = to_dana(out)
    assert told[0].startswith("Thanks for your patience, Dana. We've marked #1 as resolved.")
    assert told[1:] == [ASK]
    [ask] = surveys_in(out)
    assert ask.survey == SurveyPrompt(1, 5)
    assert ask.audience == ToCustomer(DANA.person, 1, Conversation("slack", "D-Udana"))
    assert [m for m in out if isinstance(m, CustomerMessage) and m is not ask and m.survey is not None] == []

    survey = await d.survey()
    assert (survey.cycle, survey.state, survey.rating, survey.comment) == (1, SurveyState.OPEN, None, None)
    assert survey.sent_at == MONDAY + timedelta(hours=1)
    assert survey.expires_at == survey.sent_at + timedelta(days=3)
    assert await d.checkin_keys() == {"1:survey:1:expire"}
    assert (await d.ticket()).status is Status.RESOLVED


async def test_the_survey_never_carries_internal_notes(factory: UowFactory) -> None:
    d, out = await resolved(factory)
    out += await d.write(DANA, "1")
    out += await d.write(DANA, "It took a week")

    customers = [m for m in out if isinstance(m, CustomerMessage)]
    assert customers and all(isinstance(m.text, str) and "NOTE-SECRET" not in m.text for m in customers)
    assert "NOTE-SECRET" not in one(surveys_in(d.said)).text
    notes = [p for m in out if isinstance(m, StaffMessage) for p in m.parts if isinstance(p, InternalText)]
    assert notes, "the resolution summary did reach the agents, as a note"


async def test_a_ticket_resolved_for_want_of_an_answer_gets_a_survey_too(factory: UowFactory) -> None:
    d = await desk_on(factory)
    await d.write(DANA, "My parcel never arrived")
    await d.run(ANA, "/ticket reply #1 Could you send a photo of the label?")
    await d.run(ANA, "/ticket pending #1")

    out = await d.sweep_until(MONDAY + timedelta(days=5, hours=1), step=timedelta(hours=6))

    assert (await d.ticket()).status is Status.RESOLVED
    told = to_dana(out)
    assert told[-2].startswith("Hi Dana, as we haven't heard back, we've marked #1 as resolved.")
    assert told[-1] == ASK and one(surveys_in(out)).survey == SurveyPrompt(1, 5)
    assert (await d.survey()).state is SurveyState.OPEN


# --- rating by reply, then the comment ------------------------------------------------------------


@pytest.mark.parametrize("typed", ["4", "4/5", "4 stars", "★★★★", "⭐⭐⭐⭐", " 4. "])
async def test_a_number_in_a_reply_rates_the_ticket_without_reopening_it(
    factory: UowFactory, typed: str
) -> None:
    d, _ = await resolved(factory)
    out = await d.write(DANA, typed)

    assert to_dana(out) == [THANKS]
    assert to_staff_thread(out) == ["Dana Scully rated #1: 4/5."]
    assert to_lead(out) == [], "a good rating alerts nobody"
    assert (await d.ticket()).status is Status.RESOLVED
    survey = await d.survey()
    assert (survey.state, survey.rating, survey.rated_at) == (SurveyState.RATED, 4, d.clock.now())
    assert (await d.customer_entries())[-1] == typed, "what the customer wrote is on the record"


async def test_the_next_message_after_a_rating_is_the_comment_forwarded_to_the_staff_thread(
    factory: UowFactory,
) -> None:
    d, _ = await resolved(factory)
    await d.write(DANA, "5")
    d.clock.advance(timedelta(minutes=5))
    out = await d.write(DANA, "Quick and friendly, thank you")

    assert to_dana(out) == [COMMENT_THANKS]
    assert to_staff_thread(out) == ["#1 · Dana Scully's comment (rated 5/5): Quick and friendly, thank you"]
    assert (await d.ticket()).status is Status.RESOLVED, "a comment does not reopen the ticket"
    survey = await d.survey()
    assert (survey.comment, survey.commented_at) == ("Quick and friendly, thank you", d.clock.now())

    out = await d.write(DANA, "Oh, and the replacement is the wrong colour.")
    assert (await d.ticket()).status is Status.OPEN, "after the comment, a message is a message again"
    assert to_staff_thread(out) == [
        "#1 · Dana Scully (back to open; was resolved): Oh, and the replacement is the wrong colour."
    ]
    assert (await d.survey()).comment == "Quick and friendly, thank you"


async def test_thanks_after_the_resolution_leaves_the_survey_open(factory: UowFactory) -> None:
    d, _ = await resolved(factory)
    await d.write(DANA, "thanks")
    assert (await d.ticket()).status is Status.RESOLVED
    assert (await d.survey()).state is SurveyState.OPEN

    await d.write(DANA, "5")
    assert (await d.survey()).rating == 5


# --- low ratings ----------------------------------------------------------------------------------


async def test_a_low_rating_alerts_the_lead_privately_and_offers_a_reopen(factory: UowFactory) -> None:
    d, _ = await resolved(factory)
    out = await d.write(DANA, "2")

    assert to_dana(out) == [SORRY]
    assert to_lead(out) == [
        "Low rating: Dana Scully rated #1 2/5. They were offered a reopen; /ticket show #1 has the story."
    ]
    assert to_staff_thread(out) == ["Dana Scully rated #1: 2/5."]
    assert [m for m in out if isinstance(m, CustomerMessage) and "Low rating" in m.text] == []
    assert (await d.ticket()).status is Status.RESOLVED


async def test_a_rating_above_the_threshold_alerts_nobody(factory: UowFactory) -> None:
    d, _ = await resolved(factory)
    out = await d.write(DANA, "3")
    assert to_dana(out) == [THANKS] and to_lead(out) == []


async def test_reopen_after_a_low_rating_reopens_the_ticket(factory: UowFactory) -> None:
    d, _ = await resolved(factory)
    await d.write(DANA, "1")
    out = await d.write(DANA, "Reopen")

    assert (await d.ticket()).status is Status.OPEN
    assert to_staff_thread(out) == ["#1 · Dana Scully (back to open; was resolved): Reopen"]
    assert COMMENT_THANKS not in to_dana(out)
    survey = await d.survey()
    assert (survey.state, survey.rating, survey.comment) == (SurveyState.RATED, 1, None)


async def test_a_polite_reopen_after_a_low_rating_reopens_the_ticket(factory: UowFactory) -> None:
    d, _ = await resolved(factory)
    await d.write(DANA, "2")
    out = await d.write(DANA, "Please reopen.")
    assert COMMENT_THANKS not in to_dana(out)
    assert (await d.ticket()).status is Status.OPEN


@pytest.mark.parametrize("reopened_by", ["the customer", "an agent"])
async def test_once_the_ticket_reopens_the_customers_next_message_is_not_a_comment(
    factory: UowFactory, reopened_by: str
) -> None:
    d, _ = await resolved(factory)
    await d.write(DANA, "2")
    if reopened_by == "an agent":
        await d.run(ANA, "/ticket reopen #1")
    else:
        await d.write(DANA, "reopen")
    assert (await d.ticket()).status is Status.OPEN

    out = await d.write(DANA, "Could you send the new tracking number?")
    assert COMMENT_THANKS not in to_dana(out)
    assert "#1 · Dana Scully: Could you send the new tracking number?" in to_staff_thread(out)
    assert (await d.survey()).comment is None


# --- expiry and withdrawal ------------------------------------------------------------------------


async def test_an_unanswered_survey_expires_quietly_after_expires_after(factory: UowFactory) -> None:
    d, _ = await resolved(factory)
    sent = (await d.survey()).sent_at

    out = await d.sweep_until(sent + timedelta(days=3) - timedelta(minutes=1))
    assert (await d.survey()).state is SurveyState.OPEN
    out += await d.sweep_until(sent + timedelta(days=3), step=timedelta(minutes=1))
    assert (await d.survey()).state is SurveyState.EXPIRED
    assert to_dana(out) == [], "an expiring survey says nothing to anyone"

    refused = await d.rate(DANA, 1, 5)
    assert privately(refused, DANA) == [CLOSED] and len(refused) == 1
    assert (await d.survey()).rating is None


async def test_a_rating_typed_after_the_survey_expired_is_an_ordinary_message(factory: UowFactory) -> None:
    """Once the survey is over, a "5" is taken as what any other message on a resolved ticket is: the
    ticket reopens and the agents read it. That is the documented rule (a customer's message on a resolved
    ticket returns it to open; only courtesies do not), and it is the safe side: the desk cannot know the
    "5" still answers a survey it no longer asks, and a person looks at it."""
    d, _ = await resolved(factory)
    await d.sweep_until(MONDAY + timedelta(days=4), step=timedelta(hours=6))

    out = await d.write(DANA, "5")

    assert (await d.ticket()).status is Status.OPEN
    assert to_staff_thread(out) == ["#1 · Dana Scully (back to open; was resolved): 5"]
    assert THANKS not in to_dana(out)
    survey = await d.survey()
    assert (survey.state, survey.rating) == (SurveyState.EXPIRED, None)


async def test_an_agents_reopen_withdraws_the_survey(factory: UowFactory) -> None:
    d, _ = await resolved(factory)
    await d.run(ANA, "/ticket reopen #1")
    assert (await d.survey()).state is SurveyState.WITHDRAWN

    out = await d.write(DANA, "4")
    assert THANKS not in to_dana(out), "on an open ticket a number is an ordinary message"
    assert to_staff_thread(out) == ["#1 · Dana Scully: 4"]
    assert privately(await d.rate(DANA, 1, 4), DANA) == [CLOSED]
    survey = await d.survey()
    assert (survey.state, survey.rating) == (SurveyState.WITHDRAWN, None)


async def test_a_customers_new_message_reopens_the_ticket_and_withdraws_the_survey(
    factory: UowFactory,
) -> None:
    d, _ = await resolved(factory)
    out = await d.write(DANA, "One more question: can the parcel go to my office?")

    assert (await d.ticket()).status is Status.OPEN
    assert to_staff_thread(out) == [
        "#1 · Dana Scully (back to open; was resolved): One more question: can the parcel go to my office?"
    ]
    assert (await d.survey()).state is SurveyState.WITHDRAWN
    assert privately(await d.rate(DANA, 1, 3), DANA) == [CLOSED]


async def test_one_survey_per_resolution(factory: UowFactory) -> None:
    d, _ = await resolved(factory)
    await d.run(ANA, "/ticket reopen #1")
    d.clock.advance(timedelta(hours=1))
    out = await d.run(ANA, "/ticket resolve #1")

    assert to_dana(out)[-1] == ASK and one(surveys_in(out)).survey == SurveyPrompt(1, 5)
    first, second = await d.surveys()
    assert (first.cycle, first.state) == (1, SurveyState.WITHDRAWN)
    assert (second.cycle, second.state, second.sent_at) == (2, SurveyState.OPEN, d.clock.now())
    assert await d.checkin_keys() == {"1:survey:1:expire", "1:survey:2:expire"}

    await d.rate(DANA, 1, 5)
    first, second = await d.surveys()
    assert (first.state, first.rating) == (SurveyState.WITHDRAWN, None)
    assert (second.state, second.rating) == (SurveyState.RATED, 5)

    await d.sweep_until(d.clock.now() + timedelta(days=4), step=timedelta(hours=6))
    assert [s.state for s in await d.surveys()] == [SurveyState.WITHDRAWN, SurveyState.RATED]


# --- which resolutions get one --------------------------------------------------------------------


async def test_surveys_can_be_switched_off(factory: UowFactory) -> None:
    d, out = await resolved(factory, policy(enabled=False))
    assert surveys_in(out) == [] and await d.surveys() == []
    assert to_dana(out) and not any("how did we do" in text for text in to_dana(out))


async def test_a_sample_rate_of_zero_asks_nobody(factory: UowFactory) -> None:
    d, out = await resolved(factory, policy(sample_rate=0.0))
    assert surveys_in(out) == [] and await d.surveys() == [] and await d.checkin_keys() == set()
    assert (await d.write(DANA, "5")) and (await d.ticket()).status is Status.OPEN


async def sampled(factory: UowFactory, tickets: int) -> list[int]:
    """The tickets whose resolution asked for a rating, at a sample rate of one half: one customer per
    ticket (no cooldown gets in the way)."""
    d = await desk_on(factory, policy(sample_rate=0.5))
    asked = []
    for number in range(1, tickets + 1):
        await d.write(customer(f"Customer {number}", user_id=f"UC{number}"), "Where is my parcel?")
        if surveys_in(await d.run(ANA, f"/ticket resolve #{number}")):
            asked.append(number)
            assert [s.ticket_number for s in await d.surveys(number)] == [number]
        else:
            assert await d.surveys(number) == []
    return asked


async def test_a_sample_rate_asks_a_deterministic_share(factory: UowFactory) -> None:
    asked = await sampled(factory, 16)
    assert 4 <= len(asked) <= 12, f"about half of 16 tickets, not {asked}"
    assert asked == await sampled(FakeStore().uow, 16), "the same tickets on every run and backend"


async def test_each_resolution_of_a_ticket_is_sampled_on_its_own(factory: UowFactory) -> None:
    d = await desk_on(factory, policy(sample_rate=0.5))
    await d.write(DANA, "My parcel never arrived")
    asked = []
    for resolution in range(1, 9):
        if resolution > 1:
            await d.run(ANA, "/ticket reopen #1")
        asked.append(bool(surveys_in(await d.run(ANA, "/ticket resolve #1"))))
    assert any(asked) and not all(asked), asked


async def test_a_cooldown_spares_a_customer_a_second_survey_within_it(factory: UowFactory) -> None:
    d, out = await resolved(factory, policy(cooldown=timedelta(days=30)))
    assert surveys_in(out)

    d.clock.advance(timedelta(hours=2))
    await d.write(DANA, "Sorry, one more thing: the invoice is missing.")
    out = await d.run(ANA, "/ticket resolve #1")
    assert surveys_in(out) == [], "resolved again within the cooldown: no second survey"
    assert [s.cycle for s in await d.surveys()] == [1]

    await d.write(EVE, "My invoice is wrong")
    assert surveys_in(await d.run(ANA, "/ticket resolve #2")), "the cooldown is per customer"

    d.clock.advance(timedelta(days=31))
    await d.desk.run_due_work()  # #1 closed long ago: Dana's next message opens #3
    await d.write(DANA, "Hello again, a new order this time: B-77 is late.")
    assert (await d.ticket(3)).customer_id == (await d.ticket(1)).customer_id
    out = await d.run(ANA, "/ticket resolve #3")
    assert surveys_in(out), "after the cooldown she is asked again"


# --- Desk.rate: buttons -------------------------------------------------------------------------


async def test_a_button_rates_the_ticket_and_a_second_press_changes_it_until_the_comment(
    factory: UowFactory,
) -> None:
    d, _ = await resolved(factory)
    out = await d.rate(DANA, 1, 3)
    assert to_dana(out) == [THANKS] and to_staff_thread(out) == ["Dana Scully rated #1: 3/5."]
    assert privately(out, DANA) == [], "a rating taken is answered where the survey was, not privately"

    out = await d.rate(DANA, 1, 1)
    assert to_dana(out) == [SORRY]
    assert to_staff_thread(out) == ["Dana Scully changed their rating of #1: 1/5."]
    assert len(to_lead(out)) == 1
    survey = await d.survey()
    assert (survey.state, survey.rating) == (SurveyState.RATED, 1)
    assert (await d.ticket()).status is Status.RESOLVED

    await d.write(DANA, "It took far too long")
    assert privately(await d.rate(DANA, 1, 5), DANA) == [DONE]
    assert (await d.survey()).rating == 1


REFUSALS = {
    "someone else's ticket": (EVE, 1, 4),
    "an agent": (ANA, 1, 4),
    "a ticket that does not exist": (DANA, 99, 4),
    "a rating of 0": (DANA, 1, 0),
    "a rating of 6": (DANA, 1, 6),
    "a rating of -1": (DANA, 1, -1),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_desk_rate_refuses_privately_and_changes_nothing(factory: UowFactory, case: str) -> None:
    d, _ = await resolved(factory)
    await d.write(EVE, "Hi, I have a question too")  # Eve is a customer with a ticket of her own
    actor, number, rating = REFUSALS[case]
    before = await d.surveys()

    out = await d.rate(actor, number, rating)

    [answer] = out
    assert is_private_answer(answer, actor.person) and isinstance(answer, CustomerMessage)
    assert answer.audience.ticket_number is None, "not said in the ticket's conversation"
    assert "survey has closed" in answer.text
    assert await d.surveys() == before
    assert (await d.ticket()).status is Status.RESOLVED


async def test_desk_rate_refuses_a_survey_that_expired_or_was_withdrawn(factory: UowFactory) -> None:
    d, _ = await resolved(factory)
    d.clock.advance(timedelta(days=3))  # expired, though its check-in has not run yet
    assert privately(await d.rate(DANA, 1, 5), DANA) == [CLOSED]
    assert (await d.survey()).state is SurveyState.OPEN

    await d.run(ANA, "/ticket reopen #1")
    await d.run(ANA, "/ticket resolve #1")
    await d.write(DANA, "Actually, it's still broken")  # withdraws cycle 2
    assert [s.state for s in await d.surveys()] == [SurveyState.WITHDRAWN, SurveyState.WITHDRAWN]
    assert privately(await d.rate(DANA, 1, 5), DANA) == [CLOSED]


# --- the console: a numbered reply ----------------------------------------------------------------


def _stored(workdir: Path) -> tuple[str, list[tuple[object, ...]]]:
    with sqlite3.connect(workdir / "relaydesk.db") as db:
        (status,) = db.execute("SELECT status FROM tickets WHERE number = 1").fetchone()
        rows = db.execute("SELECT cycle, state, rating, comment FROM surveys ORDER BY id").fetchall()
    return status, rows


def test_on_the_console_the_customer_rates_with_a_number_then_comments(tmp_path: Path) -> None:
    lines = console(
        "dana: Hi, my order A-1234 never arrived.\n"
        "ana: /ticket reply #1 Sorry Dana, a replacement ships today.\n"
        "ana: /ticket resolve #1 RESOLVE-SECRET refunded shipping\n"
        "dana: 4/5\n"
        "dana: Quick and friendly\n",
        tmp_path,
    )
    to_dana_lines = said_to(lines, "to dana")
    assert "how did we do with #1? Please rate us from 1 (poor) to 5 (excellent)" in to_dana_lines
    assert "Thank you, Dana! If you'd like to tell us more" in to_dana_lines
    assert "We've passed that on to the team." in to_dana_lines
    assert "RESOLVE-SECRET" not in to_dana_lines
    agents = said_to(lines, "agents")
    assert "Dana rated #1: 4/5." in agents
    assert "#1 · Dana's comment (rated 4/5): Quick and friendly" in agents
    assert _stored(tmp_path) == ("resolved", [(1, "rated", 4, "Quick and friendly")])


def test_on_the_console_a_low_rating_alerts_the_lead_and_reopen_reopens(tmp_path: Path) -> None:
    lines = console(
        "dana: Hi, my order A-1234 never arrived.\nben: /ticket resolve #1\ndana: 1\ndana: reopen\n",
        tmp_path,
    )
    assert 'or reply "reopen" and we\'ll pick #1 straight back up.' in said_to(lines, "to dana")
    assert "Low rating: Dana rated #1 1/5." in said_to(lines, "private ana"), "ana leads the support team"
    assert "Low rating" not in said_to(lines, "to dana")
    assert _stored(tmp_path) == ("open", [(1, "rated", 1, None)])
