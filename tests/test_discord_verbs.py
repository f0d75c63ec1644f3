"""The `/ticket` verbs for customers' profiles, promises and transcripts, as Discord subcommands, over the
wire: each interaction is built by the local fake of Discord (`discord_fake.py`) in Discord's shape, parsed
by discord.py, run by the real adapter on a real Desk and database (`test_discord.py`'s harness), and
everything the bot says is read back from the fake's record of REST calls.
"""

from __future__ import annotations

import json
from typing import Any

import discord
import pytest
import test_discord
from discord_fake import APP_ID, EPHEMERAL, GUILD_ID, Call, UserOption
from sqlalchemy import select
from test_discord import AGENTS, ANA, BEN, CARL, DANA, FIRST, GENERAL, Discord

from bot.commands import Actor, IncomingMessage
from bot.domain import EntryKind, Role, Status
from bot.messages import Conversation, Person
from storage.models import (
    AuditRow,
    CheckinRow,
    CustomerRow,
    IdentityRow,
    IncentiveRow,
    ProfileNoteRow,
    PromiseRow,
)

# test_discord's harness (pytest finds fixtures by these names)
fake = test_discord.fake
discord_env = test_discord.discord_env
start_discord = test_discord.start_discord
dc = test_discord.dc

PROFILE_TABLES = (CustomerRow, IdentityRow, ProfileNoteRow, IncentiveRow, AuditRow, PromiseRow, CheckinRow)


async def answer(dc: Discord, payload: dict[str, Any], what: str) -> str:
    """The interaction's deferred answer: every follow-up ephemeral, their text joined."""
    await dc.wait_followups(payload, what)
    await dc.settle()
    found = dc.fake.followups(payload)
    assert all(call.flags & EPHEMERAL for call in found), [call.body for call in found]
    return "\n".join(call.content for call in found)


async def refused_at_once(dc: Discord, payload: dict[str, Any]) -> str:
    """An answer given straight away (callback type 4, ephemeral), with nothing deferred or followed up."""
    reply = await dc.wait_callback(payload)
    assert reply.json["type"] == 4 and reply.flags & EPHEMERAL, reply.body
    await dc.settle()
    assert not dc.fake.followups(payload)
    return reply.content


async def state(dc: Discord) -> tuple[dict[str, int], list[tuple[Any, ...]]]:
    """Row counts, profiles included, and every customer's profile fields: what a refusal must not change."""
    counts = await dc.snapshot()
    for model in PROFILE_TABLES:
        counts[model.__tablename__] = await dc.count(model)
    customers = await dc.scalars(select(CustomerRow).order_by(CustomerRow.id))
    fields = [
        (c.id, c.display_name, c.address_as, c.timezone, c.organisation, c.email, c.tags, c.merged_into)
        for c in customers
    ]
    return counts, fields


def staff_thread_texts(dc: Discord, card_id: int) -> str:
    return "\n".join(dc.fake.texts(card_id))


def files_of(call: Call) -> dict[str, str]:
    described = {f"files[{a['id']}]": a["filename"] for a in call.json.get("attachments") or []}
    return {described[f.field]: f.text for f in call.files}


# --- /ticket customer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"user": UserOption(DANA)},
        {"ticket": 1},
        {"other_id": f"discord:{DANA}"},
        {"other_id": "#1"},
        {"other_id": "Dana Whitaker"},
    ],
    ids=["user", "ticket", "platform identity", "ticket typed", "name"],
)
async def test_ticket_customer_shows_the_profile_privately(dc: Discord, options: dict[str, Any]) -> None:
    opened = await dc.open_ticket()
    await dc.settle()
    posts = len(dc.fake.posts())

    shown = await answer(dc, dc.command(ANA, AGENTS, "ticket", "customer", **options), "the profile")

    assert shown.startswith("Who: Dana Whitaker · new customer")
    assert "Tickets (1):" in shown and "#1 · new · " in shown and "Hi, my order A-1234" in shown
    assert len(dc.fake.posts()) == posts, "nothing posted anywhere"
    assert "Who: Dana" not in "\n".join(dc.fake.texts(opened.thread_id))


