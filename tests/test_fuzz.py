"""Hostile text, fuzzed: the grammar, commands from every role, and customer intake.

Huge texts, control characters, right-to-left text, emoji and ZWJ sequences, mass mentions of every
platform, Markdown and Block Kit look-alikes, SQL look-alikes and broken surrogates, mixed with pieces of
real commands. The properties:

(a) `grammar.parse` returns a command or raises `ParseError`, nothing else;
(b) `Desk.command` never raises and always answers; what does not parse, or is not for the person's role,
    gets one short, polite answer to that person only and changes nothing;
(c) `Desk.receive` of a customer's message never raises; what is stored is exactly `clean(text)`, the
    subject is one short, clean line, and the agents see the message as written (mentions defused);
(d) nothing the desk says contains a live mass mention (@everyone, @here, <!channel>, a role...).

The bulk runs over the in-memory fakes; a smaller run compares SQLite and PostgreSQL with the fakes, so
SQL-looking and NUL-containing text round-trips on both. `EXAMPLES` keeps the fast part quick; the
`long` variants try `LONG_EXAMPLES` each (times RELAYDESK_TEST_SCALE; `-m "not long"` skips them).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Sequence

import pytest
from fakes import START, Harness, agent, build_desk, colleague, customer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.clock import FakeClock
from bot.commands import Actor, Command, Help, IncomingMessage, Note, Reply, Request
from bot.desk import Desk
from bot.domain import EntryKind
from bot.grammar import VERBS, ParseError, parse
from bot.messages import (
    Conversation,
    CustomerMessage,
    InternalText,
    Outgoing,
    StaffKind,
    StaffMessage,
    ToAgent,
    ToAgents,
    ToCustomer,
    is_private_answer,
)
from bot.policy import load_policy
from bot.ports import UnitOfWork
from bot.text import clean, defuse_mentions
from bot.voice import customer_help, not_a_customer_command

SCALE = int(os.environ.get("RELAYDESK_TEST_SCALE", "1"))
"""How much larger the long part runs (1 in CI)."""
EXAMPLES = 40
"""Examples per property in the default run (over the fakes): a few seconds each."""
SQL_EXAMPLES = 12
"""Examples per backend for the SQL round trip."""
LONG_EXAMPLES = 150 * SCALE
"""Examples per property in the long part."""
LONG_SQL_EXAMPLES = 20 * SCALE
HUGE = 50_000
"""How long a huge text is, in characters."""
ANSWER_LIMIT = 600
"""The longest a refusal may be (the full help list aside): it echoes a bit of the input, never all."""

DANA = customer("Dana Scully")
EVE = customer("Eve Moss")
CARL = colleague("Carl Jung")
BEN = agent("Ben Okafor")
LEAD = agent("Ana Lead", user_id="ana")  # the packaged policy's lead of the general queue
ROLES = {"customer": DANA, "colleague": CARL, "agent": BEN, "lead": LEAD}
THREAD = Conversation("slack", "C-help", "T-dana")
"""Ticket #1's customer conversation."""

POLICY = load_policy()

LIVE_MENTION = re.compile(
    r"@(everyone|here|channel)|<!(channel|here|everyone)(\|[^>]*)?>|<!subteam\^[^>]*>|<@&\d+>",
    re.IGNORECASE,
)
"""A mass mention Slack or Discord would act on. A fragment cut short by an ellipsis
(`<!everyone|ever…`) is inert: without its closing `>` nothing can complete it."""

INTERNALS = re.compile(r"Traceback|Exception|Error\b|NoneType|object at 0x|sys\.\w+|\bint\(|\bstr\(")
"""Python's own words, which a person must never be answered with."""


# --- hostile text ---------------------------------------------------------------------------------

