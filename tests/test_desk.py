"""The Desk service through its public methods, over the in-memory unit of work.

Each test checks both what the desk says (and to whom) and what it stored.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import TypeVar

import pytest
from fakes import START, FakeStore, Harness, agent, build_desk, colleague, customer, dm, person

from bot.commands import Actor, Claim, IncomingMessage, Request
from bot.domain import EntryKind, Priority, Status, TicketKind
from bot.grammar import help_text
from bot.messages import (
    Conversation,
    CustomerMessage,
    InternalText,
    Outgoing,
    StaffKind,
    StaffMessage,
    TicketCard,
    ToAgent,
    ToAgents,
    ToCustomer,
)
from bot.policy import Lifecycle
from bot.ports import Conflict
from bot.voice import customer_help

DANA = customer("Dana Scully")
EVE = customer("Eve Moss")
ANA = agent("Ana Lima")
BEN = agent("Ben")
CARL = colleague("Carl Jung")

T = TypeVar("T")


@pytest.fixture
def h() -> Harness:
    return build_desk()


# --- helpers ------------------------------------------------------------------------------------


def to_customers(out: Sequence[Outgoing]) -> list[CustomerMessage]:
    return [m for m in out if isinstance(m, CustomerMessage)]


def to_staff(out: Sequence[Outgoing], kind: StaffKind | None = None) -> list[StaffMessage]:
    return [m for m in out if isinstance(m, StaffMessage) and (kind is None or m.kind is kind)]


def one(items: Sequence[T]) -> T:
    assert len(items) == 1, items
    return items[0]


def to_channel(out: Sequence[Outgoing]) -> list[StaffMessage]:
    return [m for m in to_staff(out) if isinstance(m.audience, ToAgents)]


def to_agent(out: Sequence[Outgoing], who: Actor) -> list[StaffMessage]:
    return [m for m in to_staff(out) if m.audience == ToAgent(who.person)]


def private_answer(out: Sequence[Outgoing], actor: Actor) -> str:
    """The one message a refused actor gets: only to them, nothing to anyone else."""
    message = one(out)
    if actor.is_agent:
        assert isinstance(message, StaffMessage)
        assert message.audience == ToAgent(actor.person)
        assert message.kind is StaffKind.INFO
    else:
        assert isinstance(message, CustomerMessage)
        assert message.audience == ToCustomer(actor.person)
    return message.text


async def opened(h: Harness, who: Actor = DANA, text: str = "My order A-1234 never arrived") -> int:
    """A customer writes in their DM; returns the number of the ticket it landed on."""
    out = await h.write(who, text)
    number = to_staff(out)[0].audience.ticket_number
    assert isinstance(number, int)
    return number


async def resolved(h: Harness, who: Actor = DANA) -> int:
    number = await opened(h, who)
    await h.run(ANA, f"/ticket claim #{number}")
    await h.run(ANA, f"/ticket resolve #{number}")
    assert h.store.ticket(number).status is Status.RESOLVED
    return number


# --- intake -------------------------------------------------------------------------------------


async def test_first_message_opens_a_ticket_and_greets_the_customer_by_first_name(h: Harness):
    out = await h.write(DANA, "My order A-1234 never arrived\nI need it by Friday")

    greeting = one(to_customers(out))
    assert greeting.audience == ToCustomer(DANA.person, 1, dm(DANA))
    assert greeting.text.startswith("Hi Dana,")
    assert "Scully" not in greeting.text
    assert "#1" in greeting.text
    assert "support team will reply right here" in greeting.text
    assert "general" not in greeting.text, "customers hear queue labels, not queue names"

    ticket = h.store.ticket(1)
    assert ticket.status is Status.NEW
    assert ticket.kind is TicketKind.EXTERNAL
    assert (ticket.queue, ticket.priority) == ("general", Priority.NORMAL)
    assert ticket.subject == "My order A-1234 never arrived"
    assert (ticket.platform, ticket.channel_id, ticket.thread_id) == ("slack", "D-Udana", None)
    assert ticket.customer_user_id == "Udana"
    assert ticket.created_at == ticket.last_customer_message_at == START
    assert ticket.assignee_id is None and ticket.previous_number is None
    assert h.store.customer("Dana Scully").id == ticket.customer_id


async def test_first_message_puts_a_card_in_the_agents_channel(h: Harness):
    out = await h.write(DANA, "My order A-1234 never arrived")

    card = one(to_staff(out, StaffKind.CARD))
    assert card.audience == ToAgents(1, "slack")
    assert card.card == TicketCard(
        number=1,
        customer_name="Dana Scully",
        subject="My order A-1234 never arrived",
        priority="normal",
        queue="general",
        status="new",
        returning=False,
    )
    assert "New ticket #1" in card.text
    assert "Dana Scully (new customer)" in card.text
    assert "/ticket claim #1" in card.text
    assert len(out) == 2


async def test_first_message_is_stored_with_its_platform_id_and_logged(h: Harness):
    await h.write(DANA, "My order never arrived", message_id="slack-msg-1")

    said = [e for e in h.store.entries_for(1) if e.kind is EntryKind.CUSTOMER]
    assert [(e.body, e.author_name, e.platform, e.external_id) for e in said] == [
        ("My order never arrived", "Dana Scully", "slack", "slack-msg-1")
    ]
    bot = [e for e in h.store.entries_for(1) if e.kind is EntryKind.BOT]
    assert len(bot) == 1 and "#1" in str(bot[0].body), "what the customer was told is on the record"
    created = one(h.store.events_for(1))
    assert (created.action, created.actor_name, created.at) == ("created", "Dana Scully", START)
    assert created.detail == {"kind": "external", "follows": None}


async def test_ticket_numbers_count_up(h: Harness):
    for who in (DANA, EVE, CARL):
        await h.write(who, "hello, something is wrong")
    assert sorted(h.store.tickets) == [1, 2, 3]


@pytest.mark.parametrize(
    ("text", "subject"),
    [
        ("\n\n   \nThe app crashes\nwhen I log in", "The app crashes"),
        ("  lots   of    spaces  ", "lots of spaces"),
        ("x" * 200, "x" * 79 + "…"),
    ],
)
async def test_subject_is_the_first_non_empty_line_shortened(h: Harness, text: str, subject: str):
    await h.write(DANA, text)
    assert h.store.ticket(1).subject == subject


async def test_later_messages_append_to_the_same_ticket_and_are_relayed(h: Harness):
    await h.write(DANA, "My order never arrived")
    h.clock.advance(timedelta(minutes=5))

    out = await h.write(DANA, "The tracking page shows an error too")

    relay = one(out)
    assert isinstance(relay, StaffMessage)
    assert relay.kind is StaffKind.RELAY
    assert relay.audience == ToAgents(1, "slack")
    assert relay.text == "#1 · Dana Scully: The tracking page shows an error too"
    assert list(h.store.tickets) == [1]
    said = [e.body for e in h.store.entries_for(1) if e.kind is EntryKind.CUSTOMER]
    assert said == ["My order never arrived", "The tracking page shows an error too"]
    assert h.store.ticket(1).last_customer_message_at == START + timedelta(minutes=5)
    assert h.store.ticket(1).status is Status.NEW


@pytest.mark.parametrize("which", ["first", "later"])
async def test_a_redelivered_message_is_recorded_once(h: Harness, which: str):
    if which == "later":
        await h.write(DANA, "My order never arrived", message_id="m-0")
    await h.write(DANA, "Hello? Anyone?", message_id="m-1")
    before = h.store.snapshot()

    again = await h.write(DANA, "Hello? Anyone?", message_id="m-1")

    assert again == []
    assert h.store.snapshot() == before
    assert [e.external_id for e in h.store.entries.values()].count("m-1") == 1


async def test_the_same_message_id_on_another_platform_is_another_message(h: Harness):
    await h.write(DANA, "On Slack", message_id="42")
    discord_dana = customer("Dana Scully", platform="discord")
    out = await h.write(discord_dana, "On Discord", message_id="42")
    assert out, "a Discord message is not a redelivery of a Slack one"
    assert sorted(h.store.tickets) == [1, 2]


async def test_concurrent_deliveries_of_one_message_open_one_ticket(h: Harness):
    """Both deliveries race; the loser hits the unique rule at commit, retries, and sees the winner's."""
    message = IncomingMessage(DANA, "My order never arrived", dm(DANA), "m-1")

    first, second = await asyncio.gather(h.desk.receive(message), h.desk.receive(message))

    assert sorted([len(first), len(second)]) == [0, 2]
    assert list(h.store.tickets) == [1]
    assert len(h.store.customers) == 1
    assert [e.external_id for e in h.store.entries.values()].count("m-1") == 1