async def test_ticket_customer_of_someone_unknown_says_so(dc: Discord) -> None:
    await dc.open_ticket()
    shown = await answer(dc, dc.command(ANA, AGENTS, "ticket", "customer", user=UserOption(CARL)), "answer")
    assert shown.startswith(f"I don't know a customer {CARL} on discord.")


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({}, "Which customer?"),
        ({"user": UserOption(DANA), "ticket": 1}, "Please name just one customer there."),
        ({"other_id": "<@1> and more"}, "I didn't expect 'and more' there."),
    ],
    ids=["none", "two", "unreadable"],
)
async def test_ticket_customer_without_exactly_one_customer_is_asked_again_at_once(
    dc: Discord, options: dict[str, Any], said: str
) -> None:
    await dc.open_ticket()
    await dc.settle()
    before = await state(dc)
    text = await refused_at_once(dc, dc.command(ANA, AGENTS, "ticket", "customer", **options))
    assert text.startswith(said)
    assert await state(dc) == before


# --- /ticket profile ------------------------------------------------------------------------------


async def test_a_profile_note_goes_to_the_staff_thread_and_shows_on_the_next_ticket_show(dc: Discord) -> None:
    opened = await dc.open_ticket()
    note = "PROFILE-NOTE prefers email, never phone calls"

    done = dc.command(ANA, AGENTS, "ticket", "profile", ticket=1, field="note", value=note)

    assert await answer(dc, done, "the note's answer") == "Done."
    assert "#1 · profile note on Dana Whitaker from Ana" in staff_thread_texts(dc, opened.card_id)
    assert note in staff_thread_texts(dc, opened.card_id)
    [row] = await dc.scalars(select(ProfileNoteRow))
    assert (row.text, row.author_name, row.ticket_number) == (note, "Ana", 1)

    shown = await answer(dc, dc.command(BEN, AGENTS, "ticket", "show", ticket=1), "/ticket show")
    assert note in shown
    assert "PROFILE-NOTE" not in "\n".join(dc.fake.texts(opened.thread_id)), "never to the customer"


async def test_a_profile_field_is_set_privately_and_shown_by_profile_alone(dc: Discord) -> None:
    opened = await dc.open_ticket()
    await dc.settle()
    posts = len(dc.fake.posts())

    set_it = dc.command(ANA, AGENTS, "ticket", "profile", ticket=1, field="address", value="Dr. Whitaker")
    assert await answer(dc, set_it, "the field set") == "Dana Whitaker's address: Dr. Whitaker."
    [dana] = await dc.scalars(select(CustomerRow))
    assert dana.address_as == "Dr. Whitaker"

    inside = dc.command(ANA, opened.card_id, "ticket", "profile")  # the card's thread knows the ticket
    shown = await answer(dc, inside, "the profile")
    assert shown.startswith('Who: Dana Whitaker (address as "Dr. Whitaker") · new customer')

    cleared = dc.command(ANA, AGENTS, "ticket", "profile", ticket=1, field="address")
    assert await answer(dc, cleared, "the field cleared") == "Dana Whitaker's address: cleared."
    assert [c.address_as for c in await dc.scalars(select(CustomerRow))] == [None]
    assert len(dc.fake.posts()) == posts


async def test_a_bad_profile_value_is_explained_and_changes_nothing(dc: Discord) -> None:
    await dc.open_ticket()
    await dc.settle()
    before = await state(dc)
    bad = dc.command(ANA, AGENTS, "ticket", "profile", ticket=1, field="email", value="not an address")
    assert (await answer(dc, bad, "the refusal")).startswith("I can't set email: 'not an address' is not")
    assert await state(dc) == before


async def test_a_profile_value_without_a_field_is_asked_about_at_once(dc: Discord) -> None:
    await dc.open_ticket()
    await dc.settle()
    before = await state(dc)
    asked = dc.command(ANA, AGENTS, "ticket", "profile", ticket=1, value="Dr. Whitaker")
    assert (await refused_at_once(dc, asked)).startswith("Which field should that value go in?")
    assert await state(dc) == before


# --- /ticket incentive ----------------------------------------------------------------------------


async def test_an_incentive_is_recorded_told_to_the_agents_and_listed_on_the_profile(dc: Discord) -> None:
    opened = await dc.open_ticket()

    given = dc.command(ANA, AGENTS, "ticket", "incentive", ticket=1, what="free express shipping")

    assert await answer(dc, given, "the incentive's answer") == "Done."
    assert "#1 · Ana gave Dana Whitaker: free express shipping" in staff_thread_texts(dc, opened.card_id)
    [row] = await dc.scalars(select(IncentiveRow))
    assert (row.what, row.given_by, row.ticket_number) == ("free express shipping", "Ana", 1)
    shown = await answer(dc, dc.command(BEN, AGENTS, "ticket", "customer", ticket=1), "the profile")
    assert "Incentives given:" in shown and "free express shipping" in shown
    assert len(dc.fake.posts(opened.thread_id)) == 1, "the customer's thread has only the greeting"


