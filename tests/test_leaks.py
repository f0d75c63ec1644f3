"""Internal text never reaches a customer, and a customer never hears about someone else's ticket.

First the type-level guard (`InternalText` will not become a `str`, `CustomerMessage` takes only `str`),
then a stateful test (`LeakMachine`) that drives the desk with random sequences and checks every message
said: customers on Slack and Discord and a colleague write (alone, at once, in one shared thread, in a
flood), edit, delete, rate and type commands; agents use every verb of the grammar, in tickets' threads and
staff threads too; cards are posted, tickets move, people are blocked, accounts linked; time passes and the
due work runs (check-ins, surveys, digests, promise reminders, auto-resolve, closing).

After every call, for every message said:
  1. no internal text (notes, hold reasons, resolution summaries, transfer reasons, profile notes,
     incentives, staff-thread notes; all carry a SECRET word) is in any customer message;
  2. a customer message names no other customer: not their name, not their words (each carries its
     owner's marker), not their ticket's number;
  3. a customer message goes to the ticket's own customer, in the ticket's conversation, or privately to
     the person who acted; staff text (and files) goes to agents only.
Then the checks are shown to catch planted leaks, and the bugs the machine found are pinned down.
tests/test_leaks_long.py runs the machine much longer (pytest -m long).
"""

from __future__ import annotations

import asyncio
import copy
import pickle
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from fakes import FakeStore, Harness, Tables, agent, build_desk
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from bot import desk, voice
from bot.commands import Actor, IncomingMessage, Request
from bot.domain import (
    WORKABLE_STATUSES,
    CheckinState,
    Customer,
    EntryKind,
    Priority,
    PromiseState,
    Role,
    Status,
    Ticket,
)
from bot.grammar import VERBS
from bot.messages import (
    Conversation,
    CustomerMessage,
    InternalText,
    MessageRef,
    Outgoing,
    Person,
    StaffKind,
    StaffMessage,
    ToAgent,
    ToAgents,
    ToCustomer,
    staff,
)
from bot.policy import load_policy
from bot.work import Work, to_customer

T = TypeVar("T")

SOMEONE = Person("slack", "U1", "Dana Scully")

# --- the type-level guard -----------------------------------------------------------------------


def test_a_customer_message_refuses_internal_text():
    with pytest.raises(TypeError):
        CustomerMessage(ToCustomer(SOMEONE), InternalText("warehouse lost it"))  # type: ignore[arg-type]


@pytest.mark.parametrize("audience", [ToAgents(1), ToAgent(SOMEONE)])
def test_a_customer_message_refuses_a_staff_audience(audience: ToAgents | ToAgent):
    with pytest.raises(TypeError):
        CustomerMessage(audience, "hello")  # type: ignore[arg-type]


def test_a_staff_message_refuses_a_customer_audience():
    with pytest.raises(TypeError):
        StaffMessage(ToCustomer(SOMEONE), ("hello",))  # type: ignore[arg-type]


@pytest.mark.parametrize("part", [42, b"bytes", None, ["list"]])
def test_a_staff_message_refuses_parts_that_are_not_text(part: object):
    with pytest.raises(TypeError):
        StaffMessage(ToAgents(1), ("ok", part))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "turn_into_text",
    [
        pytest.param(str, id="str"),
        pytest.param(lambda t: f"{t}", id="f-string"),
        pytest.param(lambda t: f"note: {t!s}", id="f-string-!s"),
        pytest.param(lambda t: format(t), id="format"),
        pytest.param(lambda t: format(t, ">20"), id="format-spec"),
        pytest.param(lambda t: "{}".format(t), id="str.format"),  # noqa: UP032
        pytest.param(lambda t: "%s" % t, id="percent"),  # noqa: UP031
        pytest.param(lambda t: "note: " + t, id="concatenation"),
        pytest.param(lambda t: " ".join([t]), id="join"),
    ],
)
def test_internal_text_refuses_to_become_a_str(turn_into_text):
    with pytest.raises(TypeError):
        turn_into_text(InternalText("warehouse lost it"))


def test_internal_text_repr_hides_the_text():
    note = InternalText("warehouse lost it")
    assert "warehouse" not in repr(note)
    assert "warehouse" not in f"{note!r}"
    assert "warehouse" not in repr([note])


def test_internal_text_is_immutable():
    note = InternalText("warehouse lost it")
    with pytest.raises(AttributeError):
        note.hidden = "nothing"  # type: ignore[misc]


def test_a_staff_message_reveals_internal_text():
    message = staff(ToAgents(3, "slack"), "#3 note: ", InternalText("warehouse lost it"), kind=StaffKind.NOTE)
    assert message.text == "#3 note: warehouse lost it"
    assert message.parts[1] == InternalText("warehouse lost it")


def test_a_staff_message_defuses_mentions_inside_internal_text():
    message = StaffMessage(ToAgents(), (InternalText("ping @everyone and <!here>"),))
    assert "@everyone" not in message.text and "<!here>" not in message.text
    assert "everyone" in message.text


def test_a_customer_message_defuses_mentions():
    message = CustomerMessage(ToCustomer(SOMEONE), "hi @here <!channel> <@&99>")
    assert "@here" not in message.text
    assert "<!channel>" not in message.text
    assert "<@&99>" not in message.text


# --- random command sequences: who takes part ----------------------------------------------------------
#
# Parties are real people; a party may have several accounts (`Writer`s) on Slack and Discord, which the
# desk only knows to be one person once an agent links them or their verified emails match. Every text a
# party writes, and every text an agent writes for one party's ticket, carries a marker word made of the
# party's code and a serial number (CLEOMK12Q); every internal text carries a SECRET word. The checks
# below read every message the desk says against them.


@dataclass(frozen=True, repr=False)
class Writer:
    """One account of someone who writes to the desk as a customer (or a colleague)."""

    key: str
    party: str
    platform: str
    user_id: str
    names: tuple[str, ...]
    """Display names the platform may give (people rename themselves); the first is the usual one."""
    workspace: str | None
    role: Role = Role.CUSTOMER
    email: str | None = None

    def actor(self, name: str | None = None) -> Actor:
        return Actor(Person(self.platform, self.user_id, name or self.names[0], self.email), self.role)

    def __repr__(self) -> str:
        return f"BY_KEY[{self.key!r}]"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """How Hypothesis shows a writer in a failing sequence: short, and runnable here."""
        printer.text(repr(self))

    @property
    def ident(self) -> tuple[str, str]:
        return (self.platform, self.user_id)


