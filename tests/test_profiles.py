"""Customer profiles across platforms (issue #5): fields, notes, incentives, linking and forgetting.

Everything goes through the public services: `Desk.command`/`receive` over the in-memory fakes, and
for linking and forgetting also over SQLite and PostgreSQL (`uow_factory`), with `data_rights.export`
and `data_rights.forget`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from fakes import START, Delivering, Harness, agent, build_desk, customer
from sqlalchemy import MetaData, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import data_rights
from bot.clock import FakeClock
from bot.commands import Actor, IncomingMessage
from bot.desk import Desk
from bot.domain import Customer, Role, Status, TicketKind
from bot.messages import (
    Conversation,
    CustomerMessage,
    InternalText,
    Outgoing,
    Person,
    StaffKind,
    StaffMessage,
    ToAgent,
    ToAgents,
    ToCustomer,
)
from bot.policy import load_policy
from storage.uow import SqlUnitOfWork

UowFactory = Callable[[], SqlUnitOfWork]

DANA = customer("Dana Scully")
DANA_DISCORD = customer("dana", "discord", "4711")
EVE = customer("Eve Moss")
ANA = agent("Ana Lima")
BEN = agent("Ben Okafor")

SLACK_NOTE = "Prefers written updates; hard of hearing"
DISCORD_NOTE = "Collects vintage kettles, very knowledgeable"
SLACK_INCENTIVE = "Free express shipping on the replacement"
DISCORD_INCENTIVE = "15 EUR goodwill credit"


@pytest.fixture
def h() -> Harness:
    return build_desk()


# --- helpers --------------------------------------------------------------------------------------


def said_to(out: Sequence[Outgoing], actor: Actor) -> str:
    """The one thing the desk said, privately to the actor who typed the command."""
    assert len(out) == 1, out
    [message] = out
    if actor.is_agent:
        assert isinstance(message, StaffMessage) and message.audience == ToAgent(actor.person)
    else:
        assert isinstance(message, CustomerMessage) and message.audience == ToCustomer(actor.person)
    return message.text


def customer_texts(out: Sequence[Outgoing]) -> list[str]:
    return [m.text for m in out if isinstance(m, CustomerMessage)]


def staff_text(out: Sequence[Outgoing], audience: ToAgent | ToAgents) -> str:
    found = [m.text for m in out if isinstance(m, StaffMessage) and m.audience == audience]
    assert len(found) == 1, out
    return found[0]


async def answer(h: Harness, actor: Actor, command: str) -> str:
    return said_to(await h.run(actor, command), actor)


async def refused(h: Harness, actor: Actor, command: str) -> str:
    """A refusal: a private answer, and nothing stored changes."""
    before = h.store.snapshot()
    text = await answer(h, actor, command)
    assert h.store.snapshot() == before
    return text


async def opened(h: Harness, who: Actor = DANA, text: str = "My order A-1234 never arrived") -> int:
    out = await h.write(who, text)
    number = next(m.audience.ticket_number for m in out if isinstance(m, CustomerMessage))
    assert isinstance(number, int)
    return number


def dana_profile(h: Harness) -> Customer:
    return h.store.customers[h.store.ticket(1).customer_id]


# --- profile fields -------------------------------------------------------------------------------


async def test_a_timezone_typed_in_any_case_is_stored_under_its_iana_name(h: Harness):
    await opened(h)

    text = await answer(h, ANA, "/ticket profile #1 timezone europe/berlin")

    assert text == "Dana Scully's timezone: Europe/Berlin."
    assert dana_profile(h).timezone == "Europe/Berlin"
    [event] = h.store.events_for(1, "profile")
    assert (event.actor_name, event.detail) == ("Ana Lima", {"field": "timezone", "value": "Europe/Berlin"})
    assert "Europe/Berlin" in await answer(h, ANA, "/ticket profile #1")


@pytest.mark.parametrize("zone", ["Mars/Base", "Europe/Berlinn", "GMT+25"])
async def test_an_unknown_timezone_is_refused_politely(h: Harness, zone: str):
    await opened(h)

    text = await refused(h, ANA, f"/ticket profile #1 timezone {zone}")

    assert text == (
        f"I can't set timezone: '{zone}' is not a timezone I know; use an IANA name such as "
        "Europe/Berlin or America/New_York."
    )


async def test_an_email_is_stored_in_lower_case_and_unverified(h: Harness):
    await opened(h)

    text = await answer(h, ANA, "/ticket profile #1 email Dana.Scully@Example.COM")

    assert text == "Dana Scully's email: dana.scully@example.com."
    profile = dana_profile(h)
    assert (profile.email, profile.email_verified) == ("dana.scully@example.com", False)
    assert "dana.scully@example.com (unverified)" in await answer(h, ANA, "/ticket profile #1")


@pytest.mark.parametrize("email", ["not-an-email", "dana@", "dana@example", "dana scully@example.com"])
async def test_something_that_is_not_an_email_is_refused(h: Harness, email: str):
    await opened(h)

    text = await refused(h, ANA, f"/ticket profile #1 email {email}")

    assert text.startswith("I can't set email: '")
    assert "is not an email address, e.g. dana@example.com" in text


async def test_an_email_another_customer_has_suggests_a_link_but_links_nothing(h: Harness):
    """An email an agent typed is not proof of identity: it is pointed out, never linked by itself."""
    await opened(h)
    await opened(h, EVE, "I was charged twice")
    await h.run(ANA, "/ticket profile #2 email shared@example.com")

    text = await answer(h, ANA, "/ticket profile #1 email shared@example.com")

    assert text == (
        "Dana Scully's email: shared@example.com. Eve Moss (customer 2) has this email too; if they are "
        "the same person, link them with /ticket link <one> <other>."
    )
    assert [c.merged_into for c in h.store.customers.values()] == [None, None]
    assert h.store.ticket(2).customer_id == 2


async def test_tags_are_lower_case_each_once_in_the_order_given(h: Harness):
    await opened(h)

    text = await answer(h, ANA, "/ticket profile #1 tags VIP, Beta-Tester vip  refund_risk")

    assert text == "Dana Scully's tags: vip, beta-tester, refund_risk."
    assert dana_profile(h).tags == ("vip", "beta-tester", "refund_risk")
    assert "tags: vip, beta-tester, refund_risk" in await answer(h, ANA, "/ticket profile #1")


async def test_more_than_twenty_tags_are_refused(h: Harness):
    await opened(h)
    many = " ".join(f"tag{n}" for n in range(21))

    text = await refused(h, ANA, f"/ticket profile #1 tags {many}")

    assert text == "I can't set tags: a customer takes at most 20 tags."


@pytest.mark.parametrize(
    ("value", "kind", "who"),
    [
        ("colleague", TicketKind.INTERNAL, "new colleague"),
        ("Internal", TicketKind.INTERNAL, "new colleague"),
        ("customer", TicketKind.EXTERNAL, "new customer"),
        ("external", TicketKind.EXTERNAL, "new customer"),
    ],
)
async def test_kind_makes_a_customer_a_colleague_or_a_customer(h: Harness, value: str, kind: str, who: str):
    await opened(h)
    await h.run(ANA, "/ticket profile #1 kind " + ("external" if kind == "internal" else "internal"))

    text = await answer(h, ANA, f"/ticket profile #1 kind {value}")

    assert text == f"Dana Scully's kind: {kind}."
    assert dana_profile(h).kind == kind
    assert f"Who: Dana Scully · {who}" in await answer(h, ANA, "/ticket show #1")


async def test_an_unknown_kind_is_refused(h: Harness):
    await opened(h)

    text = await refused(h, ANA, "/ticket profile #1 kind alien")

    assert text == "I can't set kind: a customer's kind is external (a customer) or internal (a colleague)."


async def test_an_empty_value_clears_a_field(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket profile #1 org Kettle Collectors Ltd")
    assert dana_profile(h).organisation == "Kettle Collectors Ltd"

    text = await answer(h, ANA, "/ticket profile #1 org")

    assert text == "Dana Scully's org: cleared."
    assert dana_profile(h).organisation is None


async def test_an_unknown_field_is_refused_with_a_suggestion(h: Harness):
    await opened(h)

    text = await refused(h, ANA, "/ticket profile #1 timezon Europe/Berlin")

    assert text.startswith("A profile has no 'timezon'. Did you mean 'timezone'?")


async def test_the_form_of_address_is_how_customer_facing_messages_greet_them(h: Harness):
    """After `address Dr. Scully`, the claim, snippets, the resolution and the next greeting all say
    "Dr. Scully", never her platform first name."""
    await opened(h)
    assert (
        await answer(h, ANA, "/ticket profile #1 address Dr. Scully") == "Dana Scully's address: Dr. Scully."
    )

    out = await h.run(ANA, "/ticket claim #1")
    out += await h.run(ANA, "/ticket snippet #1 looking-into-it")
    out += await h.run(ANA, "/ticket resolve #1")
    h.clock.advance(timedelta(days=8))
    await h.desk.run_due_work()
    out += await h.write(DANA, "The replacement is broken too")

    texts = customer_texts(out)
    assert (
        texts[0] == "Hi Dr. Scully, Ana Lima is now looking after your request #1 and will be in touch here."
    )
    assert texts[1].startswith("Ana Lima: Thanks for bearing with me, Dr. Scully.")
    assert texts[2].startswith("Thanks for your patience, Dr. Scully.")
    assert texts[3].startswith("One quick question, Dr. Scully: how did we do with #1?")
    assert texts[4].startswith("Hi Dr. Scully, welcome back.")
    assert not any("Dana" in t for t in texts)
    assert 'Who: Dana Scully (address as "Dr. Scully")' in staff_text(
        await h.run(ANA, "/ticket show #2"), ToAgent(ANA.person)
    )


async def test_clearing_the_form_of_address_goes_back_to_the_first_name(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket profile #1 address Dr. Scully")
    await h.run(ANA, "/ticket profile #1 address")

    out = await h.run(ANA, "/ticket claim #1")

    assert customer_texts(out)[0].startswith("Hi Dana, Ana Lima is now looking after")


# --- profile notes and incentives -----------------------------------------------------------------


async def test_a_profile_note_is_internal_and_shown_on_every_future_ticket(h: Harness):
    await opened(h)

    out = await h.run(ANA, f"/ticket profile #1 note {SLACK_NOTE}")

    [message] = out
    assert isinstance(message, StaffMessage) and message.audience == ToAgents(1, "slack")
    assert message.kind is StaffKind.NOTE
    assert InternalText(SLACK_NOTE) in message.parts
    assert message.text == (
        f"#1 · profile note on Dana Scully from Ana Lima (shown on their future tickets): {SLACK_NOTE}"
    )
    [note] = h.store.profile_notes.values()
    assert (note.customer_id, note.text, note.author_name, note.ticket_number) == (
        dana_profile(h).id,
        InternalText(SLACK_NOTE),
        "Ana Lima",
        1,
    )

    await h.run(ANA, "/ticket resolve #1")
    h.clock.advance(timedelta(days=8))
    await h.desk.run_due_work()
    everything = await h.write(DANA, "Hello again, now the lid is loose")
    claim = await h.run(BEN, "/ticket claim #2")
    everything += claim

    packet = staff_text(claim, ToAgent(BEN.person))
    assert "returning: 1 earlier ticket, last #1 closed" in packet
    assert f"Profile notes:\n• (Ana Lima) {SLACK_NOTE}" in packet
    assert not any(SLACK_NOTE in t for t in customer_texts(everything))


async def test_profile_notes_and_incentives_have_limits(h: Harness):
    await opened(h)

    note = await refused(h, ANA, "/ticket profile #1 note " + "x" * 1001)
    incentive = await refused(h, ANA, "/ticket incentive #1 " + "y" * 401)
    empty = await refused(h, ANA, "/ticket incentive #1    ")

    assert note == "A profile note can be at most 1,000 characters; please shorten it."
    assert incentive == "An incentive can be at most 400 characters; please shorten it."
    assert empty.startswith("What did you give the customer?")


async def test_an_incentive_records_what_when_by_whom_and_on_which_ticket(h: Harness):
    await opened(h)
    h.clock.advance(timedelta(hours=2))

    out = await h.run(BEN, f"/ticket incentive #1 {SLACK_INCENTIVE}")

    assert staff_text(out, ToAgents(1, "slack")) == (
        f"#1 · Ben Okafor gave Dana Scully: {SLACK_INCENTIVE} (on their profile now)."
    )
    assert not customer_texts(out)
    [incentive] = h.store.incentives.values()
    assert (incentive.customer_id, incentive.ticket_number, incentive.what) == (1, 1, SLACK_INCENTIVE)
    assert (incentive.given_by, incentive.given_at) == ("Ben Okafor", START + timedelta(hours=2))
    [event] = h.store.events_for(1, "incentive")
    assert event.detail == {"what": SLACK_INCENTIVE}
    profile = await answer(h, ANA, "/ticket customer #1")
    assert f"Incentives given:\n• {SLACK_INCENTIVE} on #1 (Ben Okafor, 02 Mar 2026)" in profile


@pytest.mark.parametrize(
    "command",
    [
        "/ticket profile #1",
        f"/ticket profile #1 note {SLACK_NOTE}",
        "/ticket profile #1 address Dr. Scully",
        f"/ticket incentive #1 {SLACK_INCENTIVE}",
        "/ticket customer #1",
        "/ticket link #1 #2",
    ],
)
async def test_customers_cannot_use_the_profile_commands(h: Harness, command: str):
    await opened(h)
    await opened(h, DANA_DISCORD, "Hi from Discord")

    text = await refused(h, DANA, command)

    assert text.startswith("Sorry Dana, I didn't catch that.")
    assert SLACK_NOTE not in text


# --- finding a customer ---------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["#1", "1", "<@Udana>", "@Udana", "Udana", "slack:Udana"])
async def test_a_customer_is_found_by_ticket_mention_user_id_or_identity(h: Harness, ref: str):
    await opened(h)
    await opened(h, EVE, "I was charged twice")

    text = await answer(h, ANA, f"/ticket customer {ref}")

    assert text.startswith("Who: Dana Scully ·")
    assert "· customer 1\n" in text and "Tickets (1):\n  #1 · new" in text and "Eve" not in text


async def test_the_profile_of_a_first_time_customer_says_new_not_returning(h: Harness):
    await opened(h)

    text = await answer(h, ANA, "/ticket customer #1")

    assert text.startswith("Who: Dana Scully · new customer"), text


async def test_a_customer_is_found_by_a_one_word_name_in_any_case(h: Harness):
    mulder = customer("Mulder", user_id="U-fox")
    await opened(h, mulder, "The lights in the sky are back")

    assert (await answer(h, ANA, "/ticket customer mulder")).startswith("Who: Mulder")


async def test_a_customer_is_found_by_a_name_with_a_space(h: Harness):
    await opened(h)

    assert (await answer(h, ANA, "/ticket customer Dana Scully")).startswith("Who: Dana Scully")


async def test_the_profile_shows_privately_to_the_agent_only(h: Harness):
    await opened(h)
    await h.run(ANA, f"/ticket profile #1 note {SLACK_NOTE}")

    out = await h.run(BEN, "/ticket profile #1")

    [message] = out
    assert isinstance(message, StaffMessage) and message.audience == ToAgent(BEN.person)
    assert InternalText(SLACK_NOTE) in message.parts


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/ticket customer @nobody", "I don't know a customer nobody on slack."),
        ("/ticket customer discord:Udana", "I don't know a customer Udana on discord."),
        ("/ticket customer #99", "I can't find ticket #99."),
        ("/ticket link #1 slack:Unobody", "I don't know a customer Unobody on slack."),
        ("/ticket link #1 #99", "I can't find ticket #99."),
        ("/ticket customer sam", "2 customers are called sam. Name the one you mean by a ticket of theirs"),
        ("/ticket link sam #1", "2 customers are called sam."),
        ("/ticket link #1 slack:Udana", "Those are already the same customer, Dana Scully."),
        ("/ticket link #1 #1", "Those are already the same customer, Dana Scully."),
        ("/ticket link #1", "Which two accounts are the same customer?"),
    ],
)
async def test_unknown_ambiguous_or_identical_customers_are_refused_politely(
    h: Harness, command: str, expected: str
):
    await opened(h)
    await opened(h, customer("Sam", user_id="U-sam-1"), "Where is my parcel?")
    await opened(h, customer("Sam", user_id="U-sam-2"), "My invoice is wrong")

    text = await refused(h, ANA, command)

    assert text.startswith(expected)


# --- linking two identities -----------------------------------------------------------------------


async def two_accounts(h: Harness) -> None:
    """Dana on Slack (ticket #1, the older profile) and on Discord (#2), each with a profile note, an
    incentive and some profile fields."""
    await h.write(DANA, "My order A-1234 never arrived")
    h.clock.advance(timedelta(hours=1))
    await h.write(DANA_DISCORD, "Hi, it's Dana again: parcel A-1234 is still missing")
    for command in (
        f"/ticket profile #1 note {SLACK_NOTE}",
        f"/ticket incentive #1 {SLACK_INCENTIVE}",
        "/ticket profile #1 timezone Europe/London",
        "/ticket profile #1 tags early-adopter",
        f"/ticket profile #2 note {DISCORD_NOTE}",
        f"/ticket incentive #2 {DISCORD_INCENTIVE}",
        "/ticket profile #2 org Kettle Collectors Ltd",
        "/ticket profile #2 timezone America/New_York",
        "/ticket profile #2 tags vip early-adopter",
    ):
        h.clock.advance(timedelta(minutes=1))
        await h.run(ANA, command)


@pytest.mark.parametrize("refs", ["#1 #2", "#2 #1", "slack:Udana discord:4711", "discord:4711 <@Udana>"])
async def test_linking_merges_two_accounts_into_the_older_profile(h: Harness, refs: str):
    """Whichever way round they are named, the older profile stays; tickets, identities, notes and
    incentives move to it; its own values win and the other's fill its gaps; the link is audited."""
    await two_accounts(h)
    h.clock.advance(timedelta(minutes=5))

    out = await h.run(ANA, f"/ticket link {refs}")

    linked, profile = (m.text for m in out)
    assert all(isinstance(m, StaffMessage) and m.audience == ToAgent(ANA.person) for m in out)
    assert linked == (
        "Linked: dana and Dana Scully are one customer now. 1 ticket, their accounts, notes and incentives "
        "moved to one profile; replies still go where each ticket started."
    )
    assert profile.startswith("Who: Dana Scully · returning customer, 2 tickets")

    kept, merged = h.store.customers[1], h.store.customers[2]
    assert [t.customer_id for t in h.store.tickets.values()] == [1, 1]
    assert [(i.platform, i.external_id, i.customer_id) for i in h.store.identities.values()] == [
        ("slack", "Udana", 1),
        ("discord", "4711", 1),
    ]
    assert [n.customer_id for n in h.store.profile_notes.values()] == [1, 1]
    assert [i.customer_id for i in h.store.incentives.values()] == [1, 1]
    assert (kept.display_name, kept.timezone, kept.organisation) == (
        "Dana Scully",
        "Europe/London",
        "Kettle Collectors Ltd",
    )
    assert kept.tags == ("early-adopter", "vip")
    assert (merged.merged_into, merged.display_name, merged.organisation, merged.timezone, merged.tags) == (
        1,
        "merged customer",
        None,
        None,
        (),
    )
    [record] = h.store.audit_log.values()
    assert (record.action, record.subject, record.actor, record.at) == ("link", 1, "Ana Lima", h.clock.now())
    assert record.detail == {"merged": 2, "tickets": 1, "identities": 1, "how": "linked by an agent"}
    [event] = h.store.events_for(2, "linked")
    assert (event.actor_name, event.detail) == ("Ana Lima", {"into": "1", "how": "linked by an agent"})


@pytest.mark.parametrize("ref", ["#1", "#2", "slack:Udana", "discord:4711", "<@Udana>"])
async def test_a_linked_customer_shows_both_identities_all_tickets_notes_and_incentives(h: Harness, ref: str):
    await two_accounts(h)
    await h.run(ANA, "/ticket link slack:Udana discord:4711")

    text = await answer(h, ANA, f"/ticket customer {ref}")

    assert "on slack Dana Scully, discord dana" in text
    assert "Tickets (2):\n  #1 · new · 02 Mar 2026 · My order A-1234 never arrived" in text
    assert "\n  #2 · new · 02 Mar 2026 · Hi, it's Dana again: parcel A-1234 is still missing" in text
    assert f"• (Ana Lima, 02 Mar 2026) {SLACK_NOTE}" in text
    assert f"• (Ana Lima, 02 Mar 2026) {DISCORD_NOTE}" in text
    assert f"• {SLACK_INCENTIVE} on #1" in text and f"• {DISCORD_INCENTIVE} on #2" in text


@pytest.mark.parametrize("who", [DANA_DISCORD, DANA], ids=["discord", "slack"])
async def test_after_a_link_the_next_ticket_from_either_identity_is_returning(h: Harness, who: Actor):
    await two_accounts(h)
    await h.run(ANA, "/ticket link #1 #2")
    elsewhere = Conversation(who.person.platform, "C-support", "T-new")

    out = await h.write(who, "Now the base plate is cracked", elsewhere)

    first_name = who.person.display_name.split()[0]
    [greeting] = customer_texts(out)
    assert greeting.startswith(
        f"Hi {first_name}, good to hear from you again. I've opened ticket #3 for you."
    )
    card = next(m for m in out if isinstance(m, StaffMessage) and m.kind is StaffKind.CARD)
    assert card.card is not None and card.card.returning
    assert "(returning, 2 earlier tickets)" in card.text
    assert h.store.ticket(3).customer_id == 1

    packet = staff_text(await h.run(BEN, "/ticket claim #3"), ToAgent(BEN.person))
    assert "returning: 2 earlier tickets, last #2 new" in packet
    for text in (SLACK_NOTE, DISCORD_NOTE, SLACK_INCENTIVE, DISCORD_INCENTIVE):
        assert text in packet


async def test_a_linked_profile_keeps_collecting_on_either_identity(h: Harness):
    """After the link, a note added on the Discord ticket lands on the one profile."""
    await two_accounts(h)
    await h.run(ANA, "/ticket link #1 #2")

    await h.run(BEN, "/ticket profile #2 note Call after 5pm only")

    assert {n.customer_id for n in h.store.profile_notes.values()} == {1}
    assert "Call after 5pm only" in await answer(h, ANA, "/ticket customer slack:Udana")


async def test_a_linked_customer_is_greeted_by_the_name_of_the_platform_they_are_on(h: Harness):
    handle = customer("kettlequeen99", "discord", "4711")
    await h.write(DANA, "My order A-1234 never arrived")
    await h.write(handle, "Hi, it's Dana from Slack, same problem")
    await h.run(ANA, "/ticket link #1 #2")
    await h.write(handle, "Any news on this?")

    out = await h.run(ANA, "/ticket claim #1")

    assert customer_texts(out) == [
        "Hi Dana, Ana Lima is now looking after your request #1 and will be in touch here."
    ]
    assert h.store.customers[1].display_name == "Dana Scully"


async def test_linking_twice_is_refused(h: Harness):
    await two_accounts(h)
    await h.run(ANA, "/ticket link #1 #2")

    text = await refused(h, ANA, "/ticket link discord:4711 slack:Udana")

    assert text == "Those are already the same customer, Dana Scully."


# --- a platform-verified email links by itself ----------------------------------------------------

VERIFIED_SLACK = Actor(Person("slack", "Udana", "Dana Scully", email="Dana@Example.com"), Role.CUSTOMER)
VERIFIED_DISCORD = Actor(Person("discord", "4711", "dana", email="dana@example.com "), Role.CUSTOMER)

EMAIL_BUG = (
    "BUG: Desk receive/command clean the actor with _clean_person (bot/desk.py:1076), which rebuilds the "
    "Person without its email, so a platform-verified email never reaches _customer_record: it is not "
    "stored and never links two identities"
)


async def test_a_verified_email_links_the_same_person_on_two_platforms(h: Harness):
    await h.write(VERIFIED_SLACK, "My order A-1234 never arrived")
    h.clock.advance(timedelta(hours=1))

    out = await h.write(VERIFIED_DISCORD, "Hi, it's me again about A-1234")

    assert h.store.ticket(2).customer_id == h.store.ticket(1).customer_id == 1
    assert "good to hear from you again" in customer_texts(out)[0]
    kept = h.store.customers[1]
    assert (kept.email, kept.email_verified) == ("dana@example.com", True)
    [record] = h.store.audit_log.values()
    assert (record.action, record.actor, record.detail["how"]) == ("link", "Relaydesk", "verified email")


async def test_an_email_typed_by_an_agent_never_links_by_itself(h: Harness):
    """Only a platform-verified email is proof: someone else's typed-in address must not pull a new
    identity into their profile."""
    await opened(h, EVE, "I was charged twice")
    await h.run(ANA, "/ticket profile #1 email dana@example.com")

    await h.write(VERIFIED_DISCORD, "Hi, my parcel is missing")

    assert h.store.ticket(2).customer_id != h.store.ticket(1).customer_id
    assert h.store.audit_log == {}


# --- on SQLite and PostgreSQL ---------------------------------------------------------------------


class SqlDesk:
    """A Desk over the SQL unit of work, as in test_storage.py, with a way to read back."""

    def __init__(self, uow_factory: UowFactory) -> None:
        self.uow_factory = uow_factory
        self.clock = FakeClock(START)
        self.desk = Delivering(Desk(uow_factory, self.clock, load_policy()))
        self._messages = 0

    async def write(self, actor: Actor, text: str, where: Conversation | None = None) -> list[Outgoing]:
        self._messages += 1
        where = where or Conversation(actor.person.platform, f"D-{actor.person.user_id}")
        message_id = f"{actor.person.user_id}-{self._messages}"
        return await self.desk.receive(IncomingMessage(actor, text, where, message_id))

    async def run(self, actor: Actor, text: str) -> list[Outgoing]:
        self.clock.advance(timedelta(minutes=1))
        return await self.desk.command(actor, text)


async def sql_two_accounts(uow_factory: UowFactory) -> SqlDesk:
    sql = SqlDesk(uow_factory)
    await sql.write(DANA, "My order A-1234 never arrived")
    sql.clock.advance(timedelta(hours=1))
    await sql.write(DANA_DISCORD, "Hi, it's Dana again: parcel A-1234 is still missing")
    for command in (
        f"/ticket profile #1 note {SLACK_NOTE}",
        f"/ticket incentive #1 {SLACK_INCENTIVE}",
        "/ticket profile #1 tags early-adopter",
        f"/ticket profile #2 note {DISCORD_NOTE}",
        f"/ticket incentive #2 {DISCORD_INCENTIVE}",
        "/ticket profile #2 org Kettle Collectors Ltd",
        "/ticket profile #2 tags vip",
    ):
        await sql.run(ANA, command)
    return sql


async def test_linking_merges_history_on_sql(uow_factory: UowFactory):
    sql = await sql_two_accounts(uow_factory)

    out = await sql.run(ANA, "/ticket link slack:Udana discord:4711")
    assert out[0].text.startswith("Linked: dana and Dana Scully are one customer now. 1 ticket")

    text = staff_text(await sql.run(ANA, "/ticket customer discord:4711"), ToAgent(ANA.person))
    assert "on slack Dana Scully, discord dana" in text
    assert "Tickets (2):" in text and "\n  #1 · new" in text and "\n  #2 · new" in text
    for part in (SLACK_NOTE, DISCORD_NOTE, SLACK_INCENTIVE, DISCORD_INCENTIVE, "Kettle Collectors Ltd"):
        assert part in text

    async with uow_factory() as uow:
        kept = await uow.customers.by_identity("discord", "4711")
        assert kept is not None and kept.id is not None
        assert kept == await uow.customers.by_identity("slack", "Udana")
        assert [t.number for t in await uow.tickets.for_customer(kept.id)] == [1, 2]
        assert [n.text.hidden for n in await uow.profiles.notes(kept.id)] == [SLACK_NOTE, DISCORD_NOTE]
        assert [i.what for i in await uow.profiles.incentives(kept.id)] == [
            SLACK_INCENTIVE,
            DISCORD_INCENTIVE,
        ]
        assert kept.tags == ("early-adopter", "vip")
        merged = await uow.customers.get(2 if kept.id == 1 else 1)
        assert merged is not None and merged.merged_into == kept.id
        [record] = await uow.audit.for_subject(kept.id)
        assert (record.action, record.detail["tickets"], record.detail["identities"]) == ("link", 1, 1)

    out = await sql.write(DANA_DISCORD, "Now the base plate is cracked", Conversation("discord", "C-help"))
    assert "good to hear from you again" in customer_texts(out)[0]
    packet = staff_text(await sql.run(BEN, "/ticket claim #3"), ToAgent(BEN.person))
    assert "returning: 2 earlier tickets" in packet
    for part in (SLACK_NOTE, DISCORD_NOTE, SLACK_INCENTIVE, DISCORD_INCENTIVE):
        assert part in packet


async def test_link_refusals_change_nothing_on_sql(uow_factory: UowFactory):
    sql = await sql_two_accounts(uow_factory)
    await sql.write(customer("Sam", user_id="U-sam-1"), "Where is my parcel?")
    await sql.write(customer("Sam", user_id="U-sam-2"), "My invoice is wrong")

    for command, expected in (
        ("/ticket link slack:Unobody #1", "I don't know a customer Unobody on slack."),
        ("/ticket link sam #2", "2 customers are called sam."),
        ("/ticket link #1 slack:Udana", "Those are already the same customer, Dana Scully."),
    ):
        assert said_to(await sql.run(ANA, command), ANA).startswith(expected)
    assert said_to(await sql.run(DANA, "/ticket link #1 #2"), DANA).startswith("Sorry Dana")

    async with uow_factory() as uow:
        assert [t.customer_id for t in await uow.tickets.for_customer(1)] == [1]
        assert await uow.audit.for_subject(1) == []


async def test_a_verified_email_links_the_same_person_on_sql(uow_factory: UowFactory):
    sql = SqlDesk(uow_factory)
    await sql.write(VERIFIED_SLACK, "My order A-1234 never arrived")
    await sql.write(VERIFIED_DISCORD, "Hi, it's me again about A-1234")

    async with uow_factory() as uow:
        slack = await uow.customers.by_identity("slack", "Udana")
        discord = await uow.customers.by_identity("discord", "4711")
        assert slack is not None and slack == discord
        assert (slack.email, slack.email_verified) == ("dana@example.com", True)
        assert slack.id is not None
        assert [t.number for t in await uow.tickets.for_customer(slack.id)] == [1, 2]


# --- export and forget after a link ---------------------------------------------------------------

FORGET_NOTE = "Dana Scully mentioned her divorce; be gentle"
FORGET_INCENTIVE = "Scully family discount of 20 percent"
SECRETS = (
    "Dana",
    "Scully",
    "Udana",
    "4711",
    "dana.scully@example.com",
    "Kettle Collectors",
    "early-adopter",
    "vintage",
    "hard of hearing",
    "express shipping",
    "goodwill credit",
    "divorce",
    "family discount",
    "A-1234",
    "parcel",
    "base plate",
    "courier",
)


async def every_text(engine: AsyncEngine) -> list[tuple[str, str, str]]:
    """Every string and JSON value in every row of every table the database has (reflected, not taken
    from our models, so a table the models forget is scanned too)."""
    metadata = MetaData()
    found = []
    async with engine.connect() as connection:
        await connection.run_sync(metadata.reflect)
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        assert set(names) == set(metadata.tables)
        assert {"customers", "identities", "profile_notes", "incentives", "audit_log"} <= set(names)
        for table in metadata.sorted_tables:
            for row in (await connection.execute(select(table))).mappings():
                for column, value in row.items():
                    if isinstance(value, str):
                        found.append((table.name, column, value))
                    elif isinstance(value, dict | list):
                        found.append((table.name, column, json.dumps(value, ensure_ascii=False)))
    return found


async def shape(uow_factory: UowFactory, customer_id: int) -> list[tuple[Any, ...]]:
    async with uow_factory() as uow:
        return [
            (t.number, t.status, t.queue, t.priority, t.assignee_id, t.created_at, t.resolved_at)
            for t in await uow.tickets.for_customer(customer_id)
        ]


async def linked_history(uow_factory: UowFactory) -> SqlDesk:
    """Two accounts with notes and incentives, linked; then worked on: address, email, a note, a
    transfer, a reply, a resolution; a new ticket from the Discord identity."""
    sql = await sql_two_accounts(uow_factory)
    await sql.run(ANA, "/ticket link #2 #1")
    for command in (
        "/ticket profile #1 address Dr. Scully",
        "/ticket profile #2 email Dana.Scully@example.com",
        "/ticket profile #1 timezone europe/london",
        f"/ticket profile #2 note {FORGET_NOTE}",
        f"/ticket incentive #1 {FORGET_INCENTIVE}",
        "/ticket claim #1",
        "/ticket note #1 Dana Scully's courier lost the parcel",
    ):
        await sql.run(ANA, command)
    await sql.desk.register_agents([BEN.person])
    await sql.run(ANA, "/ticket transfer #1 @Uben knows Scully's courier")
    await sql.run(BEN, "/ticket reply #1 Sorry Dr. Scully, a replacement for A-1234 ships today.")
    await sql.run(BEN, "/ticket resolve #1 replacement sent to Dana Scully")
    await sql.write(DANA, "Now the base plate is cracked", Conversation("slack", "C-help"))
    return sql


async def test_export_after_a_link_holds_the_profile_its_notes_and_incentives(uow_factory: UowFactory):
    sql = await linked_history(uow_factory)

    export = await data_rights.export(uow_factory, "discord:4711", sql.clock, actor="auditor")

    assert export == json.loads(json.dumps(export))
    profile = export["customer"]
    assert (profile["id"], profile["display_name"], profile["address_as"]) == (1, "Dana Scully", "Dr. Scully")
    assert (profile["email"], profile["email_verified"]) == ("dana.scully@example.com", False)
    assert (profile["timezone"], profile["organisation"]) == ("Europe/London", "Kettle Collectors Ltd")
    assert profile["tags"] == ["early-adopter", "vip"]
    assert [(i["platform"], i["user_id"]) for i in export["identities"]] == [
        ("slack", "Udana"),
        ("discord", "4711"),
    ]
    assert [(n["text"], n["author"], n["ticket"]) for n in export["profile_notes"]] == [
        (SLACK_NOTE, "Ana Lima", 1),
        (DISCORD_NOTE, "Ana Lima", 2),
        (FORGET_NOTE, "Ana Lima", 2),
    ]
    assert all("never shown to the customer" in n["visibility"] for n in export["profile_notes"])
    assert [(i["what"], i["given_by"], i["ticket"]) for i in export["incentives"]] == [
        (SLACK_INCENTIVE, "Ana Lima", 1),
        (DISCORD_INCENTIVE, "Ana Lima", 2),
        (FORGET_INCENTIVE, "Ana Lima", 1),
    ]
    assert [t["number"] for t in export["tickets"]] == [1, 2, 3]


async def test_forget_after_a_link_leaves_no_personal_text_in_any_table(
    uow_factory: UowFactory, engine: AsyncEngine
):
    """Profile fields, profile notes, incentive texts, both identities, every message on all three
    tickets: gone from every row of every table. Ticket numbers and statuses stay, and the audit log
    counts what was erased, profile notes and incentives included."""
    sql = await linked_history(uow_factory)
    before = await every_text(engine)
    for secret in SECRETS:
        assert any(secret.casefold() in text.casefold() for _, _, text in before), secret
    stats = await shape(uow_factory, 1)

    held = await data_rights.forget(uow_factory, "slack:Udana", sql.clock, actor="auditor")

    assert (held.identities, held.tickets, held.profile_notes, held.incentives) == (2, 3, 3, 3)
    leaks = sorted(
        {
            (table, column, secret)
            for table, column, text in await every_text(engine)
            for secret in SECRETS
            if secret.casefold() in text.casefold()
        }
    )
    assert leaks == []
    assert await shape(uow_factory, 1) == stats
    assert [(n, s) for n, s, *_ in stats] == [(1, Status.RESOLVED), (2, Status.NEW), (3, Status.NEW)]
    async with uow_factory() as uow:
        assert await uow.profiles.notes(1) == []
        assert {i.what for i in await uow.profiles.incentives(1)} == {data_rights.ERASED}
        kept = await uow.customers.get(1)
        assert kept is not None
        assert (kept.display_name, kept.address_as, kept.email, kept.timezone, kept.organisation) == (
            data_rights.FORGOTTEN_NAME,
            None,
            None,
            None,
            None,
        )
        assert kept.tags == ()
        records = await uow.audit.for_subject(1)
        assert [r.action for r in records] == ["link", "forget"]
        assert records[-1].detail == held.as_detail()
        assert records[-1].detail["profile_notes"] == 3 and records[-1].detail["incentives"] == 3


async def test_forget_by_the_number_of_a_linked_away_customer_does_not_silently_keep_their_data(h: Harness):
    """Customer 2 was linked into customer 1. An operator holding the old number (from an earlier
    export, say) must either be told where the data went or have it erased, never a hollow success."""
    await two_accounts(h)
    await h.run(ANA, "/ticket link #1 #2")

    try:
        held = await data_rights.forget(h.store.uow, "2", h.clock, actor="auditor")
    except data_rights.UnknownCustomer:
        return
    assert held.tickets > 0, held
    texts = {e.body if isinstance(e.body, str) else e.body.hidden for e in h.store.entries_for(2)}
    assert texts == {data_rights.ERASED}