# --- /ticket link ---------------------------------------------------------------------------------


async def test_linking_two_discord_users_merges_their_tickets_into_one_profile(dc: Discord) -> None:
    await dc.open_ticket()
    await dc.open_ticket(user=CARL, text="My screen is broken")

    linked = await answer(
        dc,
        dc.command(ANA, AGENTS, "ticket", "link", first=UserOption(DANA), second=UserOption(CARL)),
        "the link",
    )

    assert linked.startswith("Linked: Carl Jensen and Dana Whitaker are one customer now. 1 ticket,")
    assert "Tickets (2):" in linked
    shown = await answer(dc, dc.command(BEN, AGENTS, "ticket", "customer", user=UserOption(CARL)), "profile")
    assert shown.startswith("Who: Dana Whitaker · returning customer, 2 tickets")
    assert "#1 · new · " in shown and "#2 · new · " in shown
    first, second = await dc.ticket(1), await dc.ticket(2)
    assert first.customer_id == second.customer_id
    [audit] = await dc.scalars(select(AuditRow).where(AuditRow.action == "link"))
    assert audit.actor == "Ana"


async def test_a_discord_user_links_with_a_slack_account_given_as_platform_and_id(dc: Discord) -> None:
    """The same person wrote on Slack before: the other account is typed as `slack:<user id>`."""
    slack = Person("slack", "UDANA", "Dana W.")
    where = Conversation("slack", "CSUP", "1711000001.000001", "T1")
    await dc.adapter._desk.receive(  # the desk hears Slack; nothing of it goes through Discord
        IncomingMessage(Actor(slack, Role.CUSTOMER), "Hello from Slack", where, "CSUP:1711000001.000001")
    )
    await dc.open_ticket()

    link = dc.command(ANA, AGENTS, "ticket", "link", first=UserOption(DANA), other_id="slack:UDANA")
    linked = await answer(dc, link, "the link")

    assert linked.startswith("Linked: Dana Whitaker and Dana W. are one customer now. 1 ticket,")
    shown = await answer(dc, dc.command(ANA, AGENTS, "ticket", "customer", ticket=2), "the profile")
    assert "Tickets (2):" in shown and "#1 · " in shown and "#2 · " in shown
    identities = await dc.scalars(select(IdentityRow).order_by(IdentityRow.id))
    assert {(i.platform, i.external_id) for i in identities} == {("slack", "UDANA"), ("discord", str(DANA))}
    assert len({i.customer_id for i in identities}) == 1


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({}, "Which other account is theirs?"),
        ({"second": UserOption(CARL), "other_id": "slack:U1"}, "Please name just one customer there."),
    ],
    ids=["no second", "two seconds"],
)
async def test_link_without_exactly_one_other_account_is_asked_again_at_once(
    dc: Discord, options: dict[str, Any], said: str
) -> None:
    await dc.open_ticket()
    await dc.settle()
    before = await state(dc)
    asked = dc.command(ANA, AGENTS, "ticket", "link", first=UserOption(DANA), **options)
    assert (await refused_at_once(dc, asked)).startswith(said)
    assert await state(dc) == before


async def test_linking_a_customer_with_themselves_changes_nothing(dc: Discord) -> None:
    await dc.open_ticket()
    await dc.settle()
    before = await state(dc)
    same = dc.command(ANA, AGENTS, "ticket", "link", first=UserOption(DANA), other_id="#1")
    assert await answer(dc, same, "the refusal") == "Those are already the same customer, Dana Whitaker."
    assert await state(dc) == before


# --- /ticket transcript ---------------------------------------------------------------------------