async def test_a_conflict_at_commit_is_retried(h: Harness):
    h.store.fail_next_commits = 2
    out = await h.write(DANA, "My order never arrived")
    assert len(to_customers(out)) == 1
    assert list(h.store.tickets) == [1]
    assert len(h.store.entries_for(1)) == 2


async def test_a_conflict_that_persists_is_raised_and_nothing_is_stored(h: Harness):
    h.store.fail_next_commits = 3
    with pytest.raises(Conflict):
        await h.write(DANA, "My order never arrived")
    assert h.store.snapshot() == FakeStore().snapshot()


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n", "\x00\x01"])
async def test_a_blank_message_is_ignored(h: Harness, text: str):
    assert await h.write(DANA, text) == []
    assert h.store.tickets == {} and h.store.customers == {}


async def test_each_thread_is_its_own_ticket(h: Harness):
    first, second = Conversation("slack", "C-help", "T1"), Conversation("slack", "C-help", "T2")
    await h.write(DANA, "Invoice is wrong", first)
    await h.write(DANA, "Also, the app crashes", second)
    out = await h.write(DANA, "It's invoice 77", first)

    assert one(out).audience == ToAgents(1, "slack")
    assert [h.store.ticket(n).thread_id for n in (1, 2)] == ["T1", "T2"]
    said = [e.body for e in h.store.entries_for(1) if e.kind is EntryKind.CUSTOMER]
    assert said == ["Invoice is wrong", "It's invoice 77"]


async def test_two_customers_in_one_channel_get_separate_tickets(h: Harness):
    channel = Conversation("discord", "support")
    dana, eve = customer("Dana", "discord"), customer("Eve", "discord")
    await h.write(dana, "My order never arrived", channel)
    out = await h.write(eve, "I was charged twice", channel)

    assert one(to_customers(out)).audience == ToCustomer(eve.person, 2, channel)
    out = await h.write(dana, "Any news?", channel)
    assert one(out).audience == ToAgents(1, "discord")
    assert h.store.ticket(2).customer_user_id == "Ueve"


async def test_a_returning_customer_is_welcomed_back(h: Harness):
    await h.write(DANA, "My order never arrived")
    out = await h.write(DANA, "A separate question", Conversation("slack", "C-help", "T9"))

    greeting = one(to_customers(out))
    assert "good to hear from you again" in greeting.text
    assert "#2" in greeting.text
    card = one(to_staff(out, StaffKind.CARD))
    assert card.card is not None and card.card.returning
    assert "returning, 1 earlier ticket" in card.text
    assert len(h.store.customers) == 1


# --- claim, release, reply -----------------------------------------------------------------------


async def test_claim_tells_the_customer_and_gives_the_agent_a_summary(h: Harness):
    await h.write(DANA, "My order A-1234 never arrived")
    await h.write(DANA, "It was a birthday present")
    h.clock.advance(timedelta(hours=1))

    out = await h.run(ANA, "/ticket claim #1")

    told = one(to_customers(out))
    assert told.audience == ToCustomer(DANA.person, 1, dm(DANA))
    assert told.text == "Hi Dana, Ana Lima is now looking after your request #1 and will be in touch here."
    assert one(to_channel(out)).text == "#1 claimed by Ana Lima."
    summary = one(to_agent(out, ANA)).text
    assert summary.startswith("#1 · My order A-1234 never arrived\n")
    assert "open · normal priority · general · with Ana Lima" in summary
    assert "Who: Dana Scully · new customer" in summary
    assert "] My order A-1234 never arrived" in summary.split("In their words:")[1]
    assert "] It was a birthday present" in summary.split("In their words:")[1]
    assert "I've opened ticket" not in summary, "the bot's own messages are left out"

    ticket = h.store.ticket(1)
    assert ticket.status is Status.OPEN
    assert ticket.assignee_id == h.store.agent("Ana Lima").id
    assert ticket.updated_at == START + timedelta(hours=1)
    claimed = one(h.store.events_for(1, "claimed"))
    assert (claimed.actor_name, claimed.detail) == ("Ana Lima", {"agent": "Ana Lima"})