MENTIONS = [
    "@everyone",
    "@here",
    "@channel",
    "@EveryOne",
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!here|here>",
    "<!channel|@channel>",
    "<!subteam^S123|@devs>",
    "<@U123>",
    "<@Udana>",
    "<@!123>",
    "<@&123>",
    "@",
    "<!",
    ">",
]
CONTROLS = ["\x00", "\x1b[31m", "\x1b", "\r", "\r\n", "\n", "\t", "\x0b", "\x0c", "\x7f", "\x85", "\x9b"]
SEPARATORS = ["\u2028", "\u2029", "\u00a0", "\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u3000"]
RIGHT_TO_LEFT = [
    "\u202e",
    "\u202d",
    "\u202a",
    "\u2066",
    "\u2069",
    "\u200f",
    "مرحبا، طلبي لم يصل",
    "שלום, ההזמנה",
]
EMOJI = [
    "👍",
    "🙏",
    "👩\u200d👩\u200d👧\u200d👦",
    "🏳️\u200d🌈",
    "👋🏽",
    "\U0001f1e9\U0001f1ea",
    "❤️",
    "★★★★",
    "\U000e0067",
    "\U0010ffff",
]
MARKUP = [
    "```",
    "`code`",
    "*bold*",
    "_italic_",
    "~strike~",
    "> quote",
    "||spoiler||",
    "[click](https://evil.example)",
    "<https://evil.example|click>",
    "<https://evil.example|https://bank.example>",
    '{"type":"section","text":{"type":"mrkdwn","text":"<!channel>"}}',
    '[{"type":"divider"}]',
    '"},{"type":"actions","elements":[{"type":"button"}]}',
    "{customer_name}",
    "{{",
    "%s",
    "%(x)s",
    "{0!r}",
]
SQL = [
    "'; DROP TABLE tickets; --",
    '" OR 1=1 --',
    "' OR ''='",
    "%",
    "_",
    "\\",
    "\\x00",
    "$1",
    "?",
    ":name",
    "NULL",
    "E'\\\\'",
    "$$; DELETE FROM entries; $$",
]
COMMAND_WORDS = [
    "/ticket",
    "/request",
    "ticket",
    "/",
    "//ticket",
    *VERBS,
    "#1",
    "#2",
    "#",
    "1",
    "2",
    "#999999999",
    "1234567890",
    "@ben",
    "<@Uben>",
    "<@Udana>",
    "<@Ueve>",
    "@nobody",
    "slack:Udana",
    "discord:4711",
    "billing",
    "general",
    "nowhere",
    "high",
    "URGENT",
    "2h",
    "1d",
    "8d",
    "forever",
    "today",
    "tomorrow",
    "16:00",
    "note",
    "add",
    "email",
    "timezone",
    "looking-into-it",
    "#١٢",
    "٣",
]
FRAGMENTS = MENTIONS + CONTROLS + SEPARATORS + RIGHT_TO_LEFT + EMOJI + MARKUP + SQL + COMMAND_WORDS