async def test_a_transcript_is_one_ephemeral_followup_with_markdown_and_json(dc: Discord) -> None:
    opened = await dc.open_ticket()
    dc.say(opened.card_id, ANA, "TRANSCRIPT-NOTE courier lost it")
    await dc.eventually(lambda: dc.entries(1, EntryKind.NOTE), "the note recorded")
    await dc.settle()
    posts = len(dc.fake.posts())

    asked = dc.command(ANA, AGENTS, "ticket", "transcript", ticket=1)

    [followup] = await dc.wait_followups(asked, "the transcript")
    await dc.settle()
    assert followup.flags & EPHEMERAL
    assert followup.content.startswith("Transcript of #1: 3 messages")
    files = files_of(followup)
    assert list(files) == ["ticket-1.md", "ticket-1.json"]
    assert FIRST in files["ticket-1.md"] and "TRANSCRIPT-NOTE" in files["ticket-1.md"]
    record = json.loads(files["ticket-1.json"])
    notes = [e for e in record["entries"] if e.get("internal_note")]
    assert [n["text"] for n in notes] == ["TRANSCRIPT-NOTE courier lost it"]
    assert len(dc.fake.posts()) == posts, "to the agent only"


# --- /ticket promise and /ticket kept ---------------------------------------------------------------


async def test_a_promise_tells_the_customer_with_the_time_and_kept_confirms_it(dc: Discord) -> None:
    opened = await dc.open_ticket()

    promised = dc.command(
        ANA, AGENTS, "ticket", "promise", ticket=1, when="16:00", what="a replacement ships"
    )

    assert await answer(dc, promised, "the promise's answer") == "Done."
    told = dc.fake.texts(opened.thread_id)[-1]
    assert told == "Hi Dana, Ana here: a replacement ships, by 16:00 CET today. I'll keep you posted on #1."
    staff = staff_thread_texts(dc, opened.card_id)
    assert (
        "#1 promise 1: a replacement ships, by 16:00 CET today. Mark it kept with /ticket kept #1 1" in staff
    )
    [promise] = await dc.scalars(select(PromiseRow))
    assert (promise.ticket_number, promise.number, promise.what) == (1, 1, "a replacement ships")
    [reply] = await dc.entries(1, EntryKind.REPLY)
    assert reply.body == told and (await dc.ticket(1)).status is Status.OPEN

    kept = dc.command(ANA, opened.card_id, "ticket", "kept")  # in the card's thread: no number needed
    assert await answer(dc, kept, "the kept answer") == "Done."
    assert "#1 promise 1 (a replacement ships) kept." in staff_thread_texts(dc, opened.card_id)
    [promise] = await dc.scalars(select(PromiseRow))
    assert promise.kept_at is not None

    again = dc.command(ANA, AGENTS, "ticket", "kept", ticket=1, number=1)
    assert await answer(dc, again, "the refusal") == ("#1 has no open promise 1. /ticket show #1 lists them.")


async def test_a_promise_whose_time_cannot_be_read_is_explained_and_tells_the_customer_nothing(
    dc: Discord,
) -> None:
    opened = await dc.open_ticket()
    await dc.settle()
    before = await state(dc)
    posts = len(dc.fake.posts())

    bad = dc.command(ANA, AGENTS, "ticket", "promise", ticket=1, when="someday", what="a replacement ships")

    assert "someday" in await answer(dc, bad, "the refusal")
    assert await state(dc) == before and len(dc.fake.posts()) == posts
    assert len(dc.fake.posts(opened.thread_id)) == 1


async def test_kept_with_two_open_promises_asks_which(dc: Discord) -> None:
    await dc.open_ticket()
    for when, what in (("2h", "a tracking number"), ("tomorrow 10:00", "a replacement ships")):
        await answer(
            dc, dc.command(ANA, AGENTS, "ticket", "promise", ticket=1, when=when, what=what), "promise"
        )
    asked = dc.command(ANA, AGENTS, "ticket", "kept", ticket=1)
    assert await answer(dc, asked, "the question") == (
        "#1 has several open promises (1, 2). Which one? /ticket kept #1 <n>"
    )
    kept = dc.command(ANA, AGENTS, "ticket", "kept", ticket=1, number=2)
    assert await answer(dc, kept, "the answer") == "Done."
    states = {p.number: p.kept_at is not None for p in await dc.scalars(select(PromiseRow))}
    assert states == {1: False, 2: True}


# --- who may use them ------------------------------------------------------------------------------

NEW_VERBS: list[tuple[str, dict[str, Any]]] = [
    ("customer", {"user": UserOption(DANA)}),
    ("customer", {"ticket": 1}),
    ("profile", {"ticket": 1}),
    ("profile", {"ticket": 1, "field": "note", "value": "likes cake"}),
    ("profile", {"ticket": 1, "field": "org", "value": "Acme"}),
    ("incentive", {"ticket": 1, "what": "a voucher"}),
    ("link", {"first": UserOption(DANA), "second": UserOption(CARL)}),
    ("link", {"first": UserOption(DANA), "other_id": "slack:UDANA"}),
    ("transcript", {"ticket": 1}),
    ("promise", {"ticket": 1, "when": "2h", "what": "a call back"}),
    ("kept", {"ticket": 1}),
]