CLEO_EMAIL = "cleo.quill@example.com"
WRITERS = (
    Writer("cleo", "cleo", "slack", "U-cleo", ("Cleo Quill",), "T1", email=CLEO_EMAIL),
    Writer("cleo-t2", "cleo", "slack", "W-cleo", ("Cleo Quill",), "T2", email=CLEO_EMAIL),
    Writer("cleo-d", "cleo", "discord", "7001", ("quillcat",), "G1"),
    Writer("dev", "dev", "slack", "U-dev", ("Dev Rao", "Devan Rao"), "T1"),
    Writer("eve", "eve", "discord", "7002", ("Eve Sato",), "G1"),
    Writer("gus", "gus", "slack", "U-gus", ("Gus Lind",), "T1", Role.COLLEAGUE),
)
BY_IDENT = {w.ident: w for w in WRITERS}
PAIRS = tuple((a, b) for a in WRITERS for b in WRITERS if a is not b)
BY_KEY = {w.key: w for w in WRITERS}
PARTIES = sorted({w.party for w in WRITERS})
CODES = {party: f"{party.upper()}MK" for party in PARTIES}
CODE_PARTY = {code: party for party, code in CODES.items()}
NAME_WORDS = {
    p: {word for w in WRITERS if w.party == p for n in w.names for word in n.split()} for p in PARTIES
}
NAMES = {p: {n for w in WRITERS if w.party == p for n in w.names} for p in PARTIES}

ANA = agent("Ana", "slack", "U-ana")
BEN = agent("Ben", "slack", "U-ben")
ANA_D = agent("Ana", "discord", "9001")
CAI = agent("Cai", "discord", "9002")
AGENTS = (ANA, BEN, ANA_D, CAI)
AGENT_KEYS = {(a.person.platform, a.person.user_id) for a in AGENTS}
STAFF_CHANNEL = {"slack": "C-agents", "discord": "agents-channel"}

PLACES = ("dm", "channel", "thread", "shared", "ticket")
TEXTS = (
    "{mk} My order never arrived",
    "I was charged twice for order {mk}",
    "This is unacceptable, I want a refund now {mk}",
    "The app crashes when I log in {mk}\nevery time",
    "Hello @everyone <!channel> {mk}",
    "thanks!",
    "thank you",
    "ok",
    "4",
    "1",
    "5 stars",
    "please reopen",
    "   ",
)
FIRST_TEXTS = TEXTS[:5]
DURATIONS = (
    *(timedelta(minutes=n) for n in (1, 10, 45)),
    *(timedelta(hours=n) for n in (2, 5, 13)),
    *(timedelta(days=n) for n in (1, 2, 3, 5, 8)),
)

ANSWERING = ("claim", "release", "reply", "transfer", "snippet", "promise", "kept")
STATUS_VERBS = ("pending", "hold", "resolve", "reopen", "priority")
RECORD_VERBS = ("note", "show", "profile", "incentive", "transcript")
TICKET_VERBS = ANSWERING + STATUS_VERBS + RECORD_VERBS
"""Verbs about one ticket (snippet: sending one)."""
DESK_VERBS = ("customer", "link", "block", "unblock", "stats", "queue", "mine", "help", "snippet")
"""Verbs about the desk or a customer (snippet: listing and saving)."""
FORMS = ("ref", "ref", "ref", "bare", "thread", "staff", "none")
"""How an agent names the ticket: `#N`, a bare `N`, by typing inside its customer thread or its staff
thread, or not at all."""
TRANSFER_TARGETS = (
    "@ana",
    "@ben",
    "@cai",
    "@U-ben",
    "@nobody",
    "general",
    "billing",
    "complaints",
    "internal",
)
PROFILE_ARGS = (
    "",
    "note {secret} prefers phone calls",
    "address {mk}",
    "address",
    "org {mk} Ltd",
    "tags vip {mk}",
    "email {mk}@example.com",
    "email not-an-email",
    "timezone Asia/Tokyo",
    "timezone Mars/Base",
    "kind internal",
    "kind external",
    "kind robot",
    "note",
)
BLOCK_FOR = ("", "30m", "2h", "3d", "", "30m", "30d", "forever", "0m", "soon")
"""Mostly what an agent may do; a month or forever takes a lead; the rest is no duration."""
PROMISE_WHEN = ("2h", "30m", "16:00", "tomorrow 10:00", "fri", "3d", "yesterday")
DUE_WORK = (
    "sla_warning",
    "sla_breach",
    "waiting_checkin",
    "waiting_reminder",
    "auto_resolve",
    "close_resolved",
    "weekly_report",
    "promise_reminder",
    "promise_overdue",
    "digest",
    "survey_expire",
)
"""The kinds of due work (bot/checkins.py), each of which says something or changes a ticket."""
SNIPPET_TEXTS = (
    "Hi {customer_name}, {agent_name} has {ticket} in hand and will write here soon.",
    "Broken {oops}",
)

_SECRET = re.compile(r"SECRET", re.IGNORECASE)
_SECRET_WORD = re.compile(r"SECRET\d+X")
_TOKEN = re.compile(r"(" + "|".join(CODES.values()) + r")(\d+Q)?", re.IGNORECASE)
_TICKET_REF = re.compile(r"#(\d+)")
_RAW_MENTION = re.compile(r"@(everyone|here|channel)\b|<!(channel|here|everyone)(\|[^>]*)?>|<@&\d+>")
_WORD = {p: re.compile(r"\b(" + "|".join(map(re.escape, sorted(NAME_WORDS[p]))) + r")\b") for p in PARTIES}

Owner = tuple[str, ...]
"""Whose a marker is: ("writer", key), ("ticket", number) or ("customer", id), resolved when checked."""

TALLY: Counter[str] = Counter()
"""What the machine did, over every run in this process: sequences, steps, and each verb's outcome."""


def place(writer: Writer, kind: str, k: int) -> Conversation:
    """A writer's DM, the public help channel, a thread of their own, or the thread everybody writes in."""
    if writer.platform == "slack":
        channel = "C-help" if writer.workspace == "T1" else "C-help-2"
        if kind == "dm":
            return Conversation("slack", f"D-{writer.user_id}", None, writer.workspace)
        if kind == "channel":
            return Conversation("slack", channel, None, writer.workspace)
        if kind == "thread":
            return Conversation("slack", channel, f"{writer.user_id}.{k}", writer.workspace)
        return Conversation("slack", channel, "shared.1", writer.workspace)
    if kind in ("dm", "channel"):
        return Conversation("discord", f"dm-{writer.user_id}")
    if kind == "thread":
        return Conversation("discord", f"pt-{writer.user_id}-{k}", f"pt-{writer.user_id}-{k}", "G1")
    return Conversation("discord", "pub-1", "pub-1", "G1")


def where_of(ticket: Ticket) -> Conversation:
    return Conversation(ticket.platform, ticket.channel_id, ticket.thread_id, ticket.workspace_id)


SHARED_THREADS = ("shared.1", "pub-1")


BURST = 4
POLICY = load_policy()
POLICY = POLICY.model_copy(update={"abuse": POLICY.abuse.model_copy(update={"burst_limit": BURST})})
"""The packaged policy, but more than 4 messages within a minute are a flood, so sequences reach it."""


class _Tables(dict[str, dict[int, Any]]):
    """A snapshot of the fake store that deep-copies itself by pickling: the same copy, several times
    faster (units of work copy the whole store when they start and commit)."""

    def __deepcopy__(self, memo: dict[int, object]) -> _Tables:
        return pickle.loads(pickle.dumps(self, pickle.HIGHEST_PROTOCOL))


class QuickStore(FakeStore):
    """The fake store with quick snapshots, so more sequences fit in the same time."""

    def snapshot(self) -> Tables:
        return copy.deepcopy(_Tables(self.tables()))