surrogates = st.characters(categories=["Cs"])
pieces = st.one_of(
    st.sampled_from(FRAGMENTS), st.text(max_size=6), surrogates, st.sampled_from([" ", "  ", "\n"])
)
mixed = st.lists(pieces, max_size=14).map("".join)
huge = st.builds(
    lambda chunk, padding: (
        ((chunk or "x") * (HUGE // max(len(chunk), 1) + 1))[: HUGE - len(padding)] + padding
    ),
    st.lists(pieces, min_size=1, max_size=5).map("".join),
    st.sampled_from(["", " @everyone", " <!here>", "\x00"]),
)
texts = st.one_of(st.text(), mixed, mixed, huge)
"""Anything a person could send."""

prefixes = st.sampled_from(
    [
        "",
        "/ticket ",
        "/request ",
        "/",
        *(f"/ticket {verb} " for verb in VERBS),
        *(f"/ticket {verb} #1 " for verb in VERBS),
        *(f"/ticket {verb} <@Udana> " for verb in ("block", "unblock", "customer", "link")),
        "/ticket snippet add ",
        "/ticket profile #1 note ",
        "/ticket promise #1 2h ",
    ]
)
commands = st.one_of(texts, st.tuples(prefixes, texts).map("".join))
"""Anything typed as a command: mostly a real verb, then anything."""

names = st.one_of(st.just("Dana Scully"), mixed.map(lambda s: s[:120]), st.text(max_size=30))
"""Display names, as platforms hand them over."""


def fuzz(examples: int, *, sql: bool = False) -> Callable[[Callable[..., object]], Callable[..., object]]:
    checks = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
    if sql:
        checks.append(HealthCheck.function_scoped_fixture)  # one database for all examples, on purpose
    return settings(max_examples=examples, deadline=None, suppress_health_check=checks)


def longer(test: Callable[..., object]) -> Callable[..., object]:
    return pytest.mark.long(test)


# --- what every answer must be --------------------------------------------------------------------


def said(message: Outgoing) -> list[str]:
    """Every piece of text a message shows: its text, and a card's fields."""
    shown = [message.text]
    if isinstance(message, StaffMessage) and message.card is not None:
        card = message.card
        shown += [card.subject, card.customer_name, card.assignee_name or ""]
    return shown


def assert_no_live_mentions(out: Sequence[Outgoing]) -> None:
    for message in out:
        for text in said(message):
            assert not LIVE_MENTION.search(text), (LIVE_MENTION.search(text), message)


def assert_polite(text: str, typed: str) -> None:
    """A refusal: something to read, in our words, with a bit of what was typed at most."""
    assert text.strip()
    internal = INTERNALS.search(text)
    assert internal is None or internal.group(0) in typed, text
    if not text.startswith(("Which ticket command? Here is the list.", "Ticket commands (")):
        assert len(text) <= ANSWER_LIMIT, text[:300]


def assert_addressed_sensibly(h: Harness, actor: Actor, out: Sequence[Outgoing]) -> None:
    """To the actor, the agents' channel, a known agent, or a ticket's own customer: nobody else."""
    agents = {a.external_id for a in h.store.agents.values()}
    for message in out:
        audience = message.audience
        if isinstance(message, StaffMessage):
            assert isinstance(audience, ToAgents) or (
                isinstance(audience, ToAgent) and audience.person.user_id in agents
            ), message
            continue
        assert isinstance(message, CustomerMessage) and isinstance(audience, ToCustomer)
        if audience.ticket_number is None:
            assert audience.person.user_id == actor.person.user_id, message
        else:
            ticket = h.store.ticket(audience.ticket_number)
            assert audience.person.user_id == ticket.customer_user_id, message


def assert_single_private_answer(actor: Actor, out: Sequence[Outgoing], typed: str) -> str:
    assert len(out) == 1, out
    [message] = out
    assert is_private_answer(message, actor.person), message
    if actor.is_agent:
        assert isinstance(message, StaffMessage) and message.kind is StaffKind.INFO
    else:
        assert isinstance(message, CustomerMessage) and message.audience == ToCustomer(actor.person)
    assert_polite(message.text, typed)
    return message.text


# --- (a) the grammar ------------------------------------------------------------------------------


def check_parse(text: str) -> None:
    try:
        command = parse(text)
    except ParseError as error:
        assert error.message.strip()
        assert error.usage is None or error.usage.startswith("/")
        assert_polite(str(error), text)
        return
    assert isinstance(command, Command)


@fuzz(EXAMPLES * 5)
@given(commands)
@example("/ticket " + "x" * HUGE)
@example("/ticket reply #1 " + "@everyone " * 5000)
@example("/ticket stats " + "1" * 4000 + "h")
@example("\x00/ticket\x00claim\x00#1")
@example("/ticket\u2028claim\u2028#1")
@example("/ticket transfer #1 <@&123>")
@example("/ticket block <@Udana> forever")
def test_parse_returns_a_command_or_a_polite_parse_error(text: str):
    check_parse(text)


@longer
@fuzz(LONG_EXAMPLES * 5)
@given(commands)
def test_parse_returns_a_command_or_a_polite_parse_error_long(text: str):
    check_parse(text)


# --- (b) commands, from every role ----------------------------------------------------------------


async def scene() -> Harness:
    """Dana's ticket #1 in a thread and Eve's #2 in her DM; agents known; a clock that stands still."""
    h = build_desk(policy=POLICY)
    await h.desk.register_agents([BEN.person, LEAD.person])
    await h.write(DANA, "My order A-1234 never arrived", THREAD)
    await h.write(EVE, "I was charged twice")
    return h


WHERE = {"anywhere": None, "thread": THREAD, "dm": Conversation("slack", "D-someone")}


async def check_command(role: str, where: str, text: str) -> None:
    h = await scene()
    actor = ROLES[role]
    before = h.store.snapshot()

    out = await h.run(actor, text, WHERE[where])

    assert out, "every command gets an answer"
    assert_no_live_mentions(out)
    assert_addressed_sensibly(h, actor, out)
    try:
        command = parse(clean(text))
    except ParseError:
        command = None
    if command is None or (not actor.is_agent and not isinstance(command, Request | Help)):
        answer = assert_single_private_answer(actor, out, text)
        assert h.store.snapshot() == before, "a refused command changed nothing"
        if not actor.is_agent:
            assert answer == not_a_customer_command(actor.person.display_name)
    elif isinstance(command, Help):
        answer = assert_single_private_answer(actor, out, text)
        if actor.is_agent:
            assert "/ticket claim" in answer
        else:
            assert answer == customer_help()
    if h.store.snapshot() == before:
        # Nothing was done: then nothing was said to anyone but the actor.
        assert all(is_private_answer(m, actor.person) for m in out), out


@fuzz(EXAMPLES * 2)
@given(st.sampled_from(sorted(ROLES)), st.sampled_from(sorted(WHERE)), commands)
@example("agent", "thread", "/ticket reply " + "<!channel> " * 5000)
@example("lead", "anywhere", "/ticket note #1 '; DROP TABLE tickets; --\x00")
@example("customer", "thread", "/ticket resolve @everyone")
@example("colleague", "dm", "/request <!here> " + "\u202e" * 100)
async def test_every_command_from_every_role_is_answered_and_never_raises(role: str, where: str, text: str):
    await check_command(role, where, text)


@longer
@fuzz(LONG_EXAMPLES)
@given(st.sampled_from(sorted(ROLES)), st.sampled_from(sorted(WHERE)), commands)
async def test_every_command_from_every_role_is_answered_and_never_raises_long(
    role: str, where: str, text: str
):
    await check_command(role, where, text)


# --- (c) intake -----------------------------------------------------------------------------------

LINE_BREAKS = re.compile(r"[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def assert_sane_name(name: str) -> None:
    assert name.strip(), "a name to show"
    assert len(name) <= 80
    assert clean(name) == name, "no control characters"
    assert name == " ".join(name.split()), "one line, single spaces"


def assert_sane_subject(subject: str, text: str) -> None:
    limit = POLICY.intake.subject_length
    assert subject.strip() and len(subject) <= limit
    assert clean(subject) == subject and not LINE_BREAKS.search(subject)
    assert subject == " ".join(subject.split()), "one line, single spaces"
    start = subject.removesuffix("…").rstrip()
    assert start in " ".join(text.split()), "the subject comes from the message"


async def check_intake(text: str, name: str, existing: bool, who: str) -> None:
    h = build_desk(policy=POLICY)
    actor = customer(name, user_id="Uwriter") if who == "customer" else colleague(name, user_id="Uwriter")
    where = Conversation("slack", "D-Uwriter")
    if existing:
        await h.desk.receive(IncomingMessage(actor, "My order never arrived", where, "m-0"))
    before = h.store.snapshot()

    out = await h.desk.receive(IncomingMessage(actor, text, where, "m-1"))

    assert_no_live_mentions(out)
    assert_addressed_sensibly(h, actor, out)
    stored = clean(text)
    if not stored.strip():
        assert out == [] and h.store.snapshot() == before, "an empty message is not taken"
        return
    [ticket] = h.store.tickets.values()
    said_by_them = [e for e in h.store.entries_for(1) if e.kind is EntryKind.CUSTOMER]
    last = said_by_them[-1]
    assert last.body == stored, "stored exactly as cleaned"
    assert (last.external_id, last.platform) == ("m-1", "slack")
    assert len(said_by_them) == 1 + existing
    assert_sane_name(last.author_name)
    assert_sane_name(h.store.customers[ticket.customer_id].display_name)
    if existing:
        assert ticket.subject == "My order never arrived"
        [relay] = [m for m in out if isinstance(m, StaffMessage) and m.kind is StaffKind.RELAY]
        assert relay.parts[-1] == defuse_mentions(stored), "the agents read what was written"
    else:
        assert_sane_subject(ticket.subject, stored)
        assert any(isinstance(m, CustomerMessage) and "#1" in m.text for m in out), "they hear their number"
        [card] = [m for m in out if isinstance(m, StaffMessage) and m.kind is StaffKind.CARD]
        assert card.card is not None and card.card.subject == defuse_mentions(ticket.subject)


@fuzz(EXAMPLES * 2)
@given(texts, names, st.booleans(), st.sampled_from(["customer", "colleague"]))
@example("'; DROP TABLE tickets; --\x00", "Robert'); DROP TABLE customers;--", False, "customer")
@example("\u202e\u2028\u200b", "\u202e", True, "customer")
@example("@everyone <!here> <!channel> <!everyone> <@&123>", "@here", False, "colleague")
@example("x" * HUGE, "x" * 500, False, "customer")
@example("\r\n\r\n\x00\x1b", "\x00", False, "customer")
async def test_a_customers_message_is_stored_as_cleaned_with_a_sane_subject(
    text: str, name: str, existing: bool, who: str
):
    await check_intake(text, name, existing, who)


@longer
@fuzz(LONG_EXAMPLES)
@given(texts, names, st.booleans(), st.sampled_from(["customer", "colleague"]))
async def test_a_customers_message_is_stored_as_cleaned_with_a_sane_subject_long(
    text: str, name: str, existing: bool, who: str
):
    await check_intake(text, name, existing, who)


# --- the same on SQLite and PostgreSQL ------------------------------------------------------------

_writers = itertools.count(1)
SQL_TEXTS = st.one_of(mixed, st.sampled_from([*SQL, "nul\x00byte", "\x00", "a\x00'; DROP TABLE entries; --"]))
"""Smaller than the fakes' texts: each example is a few round trips to a real database."""


async def story(desk: Desk, writer: int, text: str, name: str) -> int | None:
    """Customer number `writer` writes `text`; an agent replies and notes it. The ticket's number, if
    one opened."""
    actor = customer(name, user_id=f"Uw{writer}")
    where = Conversation("slack", f"D-w{writer}")
    out = await desk.receive(IncomingMessage(actor, text, where, f"m-{writer}"))
    numbers = [m.audience.ticket_number for m in out if isinstance(m, CustomerMessage)]
    if not numbers or numbers[0] is None:
        return None
    await desk.execute(BEN, Reply(numbers[0], text))
    await desk.execute(BEN, Note(numbers[0], text))
    return numbers[0]


Stored = tuple[str, str, list[tuple[EntryKind, str, str | InternalText]]]


async def what_was_stored(uow_factory: Callable[[], UnitOfWork], number: int) -> Stored:
    """The customer's name, the subject, and who said what (the bot's own words aside)."""
    async with uow_factory() as uow:
        ticket = await uow.tickets.get(number)
        assert ticket is not None
        entries = await uow.entries.for_ticket(number)
        customer_row = await uow.customers.get(ticket.customer_id)
    assert customer_row is not None
    said = [(e.kind, e.author_name, e.body) for e in entries if e.kind is not EntryKind.BOT]
    return customer_row.display_name, ticket.subject, said


async def check_sql(uow_factory: Callable[[], UnitOfWork], text: str, name: str) -> None:
    sql = Desk(uow_factory, FakeClock(START), POLICY)
    fake = build_desk(policy=POLICY)
    await sql.register_agents([BEN.person])
    await fake.desk.register_agents([BEN.person])

    writer = next(_writers)  # a new customer on the shared database each time
    on_sql = await story(sql, writer, text, name)
    on_fakes = await story(fake.desk, writer, text, name)

    assert (on_sql is None) == (on_fakes is None) == (not clean(text).strip())
    if on_sql is None or on_fakes is None:
        return
    stored = await what_was_stored(uow_factory, on_sql)
    expected = await what_was_stored(fake.store.uow, on_fakes)
    assert stored == expected, "SQL stores what the fakes store"
    name_stored, subject, said = stored
    assert_sane_name(name_stored)
    assert_sane_subject(subject, clean(text))
    by_kind = {kind: [body for k, _, body in said if k is kind] for kind in EntryKind}
    assert by_kind[EntryKind.CUSTOMER] == by_kind[EntryKind.REPLY] == [clean(text)]
    assert by_kind[EntryKind.NOTE] == [InternalText(clean(text))]


@fuzz(SQL_EXAMPLES, sql=True)
@given(SQL_TEXTS, names.map(lambda s: s[:60]))
@example("'; DROP TABLE tickets; --", "Robert'); DROP TABLE customers;--")
@example("nul\x00byte and \x00\x00 more", "\x00Dana\x00")
@example("\ud83d lone surrogate \udc00", "\udc00")
async def test_hostile_text_round_trips_on_sql_as_on_the_fakes(
    uow_factory: Callable[[], UnitOfWork], text: str, name: str
):
    await check_sql(uow_factory, text, name)


@longer
@fuzz(LONG_SQL_EXAMPLES, sql=True)
@given(SQL_TEXTS, names.map(lambda s: s[:60]))
async def test_hostile_text_round_trips_on_sql_as_on_the_fakes_long(
    uow_factory: Callable[[], UnitOfWork], text: str, name: str
):
    await check_sql(uow_factory, text, name)


# --- bugs the fuzzing found -----------------------------------------------------------------------


async def agent_answer(text: str) -> str:
    h = await scene()
    before = h.store.snapshot()
    out = await h.run(BEN, text)
    assert h.store.snapshot() == before
    [message] = out
    assert is_private_answer(message, BEN.person)
    return message.text


async def test_an_unknown_command_echoes_only_a_bit_of_its_name():
    answer = await agent_answer("/" + "x" * HUGE)
    assert answer.startswith("I don't know the command /x")
    assert len(answer) <= ANSWER_LIMIT


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("/ticket stats 1" + "x" * HUGE, id="stats-not-a-duration"),
        pytest.param("/ticket stats " + "1d" * 20_000, id="stats-more-than-ten-years"),
        pytest.param("/ticket block <@Udana> 1" + "x" * HUGE, id="block-not-a-duration"),
    ],
)
async def test_a_bad_duration_echoes_only_a_bit_of_it(text: str):
    answer = await agent_answer(text)
    assert "duration" in answer or "ten years" in answer
    assert len(answer) <= ANSWER_LIMIT


@pytest.mark.parametrize("command", ["/ticket stats", "/ticket block <@Udana>"])
async def test_a_duration_of_thousands_of_digits_gets_our_own_words(command: str):
    answer = await agent_answer(f"{command} {'9' * 5000}d")
    assert "int_max_str_digits" not in answer and "Exceeds the limit" not in answer
    assert "ten years" in answer or "not a duration" in answer


def test_the_fuzzed_fragments_cover_the_brief():
    """The hostile pieces this file promises are in the mix."""
    joined = "".join(FRAGMENTS)
    for needle in ["@everyone", "@here", "<!channel>", "<!here>", "<!everyone>", "<@U123>", "<@&123>"]:
        assert needle in joined
    for needle in ["\x00", "\x1b", "\r", "\u2028", "\u202e", "\u200d", "```", "*bold*", "<https://"]:
        assert needle in joined
    assert '{"type":"section"' in joined and "'; DROP TABLE tickets; --" in joined