@pytest.mark.parametrize(("verb", "options"), NEW_VERBS, ids=[f"{v} {sorted(o)}" for v, o in NEW_VERBS])
@pytest.mark.parametrize("who", [DANA, CARL], ids=["the customer herself", "another member"])
async def test_someone_without_the_agent_role_gets_the_polite_refusal_and_nothing_changes(
    dc: Discord, verb: str, options: dict[str, Any], who: int
) -> None:
    opened = await dc.open_ticket()
    await dc.settle()
    before = await state(dc)
    posts = len(dc.fake.posts())

    asked = dc.command(who, GENERAL, "ticket", verb, **options)

    said = await answer(dc, asked, "the refusal")
    name = "Dana" if who == DANA else "Carl"
    assert said.startswith(f"Sorry {name}, I didn't catch that.")
    assert not dc.fake.followups(asked)[0].files
    assert await state(dc) == before and len(dc.fake.posts()) == posts
    assert len(dc.fake.texts(opened.thread_id)) == 1


# --- Discord's side of the subcommands -------------------------------------------------------------


@pytest.mark.parametrize("verb", ["customer", "profile", "incentive", "transcript", "promise", "kept"])
async def test_the_ticket_option_of_the_new_verbs_offers_the_open_tickets(dc: Discord, verb: str) -> None:
    await dc.open_ticket()
    asked = dc.interact(dc.fake.autocomplete(ANA, AGENTS, "ticket", verb, "ticket", "", focused_type=4))
    reply = await dc.wait_callback(asked, "the choices")
    assert reply.json == {
        "type": 8,
        "data": {"choices": [{"name": f"#1 · Dana Whitaker: {FIRST}", "value": 1}]},
    }


async def test_the_synced_subcommands_declare_their_options_as_discord_shows_them(
    start_discord: test_discord.StartDiscord, sqlite_engine: Any
) -> None:
    """Discord (the fake refuses what Discord refuses) took the sync; the options are typed and described."""
    dc = await start_discord(sqlite_engine, sync_commands=True)
    [sync] = dc.fake.calls_to("PUT", rf"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
    [ticket] = [c for c in sync.body if c["name"] == "ticket"]
    verbs = {o["name"]: {p["name"]: p for p in o.get("options", [])} for o in ticket["options"]}

    def shape(verb: str) -> dict[str, tuple[int, bool]]:
        return {name: (o["type"], bool(o.get("required"))) for name, o in verbs[verb].items()}

    string, integer, user = 3, 4, 6
    assert shape("customer") == {
        "user": (user, False),
        "ticket": (integer, False),
        "other_id": (string, False),
    }
    assert shape("profile") == {
        "ticket": (integer, False),
        "field": (string, False),
        "value": (string, False),
    }
    assert [c["value"] for c in verbs["profile"]["field"]["choices"]] == [
        *("note", "address", "timezone", "org", "email", "tags", "kind")
    ]
    assert shape("incentive") == {"what": (string, True), "ticket": (integer, False)}
    assert shape("link") == {"first": (user, True), "second": (user, False), "other_id": (string, False)}
    assert shape("transcript") == {"ticket": (integer, False)}
    assert shape("promise") == {"when": (string, True), "what": (string, True), "ticket": (integer, False)}
    assert shape("kept") == {"ticket": (integer, False), "number": (integer, False)}
    assert verbs["kept"]["number"]["min_value"] == 1
    assert all(verbs[v]["ticket"]["autocomplete"] for v in verbs if "ticket" in verbs[v])
    await dc.close()
    dc.assert_no_errors_logged()


async def test_the_fake_refuses_a_description_discord_would_refuse(dc: Discord) -> None:
    """What makes the sync above a check of Discord's limits: the fake answers as Discord does."""
    too_long = {"name": "x", "description": "d" * 101, "type": 1}
    with pytest.raises(discord.HTTPException) as refused:
        await dc.client.http.bulk_upsert_guild_commands(APP_ID, GUILD_ID, [too_long])
    assert refused.value.code == 50035