class LeakMachine(RuleBasedStateMachine):
    """Customers on Slack and Discord and colleagues write, edit, rate and type commands; agents use every
    verb; cards get staff threads; time passes and due work runs. Every message said is checked."""

    def __init__(self) -> None:
        super().__init__()
        TALLY["sequences"] += 1
        self.loop = asyncio.new_event_loop()
        self.h: Harness = build_desk(QuickStore(), policy=POLICY)
        self.loop.run_until_complete(self.h.desk.register_agents([a.person for a in AGENTS]))
        self.serial = 0
        self.owners: dict[str, Owner] = {}
        self.secrets: list[str] = []
        self.delivered: list[tuple[Writer, IncomingMessage]] = []
        self.snippets: list[str] = []
        self.started = False

    def teardown(self) -> None:
        self.loop.close()
        for checkin in self.store.checkins.values():  # which due work fired, for the long run's figures
            if checkin.state is CheckinState.DONE:
                TALLY[f"due:{checkin.kind}"] += 1

    # --- markers -----------------------------------------------------------------------------

    def secret(self) -> str:
        self.serial += 1
        word = f"SECRET{self.serial}X"
        self.secrets.append(word)
        return word

    def marker(self, party: str, owner: Owner) -> str:
        self.serial += 1
        word = f"{CODES[party]}{self.serial}Q"
        self.owners[word.lower()] = owner
        return word

    def writer_marker(self, writer: Writer) -> str:
        return self.marker(writer.party, ("writer", writer.key))

    def ticket_marker(self, ticket: Ticket | None, number: int) -> str:
        """A marker for what an agent says on a ticket: its customer's, or nobody's for a missing ticket."""
        if ticket is None:
            return self.marker(PARTIES[0], ("ticket", number))
        return self.marker(BY_IDENT[ticket.platform, ticket.customer_user_id].party, ("ticket", number))

    def customer_marker(self, ticket: Ticket | None) -> str:
        """A marker for a customer's profile field: the customer of the ticket, whoever they become."""
        if ticket is None:
            return self.marker(PARTIES[0], ("ticket", 0))
        party = BY_IDENT[ticket.platform, ticket.customer_user_id].party
        return self.marker(party, ("customer", str(ticket.customer_id)))

    def fill(self, template: str, writer: Writer | None = None, mk: str | None = None) -> str:
        mk = mk if mk is not None else (self.writer_marker(writer) if writer and "{mk}" in template else "")
        return template.replace("{mk}", mk).replace(
            "{secret}", self.secret() if "{secret}" in template else ""
        )

    # --- reading the store -------------------------------------------------------------------

    @property
    def store(self) -> FakeStore:
        return self.h.store

    def ticket_count(self) -> int:
        return len(self.store.tickets)

    def follow(self, customer_id: int) -> int:
        seen = set()
        while (merged := self.store.customers[customer_id].merged_into) is not None:
            assert customer_id not in seen, "a merge cycle"
            seen.add(customer_id)
            customer_id = merged
        return customer_id

    def customer_of(self, ident: tuple[str, str]) -> Customer | None:
        found = next(
            (i for i in self.store.identities.values() if (i.platform, i.external_id) == ident), None
        )
        return self.store.customers[self.follow(found.customer_id)] if found else None

    def resolve(self, owner: Owner) -> Owner:
        """Whose a marker (or a reader) is now: a customer record's id, after every merge."""
        kind = owner[0]
        if kind == "writer":
            found = self.customer_of(BY_KEY[owner[1]].ident)
            return ("customer", str(found.id)) if found else owner
        if kind == "ticket":
            ticket = self.store.tickets.get(int(owner[1]))
            return ("customer", str(self.follow(ticket.customer_id))) if ticket else ("nobody",)
        return ("customer", str(self.follow(int(owner[1]))))

    def whose(self, of: Writer | Ticket) -> Owner:
        if isinstance(of, Writer):
            return self.resolve(("writer", of.key))
        return self.resolve(("ticket", str(of.number)))

    def in_thread(self, where: Conversation) -> Ticket | None:
        """The ticket a customer thread belongs to (the newest there), as the desk finds it."""
        if where.thread_id is None:
            return None
        key = (where.platform, where.channel_id, where.thread_id)
        found = [
            t for _, t in sorted(self.store.tickets.items()) if (t.platform, t.channel_id, t.thread_id) == key
        ]
        return found[-1] if found else None

    def staff_thread(self, number: int) -> Conversation | None:
        for anchor in self.store.anchors.values():
            if anchor.ticket_number == number:
                ticket = self.store.tickets[number]
                return Conversation(
                    anchor.platform, anchor.channel_id, anchor.message_id, ticket.workspace_id
                )
        return None

    def tickets_of(self, writer: Writer) -> list[Ticket]:
        return [
            t
            for _, t in sorted(self.store.tickets.items())
            if (t.platform, t.customer_user_id) == writer.ident
        ]

    def flooding(self, writer: Writer) -> bool:
        """Whether they were told to slow down in this burst window (past the burst limit)."""
        found = self.customer_of(writer.ident)
        return found is not None and found.burst_told

    def blocked(self, writer: Writer) -> bool:
        found = self.customer_of(writer.ident)
        return found is not None and found.is_blocked(self.h.clock.now())

    # --- calling the desk --------------------------------------------------------------------

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    @staticmethod
    async def at_once(*calls: Awaitable[list[Outgoing]]) -> list[list[Outgoing]]:
        return list(await asyncio.gather(*calls))

    def command(self, actor: Actor, text: str, where: Conversation | None = None) -> list[Outgoing]:
        out = self.run(self.h.desk.command(actor, text, where))
        self.check(out, actor)
        return out

    def receive(self, message: IncomingMessage) -> list[Outgoing]:
        out = self.run(self.h.desk.receive(message))
        self.check(out, message.actor)
        return out

    def tally(self, what: str, committed: bool | None = None) -> None:
        TALLY[what if committed is None else f"{what}:{'done' if committed else 'refused'}"] += 1

    # --- the checks --------------------------------------------------------------------------

    def check(self, out: Sequence[Outgoing], actor: Actor | None) -> None:
        """Every message said: staff text to staff, and a customer hears only about their own tickets."""
        for message in out:
            TALLY["messages checked"] += 1
            assert not _RAW_MENTION.search(message.text), message
            if isinstance(message, StaffMessage):
                self.check_staff(message)
            else:
                assert isinstance(message, CustomerMessage), message
                self.check_customer(message, actor)

    def check_staff(self, message: StaffMessage) -> None:
        audience = message.audience
        if isinstance(audience, ToAgent):
            key = (audience.person.platform, audience.person.user_id)
            assert key in AGENT_KEYS, f"staff text went to someone who is not an agent: {message}"
        else:
            assert isinstance(audience, ToAgents), message
            assert message.attachments == (), f"files went to the whole channel: {message}"
            if audience.ticket_number is not None:
                assert audience.ticket_number in self.store.tickets, message
        if message.handover is not None:
            handover = message.handover
            assert (handover.agent.platform, handover.agent.user_id) in AGENT_KEYS, message
            ticket = self.store.tickets[handover.ticket_number]
            assert handover.conversation == where_of(ticket), message

    def check_customer(self, message: CustomerMessage, actor: Actor | None) -> None:
        audience, text = message.audience, message.text
        ident = (audience.person.platform, audience.person.user_id)
        assert ident not in AGENT_KEYS, f"an agent was answered as a customer: {message}"
        assert ident in BY_IDENT, f"a customer message to nobody we know: {message}"
        reader = BY_IDENT[ident]
        # (1) internal text never reaches a customer
        assert not _SECRET.search(text), f"internal text reached a customer: {message}"
        # (3) the audience is the ticket's own customer, or the person who acted
        if audience.ticket_number is None:
            assert actor is not None, f"a ticketless message with nobody acting: {message}"
            assert ident == (actor.person.platform, actor.person.user_id), (
                f"an answer to someone else: {message}"
            )
            assert message.survey is None, message
        else:
            ticket = self.store.tickets[audience.ticket_number]
            assert ident == (ticket.platform, ticket.customer_user_id), (
                f"told about another's ticket: {message}"
            )
            assert audience.conversation == where_of(ticket), (
                f"said somewhere else than the ticket: {message}"
            )
            if message.survey is not None:
                assert message.survey.ticket_number == audience.ticket_number, message
        assert audience.person.display_name in NAMES[reader.party], f"addressed by another's name: {message}"
        # (2) nothing of another customer: their names, their markers, their tickets
        for party in PARTIES:
            if party != reader.party:
                found = _WORD[party].search(text)
                assert not found, f"{reader.key} was told {party}'s name {found.group(0)!r}: {message}"
        whose = self.resolve(("writer", reader.key))
        for found in _TOKEN.finditer(text):
            party = CODE_PARTY[found.group(1).upper()]
            assert party == reader.party, f"{reader.key} was told {party}'s words: {message}"
            if found.group(2):
                owner = self.resolve(self.owners[found.group(0).lower()])
                assert owner == whose, f"{reader.key} was told words of {owner}, not theirs: {message}"
        for number in map(int, _TICKET_REF.findall(text)):
            assert number in self.store.tickets, message
            ticket = self.store.tickets[number]
            owner = ("customer", str(self.follow(ticket.customer_id)))
            assert owner == whose, f"{reader.key} was told of #{number}, not theirs: {message}"

    def check_refused_quietly(self, actor: Actor, out: Sequence[Outgoing], before: Tables) -> None:
        """A customer's agent command: one private answer, and nothing changed."""
        assert len(out) == 1 and isinstance(out[0], CustomerMessage), out
        assert out[0].audience.ticket_number is None and out[0].audience.person == actor.person, out
        assert self.store.snapshot() == before

    # --- customers and colleagues ------------------------------------------------------------

    @initialize(
        writers=st.lists(st.sampled_from(WRITERS), min_size=1, max_size=4, unique=True), data=st.data()
    )
    def customers_write_first(self, writers: list[Writer], data: st.DataObject) -> None:
        """Every sequence starts with tickets to work on (each rule may still open more)."""
        for writer in writers:
            message, _ = self.write(writer, data, FIRST_TEXTS)
            self.receive(message)
            self.tally("write")

    def write(
        self, writer: Writer, data: st.DataObject, texts: Sequence[str] = TEXTS
    ) -> tuple[IncomingMessage, bool]:
        """Draw what a writer says where; returns the message and whether they were blocked."""
        kind = data.draw(st.sampled_from(PLACES), label="place")
        where = place(writer, kind, data.draw(st.integers(1, 2), label="thread"))
        mine = self.tickets_of(writer)
        if kind == "ticket" and mine:
            where = where_of(data.draw(st.sampled_from(mine), label="ticket"))
        template = data.draw(st.sampled_from(texts), label="text")
        name = data.draw(st.sampled_from(writer.names), label="name")
        self.serial += 1
        message = IncomingMessage(writer.actor(name), self.fill(template, writer), where, f"m{self.serial}")
        self.delivered.append((writer, message))
        return message, self.blocked(writer)

    def after_writing(self, writer: Writer, out: Sequence[Outgoing], blocked: bool, before: Tables) -> None:
        if not blocked:
            return
        # A blocked person's message opens nothing and is recorded nowhere; they hear at most that once.
        assert self.store.tickets == before["tickets"], "a blocked customer's message opened a ticket"
        assert self.store.entries == before["entries"], "a blocked customer's message was recorded"
        assert len(out) <= 1, f"a blocked customer heard more than once: {out}"
        for message in out:
            assert isinstance(message, CustomerMessage) and message.audience.ticket_number is None, message

    @rule(writer=st.sampled_from(WRITERS), data=st.data())
    def customer_writes(self, writer: Writer, data: st.DataObject) -> None:
        self.write_once(writer, data)

    def write_once(self, writer: Writer, data: st.DataObject) -> None:
        message, blocked = self.write(writer, data)
        before = self.store.snapshot() if blocked else {}
        quiet = self.flooding(writer)
        out = self.receive(message)
        self.after_writing(writer, out, blocked, before)
        self.tally(
            "write" + (":blocked" if blocked else ":flood" if not quiet and self.flooding(writer) else "")
        )

    @rule(pair=st.sampled_from(PAIRS), data=st.data())
    def two_customers_write_at_once(self, pair: tuple[Writer, Writer], data: st.DataObject) -> None:
        first, _ = self.write(pair[0], data)
        second, _ = self.write(pair[1], data)
        outs = self.run(self.at_once(self.h.desk.receive(first), self.h.desk.receive(second)))
        self.check(outs[0], first.actor)
        self.check(outs[1], second.actor)
        self.tally("write-at-once")

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def a_message_is_delivered_again(self, data: st.DataObject) -> None:
        _, message = data.draw(st.sampled_from(self.delivered), label="message")
        platform = message.conversation.platform
        recorded = any(
            (e.platform, e.external_id) == (platform, message.message_id) for e in self.store.entries.values()
        )
        before = self.store.snapshot()
        out = self.receive(message)
        if recorded or not message.text.strip():
            assert out == [], f"a message delivered again was taken again: {out}"
            assert self.store.snapshot() == before
        self.tally("redelivery", bool(out))

    @precondition(lambda self: self.delivered)
    @rule(data=st.data(), deleted=st.booleans())
    def customer_edits_or_deletes(self, data: st.DataObject, deleted: bool) -> None:
        writer, message = data.draw(st.sampled_from(self.delivered), label="message")
        platform, message_id = message.conversation.platform, message.message_id
        assert message_id is not None
        if data.draw(st.integers(0, 9), label="unknown message?") == 0:
            message_id = "m-unknown"
        if deleted:
            out = self.run(self.h.desk.message_deleted(platform, message_id))
        else:
            template = data.draw(
                st.sampled_from(("{mk} it was the blue one", "   ", message.text)), label="edit"
            )
            out = self.run(self.h.desk.message_edited(platform, message_id, self.fill(template, writer)))
        self.check(out, writer.actor())
        assert all(isinstance(m, StaffMessage) for m in out), out
        self.tally("delete" if deleted else "edit", bool(out))

    @rule(
        writer=st.sampled_from(WRITERS),
        form=st.booleans(),
        template=st.sampled_from(("{mk} laptop for the new starter", "   ")),
        data=st.data(),
    )
    def someone_raises_a_request(
        self, writer: Writer, form: bool, template: str, data: st.DataObject
    ) -> None:
        """`/request` typed anywhere, or a request form (with a category and priority) sent from nowhere."""
        where = None
        if data.draw(st.booleans(), label="in a conversation?"):
            where = place(writer, data.draw(st.sampled_from(PLACES[:4]), label="place"), 1)
        text, actor, blocked = self.fill(template, writer), writer.actor(), self.blocked(writer)
        before, commits = self.store.snapshot() if blocked else {}, self.store.commits
        if form and text.strip():
            priority = data.draw(st.sampled_from([None, *Priority]), label="priority")
            request = Request(
                text, data.draw(st.sampled_from([None, "Hardware"]), label="category"), priority
            )
            out = self.run(self.h.desk.execute(actor, request, where))
            self.check(out, actor)
        else:
            out = self.command(actor, f"/request {text}", where)
        self.after_writing(writer, out, blocked, before)
        self.tally("request", self.store.commits > commits)

    @rule(writer=st.sampled_from(WRITERS), verb=st.sampled_from(sorted(VERBS)), data=st.data())
    def customer_types_an_agent_command(self, writer: Writer, verb: str, data: st.DataObject) -> None:
        number = data.draw(st.integers(1, self.ticket_count() + 1), label="ticket")
        text = data.draw(
            st.sampled_from(
                (
                    f"/ticket {verb} #{number} please",
                    f"/ticket {verb} #{number}",
                    f"/ticket {verb}",
                    "/ticket",
                )
            ),
            label="command",
        )
        before = self.store.snapshot()
        actor = writer.actor()
        out = self.command(actor, text)
        self.check_refused_quietly(actor, out, before)
        self.tally("customer-command")

    @rule(data=st.data())
    def customer_rates(self, data: st.DataObject) -> None:
        """A rating button pressed: mostly by the ticket's customer, now and then by someone else."""
        number, ticket = self.pick_ticket(data, "rate")
        writer = data.draw(st.sampled_from(WRITERS), label="someone else")
        if ticket is not None and data.draw(st.booleans(), label="the ticket's customer?"):
            writer = BY_IDENT[ticket.platform, ticket.customer_user_id]
        rating = data.draw(st.integers(0, 6), label="rating")
        commits = self.store.commits
        out = self.run(self.h.desk.rate(writer.actor(), number, rating))
        self.check(out, writer.actor())
        self.tally("rate", self.store.commits > commits)

    # --- agents ------------------------------------------------------------------------------

    def pick_ticket(self, data: st.DataObject, verb: str = "") -> tuple[int, Ticket | None]:
        """Mostly a ticket the verb can work on (a resolved one to reopen or rate, ...), now and then any
        ticket, or one that does not exist."""
        count = self.ticket_count()
        if count == 0 or data.draw(st.integers(0, 9), label="unknown ticket?") == 0:
            return count + 1, None
        wanted = [t for _, t in sorted(self.store.tickets.items()) if self.suits(verb, t)]
        if wanted and data.draw(st.integers(0, 3), label="a suitable ticket?"):
            ticket = data.draw(st.sampled_from(wanted), label="ticket")
            assert ticket.number is not None
            return ticket.number, ticket
        number = data.draw(st.integers(1, count), label="ticket")
        return number, self.store.tickets[number]

    def suits(self, verb: str, ticket: Ticket) -> bool:
        if verb in ("reopen", "rate"):
            return ticket.status is Status.RESOLVED
        if verb == "release":
            return ticket.assignee_id is not None
        if verb == "kept":
            promises = self.store.promises.values()
            return any(p.ticket_number == ticket.number and p.state is PromiseState.OPEN for p in promises)
        return ticket.status in WORKABLE_STATUSES

    def ticket_args(self, verb: str, ticket: Ticket | None, number: int, data: st.DataObject) -> str:
        """What follows the ticket in `/ticket <verb> #N ...`, with markers: the ticket's customer's for what
        they may read, SECRET for what is internal."""

        def pick(options: Sequence[str], label: str) -> str:
            return data.draw(st.sampled_from(options), label=label)

        mk = self.ticket_marker(ticket, number)
        if verb == "reply":
            return f"{mk} we are looking into it"
        if verb == "note":
            return f"{self.secret()} courier says the parcel is lost"
        if verb == "transfer":
            reason = pick(("", "{secret} knows the courier"), "reason")
            return f"{pick(TRANSFER_TARGETS, 'target')} {self.fill(reason)}".strip()
        if verb == "hold":
            return self.fill(pick(("{secret} vendor is checking", ""), "reason"))
        if verb == "resolve":
            return self.fill(pick(("", "{secret} refunded shipping"), "summary"))
        if verb == "priority":
            return pick(("low", "normal", "high", "urgent", "soonish"), "level")
        if verb == "snippet":
            return pick(("looking-into-it", "more-details", "no-such-snippet", *self.snippets), "snippet")
        if verb == "profile":
            return self.fill(pick(PROFILE_ARGS, "profile"), mk=self.customer_marker(ticket))
        if verb == "incentive":
            return self.fill(pick(("{secret} voucher worth 10 EUR", ""), "incentive"))
        if verb == "promise":
            return f"{pick(PROMISE_WHEN, 'when')} {mk} we will send a replacement"
        if verb == "kept":
            return pick(("", "1", "2", "x"), "promise")
        return ""

    @rule(verb=st.sampled_from(ANSWERING), form=st.sampled_from(FORMS), data=st.data())
    def agent_answers(self, verb: str, form: str, data: st.DataObject) -> None:
        self.work_on(verb, form, data)

    @rule(verb=st.sampled_from(STATUS_VERBS), form=st.sampled_from(FORMS), data=st.data())
    def agent_changes_the_status(self, verb: str, form: str, data: st.DataObject) -> None:
        self.work_on(verb, form, data)

    @rule(verb=st.sampled_from(RECORD_VERBS), form=st.sampled_from(FORMS), data=st.data())
    def agent_keeps_the_record(self, verb: str, form: str, data: st.DataObject) -> None:
        self.work_on(verb, form, data)

    def work_on(self, verb: str, form: str, data: st.DataObject) -> None:
        """`/ticket <verb>` on a ticket named one way or another, with its arguments."""
        number, ticket = self.pick_ticket(data, verb)
        where, ref, target = None, f"#{number}", ticket
        if form == "bare":
            ref = str(number)
        elif form == "none":
            ref, target = "", None
        elif form == "thread" and ticket is not None and ticket.thread_id is not None:
            where, ref = where_of(ticket), ""
            target = self.in_thread(where)
        elif form == "staff" and ticket is not None and self.staff_thread(number) is not None:
            where, ref = self.staff_thread(number), ""
        platform = where.platform if where else None
        agents = [a for a in AGENTS if platform in (None, a.person.platform)]
        owner = self.store.agents.get(ticket.assignee_id) if ticket and ticket.assignee_id else None
        if verb == "release" and owner and data.draw(st.booleans(), label="its owner releases?"):
            agents = [a for a in agents if a.person.user_id == owner.external_id] or agents
        actor = data.draw(st.sampled_from(agents), label="agent")
        if target is not None:
            number = target.number or number
        args = self.ticket_args(verb, target, number, data)
        text = " ".join(part for part in (f"/ticket {verb}", ref, args) if part)
        commits = self.store.commits
        out = self.command(actor, text, where)
        done = self.store.commits > commits
        self.tally(f"verb:{verb}", done)
        if done and verb == "note":
            secret = self.secrets[-1]
            assert any(isinstance(m, StaffMessage) and secret in m.text for m in out), "the note went nowhere"
        if done and verb == "transcript":
            self.check_transcript(number, out)

    def check_transcript(self, number: int, out: Sequence[Outgoing]) -> None:
        """The transcript has every internal note of the ticket: staff see what customers must not."""
        files = [a for m in out if isinstance(m, StaffMessage) for a in m.attachments]
        markdown = next(a.content for a in files if a.filename.endswith(".md"))
        assert isinstance(markdown, str)
        for entry in self.store.entries_for(number):
            if isinstance(entry.body, InternalText):
                for word in _SECRET_WORD.findall(entry.body.hidden):
                    assert word in markdown, f"the transcript of #{number} lacks {word}"

    def known(self, writers: Sequence[Writer], data: st.DataObject) -> Writer:
        """Mostly an account the desk knows (it wrote), now and then any."""
        known = [w for w in writers if self.customer_of(w.ident) is not None]
        return data.draw(st.sampled_from(known if known and data.draw(st.booleans()) else writers))

    def customer_ref(self, actor: Actor, data: st.DataObject, by_name: bool = True) -> str:
        writer = self.known(WRITERS, data)
        ref = self.account_ref(writer, actor, data)
        forms = [ref, ref, ref, "@nobody"]
        if by_name:
            forms.append(writer.names[0])
        return data.draw(st.sampled_from(forms), label="customer ref")

    def desk_args(self, verb: str, actor: Actor, data: st.DataObject) -> str:
        def pick(options: Sequence[str], label: str) -> str:
            return data.draw(st.sampled_from(options), label=label)

        if verb == "customer":
            return self.customer_ref(actor, data)
        if verb == "unblock":
            return self.customer_ref(actor, data, by_name=False)
        if verb == "block":
            how_long = pick(BLOCK_FOR, "how long")
            return f"{self.customer_ref(actor, data, by_name=False)} {how_long}".strip()
        if verb == "link":
            # Only accounts of one person: linking strangers would be the agent's mistake, not a leak.
            party = [w for w in WRITERS if w.party == "cleo"]
            first, second = (self.known(party, data) for _ in range(2))
            return f"{self.account_ref(first, actor, data)} {self.account_ref(second, actor, data)}"
        if verb == "stats":
            return pick(
                ("", "today", "30d", "billing", "@ana", "@nobody", "0h", "nowhere", "24h general"), "stats"
            )
        if verb == "queue":
            return pick(("", "general", "billing", "complaints", "internal", "nowhere"), "queue")
        if verb == "help":
            return pick(("", "reply", "bogus"), "topic")
        if verb == "snippet":
            if data.draw(st.booleans(), label="list?"):
                return ""
            self.serial += 1
            name = pick((f"warm-{self.serial}", "looking-into-it", "Bad!", *self.snippets), "name")
            text = pick(SNIPPET_TEXTS, "snippet text")
            if name.startswith("warm-") and "{oops}" not in text:
                self.snippets.append(name)
            return f"add {name} {text}"
        return ""

    def account_ref(self, writer: Writer, actor: Actor, data: st.DataObject) -> str:
        forms = [f"{writer.platform}:{writer.user_id}"]
        if writer.platform == actor.person.platform:
            forms.append(f"@{writer.user_id}")
        forms += [f"#{t.number}" for t in self.tickets_of(writer)[:2]]
        return data.draw(st.sampled_from(forms), label="account ref")

    @rule(actor=st.sampled_from(AGENTS), verb=st.sampled_from(DESK_VERBS), data=st.data())
    def agent_uses_the_desk(self, actor: Actor, verb: str, data: st.DataObject) -> None:
        self.use_the_desk(actor, verb, self.desk_args(verb, actor, data), data)

    def use_the_desk(self, actor: Actor, verb: str, args: str, data: st.DataObject) -> None:
        text = f"/ticket {verb} {args}".strip()
        commits = self.store.commits
        out = self.command(actor, text)
        assert all(isinstance(m, StaffMessage) for m in out), f"a desk command spoke to a customer: {out}"
        done = self.store.commits > commits
        self.tally(f"verb:{verb}", done)
        blocked = self.blocked_writers()
        if done and verb in ("block", "unblock") and blocked:
            # Sequences seldom bring a blocked person back on their own: they try at once.
            self.write_once(data.draw(st.sampled_from(blocked), label="blocked writer"), data)

    def blocked_writers(self) -> list[Writer]:
        return [w for w in WRITERS if self.blocked(w)]

    def unlinked_accounts(self) -> list[tuple[Writer, Writer]]:
        """Pairs of one person's accounts the desk knows as two customers."""
        known = [w for w in WRITERS if self.customer_of(w.ident) is not None]
        return [
            (a, b)
            for a in known
            for b in known
            if a.key < b.key and a.party == b.party and self.whose(a) != self.whose(b)
        ]

    @precondition(lambda self: self.unlinked_accounts())
    @rule(actor=st.sampled_from(AGENTS), data=st.data())
    def agent_links_two_accounts_of_one_person(self, actor: Actor, data: st.DataObject) -> None:
        """`/ticket link` as agents use it: two accounts the desk knows, of one person."""
        first, second = data.draw(st.sampled_from(self.unlinked_accounts()), label="accounts")
        refs = f"{self.account_ref(first, actor, data)} {self.account_ref(second, actor, data)}"
        self.use_the_desk(actor, "link", refs, data)

    @precondition(lambda self: self.blocked_writers())
    @rule(actor=st.sampled_from(AGENTS), data=st.data())
    def agent_lifts_a_block(self, actor: Actor, data: st.DataObject) -> None:
        writer = data.draw(st.sampled_from(self.blocked_writers()), label="blocked")
        self.use_the_desk(actor, "unblock", self.account_ref(writer, actor, data), data)

    @precondition(lambda self: self.store.tickets)
    @rule(data=st.data())
    def agent_writes_in_a_conversation(self, data: st.DataObject) -> None:
        """In a ticket's customer thread that is a public answer; anywhere else it is not for the desk."""
        _, ticket = self.pick_ticket(data)
        where = Conversation("slack", "D-U-ana") if ticket is None else where_of(ticket)
        actor = data.draw(
            st.sampled_from([a for a in AGENTS if a.person.platform == where.platform] or AGENTS)
        )
        target = self.in_thread(where)
        self.serial += 1
        text = f"{self.ticket_marker(target, target.number if target and target.number else 0)} on it"
        before = self.store.snapshot()
        out = self.receive(IncomingMessage(actor, text, where, f"a{self.serial}"))
        if target is None or target.is_closed:
            assert out == [] and self.store.snapshot() == before, out
        self.tally("agent-writes", bool(out))

    @precondition(lambda self: self.store.tickets)
    @rule(data=st.data())
    def adapter_posts_a_card(self, data: st.DataObject) -> None:
        number = data.draw(st.integers(1, self.ticket_count()), label="ticket")
        platform = self.store.tickets[number].platform
        card = MessageRef(STAFF_CHANNEL[platform], f"card-{number}")
        self.run(self.h.desk.attach_card(number, platform, card))
        self.tally("card")

    @precondition(lambda self: self.store.anchors)
    @rule(data=st.data(), who=st.sampled_from(AGENTS + tuple(w.actor() for w in WRITERS)))
    def someone_writes_in_a_staff_thread(self, data: st.DataObject, who: Actor) -> None:
        anchor = data.draw(
            st.sampled_from(sorted(self.store.anchors.values(), key=lambda a: a.ticket_number))
        )
        thread = Conversation(anchor.platform, anchor.channel_id, anchor.message_id)
        self.serial += 1
        text = f"{self.secret()} warehouse says lost"
        before, entries = self.store.snapshot() if not who.is_agent else {}, len(self.store.entries)
        out = self.run(self.h.desk.note_from_staff_thread(who, thread, text, f"s{self.serial}"))
        self.check(out, who)
        assert out == [], "a note in a staff thread is not echoed"
        if not who.is_agent:
            assert self.store.snapshot() == before, "a non-agent's words in a staff thread were taken"
        self.tally("staff-thread", len(self.store.entries) > entries)

    @precondition(lambda self: self.store.tickets)
    @rule(data=st.data(), elsewhere=st.booleans())
    def ticket_moves(self, data: st.DataObject, elsewhere: bool) -> None:
        """The adapter found the customer somewhere else (a refused DM replaced by a private thread)."""
        number, ticket = self.pick_ticket(data)
        platform = ticket.platform if ticket else "slack"
        if elsewhere:
            platform = "discord" if platform == "slack" else "slack"
        self.serial += 1
        workspace = ticket.workspace_id if ticket else None
        new = Conversation(platform, f"moved-{self.serial}", f"moved-{self.serial}", workspace)
        self.run(self.h.desk.relocate(number, new))
        self.tally("relocate")

    @rule(who=st.sampled_from(AGENTS + tuple(w.actor() for w in WRITERS)))
    def someone_opens_the_overview(self, who: Actor) -> None:
        overview = self.run(self.h.desk.overview(who))
        names = self.run(self.h.desk.snippet_names(who))
        if who.is_agent:
            assert overview is not None
        else:
            assert overview is None and names == [], "a customer saw the agents' overview"
        self.tally("overview")

    # --- time --------------------------------------------------------------------------------

    @rule(step=st.sampled_from(DURATIONS))
    def time_passes(self, step: timedelta) -> None:
        self.h.clock.advance(step)
        out = self.run(self.h.desk.run_due_work())
        self.check(out, None)
        self.tally("time", bool(out))

    # --- what must always hold ---------------------------------------------------------------

    @invariant()
    def the_record_keeps_internal_text_internal(self) -> None:
        for entry in self.store.entries.values():
            if entry.kind is EntryKind.NOTE:
                assert isinstance(entry.body, InternalText)
            else:
                assert isinstance(entry.body, str)
                assert not _SECRET.search(entry.body), entry
        for note in self.store.profile_notes.values():
            assert isinstance(note.text, InternalText)

    @invariant()
    def a_customers_words_land_only_on_their_own_tickets(self) -> None:
        """Unless they wrote in a thread everyone shares: there the thread's ticket takes them."""
        delivered = {m.message_id: (w, m) for w, m in self.delivered}
        for entry in self.store.entries.values():
            if entry.kind is not EntryKind.CUSTOMER or entry.external_id not in delivered:
                continue
            writer, message = delivered[entry.external_id]
            ticket = self.store.tickets[entry.ticket_number]
            if message.conversation.thread_id not in SHARED_THREADS:
                assert self.whose(writer) == self.whose(ticket), entry

    @invariant()
    def tickets_are_numbered_from_one(self) -> None:
        TALLY["steps"] += self.started  # the invariants run once at the start, then after each step
        self.started = True
        assert sorted(self.store.tickets) == list(range(1, self.ticket_count() + 1))


