"""Snippets: saved replies, from the policy file or added by agents, sent as an agent's reply.

The desk over the in-memory unit of work, the policy's validation, the grammar, one storage round trip
on each database, and the console end to end.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from fakes import START, Harness, agent, build_desk, customer

from bot.commands import Actor, AddSnippet, ListSnippets, Snippet
from bot.domain import EntryKind, Status, StoredSnippet
from bot.grammar import SNIPPET_ADD_USAGE, VERBS, ParseError, help_text, parse
from bot.messages import CustomerMessage, Outgoing, StaffKind, StaffMessage, ToAgent, ToAgents, ToCustomer
from bot.policy import Policy, PolicyError, load_policy
from bot.ports import Conflict
from bot.voice import not_a_customer_command
from storage.uow import SqlUnitOfWork

DANA = customer("Dana Scully")
ANA = agent("Ana Lima")
BEN = agent("Ben")
POLICY_NAMES = ["looking-into-it", "more-details", "sorry-for-the-trouble"]


@pytest.fixture
def h() -> Harness:
    return build_desk()


def only(items: Sequence[Outgoing]) -> Outgoing:
    assert len(items) == 1, items
    return items[0]


def private_to(out: Sequence[Outgoing], who: Actor) -> str:
    """The one message an agent gets back: to them alone, informational."""
    message = only(out)
    assert isinstance(message, StaffMessage)
    assert message.audience == ToAgent(who.person)
    assert message.kind is StaffKind.INFO
    return message.text


def to_customer(out: Sequence[Outgoing]) -> CustomerMessage:
    found = [m for m in out if isinstance(m, CustomerMessage)]
    assert len(found) == 1, out
    return found[0]


def with_snippets(**snippets: str) -> Policy:
    """The default policy with other snippets (keys use _ for -, as Python names must)."""
    policy = load_policy()
    return policy.model_copy(update={"snippets": {k.replace("_", "-"): v for k, v in snippets.items()}})


async def opened(h: Harness) -> int:
    await h.write(DANA, "My order A-1234 never arrived")
    return 1


# --- sending a snippet --------------------------------------------------------------------------


async def test_a_snippet_is_an_agents_reply_with_its_variables_filled(h: Harness):
    number = await opened(h)
    h.clock.advance(timedelta(minutes=12))

    out = await h.run(ANA, f"/ticket snippet #{number} looking-into-it")

    said = to_customer(out)
    assert said.audience.ticket_number == number
    assert said.text == (
        "Ana Lima: Thanks for bearing with me, Dana. I'm looking into this for you now and will update "
        "you right here on #1 as soon as I know more. There's no need to write in again."
    )
    # Exactly what /ticket reply does: recorded as a reply, the ticket claimed, first response timed.
    reply = h.store.entries_for(number)[-1]
    assert (reply.kind, reply.author_name) == (EntryKind.REPLY, "Ana Lima")
    assert reply.body == said.text.removeprefix("Ana Lima: ")
    ticket = h.store.ticket(number)
    assert ticket.assignee_id == h.store.agent("Ana Lima").id
    assert ticket.status is Status.OPEN
    assert ticket.first_agent_reply_at == h.clock.now()
    [claimed] = h.store.events_for(number, "claimed")
    assert claimed.detail == {"by_replying": "True"}
    updates = [m for m in out if isinstance(m, StaffMessage) and isinstance(m.audience, ToAgents)]
    assert [m.text for m in updates] == ["#1 claimed by Ana Lima."]


async def test_a_snippet_fills_the_agent_name_and_keeps_escaped_braces(h: Harness):
    h = build_desk(policy=with_snippets(hello="Hi {customer_name}, {agent_name} here about {ticket} {{ok}}."))
    await opened(h)
    said = to_customer(await h.run(BEN, "/ticket snippet #1 hello"))
    assert said.text == "Ben: Hi Dana, Ben here about #1 {ok}."


async def test_names_in_variables_are_filled_in_as_they_are_never_read_as_variables():
    h = build_desk(policy=with_snippets(hello="Hi {customer_name}, about {ticket}."))
    await h.write(customer("{ticket} {agent_name}"), "help")
    said = to_customer(await h.run(ANA, "/ticket snippet #1 hello"))
    assert said.text == "Ana Lima: Hi {ticket}, about #1."


async def test_a_second_snippet_on_a_claimed_ticket_just_replies(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket claim #1")
    out = await h.run(ANA, "/ticket snippet #1 more-details")
    assert "could you reply here with your order or account number" in to_customer(out).text
    assert not [m for m in out if isinstance(m, StaffMessage)]


async def test_an_unknown_snippet_is_refused_with_the_names_and_nothing_changes(h: Harness):
    await opened(h)
    await h.run(ANA, "/ticket snippet add on-its-way Your parcel is on its way, {customer_name}.")
    before = h.store.snapshot()

    out = await h.run(ANA, "/ticket snippet #1 lookin-into-it")

    text = private_to(out, ANA)
    assert text == (
        "There's no snippet called 'lookin-into-it'. Snippets: looking-into-it, more-details, on-its-way, "
        "sorry-for-the-trouble."
    )
    assert h.store.snapshot() == before


async def test_an_unknown_snippet_with_none_saved_says_how_to_save_one():
    h = build_desk(policy=with_snippets())
    await opened(h)
    text = private_to(await h.run(ANA, "/ticket snippet #1 hello"), ANA)
    assert "none are saved yet" in text and SNIPPET_ADD_USAGE in text


async def test_a_snippet_needs_a_ticket_and_a_live_one(h: Harness):
    assert "Which ticket?" in private_to(await h.run(ANA, "/ticket snippet looking-into-it"), ANA)
    assert "can't find ticket #9" in private_to(await h.run(ANA, "/ticket snippet #9 more-details"), ANA)
    await opened(h)
    await h.run(ANA, "/ticket resolve #1")
    h.clock.advance(timedelta(days=8))
    await h.desk.run_due_work()
    before = h.store.snapshot()
    text = private_to(await h.run(ANA, "/ticket snippet #1 more-details"), ANA)
    assert "#1 is closed" in text
    assert h.store.snapshot() == before


@pytest.mark.parametrize(
    "command",
    ["/ticket snippet #1 looking-into-it", "/ticket snippet", "/ticket snippet add hi Hello there"],
)
async def test_customers_get_the_usual_refusal_and_nothing_changes(h: Harness, command: str):
    await opened(h)
    before = h.store.snapshot()
    out = await h.run(DANA, command)
    message = only(out)
    assert isinstance(message, CustomerMessage) and message.audience == ToCustomer(DANA.person)
    assert message.text == not_a_customer_command("Dana Scully")
    assert h.store.snapshot() == before


# --- listing --------------------------------------------------------------------------------------


async def test_snippet_alone_lists_the_names_with_a_glimpse_of_each(h: Harness):
    await h.run(BEN, "/ticket snippet add on-its-way Your replacement is on its way, {customer_name}.")
    text = private_to(await h.run(ANA, "/ticket snippet"), ANA)
    lines = text.splitlines()
    assert lines[0] == "Snippets (4); send one with /ticket snippet #<id> <name>:"
    assert [line.split(":")[0].strip() for line in lines[1:-1]] == sorted([*POLICY_NAMES, "on-its-way"])
    assert "  on-its-way: Your replacement is on its way, {customer_name}." in lines
    assert lines[-1] == f"Save a new one with {SNIPPET_ADD_USAGE}."


async def test_no_snippets_at_all():
    h = build_desk(policy=with_snippets())
    assert private_to(await h.run(ANA, "/ticket snippet"), ANA).startswith("No snippets yet.")


async def test_snippet_names_for_autocomplete_are_for_agents_only(h: Harness):
    await h.run(ANA, "/ticket snippet add a-new-one Hello {customer_name}")
    assert await h.desk.snippet_names(BEN) == sorted([*POLICY_NAMES, "a-new-one"])
    assert await h.desk.snippet_names(DANA) == []


# --- adding ---------------------------------------------------------------------------------------


async def test_an_agent_adds_a_snippet_and_anyone_can_send_it(h: Harness):
    h.clock.advance(timedelta(minutes=5))
    out = await h.run(
        ANA, "/ticket snippet add On-Its-Way  Good news, {customer_name}: {ticket} has shipped."
    )
    assert private_to(out, ANA) == (
        "Saved the snippet 'on-its-way'. Send it with /ticket snippet #<id> on-its-way"
    )
    assert h.store.snippet("on-its-way") == StoredSnippet(
        "on-its-way",
        "Good news, {customer_name}: {ticket} has shipped.",
        "Ana Lima",
        START.replace(minute=5),
        1,
    )

    await opened(h)
    said = to_customer(await h.run(BEN, "/ticket snippet #1 on-its-way"))
    assert said.text == "Ben: Good news, Dana: #1 has shipped."
    assert h.store.entries_for(1)[-1].kind is EntryKind.REPLY


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        (
            "/ticket snippet add more-details Send us your order number.",
            "There's already a snippet called 'more-details' in the policy file. Please pick another name "
            "(/ticket snippet lists them all).",
        ),
        (
            "/ticket snippet add thanks Thank you, {name}!",
            "I can't save the snippet 'thanks': {name} is not a variable I can fill (the variables are "
            f"{{customer_name}}, {{agent_name}}, {{ticket}}). Usage: {SNIPPET_ADD_USAGE}",
        ),
        (
            "/ticket snippet add thanks Thank you {customer_name",
            "I can't save the snippet 'thanks': a brace has no partner",
        ),
        ("/ticket snippet add thanks Hi {ticket!r}", "{ticket!r} is not a variable I can fill"),
        ("/ticket snippet add thanks Hi {}", "{} is not a variable I can fill"),
    ],
)
async def test_adding_a_snippet_that_cannot_be_used_is_refused(h: Harness, command: str, answer: str):
    before = h.store.snapshot()
    assert answer in private_to(await h.run(ANA, command), ANA)
    assert h.store.snapshot() == before


async def test_a_name_already_saved_is_refused_naming_who_saved_it(h: Harness):
    await h.run(BEN, "/ticket snippet add on-its-way It has shipped.")
    before = h.store.snapshot()
    text = private_to(await h.run(ANA, "/ticket snippet add on-its-way Shipped!"), ANA)
    assert text == (
        "Ben already saved a snippet called 'on-its-way'. Please pick another name "
        "(/ticket snippet lists them all)."
    )
    assert h.store.snapshot() == before


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        (AddSnippet("Bad Name", "hi"), "'bad name' can't be a snippet's name: use up to 40 lower-case"),
        (AddSnippet("add", "hi"), "'add' can't be a snippet's name: 'add' is kept for saving snippets."),
        (AddSnippet("x" * 41, "hi"), "'xxxxxxx"),
        (AddSnippet("fine", " \n "), "I can't save the snippet 'fine': the text is empty."),
    ],
)
async def test_commands_from_elsewhere_are_checked_too(h: Harness, command: AddSnippet, answer: str):
    """Adapters may hand the desk a command without the grammar: the desk checks names and texts itself."""
    text = private_to(await h.desk.execute(ANA, command), ANA)
    assert text.startswith(answer)
    assert SNIPPET_ADD_USAGE in text
    assert not h.store.snippets


async def test_two_agents_saving_one_name_at_once_one_wins_and_the_other_is_told(h: Harness):
    ana, ben = await asyncio.gather(
        h.desk.execute(ANA, AddSnippet("on-its-way", "From Ana")),
        h.desk.execute(BEN, AddSnippet("on-its-way", "From Ben")),
    )
    [saved] = h.store.snippets.values()
    winner, loser, lost = (ANA, BEN, ben) if saved.created_by == "Ana Lima" else (BEN, ANA, ana)
    assert private_to(lost, loser).startswith(
        f"{saved.created_by} already saved a snippet called 'on-its-way'"
    )
    assert saved.text == f"From {winner.person.display_name.split()[0]}"


async def test_the_fake_refuses_a_duplicate_name_as_sql_does(h: Harness):
    async with h.store.uow() as uow:
        await uow.snippets.add(StoredSnippet("one", "text", "Ana", START))
        with pytest.raises(Conflict):
            await uow.snippets.add(StoredSnippet("one", "other", "Ben", START))


# --- the policy file ------------------------------------------------------------------------------


def _policy_file(tmp_path: Path, snippets: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(
        'default_queue = "general"\ninternal_queue = "general"\n'
        '[[queues]]\nname = "general"\nlabel = "support team"\n'
        f"[snippets]\n{snippets}\n",
        "utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('hello = "Hi {customer}!"', "snippets.hello: {customer} is not a variable I can fill"),
        ('hello = "   "', "snippets.hello: the text is empty"),
        ('hello = "Hi {customer_name"', "snippets.hello: a brace has no partner"),
        ('hello = "{ticket:>9}"', "snippets.hello: {ticket:>9} is not a variable I can fill"),
        ('"Hello There" = "Hi"', "snippets.Hello There: not a snippet name I can use: use up to 40"),
        ('add = "Hi"', "snippets.add: not a snippet name I can use: 'add' is kept for saving snippets"),
    ],
)
def test_a_bad_snippet_in_the_policy_is_reported_with_its_key(tmp_path: Path, line: str, error: str):
    with pytest.raises(PolicyError) as caught:
        load_policy(_policy_file(tmp_path, line))
    assert f"\n  {error}" in str(caught.value)


def test_good_snippets_load(tmp_path: Path):
    policy = load_policy(_policy_file(tmp_path, 'hi = "  Hi {customer_name}, {agent_name} on {ticket}.  "'))
    assert policy.snippets == {"hi": "Hi {customer_name}, {agent_name} on {ticket}."}


def test_the_default_snippets_are_warm_and_free_of_internal_words():
    snippets = load_policy().snippets
    assert sorted(snippets) == POLICY_NAMES
    for name, text in snippets.items():
        assert "{customer_name}" in text, name
        for word in ("SLA", "queue", "ticket ", "escalat", "policy", "unfortunately", "your fault"):
            assert word.lower() not in text.lower(), (name, word)


# --- grammar --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("/ticket snippet", ListSnippets()),
        ("/ticket snippet   ", ListSnippets()),
        ("/ticket snippet #12 looking-into-it", Snippet(12, "looking-into-it")),
        ("/ticket snippet 12 Looking-Into-It", Snippet(12, "looking-into-it")),
        ("/ticket snippet more-details", Snippet(None, "more-details")),
        ("/ticket snippet 2fa-help", Snippet(None, "2fa-help")),
        ("/ticket snippet #3 add", Snippet(3, "add")),
        (
            "/ticket snippet add greet Hello {customer_name}!\nSee you.",
            AddSnippet("greet", "Hello {customer_name}!\nSee you."),
        ),
        ("/TICKET Snippet ADD Greet  hi there ", AddSnippet("greet", "hi there")),
    ],
)
def test_snippet_commands_parse(text: str, command: object):
    assert parse(text) == command


@pytest.mark.parametrize(
    ("text", "message", "usage"),
    [
        (
            "/ticket snippet #12",
            "Which snippet? /ticket snippet on its own lists them.",
            VERBS["snippet"].usage,
        ),
        ("/ticket snippet #12 sorry now", "I didn't expect 'now' there.", VERBS["snippet"].usage),
        ("/ticket snippet add", "What should the new snippet be called", SNIPPET_ADD_USAGE),
        ("/ticket snippet add greet", "What should the snippet 'greet' say?", SNIPPET_ADD_USAGE),
        (
            "/ticket snippet add greet!! hi",
            "'greet!!' can't be a snippet's name: use up to 40",
            SNIPPET_ADD_USAGE,
        ),
        ("/ticket snippet add add hi", "'add' can't be a snippet's name: 'add' is kept", SNIPPET_ADD_USAGE),
    ],
)
def test_malformed_snippet_commands_get_a_polite_error_with_the_usage(text: str, message: str, usage: str):
    with pytest.raises(ParseError) as caught:
        parse(text)
    assert caught.value.message.startswith(message)
    assert caught.value.usage == usage


def test_help_shows_snippets():
    assert "/ticket snippet [#id] <name>: send a saved reply" in help_text()
    assert SNIPPET_ADD_USAGE in help_text("snippet")


async def test_a_malformed_snippet_command_reaches_the_agent_with_the_usage(h: Harness):
    text = private_to(await h.run(ANA, "/ticket snippet add greet"), ANA)
    assert text == f"What should the snippet 'greet' say?\nUsage: {SNIPPET_ADD_USAGE}"


# --- storage, on SQLite and PostgreSQL ------------------------------------------------------------


async def test_snippets_round_trip_through_the_database(uow_factory: Callable[[], SqlUnitOfWork]):
    async with uow_factory() as uow:
        saved = await uow.snippets.add(StoredSnippet("on_its-way", "Hi {customer_name}\n✓", "Ana", START))
        await uow.snippets.add(StoredSnippet("on-its-way", "Other", "Ben", START))
        await uow.commit()
    assert saved.id is not None

    async with uow_factory() as uow:
        found = await uow.snippets.get("on_its-way")
        assert found == StoredSnippet("on_its-way", "Hi {customer_name}\n✓", "Ana", START, saved.id)
        assert found.created_at.utcoffset() is not None
        assert await uow.snippets.get("missing") is None
        assert await uow.snippets.names() == ["on-its-way", "on_its-way"]

    async with uow_factory() as uow:
        with pytest.raises(Conflict):
            await uow.snippets.add(StoredSnippet("on-its-way", "Again", "Ana", START))


# --- the console, end to end ----------------------------------------------------------------------

RELAYDESK = str(Path(sys.executable).parent / "relaydesk")
PREFIX = re.compile(r"^\[(to \S+|agents|private \S+|console)\] ")


def console(script: str, workdir: Path) -> list[str]:
    """Run the real `relaydesk console` with a clean environment rooted in `workdir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYDESK_", "DATABASE_URL"))}
    result = subprocess.run(
        [RELAYDESK, "console"],
        input=script,
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    for line in lines:
        assert PREFIX.match(line), f"line without an audience prefix: {line!r}"
    return lines


def said_to(lines: list[str], prefix: str) -> str:
    return "\n".join(line for line in lines if line.startswith(f"[{prefix}]"))


def test_snippets_in_the_console(tmp_path: Path) -> None:
    script = """\
dana: Hi, my order A-1234 never arrived.
ana: /ticket snippet #1 looking-into-it
ana: /ticket snippet add on-its-way Good news, {customer_name}: the replacement for {ticket} is on its way.
ben: /ticket snippet #1 on-its-way
ben: /ticket snippet #1 nope
dana: /ticket snippet #1 on-its-way
"""
    lines = console(script, tmp_path)
    to_dana = said_to(lines, "to dana")
    assert "[to dana] Ana: Thanks for bearing with me, Dana. I'm looking into this for you now" in to_dana
    assert "right here on #1 as soon as I know more." in to_dana
    assert "[to dana] Ben: Good news, Dana: the replacement for #1 is on its way." in to_dana
    assert "{" not in to_dana
    assert "#1 claimed by Ana." in said_to(lines, "agents")
    assert "Saved the snippet 'on-its-way'." in said_to(lines, "private ana")
    assert "There's no snippet called 'nope'. Snippets: looking-into-it" in said_to(lines, "private ben")
    assert "Sorry Dana, I didn't catch that." in to_dana

    # Saved snippets outlive the process.
    lines = console("ben: /ticket snippet\n", tmp_path)
    listed = said_to(lines, "private ben")
    assert "Snippets (4)" in listed
    assert "[private ben]   on-its-way: Good news, {customer_name}: the replacement for {ticket}" in listed