async def test_claiming_someone_elses_ticket_is_refused(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket claim #1")
    before = h.store.snapshot()

    out = await h.run(BEN, "/ticket claim #1")

    assert private_answer(out, BEN) == (
        "#1 is already with Ana Lima. To take it over, ask them or use /ticket transfer."
    )
    assert h.store.snapshot() == before, "not even Ben's agent record is kept"


async def test_claiming_your_own_ticket_again_is_refused(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket claim #1")
    before = h.store.snapshot()
    out = await h.run(ANA, "/ticket claim 1")
    assert private_answer(out, ANA) == "#1 is already yours."
    assert h.store.snapshot() == before


async def test_release_by_the_holder_puts_it_back_in_the_queue(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket claim #1")
    out = await h.run(ANA, "/ticket release #1")

    assert to_customers(out) == []
    assert one(to_channel(out)).text == "#1 released by Ana Lima; it's back in general, unclaimed."
    ticket = h.store.ticket(1)
    assert ticket.assignee_id is None
    assert ticket.status is Status.OPEN
    assert one(h.store.events_for(1, "released")).actor_name == "Ana Lima"
    listing = private_answer(await h.run(BEN, "/ticket queue"), BEN)
    assert "#1" in listing


async def test_release_by_someone_else_is_refused(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket claim #1")
    before = h.store.snapshot()
    out = await h.run(BEN, "/ticket release #1")
    assert "only they can release it" in private_answer(out, BEN)
    assert "Ana Lima" in private_answer(out, BEN)
    assert h.store.snapshot() == before


async def test_release_of_an_unclaimed_ticket_is_refused(h: Harness):
    await opened(h)
    before = h.store.snapshot()
    out = await h.run(ANA, "/ticket release #1")
    assert "isn't claimed by anyone" in private_answer(out, ANA)
    assert h.store.snapshot() == before


async def test_reply_to_an_unclaimed_ticket_claims_it_and_records_the_first_response(h: Harness):
    await opened(h)
    h.clock.advance(timedelta(minutes=30))

    out = await h.run(ANA, "/ticket reply #1 Sorry about that, Dana.\nA new one ships today.")

    told = one(to_customers(out))
    assert told.audience == ToCustomer(DANA.person, 1, dm(DANA))
    assert told.text == "Ana Lima: Sorry about that, Dana.\nA new one ships today."
    assert one(to_channel(out)).text == "#1 claimed by Ana Lima."
    ticket = h.store.ticket(1)
    assert ticket.assignee_id == h.store.agent("Ana Lima").id
    assert ticket.status is Status.OPEN
    assert ticket.first_agent_reply_at == START + timedelta(minutes=30)
    replies = [e for e in h.store.entries_for(1) if e.kind is EntryKind.REPLY]
    assert [(e.author_name, e.body) for e in replies] == [
        ("Ana Lima", "Sorry about that, Dana.\nA new one ships today.")
    ]
    claimed = one(h.store.events_for(1, "claimed"))
    assert claimed.detail == {"by_replying": "True"}


async def test_reply_to_a_claimed_ticket_keeps_its_holder_and_first_response_time(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket claim #1")
    h.clock.advance(timedelta(minutes=10))
    await h.run(ANA, "/ticket reply #1 Looking into it")
    h.clock.advance(timedelta(minutes=10))

    out = await h.run(BEN, "/ticket reply #1 Ana asked me to add: it ships today")

    assert to_channel(out) == [], "no claim announcement: it stays Ana's"
    assert one(to_customers(out)).text == "Ben: Ana asked me to add: it ships today"
    ticket = h.store.ticket(1)
    assert ticket.assignee_id == h.store.agent("Ana Lima").id
    assert ticket.first_agent_reply_at == START + timedelta(minutes=10)


async def test_a_note_goes_to_the_agents_channel_only(h: Harness):
    await opened(h)
    out = await h.run(ANA, "/ticket note #1 warehouse says the parcel was lost")

    note = one(out)
    assert isinstance(note, StaffMessage)
    assert (note.audience, note.kind) == (ToAgents(1, "slack"), StaffKind.NOTE)
    assert InternalText("warehouse says the parcel was lost") in note.parts
    assert note.text == "#1 · internal note from Ana Lima: warehouse says the parcel was lost"
    stored = [e for e in h.store.entries_for(1) if e.kind is EntryKind.NOTE]
    assert [e.body for e in stored] == [InternalText("warehouse says the parcel was lost")]
    assert h.store.ticket(1).status is Status.NEW, "a note is not an answer"


# --- the status machine ---------------------------------------------------------------------------


async def test_pending_then_a_customer_message_returns_the_ticket_to_open(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket claim #1")
    out = await h.run(ANA, "/ticket pending #1")
    assert one(to_channel(out)).text == "#1 is now waiting on customer (Ana Lima)"
    assert to_customers(out) == []
    assert h.store.ticket(1).status is Status.WAITING_ON_CUSTOMER

    out = await h.write(DANA, "Here is the photo you asked for")

    assert (
        one(out).text
        == "#1 · Dana Scully (back to open; was waiting on customer): Here is the photo you asked for"
    )
    assert h.store.ticket(1).status is Status.OPEN
    back = h.store.events_for(1, "status")[-1]
    assert (back.actor_name, back.detail) == ("Dana Scully", {"old": "waiting_on_customer", "new": "open"})


@pytest.mark.parametrize(
    ("command", "status"),
    [
        ("/ticket pending #1", Status.WAITING_ON_CUSTOMER),
        ("/ticket hold #1 courier investigating", Status.ON_HOLD),
        ("/ticket resolve #1", Status.RESOLVED),
    ],
)
async def test_a_customer_message_brings_a_waiting_held_or_resolved_ticket_back(
    h: Harness, command: str, status: Status
):
    await opened(h)
    await h.run(ANA, "/ticket claim #1")
    await h.run(ANA, command)
    assert h.store.ticket(1).status is status

    out = await h.write(DANA, "It is still not here, and the courier says otherwise")

    assert h.store.ticket(1).status is Status.OPEN
    assert list(h.store.tickets) == [1]
    assert one(out).audience == ToAgents(1, "slack")
    assert "back to open" in one(out).text


@pytest.mark.parametrize("claim", [False, True])
async def test_a_customer_message_on_a_new_or_open_ticket_keeps_its_status(h: Harness, claim: bool):
    await opened(h)
    if claim:
        await h.run(ANA, "/ticket claim #1")
    status = h.store.ticket(1).status
    changes = h.store.events_for(1, "status")
    out = await h.write(DANA, "Any news?")
    assert h.store.ticket(1).status is status
    assert "back to open" not in one(out).text
    assert h.store.events_for(1, "status") == changes


async def test_hold_and_resolve_reasons_stay_with_the_agents(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket claim #1")
    out = await h.run(ANA, "/ticket hold #1 courier investigating, ref 991")
    assert one(out).text == "#1 is now on hold (Ana Lima): courier investigating, ref 991"
    assert InternalText("courier investigating, ref 991") in one(to_channel(out)).parts

    out = await h.run(ANA, "/ticket resolve #1 refunded the shipping")
    told, survey = to_customers(out)
    assert "refunded" not in told.text + survey.text
    assert told.text.startswith("Thanks for your patience, Dana. We've marked #1 as resolved.")
    assert survey.survey is not None and told.survey is None
    assert InternalText("refunded the shipping") in one(to_channel(out)).parts
    ticket = h.store.ticket(1)
    assert ticket.resolved_at == START
    assert h.store.events_for(1, "status")[-1].detail == {"old": "on_hold", "new": "resolved"}
    notes = [e.body for e in h.store.entries_for(1) if e.kind is EntryKind.NOTE]
    assert notes == [
        InternalText("On hold: courier investigating, ref 991"),
        InternalText("Resolved: refunded the shipping"),
    ]


async def test_reopen_a_resolved_ticket_tells_the_customer(h: Harness):
    await resolved(h)
    out = await h.run(BEN, "/ticket reopen #1")

    told = one(to_customers(out))
    assert told.text == (
        "Hi Dana, we've reopened your request #1 and are looking into it again. We'll be in touch here."
    )
    assert one(to_channel(out)).text == "#1 is now open (Ben)"
    assert h.store.ticket(1).status is Status.OPEN
    assert h.store.events_for(1, "status")[-1].detail == {"old": "resolved", "new": "open"}


@pytest.mark.parametrize(
    ("setup", "status_word"),
    [
        ([], "new"),
        (["/ticket claim #1"], "open"),
        (["/ticket claim #1", "/ticket pending #1"], "waiting on customer"),
        (["/ticket claim #1", "/ticket hold #1 vendor"], "on hold"),
    ],
)
async def test_reopen_is_only_for_resolved_tickets(h: Harness, setup: list[str], status_word: str):
    await opened(h)
    for command in setup:
        await h.run(ANA, command)
    before = h.store.snapshot()
    out = await h.run(ANA, "/ticket reopen #1")
    assert private_answer(out, ANA) == f"#1 is {status_word}, not resolved, so there's nothing to reopen."
    assert h.store.snapshot() == before


async def test_a_resolved_ticket_is_reopened_before_it_is_worked_on(h: Harness):
    await resolved(h)
    before = h.store.snapshot()
    for command in ("/ticket claim #1", "/ticket transfer #1 billing", "/ticket priority #1 high"):
        out = await h.run(BEN, command)
        assert private_answer(out, BEN) == "#1 is resolved. Reopen it first with /ticket reopen #1."
    out = await h.run(ANA, "/ticket pending #1")
    assert "it can't go to waiting on customer from there" in private_answer(out, ANA)
    out = await h.run(ANA, "/ticket resolve #1")
    assert private_answer(out, ANA) == "#1 is already resolved."
    assert h.store.snapshot() == before


async def test_the_same_status_twice_is_refused(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket hold #1 vendor")
    before = h.store.snapshot()
    out = await h.run(ANA, "/ticket hold #1 still the vendor")
    assert private_answer(out, ANA) == "#1 is already on hold."
    assert h.store.snapshot() == before


async def test_a_closed_ticket_never_reopens(h: Harness):
    await resolved(h)
    h.clock.advance(h.policy.lifecycle.close_resolved_after)
    await h.desk.run_due_work()
    assert h.store.ticket(1).status is Status.CLOSED
    before = h.store.snapshot()

    for command in (
        "/ticket reopen #1",
        "/ticket reply #1 hello?",
        "/ticket claim #1",
        "/ticket pending #1",
        "/ticket resolve #1",
        "/ticket transfer #1 @ben",
        "/ticket priority #1 urgent",
    ):
        out = await h.run(BEN, command)
        assert "closed" in private_answer(out, BEN), command
    assert h.store.snapshot() == before


async def test_a_message_after_closing_opens_a_new_ticket_linked_to_the_old_one(h: Harness):
    await resolved(h)
    h.clock.advance(timedelta(days=8))
    await h.desk.run_due_work()

    out = await h.write(DANA, "The replacement is the wrong colour")

    assert h.store.ticket(1).status is Status.CLOSED
    ticket = h.store.ticket(2)
    assert (ticket.status, ticket.previous_number, ticket.subject) == (
        Status.NEW,
        1,
        "The replacement is the wrong colour",
    )
    greeting = one(to_customers(out))
    assert greeting.audience.ticket_number == 2
    assert "welcome back" in greeting.text and "#2" in greeting.text and "(#1)" in greeting.text
    card = one(to_staff(out, StaffKind.CARD))
    assert "Follows up closed ticket #1." in card.text
    assert one(h.store.events_for(2, "created")).detail == {"kind": "external", "follows": "1"}
    assert [e.body for e in h.store.entries_for(1) if e.kind is EntryKind.CUSTOMER] == [
        "My order A-1234 never arrived"
    ]


# --- courtesy after resolution -----------------------------------------------------------------


@pytest.mark.parametrize("text", ["thanks!", "Thank you so much!!", "  OK,   thanks.  ", "🙏"])
async def test_thanks_right_after_resolution_get_one_answer_and_reopen_nothing(h: Harness, text: str):
    await resolved(h)
    h.clock.advance(timedelta(hours=2))

    out = await h.write(DANA, text)

    told = one(out)
    assert isinstance(told, CustomerMessage)
    assert told.audience == ToCustomer(DANA.person, 1, dm(DANA))
    assert told.text.startswith("You're welcome, Dana!")
    assert list(h.store.tickets) == [1]
    assert h.store.ticket(1).status is Status.RESOLVED
    said = [e.body for e in h.store.entries_for(1) if e.kind is EntryKind.CUSTOMER]
    assert said[-1] == text, "the thanks is kept on the record"
    assert await h.write(DANA, text) == [], "thanks are answered once per resolution"


@pytest.mark.parametrize("text", ["ok", "👍", "Hi", "bye!"])
async def test_acknowledgements_after_resolution_are_recorded_silently(h: Harness, text: str):
    await resolved(h)
    h.clock.advance(timedelta(hours=2))
    assert await h.write(DANA, text) == []
    assert list(h.store.tickets) == [1]
    assert h.store.ticket(1).status is Status.RESOLVED
    said = [e.body for e in h.store.entries_for(1) if e.kind is EntryKind.CUSTOMER]
    assert said[-1] == text


async def test_courtesy_at_the_end_of_the_window_still_counts(h: Harness):
    await resolved(h)
    h.clock.advance(h.policy.intake.courtesy_window)
    await h.write(DANA, "thanks")
    assert h.store.ticket(1).status is Status.RESOLVED


async def test_courtesy_after_the_window_reopens_the_ticket(h: Harness):
    await resolved(h)
    h.clock.advance(h.policy.intake.courtesy_window + timedelta(seconds=1))

    out = await h.write(DANA, "thanks")

    assert h.store.ticket(1).status is Status.OPEN
    relay = one(out)
    assert isinstance(relay, StaffMessage) and relay.kind is StaffKind.RELAY
    assert "back to open; was resolved" in relay.text


async def test_courtesy_after_closing_opens_a_new_ticket(h: Harness):
    await resolved(h)
    h.clock.advance(timedelta(days=8))
    await h.desk.run_due_work()

    out = await h.write(DANA, "thanks")

    assert sorted(h.store.tickets) == [1, 2]
    assert h.store.ticket(2).previous_number == 1
    assert "welcome back" in one(to_customers(out)).text


async def test_courtesy_on_an_open_ticket_is_an_ordinary_message(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket claim #1")
    out = await h.write(DANA, "thanks")
    assert to_customers(out) == []
    assert one(out).text == "#1 · Dana Scully: thanks"


async def test_a_real_question_right_after_resolution_reopens(h: Harness):
    await resolved(h)
    await h.write(DANA, "thanks, but it still doesn't work")
    assert h.store.ticket(1).status is Status.OPEN
    assert list(h.store.tickets) == [1]


# --- transfer -----------------------------------------------------------------------------------


async def test_transfer_to_an_agent_hands_over_the_whole_story(h: Harness):
    await h.desk.register_agents([BEN.person])
    await h.write(DANA, "My order A-1234 never arrived")
    await h.run(ANA, "/ticket claim #1")
    await h.run(ANA, "/ticket note #1 warehouse says the parcel was lost")
    await h.write(DANA, "The tracking page shows an error")

    out = await h.run(ANA, "/ticket transfer #1 @ben knows the courier")

    summary = one(to_agent(out, BEN))
    assert summary.kind is StaffKind.INFO
    text = summary.text
    assert text.startswith("Ana Lima handed #1 over to you. Reason: knows the courier\n")
    assert "#1 · My order A-1234 never arrived" in text
    assert "with Ben" in text
    said = text.split("In their words:")[1]
    assert "] My order A-1234 never arrived" in said
    assert "] The tracking page shows an error" in said
    assert "Ana Lima (note): warehouse says the parcel was lost" in text
    assert InternalText("warehouse says the parcel was lost") in summary.parts

    told = one(to_customers(out))
    assert told.text == (
        "Hi Dana, Ben is now looking after your request #1. They have the full conversation, "
        "so you won't need to repeat anything."
    )
    assert "courier" not in told.text, "the reason is for agents"
    assert one(to_channel(out)).text == "#1 transferred to Ben by Ana Lima: knows the courier"
    assert to_agent(out, ANA) == []

    assert h.store.ticket(1).assignee_id == h.store.agent("Ben").id
    moved = one(h.store.events_for(1, "transferred"))
    assert moved.actor_name == "Ana Lima"
    assert moved.detail == {"from_agent": "Ana Lima", "to_agent": "Ben", "reason": "knows the courier"}


@pytest.mark.parametrize("mention", ["@ben", "@BEN", "<@Uben>", "<@Uben|ben>", "@Uben"])
async def test_transfer_finds_the_agent_by_id_or_name(h: Harness, mention: str):
    await h.desk.register_agents([BEN.person])
    await opened(h)
    out = await h.run(ANA, f"/ticket transfer #1 {mention}")
    assert one(to_agent(out, BEN))
    assert h.store.ticket(1).assignee_id == h.store.agent("Ben").id


async def test_transfer_of_an_unclaimed_ticket_has_no_previous_agent(h: Harness):
    await h.desk.register_agents([BEN.person])
    await opened(h)
    await h.run(ANA, "/ticket transfer #1 @ben")
    assert one(h.store.events_for(1, "transferred")).detail == {
        "from_agent": None,
        "to_agent": "Ben",
        "reason": "",
    }


async def test_transfer_to_a_queue_uses_its_label_with_the_customer(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket claim #1")
    await h.run(ANA, "/ticket note #1 customer is upset")

    out = await h.run(ANA, "/ticket transfer #1 complaints wants a manager")

    told = one(to_customers(out))
    assert "our customer care team" in told.text
    assert "complaints" not in told.text
    assert "manager" not in told.text
    assert "won't need to repeat anything" in told.text
    summary = one(to_channel(out))
    assert summary.audience == ToAgents(1, "slack")
    assert summary.text.startswith("#1 moved to complaints by Ana Lima, unclaimed. Reason: wants a manager\n")
    assert "Ana Lima (note): customer is upset" in summary.text
    ticket = h.store.ticket(1)
    assert (ticket.queue, ticket.assignee_id, ticket.status) == ("complaints", None, Status.OPEN)
    assert one(h.store.events_for(1, "transferred")).detail == {
        "from_agent": "Ana Lima",
        "from_queue": "general",
        "to_queue": "complaints",
        "reason": "wants a manager",
    }
    listing = private_answer(await h.run(BEN, "/ticket queue complaints"), BEN)
    assert "#1" in listing


async def test_transfer_of_a_claimed_ticket_to_its_own_queue_unclaims_it(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket claim #1")
    await h.run(ANA, "/ticket transfer #1 general")
    assert h.store.ticket(1).assignee_id is None


# --- refusals change nothing ---------------------------------------------------------------------

AGENTS_ONLY = "I didn't catch that. Just write what you need here"
REFUSALS = [
    pytest.param(
        ANA, "/ticket transfer #1 @nobody", "I couldn't find an agent called @nobody", id="unknown-agent"
    ),
    pytest.param(ANA, "/ticket transfer #1 nowhere", "There's no queue called 'nowhere'", id="unknown-queue"),
    pytest.param(ANA, "/ticket transfer #1 <@Uana>", "#1 is already with Ana Lima", id="transfer-to-holder"),
    pytest.param(BEN, "/ticket transfer #2 general", "#2 is already waiting in general", id="same-queue"),
    pytest.param(BEN, "/ticket claim #99", "I can't find ticket #99", id="unknown-ticket"),
    pytest.param(BEN, "/ticket reply #99 hello", "I can't find ticket #99", id="unknown-ticket-reply"),
    pytest.param(BEN, "/ticket claim", "Which ticket? Add its number", id="missing-id"),
    pytest.param(BEN, "/ticket priority high", "/ticket priority #12", id="missing-id-priority"),
    pytest.param(BEN, "/ticket queue nowhere", "There's no queue called 'nowhere'", id="unknown-queue-list"),
    pytest.param(ANA, "/ticket priority #1 normal", "#1 is already normal priority", id="same-priority"),
    pytest.param(BEN, "/ticket clam #1", "Did you mean 'claim'?", id="typo"),
    pytest.param(DANA, "/ticket claim #1", AGENTS_ONLY, id="customer-claim"),
    pytest.param(DANA, "/ticket reply #1 hi", AGENTS_ONLY, id="customer-reply"),
    pytest.param(DANA, "/ticket note #1 hi", AGENTS_ONLY, id="customer-note"),
    pytest.param(DANA, "/ticket resolve #1", AGENTS_ONLY, id="customer-resolve"),
    pytest.param(DANA, "/ticket show #2", AGENTS_ONLY, id="customer-show"),
    pytest.param(DANA, "/ticket queue", AGENTS_ONLY, id="customer-queue"),
    pytest.param(DANA, "/ticket mine", AGENTS_ONLY, id="customer-mine"),
    pytest.param(DANA, "/ticket frobnicate", AGENTS_ONLY, id="customer-bad-verb"),
    pytest.param(DANA, "/ticket", AGENTS_ONLY, id="customer-no-verb"),
    pytest.param(CARL, "/ticket claim #2", AGENTS_ONLY, id="colleague-claim"),
    pytest.param(CARL, "/ticket transfer #1 @ben", "Sorry Carl,", id="colleague-transfer"),
]


@pytest.mark.parametrize(("actor", "text", "answer"), REFUSALS)
async def test_refused_commands_answer_politely_and_change_nothing(
    h: Harness, actor: Actor, text: str, answer: str
):
    await h.write(DANA, "My order never arrived")
    await h.write(EVE, "I was charged twice")
    await h.run(ANA, "/ticket claim #1")
    before = h.store.snapshot()

    out = await h.run(actor, text)

    assert answer in private_answer(out, actor)
    assert h.store.snapshot() == before


async def test_a_refused_first_command_leaves_no_agent_record(h: Harness):
    """The agent record is made inside the unit of work, so a refusal rolls it back too."""
    await opened(h)
    await h.run(ANA, "/ticket claim #1")
    await h.run(BEN, "/ticket claim #1")
    assert [a.display_name for a in h.store.agents.values()] == ["Ana Lima"]


async def test_the_ticket_id_can_be_left_out_inside_the_tickets_thread(h: Harness):
    thread = Conversation("slack", "C-help", "T1")
    await h.write(DANA, "My order never arrived", thread)
    await h.write(EVE, "Charged twice", Conversation("slack", "C-help", "T2"))

    out = await h.run(ANA, "/ticket claim", thread)

    assert one(to_customers(out)).audience.ticket_number == 1
    assert h.store.ticket(1).assignee_id is not None
    assert h.store.ticket(2).assignee_id is None


async def test_a_thread_without_a_ticket_still_needs_an_id(h: Harness):
    await opened(h)
    out = await h.run(ANA, "/ticket claim", Conversation("slack", "C-help", "T-none"))
    assert "Which ticket?" in private_answer(out, ANA)


# --- internal requests ---------------------------------------------------------------------------


async def test_request_opens_an_internal_ticket_in_the_internal_queue(h: Harness):
    out = await h.run(CARL, "/request A new laptop for the new hire")

    ticket = h.store.ticket(1)
    assert (ticket.kind, ticket.queue, ticket.priority) == (TicketKind.INTERNAL, "internal", Priority.NORMAL)
    assert ticket.subject == "A new laptop for the new hire"
    greeting = one(to_customers(out))
    assert greeting.audience == ToCustomer(CARL.person, 1, Conversation("slack", "@Ucarl"))
    assert greeting.text.startswith("Hi Carl, thanks for getting in touch. I've opened ticket #1")
    assert "internal help desk" in greeting.text
    card = one(to_staff(out, StaffKind.CARD))
    assert card.text.startswith("New internal request #1")
    assert card.card is not None and card.card.queue == "internal"


async def test_request_is_answered_in_the_conversation_it_was_raised_in(h: Harness):
    where = Conversation("slack", "C-it")
    await h.run(CARL, "/request VPN is down", where)
    assert (h.store.ticket(1).channel_id, h.store.ticket(1).thread_id) == ("C-it", None)


async def test_each_request_opens_a_new_ticket(h: Harness):
    await h.run(CARL, "/request VPN is down")
    await h.run(CARL, "/request And the printer")
    assert sorted(h.store.tickets) == [1, 2]
    assert h.store.ticket(2).previous_number is None


async def test_execute_takes_a_parsed_request(h: Harness):
    out = await h.desk.execute(CARL, Request("Badge does not open the door"))
    assert one(to_customers(out)).audience.ticket_number == 1
    assert h.store.ticket(1).kind is TicketKind.INTERNAL


async def test_a_colleague_writing_plainly_opens_an_internal_ticket(h: Harness):
    out = await h.write(CARL, "Can someone reset my password?")
    ticket = h.store.ticket(1)
    assert (ticket.kind, ticket.queue) == (TicketKind.INTERNAL, "internal")
    assert "internal help desk" in one(to_customers(out)).text
    await h.write(CARL, "It's for the CRM")
    assert list(h.store.tickets) == [1]


# --- priority and listings -----------------------------------------------------------------------


async def test_priority_change_is_recorded_and_told_to_agents_only(h: Harness):
    await opened(h)
    h.clock.advance(timedelta(minutes=3))
    out = await h.run(ANA, "/ticket priority 1 urgent")

    assert to_customers(out) == []
    assert one(to_channel(out)).text == "#1 is now urgent priority (Ana Lima)."
    ticket = h.store.ticket(1)
    assert ticket.priority is Priority.URGENT
    assert ticket.updated_at == START + timedelta(minutes=3)
    change = one(h.store.events_for(1, "priority"))
    assert (change.actor_name, change.detail) == ("Ana Lima", {"old": "normal", "new": "urgent"})


async def test_queue_lists_unclaimed_workable_tickets_urgent_first(h: Harness):
    names = ["Ann", "Bob", "Cat", "Dan", "Eli", "Fay"]
    for name in names:
        await h.write(customer(name), f"Problem from {name}")
    await h.run(ANA, "/ticket priority #2 low")
    await h.run(ANA, "/ticket priority #3 urgent")
    await h.run(ANA, "/ticket priority #5 high")
    await h.run(ANA, "/ticket claim #4")
    await h.run(BEN, "/ticket resolve #6")
    h.clock.advance(timedelta(hours=3))

    text = private_answer(await h.run(ANA, "/ticket queue"), ANA)

    lines = text.splitlines()
    assert lines[0] == "Unclaimed tickets (4):"
    assert [re.match(r"  (#\d+) ", line).group(1) for line in lines[1:]] == ["#3", "#5", "#1", "#2"]
    assert lines[1] == "  #3 · urgent · new · general · Cat: Problem from Cat · 3h old"


async def test_queue_can_be_filtered_by_name(h: Harness):
    await h.write(DANA, "Refund please")
    await h.write(EVE, "App crashes")
    await h.run(ANA, "/ticket transfer #1 billing")

    billing = private_answer(await h.run(ANA, "/ticket queue billing"), ANA)
    assert "#1" in billing and "#2" not in billing
    assert billing.startswith("Unclaimed tickets in billing (1):")
    empty = private_answer(await h.run(ANA, "/ticket queue complaints"), ANA)
    assert empty == "No unclaimed tickets in complaints. Nice work."


async def test_mine_lists_my_workable_tickets(h: Harness):
    for who in (DANA, EVE, customer("Fay")):
        await h.write(who, "help")
    await h.run(ANA, "/ticket claim #1")
    await h.run(ANA, "/ticket claim #2")
    await h.run(ANA, "/ticket priority #2 high")
    await h.run(BEN, "/ticket claim #3")

    text = private_answer(await h.run(ANA, "/ticket mine"), ANA)
    assert text.splitlines()[0] == "Your tickets (2):"
    assert [line.split(" · ")[0].strip() for line in text.splitlines()[1:]] == ["#2", "#1"]

    await h.run(ANA, "/ticket resolve #1")
    await h.run(ANA, "/ticket resolve #2")
    assert private_answer(await h.run(ANA, "/ticket mine"), ANA) == "You have no tickets in progress."


async def test_show_gives_the_agent_the_summary_privately(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket note #1 check the depot")
    out = await h.run(BEN, "/ticket show #1")
    summary = one(to_agent(out, BEN))
    assert "Ana Lima (note): check the depot" in summary.text
    assert "unclaimed" in summary.text


# --- help ---------------------------------------------------------------------------------------


async def test_agents_get_the_command_help(h: Harness):
    assert private_answer(await h.run(ANA, "/ticket help"), ANA) == help_text()
    assert private_answer(await h.run(ANA, "/ticket help claim"), ANA) == help_text("claim")


@pytest.mark.parametrize("actor", [DANA, CARL], ids=["customer", "colleague"])
async def test_customers_and_colleagues_get_the_customer_help(h: Harness, actor: Actor):
    answer = private_answer(await h.run(actor, "/ticket help"), actor)
    assert answer == customer_help()
    assert "/ticket claim" not in answer


# --- due work -----------------------------------------------------------------------------------


async def test_run_due_work_closes_resolved_tickets_after_the_policy_delay(h: Harness):
    await resolved(h)
    await opened(h, EVE)
    after = h.policy.lifecycle.close_resolved_after

    def about_the_first(out: Sequence[Outgoing]) -> list[CustomerMessage]:
        return [m for m in to_customers(out) if m.audience.ticket_number == 1]

    h.clock.advance(after - timedelta(seconds=1))
    assert about_the_first(await h.desk.run_due_work()) == []
    assert h.store.ticket(1).status is Status.RESOLVED

    h.clock.advance(timedelta(seconds=1))
    assert about_the_first(await h.desk.run_due_work()) == [], "closing a quiet ticket is silent"
    ticket = h.store.ticket(1)
    assert ticket.status is Status.CLOSED
    assert ticket.closed_at == START + after
    closed = h.store.events_for(1, "status")[-1]
    assert (closed.actor_name, closed.detail) == ("Relaydesk", {"old": "resolved", "new": "closed"})
    assert h.store.ticket(2).status is Status.NEW


async def test_run_due_work_follows_the_policy(h: Harness):
    policy = h.policy.model_copy(update={"lifecycle": Lifecycle(close_resolved_after=timedelta(hours=1))})
    h = build_desk(policy=policy)
    await resolved(h)
    h.clock.advance(timedelta(hours=1))
    await h.desk.run_due_work()
    assert h.store.ticket(1).status is Status.CLOSED


async def test_run_due_work_with_nothing_due_changes_nothing(h: Harness):
    await opened(h)
    await h.desk.run_due_work()  # today's digest, planned and sent
    before = h.store.snapshot()
    h.clock.advance(timedelta(minutes=1))
    assert await h.desk.run_due_work() == []
    assert h.store.snapshot() == before


# --- the timeline -------------------------------------------------------------------------------


async def test_every_change_is_on_the_timeline(h: Harness):
    await h.desk.register_agents([BEN.person])
    steps: list[tuple[Actor, str]] = [
        (ANA, "/ticket claim #1"),
        (ANA, "/ticket pending #1"),
        (DANA, "Here is the photo"),
        (ANA, "/ticket priority #1 high"),
        (ANA, "/ticket transfer #1 @ben courier expert"),
        (BEN, "/ticket release #1"),
        (ANA, "/ticket transfer #1 billing refund"),
        (BEN, "/ticket hold #1 bank"),
        (BEN, "/ticket resolve #1 refunded"),
        (ANA, "/ticket reopen #1"),
        (ANA, "/ticket resolve #1"),
    ]
    await opened(h)
    for minute, (actor, text) in enumerate(steps, start=1):
        h.clock.set(START + timedelta(minutes=minute))
        if actor.is_agent:
            await h.run(actor, text)
        else:
            await h.write(actor, text)
    h.clock.advance(timedelta(days=7))
    await h.desk.run_due_work()

    events = h.store.events_for(1)
    assert [(e.action, e.actor_name) for e in events] == [
        ("created", "Dana Scully"),
        ("claimed", "Ana Lima"),
        ("status", "Ana Lima"),
        ("status", "Ana Lima"),
        ("status", "Dana Scully"),
        ("priority", "Ana Lima"),
        ("transferred", "Ana Lima"),
        ("claimed", "Ben"),
        ("released", "Ben"),
        ("transferred", "Ana Lima"),
        ("status", "Ben"),
        ("status", "Ben"),
        ("status", "Ana Lima"),
        ("status", "Ana Lima"),
        ("status", "Relaydesk"),
    ]
    minutes = [0, 1, 1, 2, 3, 4, 5, 5, *range(6, 12)]
    assert [e.at for e in events[:-1]] == [START + timedelta(minutes=m) for m in minutes]
    statuses = [(e.detail["old"], e.detail["new"]) for e in events if e.action == "status"]
    assert statuses == [
        ("new", "open"),
        ("open", "waiting_on_customer"),
        ("waiting_on_customer", "open"),
        ("open", "on_hold"),
        ("on_hold", "resolved"),
        ("resolved", "open"),
        ("open", "resolved"),
        ("resolved", "closed"),
    ]


@pytest.mark.parametrize("command", ["/ticket claim #1", "/ticket reply #1 hi", "/ticket transfer #1 @ben"])
async def test_opening_a_new_ticket_is_on_the_timeline(h: Harness, command: str):
    await h.desk.register_agents([BEN.person])
    await opened(h)
    await h.run(ANA, command)
    assert h.store.ticket(1).status is Status.OPEN
    assert [(e.detail["old"], e.detail["new"]) for e in h.store.events_for(1, "status")] == [("new", "open")]


# --- agents -------------------------------------------------------------------------------------


async def test_register_agents_makes_them_known_and_follows_renames(h: Harness):
    await h.desk.register_agents([BEN.person, person("Zoe Park")])
    assert sorted(a.display_name for a in h.store.agents.values()) == ["Ben", "Zoe Park"]
    await h.desk.register_agents([person("Benjamin", user_id="Uben")])
    assert sorted(a.display_name for a in h.store.agents.values()) == ["Benjamin", "Zoe Park"]
    assert len(h.store.agents) == 2


async def test_an_agent_acting_under_a_new_name_is_renamed(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket claim #1")
    await h.run(agent("Ana Lima-Reyes", user_id="Uana"), "/ticket note #1 hi")
    assert [a.display_name for a in h.store.agents.values()] == ["Ana Lima-Reyes"]


# --- mass mentions ------------------------------------------------------------------------------

MASS_MENTIONS = [
    "@everyone",
    "@here",
    "@channel",
    "<!channel>",
    "<!here>",
    "<!everyone|everyone>",
    "<!subteam^S1|@devs>",
    "<@&123>",
]
_RAW_MENTION = re.compile(
    r"@(everyone|here|channel)\b|<!(channel|here|everyone)(\|[^>]*)?>|<!subteam\^[^>]*>|<@&\d+>",
    re.IGNORECASE,
)
"""A mass mention a platform would act on. A fragment cut short by an ellipsis (`<!everyone|ever…`) is
inert: without its closing `>` nothing in the same message can complete it."""


@pytest.mark.parametrize("mention", MASS_MENTIONS)
async def test_mass_mentions_from_customers_are_defused_everywhere(h: Harness, mention: str):
    shouty = customer(f"{mention} Troll", user_id="Utroll")
    await h.desk.register_agents([BEN.person])
    out: list[Outgoing] = []
    out += await h.write(shouty, f"{mention} my order never arrived {mention}")
    out += await h.write(shouty, f"hello? {mention}")
    out += await h.run(ANA, "/ticket claim #1")
    out += await h.run(ANA, f"/ticket reply #1 Please don't use {mention}")
    out += await h.run(ANA, f"/ticket note #1 they wrote {mention}")
    out += await h.run(ANA, "/ticket show #1")
    out += await h.run(ANA, f"/ticket transfer #1 @ben because {mention}")
    out += await h.run(BEN, f"/ticket transfer #1 complaints {mention}")
    out += await h.run(BEN, f"/ticket hold #1 {mention}")
    out += await h.run(BEN, f"/ticket resolve #1 {mention}")
    out += await h.run(BEN, "/ticket reopen #1")
    out += await h.run(BEN, "/ticket queue")
    out += await h.run(shouty, f"/request {mention} need access")

    assert len(out) > 15
    for message in out:
        assert not _RAW_MENTION.search(message.text), message
    assert "Troll" in " ".join(m.text for m in out)


async def test_ticket_card_fields_are_defused(h: Harness):
    out = await h.write(customer("<!channel>", user_id="Ux"), "@everyone <!here> my order")
    card = one(to_staff(out, StaffKind.CARD)).card
    assert card is not None
    assert not _RAW_MENTION.search(card.subject)
    assert not _RAW_MENTION.search(card.customer_name)


# --- odd behaviours -----------------------------------------------------------------------------


async def test_a_request_raised_in_a_ticket_thread_does_not_capture_the_thread(h: Harness):
    thread = Conversation("slack", "C-help", "T1")
    await h.write(DANA, "My order never arrived", thread)
    await h.run(CARL, "/request need a courier contact", thread)

    out = await h.write(DANA, "Any news?", thread)

    assert one(out).audience == ToAgents(1, "slack")
    assert [e.body for e in h.store.entries_for(1) if e.kind is EntryKind.CUSTOMER][-1] == "Any news?"


async def test_execute_runs_a_parsed_command(h: Harness):
    await opened(h)
    out = await h.desk.execute(ANA, Claim(1))
    assert one(to_customers(out)).text.startswith("Hi Dana, Ana Lima is now looking after")


@pytest.mark.parametrize("text", ["ticket", "//ticket"])
async def test_a_customer_gets_the_agents_only_answer_however_ticket_is_typed(h: Harness, text: str):
    answer = private_answer(await h.run(DANA, text), DANA)
    assert "/ticket claim" not in answer
    assert AGENTS_ONLY in answer