QUICK = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
"""About half a minute's worth; tests/test_leaks_long.py runs more and longer sequences."""
LeakMachine.TestCase.settings = QUICK
TestNoLeaks = LeakMachine.TestCase


def test_the_machine_has_a_rule_for_every_verb():
    """A verb added to the grammar must be added to the machine too (TICKET_VERBS or DESK_VERBS)."""
    assert set(VERBS) <= {*TICKET_VERBS, *DESK_VERBS}


def test_every_verb_is_carried_out_under_the_checks(machine: LeakMachine):
    """However far random sequences get, each verb has been carried out once here, every check applied."""
    m = machine  # #1 is Cleo's, #2 Dev's
    quill, dev, cleo = BY_KEY["cleo-d"], BY_KEY["dev"], BY_KEY["cleo"]
    m.receive(IncomingMessage(quill.actor(), f"{m.writer_marker(quill)} hi", place(quill, "dm", 1), "q1"))
    one, three = m.store.tickets[1], m.store.tickets[3]
    script = [
        (ANA, "claim", "#1"),
        (ANA, "reply", f"#1 {m.ticket_marker(one, 1)} we are on it"),
        (ANA, "note", f"#1 {m.secret()} courier says lost"),
        (ANA, "transfer", f"#1 @ben {m.secret()} knows the courier"),
        (BEN, "release", "#1"),
        (ANA, "pending", "#1"),
        (ANA, "hold", f"#1 {m.secret()} vendor is checking"),
        (ANA, "priority", "#1 high"),
        (ANA, "show", "#1"),
        (ANA, "snippet", "#1 looking-into-it"),
        (ANA, "profile", f"#1 note {m.secret()} prefers calls"),
        (ANA, "profile", f"#1 address {m.customer_marker(one)}"),
        (ANA, "incentive", f"#1 {m.secret()} voucher"),
        (ANA, "promise", f"#1 2h {m.ticket_marker(one, 1)} a replacement"),
        (ANA, "kept", "#1"),
        (ANA, "transcript", "#1"),
        (ANA, "resolve", f"#1 {m.secret()} refunded"),
        (cleo, "rate", "#1 4"),
        (ANA, "reopen", "#1"),
        (ANA, "customer", "#2"),
        (ANA, "link", "slack:U-cleo discord:7001"),
        (ANA, "block", "slack:U-dev 2h"),
        (dev, "write", "still there?"),
        (ANA, "unblock", "slack:U-dev"),
        (ANA, "stats", ""),
        (ANA, "queue", ""),
        (ANA, "mine", ""),
        (ANA, "help", "reply"),
        (ANA, "snippet", "add warm-1 Hi {customer_name}, {ticket} is in hand."),
        (ANA, "snippet", ""),
        (ANA, "pending", "#2"),
        (ANA, "promise", f"#3 2h {m.ticket_marker(three, 3)} the label is on its way"),
    ]
    done: set[str] = set()
    for who, verb, args in script:
        commits = m.store.commits
        if isinstance(who, Writer) and verb == "rate":
            out = m.run(m.h.desk.rate(who.actor(), 1, 4))
            m.check(out, who.actor())
        elif isinstance(who, Writer):
            assert m.blocked(who)
            before = m.store.snapshot()
            out = m.receive(IncomingMessage(who.actor(), args, place(who, "dm", 1), f"w-{verb}"))
            m.after_writing(who, out, True, before)
        else:
            out = m.command(who, f"/ticket {verb} {args}".strip())
        assert m.store.commits > commits, (verb, args, [o.text for o in out])
        if verb == "transcript":
            m.check_transcript(1, out)
        done.add(verb)
    assert set(VERBS) <= done, sorted(set(VERBS) - done)
    # Dev's #2 waits on him and #3 carries a promise: a fortnight passes, a day at a time.
    for _ in range(16):
        m.h.clock.advance(timedelta(days=1))
        m.check(m.run(m.h.desk.run_due_work()), None)
    fired = {c.kind for c in m.store.checkins.values() if c.state is CheckinState.DONE}
    assert fired >= set(DUE_WORK), sorted(set(DUE_WORK) - fired)


