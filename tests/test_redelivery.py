"""At-least-once delivery: every event delivered two or three times, interleaved, with copies racing.

Slack retries an Events API request it thinks went unanswered (`X-Slack-Retry-Num`), Discord's gateway
replays events after a RESUME, and a bot process may see one event on two connections at once. Whatever
the order, a platform message must be recorded once, open at most one ticket, and be answered once.

A seeded plan of events (new top-level messages that open tickets, replies in those tickets' threads,
DMs, console lines, edits and deletions) is delivered in rounds. Within a round every delivery runs
concurrently (`asyncio.gather`), and each event's first two copies are in the same round, so they race;
a third copy lands in the same round or a later one, interleaved with other events. An event that needs
an earlier one (a reply needs its thread's ticket, an edit its message) is first delivered in a round
after that one's, as on the platforms, where a reply cannot be written before its thread exists.

Three ways in:

- the core `Desk` on the real storage, SQLite (a file) and PostgreSQL (conftest's `database_url`), with
  Slack-, Discord- and console-shaped conversations: 1,000 events in the `long` run, 200 in the fast
  one (the console adapter names every line afresh, so a line typed twice is two messages: its
  redelivery can only be the desk's);
- the Slack adapter over HTTP: signed Events API requests, retries carrying `X-Slack-Retry-Num` and
  `X-Slack-Retry-Reason`, against the fake Web API (`slack_fake.py`);
- the Discord adapter: MESSAGE_CREATE/UPDATE/DELETE dispatches fed through discord.py's own parsers, a
  RESUME replaying them, against the fake REST API (`discord_fake.py`).

After each run: as many tickets as events that open one; each customer message recorded exactly once,
on its ticket; one greeting, one card and one greeting entry per ticket; one relay per later message;
edited messages hold their new text. Each run prints one line of figures (visible with `pytest -s`).

Copies racing on PostgreSQL (where units of work run side by side) are what the locks are for: an edit
or deletion locks its entry, and a message locks its customer, so two copies take turns (SQLite's
transactions take its write lock as they begin).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
from discord_fake import GUILD_ID, FakeDiscord
from slack_fake import BOT_TOKEN, TEAM_ID, FakeSlack
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from test_discord import AGENT_ROLE, CUSTOMERS_ROLE, SUPPORT, Discord, settings
from test_discord import AGENTS as DISCORD_AGENTS
from test_slack import SECRET, Slack, envelope

from adapters.discord.adapter import DiscordAdapter
from adapters.slack.adapter import SlackAdapter
from adapters.slack.config import SlackSettings
from bot.clock import FakeClock
from bot.commands import Actor, IncomingMessage
from bot.desk import Desk
from bot.domain import EntryKind, Role
from bot.messages import Conversation, CustomerMessage, Outgoing, Person, StaffKind, StaffMessage
from bot.policy import load_policy
from storage.engine import session_factory
from storage.models import AnchorRow, CustomerRow, EntryRow, TicketRow, TimelineRow
from storage.uow import SqlUnitOfWork

SEED = 20261202
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
ROUND_GAP = timedelta(seconds=61)
"""The desk's clock moves on between rounds, so no customer's few messages a round add up to a flood."""
PER_CUSTOMER_PER_ROUND = 2
"""Distinct events of one customer in one round (each with its copies). With two, a delivery's three
attempts at its unit of work are enough whatever the order of commits (lose to the other event's, lose
to a copy's, then find the message recorded); contention on one ticket is not what this file tests."""

SCALE = int(os.environ.get("RELAYDESK_TEST_SCALE", "1"))
"""How much larger the `long` runs are (1 in CI)."""
CORE_EVENTS = 200
CORE_EVENTS_LONG = 1000 * SCALE
SLACK_EVENTS = 100
SLACK_EVENTS_LONG = 200 * SCALE
DISCORD_EVENTS = 100
DISCORD_EVENTS_LONG = 200 * SCALE
SMALL_EVENTS = 60
"""The edit and deletion tests: a score of edits and deletions, enough that some copies always race."""

SLACK_SUPPORT = "CSUP"
SLACK_AGENTS = "CAGENTS"


# --- the plan: events, their copies, and the rounds they are delivered in -------------------------


class Kind(StrEnum):
    OPEN = "open"  # a new top-level message in a support channel: a ticket with a thread of its own
    REPLY = "reply"  # the customer again, in that thread
    DM = "dm"  # a direct message; the first one in a DM opens a ticket, later ones join it
    LINE = "line"  # the console: the customer's own conversation, as a DM is
    EDIT = "edit"  # a customer message's text changed
    DELETE = "delete"  # a customer message deleted


MESSAGES = (Kind.OPEN, Kind.REPLY, Kind.DM, Kind.LINE)


@dataclass(frozen=True)
class Customer:
    index: int
    platform: str

    @property
    def name(self) -> str:
        return f"Customer{self.index:03d} Tester"


@dataclass(frozen=True)
class Event:
    n: int
    kind: Kind
    customer: Customer
    text: str
    ticket: str | None  # the ticket (key) a message belongs to; None for edits and deletions
    opens: bool = False  # the first message of its ticket
    thread: int | None = None  # the OPEN event whose thread a reply is in (an OPEN: itself)
    target: int | None = None  # the message an edit or deletion is about
    parent: int | None = None  # delivered (once, completely) in an earlier round first

    @property
    def is_message(self) -> bool:
        return self.kind in MESSAGES


@dataclass
class Plan:
    events: list[Event]
    rounds: list[list[Event]]  # every copy, shuffled within its round
    copies: dict[int, int]

    @property
    def deliveries(self) -> int:
        return sum(self.copies.values())

    def messages(self) -> list[Event]:
        return [e for e in self.events if e.is_message]

    def tickets(self) -> dict[str, list[Event]]:
        """Ticket key → its messages, the opening one first."""
        found: dict[str, list[Event]] = defaultdict(list)
        for event in self.messages():
            assert event.ticket is not None
            found[event.ticket].append(event)
        return found

    def final_texts(self) -> dict[int, str]:
        """What each message holds at the end: its last edit's text, or what was written."""
        texts = {e.n: e.text for e in self.messages()}
        for event in self.events:
            if event.kind is Kind.EDIT:
                assert event.target is not None
                texts[event.target] = event.text
        return texts

    def of_kind(self, kind: Kind) -> list[Event]:
        return [e for e in self.events if e.kind is kind]


def token(n: int) -> str:
    """A word that is in one event's text and no other's (no ticket number looks like it)."""
    return f"Q{n:05d}x"


def make_plan(
    count: int,
    customers: Sequence[Customer],
    weights: dict[Kind, int],
    seed: int = SEED,
    per_round: int = 25,
) -> Plan:
    """`count` events by `customers`, each to be delivered two or three times."""
    rng = random.Random(seed)
    events: list[Event] = []
    threads: list[Event] = []  # OPEN events
    first_of: dict[str, int] = {}  # ticket key of a DM or console conversation → its first message
    editable: list[Event] = []  # messages not yet edited or deleted (console lines cannot be)
    edited: dict[int, int] = {}  # message → its edit
    deletable: list[Event] = []
    threaded = [c for c in customers if c.platform != "console"]
    console = [c for c in customers if c.platform == "console"]
    kinds = list(weights)
    while len(events) < count:
        n = len(events)
        kind = rng.choices(kinds, [weights[k] for k in kinds])[0]
        if kind is Kind.OPEN and threaded:
            who = rng.choice(threaded)
            text = f"{token(n)} Hello, a question about the parcel for order A-{n} and its delivery date"
            event = Event(n, kind, who, text, f"thread:{n}", opens=True, thread=n)
            threads.append(event)
        elif kind is Kind.REPLY and threads:
            opened = rng.choice(threads)
            text = f"{token(n)} Another detail: the order number is A-{opened.n}, the address is unchanged"
            event = Event(n, kind, opened.customer, text, opened.ticket, thread=opened.n, parent=opened.n)
        elif kind is Kind.DM and threaded:
            who = rng.choice(threaded)
            key = f"dm:{who.platform}:{who.index}"
            text = f"{token(n)} A question by direct message about my account settings"
            event = Event(n, kind, who, text, key, opens=key not in first_of, parent=first_of.get(key))
            first_of.setdefault(key, n)
        elif kind is Kind.LINE and console:
            who = rng.choice(console)
            key = f"console:{who.index}"
            text = f"{token(n)} A question at the console about the invoice for March"
            event = Event(n, kind, who, text, key, opens=key not in first_of, parent=first_of.get(key))
            first_of.setdefault(key, n)
        elif kind is Kind.EDIT and editable:
            target = editable.pop(rng.randrange(len(editable)))
            text = f"{token(n)} (corrected) The order number is B-{target.n}, please look it up"
            event = Event(n, kind, target.customer, text, None, target=target.n, parent=target.n)
            edited[target.n] = n
        elif kind is Kind.DELETE and deletable:
            target = deletable.pop(rng.randrange(len(deletable)))
            if target in editable:
                editable.remove(target)  # nothing is edited once deleted (Discord forgets it)
            parent = edited.get(target.n, target.n)
            event = Event(n, kind, target.customer, "", None, target=target.n, parent=parent)
        else:
            continue
        events.append(event)
        if event.is_message and event.customer.platform != "console":
            editable.append(event)
            deletable.append(event)
    return schedule(events, rng, per_round)


def schedule(events: list[Event], rng: random.Random, per_round: int) -> Plan:
    """Rounds of deliveries: an event's first two copies race in one round, after its parent's; a third
    copy (half the events) comes in the same round or one of the next two."""
    round_of: dict[int, int] = {}
    load: dict[int, Counter[Customer]] = defaultdict(Counter)
    rounds: dict[int, list[Event]] = defaultdict(list)
    copies: dict[int, int] = {}
    for event in events:
        at = event.n // per_round
        if event.parent is not None:
            at = max(at, round_of[event.parent] + 1)
        while load[at][event.customer] >= PER_CUSTOMER_PER_ROUND:
            at += 1
        round_of[event.n] = at
        load[at][event.customer] += 1
        copies[event.n] = rng.choice((2, 3))
        rounds[at] += [event, event]
        if copies[event.n] == 3:
            rounds[at + rng.choice((0, 0, 1, 2))].append(event)
    ordered = [rounds[i] for i in range(max(rounds) + 1)]
    for batch in ordered:
        rng.shuffle(batch)
    return Plan(events, ordered, copies)


def customers_of(platforms: dict[str, int]) -> list[Customer]:
    found: list[Customer] = []
    for platform, how_many in platforms.items():
        found += [Customer(len(found) + i, platform) for i in range(how_many)]
    return found


CORE_WEIGHTS = {Kind.OPEN: 25, Kind.REPLY: 30, Kind.DM: 18, Kind.LINE: 12, Kind.EDIT: 8, Kind.DELETE: 7}
WIRE_WEIGHTS = {Kind.OPEN: 30, Kind.REPLY: 30, Kind.DM: 22, Kind.EDIT: 10, Kind.DELETE: 8}
EDIT_WEIGHTS = {Kind.OPEN: 20, Kind.REPLY: 10, Kind.DM: 10, Kind.EDIT: 35, Kind.DELETE: 25}


# --- what a run leaves behind, and the checks -----------------------------------------------------


@dataclass
class Run:
    """One run of a plan: the platform message id each message got, and what happened."""

    plan: Plan
    platform_of: Callable[[Event], str]
    ids: dict[int, str] = field(default_factory=dict)  # message event → its platform message id
    said: list[Outgoing] = field(default_factory=list)  # the desk's answers (core runs)
    errors: list[tuple[Event, BaseException]] = field(default_factory=list)
    seconds: float = 0.0
    retries: int | None = None  # units of work run again after losing a race at commit (core runs)

    def key(self, event: Event) -> tuple[str, str]:
        return self.platform_of(event), self.ids[event.n]


async def _rows(engine: AsyncEngine, statement: Any) -> list[Any]:
    async with AsyncSession(engine) as session:
        return list((await session.execute(statement)).all())


async def check_recorded(engine: AsyncEngine, run: Run) -> dict[str, int]:
    """Every ticket and customer message once, each message on its own ticket; returns the figures."""
    plan = run.plan
    assert not run.errors, "deliveries failed:\n" + "\n".join(
        f"  {e.kind} #{e.n}: {error!r}" for e, error in run.errors[:20]
    )
    tickets = plan.tickets()
    [(ticket_count,)] = await _rows(engine, select(func.count()).select_from(TicketRow))
    assert ticket_count == len(tickets), "one ticket per event that opens one"

    recorded = await _rows(
        engine,
        select(EntryRow.platform, EntryRow.external_id, EntryRow.ticket_number, EntryRow.body).where(
            EntryRow.kind == EntryKind.CUSTOMER
        ),
    )
    times = Counter((platform, external) for platform, external, _, _ in recorded)
    twice = {key: n for key, n in times.items() if n > 1}
    assert not twice, f"recorded more than once: {sorted(twice.items())[:10]}"
    expected = {run.key(e) for e in plan.messages()}
    assert set(times) == expected, (
        f"missing: {sorted(expected - set(times))[:10]}; unexpected: {sorted(set(times) - expected)[:10]}"
    )

    where = {(platform, external): number for platform, external, number, _ in recorded}
    numbers: dict[str, int] = {}
    for key, messages in tickets.items():
        landed = {where[run.key(m)] for m in messages}
        assert len(landed) == 1, f"the messages of {key} landed on tickets {sorted(landed)}"
        numbers[key] = landed.pop()
    assert len(set(numbers.values())) == len(numbers), "two conversations share a ticket"

    body = {(platform, external): text for platform, external, _, text in recorded}
    finals = plan.final_texts()
    wrong = [n for n in finals if body[run.key(_event(plan, n))] != finals[n]]
    assert not wrong, f"messages without their final text: {wrong[:10]}"

    greetings = await _rows(
        engine,
        select(EntryRow.ticket_number, func.count())
        .where(EntryRow.kind == EntryKind.BOT)
        .group_by(EntryRow.ticket_number),
    )
    assert dict(greetings) == dict.fromkeys(numbers.values(), 1), "one greeting on each ticket's record"
    created = await _rows(
        engine,
        select(TimelineRow.ticket_number, func.count())
        .where(TimelineRow.action == "created")
        .group_by(TimelineRow.ticket_number),
    )
    assert dict(created) == dict.fromkeys(numbers.values(), 1)
    [(customers,)] = await _rows(engine, select(func.count()).select_from(CustomerRow))
    assert customers == len({e.customer for e in plan.messages()})
    return {
        "events": len(plan.events),
        "deliveries": plan.deliveries,
        "tickets": ticket_count,
        "entries": len(recorded),
        "rounds": len(plan.rounds),
    }


async def check_noted_once(
    engine: AsyncEngine, run: Run, edit_relays: Counter[str], deletion_notes: Counter[int]
) -> None:
    """Each edit and each deletion noted once on the timeline and told to the agents once.

    `edit_relays` counts the agents' messages about edits by the edit's token (its new text carries it);
    `deletion_notes` counts deletion notes by the ticket they name (a note does not quote the message).
    """
    plan = run.plan
    noted = await _rows(engine, select(TimelineRow.action, TimelineRow.detail))
    edits = Counter(str(detail.get("entry")) for action, detail in noted if action == "edited")
    deletions = Counter(str(detail.get("entry")) for action, detail in noted if action == "deleted")
    entries = await _rows(
        engine,
        select(EntryRow.platform, EntryRow.external_id, EntryRow.id, EntryRow.ticket_number).where(
            EntryRow.kind == EntryKind.CUSTOMER
        ),
    )
    entry_of = {(platform, external): str(entry) for platform, external, entry, _ in entries}
    ticket_of = {(platform, external): number for platform, external, _, number in entries}
    problems: list[str] = []
    for event in plan.of_kind(Kind.EDIT):
        assert event.target is not None
        entry = entry_of[run.key(_event(plan, event.target))]
        if edits[entry] != 1 or edit_relays[token(event.n)] != 1:
            problems.append(
                f"edit #{event.n} ({run.plan.copies[event.n]} copies): {edits[entry]} 'edited' on the "
                f"timeline, told to agents {edit_relays[token(event.n)]} times"
            )
    expected_notes: Counter[int] = Counter()
    for event in plan.of_kind(Kind.DELETE):
        assert event.target is not None
        key = run.key(_event(plan, event.target))
        expected_notes[ticket_of[key]] += 1
        if deletions[entry_of[key]] != 1:
            problems.append(
                f"deletion #{event.n} ({run.plan.copies[event.n]} copies): "
                f"{deletions[entry_of[key]]} 'deleted' on the timeline"
            )
    for number in sorted(expected_notes | deletion_notes):
        if deletion_notes[number] != expected_notes[number]:
            problems.append(
                f"ticket #{number}: {expected_notes[number]} deletions, told to agents "
                f"{deletion_notes[number]} times"
            )
    assert not problems, (
        f"{len(problems)} problems over {len(plan.of_kind(Kind.EDIT))} edits and "
        f"{len(plan.of_kind(Kind.DELETE))} deletions ({plan.deliveries} deliveries):\n  "
        + "\n  ".join(problems[:15])
    )


EDITED = re.compile(r"edited a message")
DELETED = re.compile(r"#(\d+) · .* deleted a message")


def edit_relays(texts: Sequence[str]) -> Counter[str]:
    return Counter(word for text in texts if EDITED.search(text) for word in re.findall(r"Q\d{5}x", text))


def deletion_notes(texts: Sequence[str]) -> Counter[int]:
    return Counter(int(match.group(1)) for text in texts if (match := DELETED.search(text)))


def _event(plan: Plan, n: int) -> Event:
    event = plan.events[n]
    assert event.n == n
    return event


def figures(where: str, numbers: dict[str, int], run: Run) -> None:
    raced = f", {run.retries} units of work run again after a lost race" if run.retries is not None else ""
    print(
        f"\n[redelivery] {where}: {numbers['events']} events, {numbers['deliveries']} deliveries "
        f"in {numbers['rounds']} rounds, {numbers['tickets']} tickets, {numbers['entries']} customer "
        f"entries{raced}, {run.seconds:.1f} s"
    )


async def _gather(
    run: Run, batch: Sequence[Event], deliver: Callable[[Event], Awaitable[list[Outgoing] | None]]
) -> None:
    results = await asyncio.gather(*(deliver(e) for e in batch), return_exceptions=True)
    for event, result in zip(batch, results, strict=True):
        if isinstance(result, BaseException):
            run.errors.append((event, result))
        elif result:
            run.said += result


# --- (a) the core desk on the real storage --------------------------------------------------------


def core_customers() -> list[Customer]:
    return customers_of({"slack": 24, "discord": 24, "console": 12})


def core_platform(event: Event) -> str:
    return event.customer.platform


class CoreDelivery:
    """Events as the adapters hand them to the desk: Slack's `channel:ts` ids and thread per top-level
    message, Discord's snowflakes and private thread per ticket, the console's one conversation."""

    def __init__(self, desk: Desk, plan: Plan) -> None:
        self.desk = desk
        self.plan = plan
        self.run = Run(plan, core_platform)
        for event in plan.messages():
            self.run.ids[event.n] = self._message_id(event)

    def _message_id(self, event: Event) -> str:
        platform = event.customer.platform
        if platform == "slack":
            channel = SLACK_SUPPORT if event.kind in (Kind.OPEN, Kind.REPLY) else self._dm(event.customer)
            return f"{channel}:{_slack_ts(event.n)}"
        if platform == "discord":
            return str(1_200_000_000_000_000_000 + event.n)
        return f"console-line-{event.n:05d}"

    @staticmethod
    def _dm(customer: Customer) -> str:
        return f"D{customer.index:04d}"

    def _conversation(self, event: Event) -> Conversation:
        platform = event.customer.platform
        if platform == "console":
            return Conversation("console", "support")
        if event.kind is Kind.DM:
            if platform == "slack":
                return Conversation("slack", self._dm(event.customer), None, TEAM_ID)
            return Conversation("discord", str(1_300_000_000_000_000_000 + event.customer.index))
        assert event.thread is not None
        if platform == "slack":
            return Conversation("slack", SLACK_SUPPORT, _slack_ts(event.thread), TEAM_ID)
        thread = str(1_100_000_000_000_000_000 + event.thread)
        return Conversation("discord", thread, thread, str(GUILD_ID))

    def _actor(self, customer: Customer) -> Actor:
        if customer.platform == "console":
            user = f"customer{customer.index:03d}"
            return Actor(Person("console", user, user.capitalize()), Role.CUSTOMER)
        user = f"U{customer.index:04d}" if customer.platform == "slack" else str(3_000 + customer.index)
        return Actor(Person(customer.platform, user, customer.name), Role.CUSTOMER)

    async def deliver(self, event: Event) -> list[Outgoing]:
        platform = event.customer.platform
        if event.kind is Kind.EDIT:
            assert event.target is not None
            return await self.desk.message_edited(platform, self.run.ids[event.target], event.text)
        if event.kind is Kind.DELETE:
            assert event.target is not None
            return await self.desk.message_deleted(platform, self.run.ids[event.target])
        incoming = IncomingMessage(
            self._actor(event.customer), event.text, self._conversation(event), self.run.ids[event.n]
        )
        return await self.desk.receive(incoming)


def _slack_ts(n: int) -> str:
    return f"{1_711_000_000 + n}.{n:06d}"


async def run_core(uow_factory: Callable[[], SqlUnitOfWork], plan: Plan) -> Run:
    clock = FakeClock(T0)
    attempts = Counter[str]()

    def counted() -> SqlUnitOfWork:
        attempts["units of work"] += 1
        return uow_factory()

    delivery = CoreDelivery(Desk(counted, clock, load_policy()), plan)
    started = time.perf_counter()
    for batch in plan.rounds:
        await _gather(delivery.run, batch, delivery.deliver)
        clock.advance(ROUND_GAP)
    delivery.run.seconds = time.perf_counter() - started
    delivery.run.retries = attempts["units of work"] - plan.deliveries
    return delivery.run


def check_said(run: Run) -> None:
    """What the desk said over all deliveries: per ticket one greeting and one card; per later
    message one relay to the agents."""
    plan = run.plan
    greetings = Counter(m.audience.ticket_number for m in run.said if isinstance(m, CustomerMessage))
    cards = Counter(
        m.audience.ticket_number
        for m in run.said
        if isinstance(m, StaffMessage)
        and m.kind is StaffKind.CARD
        and isinstance(m.audience.ticket_number, int)
    )
    tickets = len(plan.tickets())
    assert len(greetings) == tickets and set(greetings.values()) == {1}, (
        f"greetings per ticket: {sorted(Counter(greetings.values()).items())} over {len(greetings)} tickets"
    )
    assert len(cards) == tickets and set(cards.values()) == {1}, "one card per ticket"
    assert set(greetings) == set(cards)
    relays = Counter(
        word
        for m in run.said
        if isinstance(m, StaffMessage) and m.kind is StaffKind.RELAY
        for word in re.findall(r"Q\d{5}x", m.text)
    )
    later = [e for e in plan.messages() if not e.opens]
    wrong = {token(e.n): relays[token(e.n)] for e in later if relays[token(e.n)] != 1}
    assert not wrong, f"relays per message, where not one: {sorted(wrong.items())[:10]}"


async def test_a_thousand_events_delivered_two_or_three_times_are_each_recorded_once(
    uow_factory: Callable[[], SqlUnitOfWork], engine: AsyncEngine
) -> None:
    plan = make_plan(CORE_EVENTS, core_customers(), CORE_WEIGHTS)
    assert len(plan.events) == CORE_EVENTS and plan.deliveries >= 2 * CORE_EVENTS
    run = await run_core(uow_factory, plan)
    numbers = await check_recorded(engine, run)
    check_said(run)
    figures(f"core desk on {engine.dialect.name}", numbers, run)


@pytest.mark.long
async def test_thousands_of_events_delivered_two_or_three_times_are_each_recorded_once(
    uow_factory: Callable[[], SqlUnitOfWork], engine: AsyncEngine
) -> None:
    """Twice as many events at SCALE 1 (times RELAYDESK_TEST_SCALE), more customers, denser rounds."""
    customers = customers_of({"slack": 90, "discord": 90, "console": 40})
    plan = make_plan(CORE_EVENTS_LONG, customers, CORE_WEIGHTS, seed=SEED + 8, per_round=40)
    run = await run_core(uow_factory, plan)
    numbers = await check_recorded(engine, run)
    check_said(run)
    figures(f"core desk on {engine.dialect.name} (long)", numbers, run)


async def test_an_edit_or_deletion_delivered_two_or_three_times_is_noted_once(
    uow_factory: Callable[[], SqlUnitOfWork], engine: AsyncEngine
) -> None:
    plan = make_plan(SMALL_EVENTS, core_customers(), EDIT_WEIGHTS, seed=SEED + 1)
    run = await run_core(uow_factory, plan)
    await check_recorded(engine, run)
    texts = [m.text for m in run.said if isinstance(m, StaffMessage)]
    await check_noted_once(engine, run, edit_relays(texts), deletion_notes(texts))


async def test_two_messages_at_once_where_no_ticket_is_open_yet_open_one_ticket(
    uow_factory: Callable[[], SqlUnitOfWork], engine: AsyncEngine
) -> None:
    """Not redelivery: two distinct messages racing, as a quick second message does. A new customer's
    pair is safe (creating the customer twice conflicts, and the loser runs again); a known one's is
    not, where transactions run side by side."""
    desk = Desk(uow_factory, FakeClock(T0), load_policy())
    said: list[Outgoing] = []
    for i in range(10):
        who = Actor(Person("slack", f"U9{i:03d}", f"Cleo{i} Park"), Role.CUSTOMER)
        ts = _slack_ts(9000 + i)
        thread = Conversation("slack", SLACK_SUPPORT, ts, TEAM_ID)
        await desk.receive(
            IncomingMessage(who, "A question about my parcel", thread, f"{SLACK_SUPPORT}:{ts}")
        )
        dm = Conversation("slack", f"D9{i:03d}", None, TEAM_ID)
        first = IncomingMessage(who, "Hello, a question about my account", dm, f"D9{i:03d}:1.000001")
        second = IncomingMessage(who, "It is the account for cleo@example.com", dm, f"D9{i:03d}:1.000002")
        for out in await asyncio.gather(desk.receive(first), desk.receive(second)):
            said += out
    in_dms = await _rows(
        engine,
        select(TicketRow.channel_id, func.count())
        .where(TicketRow.thread_id.is_(None))
        .group_by(TicketRow.channel_id),
    )
    assert dict(in_dms) == {f"D9{i:03d}": 1 for i in range(10)}, "one ticket per DM"
    greetings = [
        m
        for m in said
        if isinstance(m, CustomerMessage)
        and m.audience.conversation is not None
        and m.audience.conversation.thread_id is None
    ]
    assert len(greetings) == 10, "one greeting per DM"


# --- (b) the Slack adapter over HTTP --------------------------------------------------------------


@pytest.fixture
def quiet_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No settings from the outer environment or a stray .env."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("SLACK_", "DISCORD_", "RELAYDESK_HTTP_")):
            monkeypatch.delenv(key)
    return monkeypatch


SLACK_CUSTOMERS = 30
"""Customers `U1000`… in the Slack workspace; Ana and Ben are its agents."""


def slack_customers() -> list[Customer]:
    return customers_of({"slack": SLACK_CUSTOMERS})


def slack_user(customer: Customer) -> str:
    return f"U{1000 + customer.index}"


WireSlack = Callable[[AsyncEngine, FakeClock], Awaitable[Slack]]


@pytest.fixture
async def slack_wire(
    quiet_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[WireSlack]:
    """The Slack adapter in HTTP mode with a signing secret, against the fake Web API (test_slack.py's
    harness), on the engine and clock given."""
    fake = FakeSlack()
    for customer in slack_customers():
        fake.add_user(slack_user(customer), real_name=customer.name)
    fake.add_user("UANA", display_name="Ana", real_name="Ana Lima")
    fake.add_user("UBEN", display_name="Ben", real_name="Ben Okafor")
    await fake.start()
    caplog.set_level(logging.WARNING)
    started: list[Slack] = []

    async def start(engine: AsyncEngine, clock: FakeClock) -> Slack:
        config = SlackSettings(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=fake.api_url,
            SLACK_SUPPORT_CHANNELS=SLACK_SUPPORT,
            SLACK_AGENT_CHANNEL=SLACK_AGENTS,
            SLACK_AGENTS="UANA,UBEN",
            RELAYDESK_HTTP_HOST="127.0.0.1",
            RELAYDESK_HTTP_PORT="0",
        )
        sessions = session_factory(engine)
        desk = Desk(lambda: SqlUnitOfWork(sessions), clock, load_policy())
        adapter = SlackAdapter(config, desk, engine)
        await adapter.start()
        http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        harness = Slack(fake, adapter, engine, http, caplog)
        started.append(harness)
        return harness

    try:
        yield start
    finally:
        for harness in started:
            await harness.close()
        await fake.stop()


BUSY_RESEND = 0.1
"""Seconds before a copy refused as too busy is sent again (Slack waits longer)."""


class SlackDelivery:
    """Each event as one Events API request body, signed afresh for every copy; copies after the first
    carry `X-Slack-Retry-Num` and `X-Slack-Retry-Reason`, as Slack's retries do."""

    def __init__(self, slack: Slack, plan: Plan) -> None:
        self.slack = slack
        self.run = Run(plan, lambda _: "slack")
        self.sent: Counter[int] = Counter()
        self.ts: dict[int, str] = {}
        self.channel: dict[int, str] = {}
        self.bodies: dict[int, str] = {}
        self.retries: list[str] = []
        self.refused = 0
        """Copies answered 503 (too busy) and sent again."""

    def _body(self, event: Event) -> str:
        if event.n in self.bodies:
            return self.bodies[event.n]
        n, user = event.n, slack_user(event.customer)
        ts = f"{1_713_000_000 + n}.{n:06d}"
        payload: dict[str, Any]
        if event.kind is Kind.EDIT or event.kind is Kind.DELETE:
            assert event.target is not None
            channel, target_ts = self.channel[event.target], self.ts[event.target]
            before = {"type": "message", "user": user, "text": _event(self.run.plan, event.target).text}
            payload = {
                "type": "message",
                "hidden": True,
                "channel": channel,
                "channel_type": "im" if channel.startswith("D") else "channel",
                "ts": ts,
                "event_ts": ts,
                "previous_message": {**before, "ts": target_ts},
            }
            if event.kind is Kind.EDIT:
                payload["subtype"] = "message_changed"
                payload["message"] = {
                    "type": "message",
                    "user": user,
                    "text": event.text,
                    "ts": target_ts,
                    "edited": {"user": user, "ts": ts},
                    "team": TEAM_ID,
                }
            else:
                payload |= {"subtype": "message_deleted", "deleted_ts": target_ts}
        else:
            channel = SLACK_SUPPORT if event.kind in (Kind.OPEN, Kind.REPLY) else f"D{user}"
            payload = {
                "type": "message",
                "user": user,
                "text": event.text,
                "ts": ts,
                "event_ts": ts,
                "channel": channel,
                "channel_type": "im" if event.kind is Kind.DM else "channel",
                "team": TEAM_ID,
                "client_msg_id": f"00000000-0000-4000-8000-{n:012d}",
            }
            if event.kind is Kind.REPLY:
                assert event.thread is not None
                payload |= {"thread_ts": self.ts[event.thread], "parent_user_id": user}
            self.ts[n], self.channel[n] = ts, channel
            self.run.ids[n] = f"{channel}:{ts}"
        self.bodies[n] = json.dumps(envelope(payload, event_id=f"Ev{n:08d}"))
        return self.bodies[n]

    def prepare(self, batch: Sequence[Event]) -> None:
        for event in sorted(set(batch), key=lambda e: e.n):
            self._body(event)

    async def deliver(self, event: Event) -> None:
        """One copy, sent again (as Slack would, if sooner) while the adapter is too busy to take it."""
        while True:
            attempt = self.sent[event.n]
            self.sent[event.n] += 1
            headers = {}
            if attempt:
                reason = ("http_timeout", "http_error", "unknown_error")[attempt % 3]
                headers = {"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": reason}
                self.retries.append(reason)
            status, text = await self.slack.send_json(self.bodies[event.n], headers)
            if status != 503:
                break
            self.refused += 1
            await asyncio.sleep(BUSY_RESEND)
        assert status == 200, text


async def run_slack(slack: Slack, clock: FakeClock, plan: Plan) -> SlackDelivery:
    delivery = SlackDelivery(slack, plan)
    started = time.perf_counter()
    for batch in plan.rounds:
        delivery.prepare(batch)
        await _gather(delivery.run, batch, delivery.deliver)
        await slack.settle()
        clock.advance(ROUND_GAP)
    delivery.run.seconds = time.perf_counter() - started
    return delivery


async def check_slack_said(slack: Slack, delivery: SlackDelivery) -> None:
    """On the fake Web API: one greeting per ticket where its customer wrote, nothing else to customers,
    one card per ticket, one relay per later message."""
    plan, fake = delivery.run.plan, slack.fake
    to_customers = [c for c in fake.posts() if c.get("channel") != SLACK_AGENTS]
    greeted = Counter((c.get("channel"), c.get("thread_ts")) for c in to_customers)
    expected: Counter[tuple[str, str | None]] = Counter()
    for messages in plan.tickets().values():
        first = messages[0]
        channel = delivery.channel[first.n]
        expected[(channel, delivery.ts[first.n] if first.kind is Kind.OPEN else None)] += 1
    assert greeted == expected, (
        f"greetings: {sum(greeted.values())} for {len(expected)} tickets; where not one: "
        f"{sorted((k, v) for k, v in greeted.items() if v != 1)[:10]}"
    )
    cards = [c for c in fake.posts(SLACK_AGENTS) if c.get("blocks")]
    assert len(cards) == len(expected), "one card per ticket"
    [(anchors,)] = await _rows(slack.engine, select(func.count()).select_from(AnchorRow))
    assert anchors == len(expected), "each card attached to its ticket once"
    relays = Counter(
        word
        for text in fake.texts(SLACK_AGENTS)
        if not EDITED.search(text)
        for word in re.findall(r"Q\d{5}x", text)
    )
    wrong = {
        token(e.n): relays[token(e.n)] for e in plan.messages() if not e.opens and relays[token(e.n)] != 1
    }
    assert not wrong, f"relays per later message, where not one: {sorted(wrong.items())[:10]}"


async def test_slack_events_retried_two_or_three_times_are_each_recorded_and_answered_once(
    slack_wire: WireSlack, sqlite_engine: AsyncEngine
) -> None:
    clock = FakeClock(T0)
    slack = await slack_wire(sqlite_engine, clock)
    plan = make_plan(SLACK_EVENTS, slack_customers(), WIRE_WEIGHTS, seed=SEED + 2)
    delivery = await run_slack(slack, clock, plan)
    numbers = await check_recorded(sqlite_engine, delivery.run)
    await check_slack_said(slack, delivery)
    resent = plan.deliveries - len(plan.events) + delivery.refused
    assert len(delivery.retries) == resent, "every copy after the first a retry"
    slack.assert_no_errors_logged()
    figures("Slack adapter over HTTP on sqlite", numbers, delivery.run)


@pytest.mark.long
async def test_slack_events_retried_at_length_are_each_recorded_and_answered_once(
    slack_wire: WireSlack, engine: AsyncEngine
) -> None:
    clock = FakeClock(T0)
    slack = await slack_wire(engine, clock)
    plan = make_plan(SLACK_EVENTS_LONG, slack_customers(), WIRE_WEIGHTS, seed=SEED + 3)
    delivery = await run_slack(slack, clock, plan)
    numbers = await check_recorded(engine, delivery.run)
    await check_slack_said(slack, delivery)
    slack.assert_no_errors_logged()
    figures(f"Slack adapter over HTTP on {engine.dialect.name} (long)", numbers, delivery.run)


async def test_slack_edits_and_deletions_retried_are_noted_once(
    slack_wire: WireSlack, engine: AsyncEngine
) -> None:
    """A retried `message_changed` or `message_deleted` racing its first delivery: the agents' channel
    hears of the edit, or the deletion, once."""
    clock = FakeClock(T0)
    slack = await slack_wire(engine, clock)
    plan = make_plan(SMALL_EVENTS, slack_customers(), EDIT_WEIGHTS, seed=SEED + 4)
    delivery = await run_slack(slack, clock, plan)
    await check_recorded(engine, delivery.run)
    texts = slack.fake.texts(SLACK_AGENTS)
    await check_noted_once(engine, delivery.run, edit_relays(texts), deletion_notes(texts))


# --- (c) the Discord adapter, fed gateway dispatches ----------------------------------------------

DISCORD_CUSTOMERS = 30


def discord_customers() -> list[Customer]:
    return customers_of({"discord": DISCORD_CUSTOMERS})


def discord_user(customer: Customer) -> int:
    return 1_187_500_000_000_010_000 + customer.index


WireDiscord = Callable[[AsyncEngine, FakeClock], Awaitable[Discord]]


@pytest.fixture
async def discord_wire(
    quiet_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[WireDiscord]:
    """The Discord adapter, connected to the fake (test_discord.py's harness and guild: #support,
    #agents; customers with the Customers role), on the engine and clock given."""
    fake = FakeDiscord()
    fake.add_role(AGENT_ROLE, "Support agents", 2)
    fake.add_role(CUSTOMERS_ROLE, "Customers", 1)
    fake.add_text_channel(SUPPORT, "support")
    fake.add_text_channel(DISCORD_AGENTS, "agents")
    for customer in discord_customers():
        user = discord_user(customer)
        fake.add_user(user, f"customer{customer.index:03d}", customer.name)
        fake.add_member(user, [CUSTOMERS_ROLE])
    await fake.start()
    quiet_env.setattr(discord.http.Route, "BASE", fake.api_base)
    caplog.set_level(logging.WARNING)
    started: list[Discord] = []

    async def start(engine: AsyncEngine, clock: FakeClock) -> Discord:
        sessions = session_factory(engine)
        desk = Desk(lambda: SqlUnitOfWork(sessions), clock, load_policy())
        harness = Discord(fake, DiscordAdapter(settings(), desk, sync_commands=False), engine, caplog)
        started.append(harness)
        await harness.connect()
        return harness

    try:
        yield start
    finally:
        for harness in started:
            await harness.close()
        await fake.stop()


class DiscordDelivery:
    """Each event as one gateway dispatch, built once from the fake's state and fed again for each
    copy, as a RESUME replays it: MESSAGE_CREATE in #support (the adapter opens a private thread), in a
    ticket's thread or in a DM; MESSAGE_UPDATE for an edit; MESSAGE_DELETE for a deletion."""

    def __init__(self, dc: Discord, plan: Plan) -> None:
        self.dc = dc
        self.run = Run(plan, lambda _: "discord")
        self.dispatches: dict[int, tuple[str, dict[str, Any]]] = {}
        self.threads: dict[int, int] = {}  # OPEN event → the ticket's private thread

    async def _thread_of(self, opened: int) -> int:
        if opened not in self.threads:
            statement = (
                select(TicketRow.thread_id)
                .join(EntryRow, EntryRow.ticket_number == TicketRow.number)
                .where(EntryRow.platform == "discord", EntryRow.external_id == self.run.ids[opened])
            )
            [(thread,)] = await _rows(self.dc.engine, statement)
            self.threads[opened] = int(thread)
        return self.threads[opened]

    async def prepare(self, batch: Sequence[Event]) -> None:
        fake = self.dc.fake
        for event in sorted(set(batch), key=lambda e: e.n):
            if event.n in self.dispatches:
                continue
            user = discord_user(event.customer)
            if event.kind is Kind.EDIT:
                assert event.target is not None
                payload = fake.message_update(int(self.run.ids[event.target]), event.text)
                self.dispatches[event.n] = ("MESSAGE_UPDATE", payload)
                continue
            if event.kind is Kind.DELETE:
                assert event.target is not None
                payload = fake.message_delete(int(self.run.ids[event.target]))
                self.dispatches[event.n] = ("MESSAGE_DELETE", payload)
                continue
            if event.kind is Kind.OPEN:
                channel = SUPPORT
            elif event.kind is Kind.REPLY:
                assert event.thread is not None
                channel = await self._thread_of(event.thread)
            else:
                channel = fake.dm_channel(user)
            payload = fake.message_create(channel, user, event.text)
            self.run.ids[event.n] = payload["id"]
            self.dispatches[event.n] = ("MESSAGE_CREATE", payload)

    def feed(self, batch: Sequence[Event]) -> None:
        """The round's dispatches back to back: discord.py runs each handler in a task of its own, so
        the copies race."""
        for event in batch:
            self.dc.feed(*self.dispatches[event.n])


async def run_discord(dc: Discord, clock: FakeClock, plan: Plan) -> DiscordDelivery:
    delivery = DiscordDelivery(dc, plan)
    started = time.perf_counter()
    for batch in plan.rounds:
        await delivery.prepare(batch)
        delivery.feed(batch)
        await dc.settle()
        clock.advance(ROUND_GAP)
    delivery.run.seconds = time.perf_counter() - started
    return delivery


async def check_discord_said(dc: Discord, delivery: DiscordDelivery) -> None:
    """On the fake REST API: one private thread per opening message, one greeting per ticket where its
    customer wrote and nothing else to customers, one card per ticket, one relay per later message."""
    plan, fake = delivery.run.plan, dc.fake
    opens = plan.of_kind(Kind.OPEN)
    assert len(fake.threads_started(SUPPORT)) == len(opens), "one private thread per opening message"
    expected: Counter[int] = Counter()
    for messages in plan.tickets().values():
        first = messages[0]
        if first.kind is Kind.OPEN:
            expected[await delivery._thread_of(first.n)] += 1
        else:
            expected[fake.dm_channel(discord_user(first.customer))] += 1
    staff_side = {DISCORD_AGENTS} | {int(c.answer["id"]) for c in fake.threads_from_messages(DISCORD_AGENTS)}
    greeted = Counter(c.channel_id for c in fake.posts() if c.channel_id not in staff_side)
    assert greeted == expected, (
        f"greetings: {sum(greeted.values())} for {len(expected)} tickets; where not one: "
        f"{sorted((k, v) for k, v in greeted.items() if v != 1)[:10]}"
    )
    cards = [c for c in fake.posts(DISCORD_AGENTS) if c.json.get("embeds")]
    assert len(cards) == len(expected), "one card per ticket"
    [(anchors,)] = await _rows(dc.engine, select(func.count()).select_from(AnchorRow))
    assert anchors == len(expected), "each card attached to its ticket once"
    relays = Counter(
        word for text in fake.texts() if not EDITED.search(text) for word in re.findall(r"Q\d{5}x", text)
    )
    later = [e for e in plan.messages() if not e.opens]
    wrong = {token(e.n): relays[token(e.n)] for e in later if relays[token(e.n)] != 1}
    assert not wrong, f"relays per later message, where not one: {sorted(wrong.items())[:10]}"


async def test_discord_events_replayed_two_or_three_times_are_each_recorded_and_answered_once(
    discord_wire: WireDiscord, sqlite_engine: AsyncEngine
) -> None:
    clock = FakeClock(T0)
    dc = await discord_wire(sqlite_engine, clock)
    plan = make_plan(DISCORD_EVENTS, discord_customers(), WIRE_WEIGHTS, seed=SEED + 5)
    delivery = await run_discord(dc, clock, plan)
    numbers = await check_recorded(sqlite_engine, delivery.run)
    await check_discord_said(dc, delivery)
    dc.assert_no_errors_logged()
    figures("Discord adapter, gateway replays, on sqlite", numbers, delivery.run)


@pytest.mark.long
async def test_discord_events_replayed_at_length_are_each_recorded_and_answered_once(
    discord_wire: WireDiscord, engine: AsyncEngine
) -> None:
    clock = FakeClock(T0)
    dc = await discord_wire(engine, clock)
    plan = make_plan(DISCORD_EVENTS_LONG, discord_customers(), WIRE_WEIGHTS, seed=SEED + 6)
    delivery = await run_discord(dc, clock, plan)
    numbers = await check_recorded(engine, delivery.run)
    await check_discord_said(dc, delivery)
    dc.assert_no_errors_logged()
    figures(f"Discord adapter, gateway replays, on {engine.dialect.name} (long)", numbers, delivery.run)


async def test_discord_edits_and_deletions_replayed_are_noted_once(
    discord_wire: WireDiscord, engine: AsyncEngine
) -> None:
    """MESSAGE_UPDATE and MESSAGE_DELETE replayed while the first is being handled (the adapter's
    in-flight guard is for MESSAGE_CREATE only): the agents' channel hears of each once."""
    clock = FakeClock(T0)
    dc = await discord_wire(engine, clock)
    plan = make_plan(SMALL_EVENTS, discord_customers(), EDIT_WEIGHTS, seed=SEED + 7)
    delivery = await run_discord(dc, clock, plan)
    await check_recorded(engine, delivery.run)
    texts = dc.fake.texts()
    await check_noted_once(engine, delivery.run, edit_relays(texts), deletion_notes(texts))