# --- the checks can fail -------------------------------------------------------------------------------


@pytest.fixture
def machine() -> Iterator[LeakMachine]:
    """A machine with two tickets: #1 Cleo's (Slack DM), #2 Dev's (Slack DM)."""
    made = LeakMachine()
    for key, text in (("cleo", "CLEOMK1Q my parcel is late"), ("dev", "DEVMK2Q I was charged twice")):
        writer = BY_KEY[key]
        made.receive(IncomingMessage(writer.actor(), text, place(writer, "dm", 1), f"first-{key}"))
    made.owners |= {"cleomk1q": ("writer", "cleo"), "devmk2q": ("writer", "dev")}
    yield made
    made.teardown()


def _to(key: str, number: int | None, text: str) -> CustomerMessage:
    writer = BY_KEY[key]
    where = place(writer, "dm", 1) if number else None
    return CustomerMessage(ToCustomer(writer.actor().person, number, where), text)


@pytest.mark.parametrize(
    "said",
    [
        pytest.param(_to("cleo", 1, "About #1: SECRET9X"), id="internal-text"),
        pytest.param(_to("cleo", 1, "About #1: secret9x"), id="internal-text-any-case"),
        pytest.param(_to("cleo", 1, "Your request is like #2"), id="another-s-ticket-number"),
        pytest.param(_to("cleo", 1, "Dev says hello"), id="another-s-name"),
        pytest.param(_to("cleo", 1, "about DEVMK2Q"), id="another-s-words"),
        pytest.param(_to("cleo", 1, "about DEVMK2"), id="another-s-words-cut-short"),
        pytest.param(_to("dev", 1, "Hi Dev"), id="someone-else-s-ticket"),
        pytest.param(_to("cleo", None, "Hi Cleo"), id="a-private-answer-to-someone-else"),
        pytest.param(CustomerMessage(ToCustomer(ANA.person), "Hi"), id="an-agent-as-customer"),
        pytest.param(
            StaffMessage(ToAgent(BY_KEY["cleo"].actor().person), ("note",)), id="staff-to-a-customer"
        ),
    ],
)
def test_the_checks_catch_a_leak(machine: LeakMachine, said: Outgoing):
    assert machine.check_customer(_to("cleo", 1, "Hi Cleo, about #1 and CLEOMK1Q"), None) is None
    with pytest.raises(AssertionError):
        machine.check([said], BY_KEY["dev"].actor())


def _leaky_record(original: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Internal text (a note, a hold reason, a resolution summary) echoed to the customer: the bug this
    file exists to catch."""

    async def record(work: Work, ticket: Ticket, kind: EntryKind, *rest: Any) -> None:
        await original(work, ticket, kind, *rest)
        body = rest[1]
        if isinstance(body, InternalText):
            customer = await work.uow.customers.get(ticket.customer_id)
            assert customer is not None
            work.say(to_customer(ticket, customer, f"FYI: {body.hidden}"))

    return record


def _mentions_ticket_one(customer: Customer, ticket: Ticket, *_: object) -> str:
    """A greeting that names the desk's first ticket, whoever's it is."""
    return f"Hi {customer.name_to_use}, I've opened ticket {ticket.ref} for you, like #1."


@pytest.mark.parametrize(
    ("target", "name", "planted"),
    [
        pytest.param(desk, "_record", _leaky_record(desk._record), id="internal-text-echoed-to-the-customer"),
        pytest.param(voice, "greeting", _mentions_ticket_one, id="another-s-ticket-named"),
    ],
)
def test_the_machine_finds_a_planted_leak(
    monkeypatch: pytest.MonkeyPatch, target: object, name: str, planted
):
    monkeypatch.setattr(target, name, planted)
    finding = settings(
        QUICK, max_examples=300, phases=[Phase.generate], database=None, report_multiple_bugs=False
    )
    with pytest.raises(AssertionError):
        run_state_machine_as_test(LeakMachine, settings=finding)


# --- bugs the machine found (fixed) -------------------------------------------------------------------

PUBLIC_THREAD = Conversation("discord", "pub-1", "pub-1", "G1")


async def _a_bystander_in_eves_thread() -> Harness:
    """Cleo (as quillcat on Discord) asked to be addressed as "Lady Quill"; Eve opens #2 in a public
    thread, where Cleo writes too."""
    h = build_desk()
    quill, eve = BY_KEY["cleo-d"].actor(), BY_KEY["eve"].actor()
    await h.write(quill, "Hello, my parcel is late", Conversation("discord", "dm-7001"), "q1")
    await h.run(ANA_D, "/ticket profile #1 address Lady Quill")
    await h.write(eve, "My order never arrived", PUBLIC_THREAD, "e1")
    return h


async def test_a_bystanders_upset_words_are_answered_to_the_tickets_customer_in_their_own_name():
    h = await _a_bystander_in_eves_thread()
    out = await h.write(
        BY_KEY["cleo-d"].actor(), "This is unacceptable, I want a refund", PUBLIC_THREAD, "q2"
    )
    told = [m for m in out if isinstance(m, CustomerMessage)]
    assert [m.audience.ticket_number for m in told] == [2]
    assert told[0].audience.person.user_id == "7002"  # Eve
    assert "Quill" not in told[0].text, told[0].text  # "Hi Lady Quill, I've passed your request #2 ..."
    assert told[0].audience.person.display_name == "Eve Sato", told[0].audience  # "quillcat"


async def test_a_bystanders_thanks_are_answered_to_the_tickets_customer_in_their_own_name():
    h = await _a_bystander_in_eves_thread()
    await h.run(ANA_D, "/ticket resolve #2")
    out = await h.write(BY_KEY["cleo-d"].actor(), "thanks", PUBLIC_THREAD, "q2")
    told = [m for m in out if isinstance(m, CustomerMessage)]
    assert [m.audience.ticket_number for m in told] == [2]
    assert "Quill" not in told[0].text, told[0].text  # "You're welcome, Lady Quill! ..."
    assert told[0].audience.person.display_name == "Eve Sato", told[0].audience
