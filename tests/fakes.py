"""In-memory fakes of the storage ports, so the core can be tested without a database.

`FakeStore` is the "database": committed rows, keyed by primary key, one dict per table. Each
`FakeUnitOfWork` works on deep copies taken when it starts and writes its changes back only on `commit()`,
so, as with the SQL unit of work, anything not committed (a refused command, an exception) is discarded,
including changes made to domain objects the unit of work handed out.

The repositories follow storage/repositories.py: ticket numbers 1, 2, 3..., agents found by user id and
then by display name in any case, queues listed urgent first, uniqueness rules checked at commit and
reported as `bot.ports.Conflict`.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import inspect
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from bot.clock import FakeClock
from bot.commands import Actor, IncomingMessage
from bot.desk import Desk
from bot.domain import (
    WORKABLE_STATUSES,
    Agent,
    Anchor,
    AuditRecord,
    Checkin,
    CheckinState,
    Customer,
    Delivery,
    DeliveryState,
    Entry,
    EntryKind,
    EntryLine,
    Identity,
    Incentive,
    Priority,
    ProfileNote,
    Promise,
    PromiseState,
    Role,
    SlaClock,
    Status,
    StoredSnippet,
    Survey,
    Ticket,
    TicketKind,
    TimelineEvent,
)
from bot.messages import Conversation, CustomerMessage, InternalText, Outgoing, Person, StaffMessage
from bot.policy import Policy, load_policy
from bot.ports import Conflict

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""A Monday morning: where the fake clock starts unless told otherwise."""

TABLES = (
    "customers",
    "identities",
    "agents",
    "tickets",
    "entries",
    "timeline",
    "anchors",
    "snippets",
    "audit_log",
    "profile_notes",
    "incentives",
    "sla_clocks",
    "promises",
    "checkins",
    "surveys",
    "deliveries",
)
_PRIORITY_ORDER = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}

Tables = dict[str, dict[int, Any]]


class IntegrityViolation(AssertionError):
    """The core wrote something a database would reject for a reason other than a race (a dangling key).

    Deliberately not a `Conflict`, so the desk does not retry it away: a test sees it.
    """


@dataclass
class FakeStore:
    """The committed state of the fake database."""

    customers: dict[int, Customer] = field(default_factory=dict)
    identities: dict[int, Identity] = field(default_factory=dict)
    agents: dict[int, Agent] = field(default_factory=dict)
    tickets: dict[int, Ticket] = field(default_factory=dict)
    entries: dict[int, Entry] = field(default_factory=dict)
    timeline: dict[int, TimelineEvent] = field(default_factory=dict)
    anchors: dict[int, Anchor] = field(default_factory=dict)
    snippets: dict[int, StoredSnippet] = field(default_factory=dict)
    audit_log: dict[int, AuditRecord] = field(default_factory=dict)
    profile_notes: dict[int, ProfileNote] = field(default_factory=dict)
    incentives: dict[int, Incentive] = field(default_factory=dict)
    sla_clocks: dict[int, SlaClock] = field(default_factory=dict)
    promises: dict[int, Promise] = field(default_factory=dict)
    checkins: dict[int, Checkin] = field(default_factory=dict)
    surveys: dict[int, Survey] = field(default_factory=dict)
    deliveries: dict[int, Delivery] = field(default_factory=dict)
    commits: int = 0
    fail_next_commits: int = 0
    """Make this many of the next commits raise Conflict, as if another process had won a race."""

    def tables(self) -> Tables:
        return {name: getattr(self, name) for name in TABLES}

    def snapshot(self) -> Tables:
        """A deep copy of every table, to compare before and after."""
        return copy.deepcopy(self.tables())

    def replace(self, tables: Tables) -> None:
        for name in TABLES:
            setattr(self, name, tables[name])

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    # --- reading the committed state, for assertions -------------------------------------------

    def ticket(self, number: int) -> Ticket:
        return self.tickets[number]

    def entries_for(self, number: int) -> list[Entry]:
        return [e for _, e in sorted(self.entries.items()) if e.ticket_number == number]

    def events_for(self, number: int, action: str | None = None) -> list[TimelineEvent]:
        events = [e for _, e in sorted(self.timeline.items()) if e.ticket_number == number]
        return [e for e in events if action is None or e.action == action]

    def agent(self, display_name: str) -> Agent:
        return next(a for a in self.agents.values() if a.display_name == display_name)

    def customer(self, display_name: str) -> Customer:
        return next(c for c in self.customers.values() if c.display_name == display_name)

    def snippet(self, name: str) -> StoredSnippet | None:
        return next((s for s in self.snippets.values() if s.name == name), None)


def _next_id(table: dict[int, Any]) -> int:
    return max(table, default=0) + 1


async def _pause() -> None:
    """Give other tasks a turn, as a database round trip would, so races can be tested."""
    await asyncio.sleep(0)


class _Repository:
    def __init__(self, uow: FakeUnitOfWork, table: str) -> None:
        self._uow = uow
        self._table = table

    @property
    def rows(self) -> dict[int, Any]:
        return self._uow.work[self._table]


class FakeCustomers(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow, "customers")

    def _identity(self, platform: str, external_id: str) -> Identity | None:
        identities = self._uow.work["identities"].values()
        return next((i for i in identities if (i.platform, i.external_id) == (platform, external_id)), None)

    async def by_identity(self, platform: str, external_id: str, *, lock: bool = False) -> Customer | None:
        await _pause()
        identity = self._identity(platform, external_id)
        return self.rows.get(identity.customer_id) if identity else None

    async def get(self, customer_id: int) -> Customer | None:
        await _pause()
        return self.rows.get(customer_id)

    async def add(self, customer: Customer, identity: Identity) -> Customer:
        await _pause()
        customer.id = _next_id(self.rows)
        self.rows[customer.id] = customer
        identity.customer_id = customer.id
        identities = self._uow.work["identities"]
        stored = dataclasses.replace(identity, id=_next_id(identities))
        identities[stored.id] = stored
        return customer

    async def identity(self, platform: str, external_id: str) -> Identity | None:
        await _pause()
        found = self._identity(platform, external_id)
        return dataclasses.replace(found) if found else None

    async def identities(self, customer_id: int) -> list[Identity]:
        await _pause()
        rows = sorted(self._uow.work["identities"].items())
        return [dataclasses.replace(i) for _, i in rows if i.customer_id == customer_id]

    async def set_identity(self, identity_id: int, external_id: str, display_name: str) -> None:
        await _pause()
        identities = self._uow.work["identities"]
        identities[identity_id] = dataclasses.replace(
            identities[identity_id], external_id=external_id, display_name=display_name
        )

    async def find(self, platform: str, key: str) -> list[Customer]:
        await _pause()
        identities = [i for _, i in sorted(self._uow.work["identities"].items()) if i.platform == platform]
        matches = [i for i in identities if i.external_id == key] or [
            i for i in identities if i.display_name.lower() == key.lower()
        ]
        ids = sorted({i.customer_id for i in matches})
        return [self.rows[n] for n in ids]

    async def with_email(self, email: str) -> list[Customer]:
        await _pause()
        return [
            c
            for _, c in sorted(self.rows.items())
            if c.email and c.email.lower() == email.lower() and c.merged_into is None
        ]

    async def move_identities(self, from_customer: int, to_customer: int) -> int:
        await _pause()
        identities = self._uow.work["identities"]
        moving = [n for n, i in identities.items() if i.customer_id == from_customer]
        for n in moving:
            identities[n] = dataclasses.replace(identities[n], customer_id=to_customer)
        return len(moving)


class FakeProfiles:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def _table(self, name: str) -> dict[int, Any]:
        return self._uow.work[name]

    async def add_note(self, note: ProfileNote) -> None:
        await _pause()
        note.id = _next_id(self._table("profile_notes"))
        self._table("profile_notes")[note.id] = dataclasses.replace(note)

    async def notes(self, customer_id: int) -> list[ProfileNote]:
        await _pause()
        rows = sorted(self._table("profile_notes").items())
        return [dataclasses.replace(n) for _, n in rows if n.customer_id == customer_id]

    async def add_incentive(self, incentive: Incentive) -> None:
        await _pause()
        incentive.id = _next_id(self._table("incentives"))
        self._table("incentives")[incentive.id] = dataclasses.replace(incentive)

    async def incentives(self, customer_id: int) -> list[Incentive]:
        await _pause()
        rows = sorted(self._table("incentives").items())
        return [dataclasses.replace(i) for _, i in rows if i.customer_id == customer_id]

    async def move(self, from_customer: int, to_customer: int) -> None:
        await _pause()
        for name in ("profile_notes", "incentives"):
            table = self._table(name)
            for key, row in list(table.items()):
                if row.customer_id == from_customer:
                    table[key] = dataclasses.replace(row, customer_id=to_customer)

    async def erase(self, customer_id: int, placeholder: str) -> tuple[int, int]:
        await _pause()
        notes = self._table("profile_notes")
        gone = [key for key, note in notes.items() if note.customer_id == customer_id]
        for key in gone:
            del notes[key]
        incentives = self._table("incentives")
        erased = [key for key, row in incentives.items() if row.customer_id == customer_id]
        for key in erased:
            incentives[key] = dataclasses.replace(incentives[key], what=placeholder)
        return len(gone), len(erased)


class FakeAgents(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow, "agents")

    async def by_identity(self, platform: str, external_id: str) -> Agent | None:
        await _pause()
        return next(
            (
                a
                for _, a in sorted(self.rows.items())
                if (a.platform, a.external_id) == (platform, external_id)
            ),
            None,
        )

    async def find(self, platform: str, key: str) -> Agent | None:
        by_id = await self.by_identity(platform, key)
        if by_id is not None:
            return by_id
        return next(
            (
                a
                for _, a in sorted(self.rows.items())
                if a.platform == platform and a.display_name.lower() == key.lower()
            ),
            None,
        )

    async def get(self, agent_id: int) -> Agent | None:
        await _pause()
        return self.rows.get(agent_id)

    async def add(self, agent: Agent) -> Agent:
        await _pause()
        agent.id = _next_id(self.rows)
        self.rows[agent.id] = agent
        return agent


def _by_priority(tickets: Iterable[Ticket]) -> list[Ticket]:
    return sorted(tickets, key=lambda t: (_PRIORITY_ORDER.get(t.priority, 4), t.number))


class FakeTickets(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow, "tickets")

    def _newest_first(self) -> list[Ticket]:
        return [t for _, t in sorted(self.rows.items(), reverse=True)]

    async def get(self, number: int) -> Ticket | None:
        await _pause()
        return self.rows.get(number)

    async def by_thread(self, platform: str, channel_id: str, thread_id: str) -> Ticket | None:
        await _pause()
        where = (platform, channel_id, thread_id)
        return next(
            (t for t in self._newest_first() if (t.platform, t.channel_id, t.thread_id) == where), None
        )

    async def latest_in(
        self, customer_id: int, platform: str, channel_id: str, kind: TicketKind
    ) -> Ticket | None:
        await _pause()
        return next(
            (
                t
                for t in self._newest_first()
                if (t.customer_id, t.platform, t.channel_id, t.kind)
                == (customer_id, platform, channel_id, kind)
                and t.thread_id is None
            ),
            None,
        )

    async def add(self, ticket: Ticket) -> Ticket:
        await _pause()
        ticket.number = _next_id(self.rows)
        self.rows[ticket.number] = ticket
        return ticket

    async def unassigned(self, queue: str | None, limit: int) -> list[Ticket]:
        await _pause()
        found = [
            t
            for t in self.rows.values()
            if t.assignee_id is None and t.status in WORKABLE_STATUSES and (not queue or t.queue == queue)
        ]
        return _by_priority(found)[:limit]

    async def in_queue(self, queue: str, limit: int) -> list[Ticket]:
        await _pause()
        found = [t for t in self.rows.values() if t.queue == queue and t.status in WORKABLE_STATUSES]
        return _by_priority(found)[:limit]

    async def assigned_to(self, agent_id: int, limit: int) -> list[Ticket]:
        await _pause()
        found = [t for t in self.rows.values() if t.assignee_id == agent_id and t.status in WORKABLE_STATUSES]
        return _by_priority(found)[:limit]

    async def count_for_customer(self, customer_id: int, before: int | None = None) -> int:
        await _pause()
        return sum(
            1
            for number, t in self.rows.items()
            if t.customer_id == customer_id and (before is None or number < before)
        )

    async def resolved_before(self, moment: datetime, limit: int) -> list[Ticket]:
        await _pause()
        found = [
            t
            for t in self.rows.values()
            if t.status is Status.RESOLVED and t.resolved_at is not None and t.resolved_at <= moment
        ]
        return sorted(found, key=lambda t: (t.resolved_at, t.number))[:limit]

    async def touched_between(self, start: datetime, end: datetime, limit: int) -> list[Ticket]:
        await _pause()
        found = [
            t
            for _, t in sorted(self.rows.items())
            if t.created_at < end and (t.updated_at >= start or t.status in WORKABLE_STATUSES)
        ]
        return found[:limit]

    async def for_customer(self, customer_id: int) -> list[Ticket]:
        await _pause()
        return [t for _, t in sorted(self.rows.items()) if t.customer_id == customer_id]


def _stored_body(kind: EntryKind, body: str | InternalText) -> str | InternalText:
    """What reading an entry back gives, as with SQL: a note's body is internal, anything else a str."""
    text = body.hidden if isinstance(body, InternalText) else body
    return InternalText(text) if kind is EntryKind.NOTE else text


class FakeEntries(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow, "entries")

    async def add(self, entry: Entry) -> None:
        await _pause()
        number = _next_id(self.rows)
        self.rows[number] = dataclasses.replace(entry, body=_stored_body(entry.kind, entry.body), id=number)

    async def seen(self, platform: str, external_id: str) -> bool:
        await _pause()
        return any((e.platform, e.external_id) == (platform, external_id) for e in self.rows.values())

    async def for_ticket(self, number: int) -> list[Entry]:
        await _pause()
        return [dataclasses.replace(e) for _, e in sorted(self.rows.items()) if e.ticket_number == number]

    async def lines_for_ticket(self, number: int) -> list[EntryLine]:
        return [
            EntryLine(e.kind, e.author_name, e.body, e.created_at, e.mood)
            for e in await self.for_ticket(number)
            if e.kind is not EntryKind.BOT
        ]

    async def by_message(self, platform: str, external_id: str) -> Entry | None:
        await _pause()
        found = (e for e in self.rows.values() if (e.platform, e.external_id) == (platform, external_id))
        entry = next(found, None)
        return dataclasses.replace(entry) if entry else None

    async def set_body(self, entry_id: int, body: str) -> None:
        await _pause()
        entry = self.rows[entry_id]
        self.rows[entry_id] = dataclasses.replace(entry, body=_stored_body(entry.kind, body))

    async def redact(self, entry_id: int, body: str, author_name: str) -> None:
        await _pause()
        entry = self.rows[entry_id]
        self.rows[entry_id] = dataclasses.replace(
            entry, body=_stored_body(entry.kind, body), author_name=author_name, external_id=None
        )


class FakeAnchors(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow, "anchors")

    async def add(self, anchor: Anchor) -> None:
        await _pause()
        number = _next_id(self.rows)
        self.rows[number] = dataclasses.replace(anchor, id=number)

    async def by_message(self, platform: str, channel_id: str, message_id: str) -> Anchor | None:
        await _pause()
        key = (platform, channel_id, message_id)
        return next((a for a in self.rows.values() if (a.platform, a.channel_id, a.message_id) == key), None)

    async def for_ticket(self, number: int, platform: str) -> Anchor | None:
        await _pause()
        mine = [
            a for _, a in sorted(self.rows.items()) if (a.ticket_number, a.platform) == (number, platform)
        ]
        return mine[0] if mine else None


class FakeTimeline(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow, "timeline")

    async def add(self, event: TimelineEvent) -> None:
        await _pause()
        number = _next_id(self.rows)
        self.rows[number] = dataclasses.replace(event, detail=dict(event.detail), id=number)

    async def for_ticket(self, number: int) -> list[TimelineEvent]:
        await _pause()
        return [
            dataclasses.replace(e, detail=dict(e.detail))
            for _, e in sorted(self.rows.items())
            if e.ticket_number == number
        ]

    async def for_tickets(self, numbers: list[int]) -> list[TimelineEvent]:
        await _pause()
        wanted = set(numbers)
        return [
            dataclasses.replace(e, detail=dict(e.detail))
            for _, e in sorted(self.rows.items())
            if e.ticket_number in wanted
        ]

    async def redact(self, event_id: int, actor_name: str, detail: dict[str, Any]) -> None:
        await _pause()
        event = self.rows[event_id]
        self.rows[event_id] = dataclasses.replace(event, actor_name=actor_name, detail=dict(detail))


class FakeAudit(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow, "audit_log")

    async def add(self, record: AuditRecord) -> AuditRecord:
        await _pause()
        record.id = _next_id(self.rows)
        self.rows[record.id] = dataclasses.replace(record, detail=dict(record.detail))
        return record

    async def for_subject(self, customer_id: int) -> list[AuditRecord]:
        await _pause()
        return [
            dataclasses.replace(r, detail=dict(r.detail))
            for _, r in sorted(self.rows.items())
            if r.subject == customer_id
        ]


class FakeSnippets(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow, "snippets")

    async def get(self, name: str) -> StoredSnippet | None:
        await _pause()
        found = next((s for s in self.rows.values() if s.name == name), None)
        return dataclasses.replace(found) if found else None

    async def add(self, snippet: StoredSnippet) -> StoredSnippet:
        await _pause()
        if any(s.name == snippet.name for s in self.rows.values()):
            # As SQL's flush does: the unique name is checked when the row is written.
            raise Conflict(f"UNIQUE constraint failed: snippets.name ('{snippet.name}',)")
        snippet.id = _next_id(self.rows)
        self.rows[snippet.id] = dataclasses.replace(snippet)
        return snippet

    async def names(self) -> list[str]:
        await _pause()
        return sorted(s.name for s in self.rows.values())


class FakeClocks(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow, "sla_clocks")

    async def add(self, clock: SlaClock) -> SlaClock:
        await _pause()
        clock.id = _next_id(self.rows)
        self.rows[clock.id] = clock
        return clock

    async def for_ticket(self, number: int) -> list[SlaClock]:
        await _pause()
        return [c for _, c in sorted(self.rows.items()) if c.ticket_number == number]

    async def for_tickets(self, numbers: list[int]) -> list[SlaClock]:
        await _pause()
        wanted = set(numbers)
        return [c for _, c in sorted(self.rows.items()) if c.ticket_number in wanted]


class FakePromises(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow, "promises")

    async def add(self, promise: Promise) -> Promise:
        await _pause()
        promise.id = _next_id(self.rows)
        self.rows[promise.id] = promise
        return promise

    async def for_ticket(self, number: int) -> list[Promise]:
        await _pause()
        return sorted((p for p in self.rows.values() if p.ticket_number == number), key=lambda p: p.number)

    async def for_tickets(self, numbers: list[int]) -> list[Promise]:
        await _pause()
        wanted = set(numbers)
        return [p for _, p in sorted(self.rows.items()) if p.ticket_number in wanted]

    async def open_due_before(self, moment: datetime, limit: int) -> list[Promise]:
        await _pause()
        found = [p for p in self.rows.values() if p.state is PromiseState.OPEN and p.due_at <= moment]
        return sorted(found, key=lambda p: (p.due_at, p.id))[:limit]


class FakeCheckins(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow, "checkins")

    async def get(self, key: str) -> Checkin | None:
        await _pause()
        return next((c for c in self.rows.values() if c.key == key), None)

    async def add(self, checkin: Checkin) -> Checkin:
        await _pause()
        if any(c.key == checkin.key for c in self.rows.values()):
            raise Conflict(f"UNIQUE constraint failed: checkins.key ('{checkin.key}',)")
        checkin.id = _next_id(self.rows)
        self.rows[checkin.id] = checkin
        return checkin

    async def claim_due(self, moment: datetime, limit: int) -> list[Checkin]:
        await _pause()
        due = [c for c in self.rows.values() if c.state is CheckinState.PENDING and c.due_at <= moment]
        return sorted(due, key=lambda c: (c.due_at, c.id))[:limit]

    async def pending_count(self) -> int:
        await _pause()
        return sum(1 for c in self.rows.values() if c.state is CheckinState.PENDING)


class FakeDeliveries(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow, "deliveries")

    async def add_many(self, deliveries: list[Delivery]) -> list[Delivery]:
        await _pause()
        for delivery in deliveries:
            delivery.id = _next_id(self.rows)
            self.rows[delivery.id] = delivery
        return deliveries

    async def get(self, delivery_id: int) -> Delivery | None:
        await _pause()
        return self.rows.get(delivery_id)

    async def mark_sent(self, ids: list[int], moment: datetime) -> None:
        await _pause()
        for delivery_id in ids:
            delivery = self.rows.get(delivery_id)
            if delivery is not None and delivery.state is DeliveryState.PENDING:
                delivery.state, delivery.settled_at = DeliveryState.SENT, moment

    async def hold(self, ids: list[int], until: datetime) -> None:
        await _pause()
        for delivery_id in ids:
            delivery = self.rows.get(delivery_id)
            if delivery is not None and delivery.state is DeliveryState.PENDING:
                delivery.due_at = until

    async def claim_due(
        self, moment: datetime, limit: int, platforms: Collection[str] | None = None
    ) -> list[Delivery]:
        await _pause()
        due = [
            d
            for d in self.rows.values()
            if d.state is DeliveryState.PENDING
            and d.due_at <= moment
            and (platforms is None or d.platform is None or d.platform in platforms)
        ]
        return sorted(due, key=lambda d: (d.due_at, d.id))[:limit]

    async def prune(self, settled_before: datetime) -> int:
        await _pause()
        gone = [
            key
            for key, d in self.rows.items()
            if d.state is not DeliveryState.PENDING
            and d.settled_at is not None
            and d.settled_at < settled_before
        ]
        for key in gone:
            del self.rows[key]
        return len(gone)

    async def forget(self, ticket_numbers: list[int]) -> int:
        await _pause()
        gone = [key for key, d in self.rows.items() if d.ticket_number in ticket_numbers]
        for key in gone:
            del self.rows[key]
        return len(gone)


class FakeSurveys(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow, "surveys")

    async def add(self, survey: Survey) -> Survey:
        await _pause()
        survey.id = _next_id(self.rows)
        self.rows[survey.id] = survey
        return survey

    async def for_ticket(self, number: int) -> list[Survey]:
        await _pause()
        return sorted((s for s in self.rows.values() if s.ticket_number == number), key=lambda s: s.cycle)

    async def for_tickets(self, numbers: list[int]) -> list[Survey]:
        await _pause()
        wanted = set(numbers)
        found = (s for s in self.rows.values() if s.ticket_number in wanted)
        return sorted(found, key=lambda s: (s.ticket_number, s.cycle))

    async def touched_between(self, start: datetime, end: datetime) -> list[Survey]:
        await _pause()
        return [
            s
            for _, s in sorted(self.rows.items())
            if start <= s.sent_at < end or (s.rated_at is not None and start <= s.rated_at < end)
        ]

    async def latest_for_customer(self, customer_id: int) -> Survey | None:
        await _pause()
        mine = [s for _, s in sorted(self.rows.items()) if s.customer_id == customer_id]
        return mine[-1] if mine else None


class FakeUnitOfWork:
    """A unit of work over a FakeStore: private copies in, changes written back only on commit."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.committed = False
        self.rolled_back = False

    async def __aenter__(self) -> Self:
        self.committed = False
        self.rolled_back = False
        self._begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.rollback()

    def _begin(self) -> None:
        """Start a transaction: what it reads is the store as it is now; its changes stay private."""
        self.base: Tables = self.store.snapshot()
        self.work: Tables = copy.deepcopy(self.base)
        self.customers = FakeCustomers(self)
        self.agents = FakeAgents(self)
        self.tickets = FakeTickets(self)
        self.entries = FakeEntries(self)
        self.timeline = FakeTimeline(self)
        self.anchors = FakeAnchors(self)
        self.snippets = FakeSnippets(self)
        self.audit = FakeAudit(self)
        self.profiles = FakeProfiles(self)
        self.clocks = FakeClocks(self)
        self.promises = FakePromises(self)
        self.checkins = FakeCheckins(self)
        self.surveys = FakeSurveys(self)
        self.deliveries = FakeDeliveries(self)

    async def commit(self) -> None:
        await _pause()
        if self.store.fail_next_commits:
            self.store.fail_next_commits -= 1
            self._begin()
            raise Conflict("injected conflict")
        try:
            merged = _merge(self.store.snapshot(), self.base, self.work)
            _check(merged)
        except Conflict:
            self._begin()
            raise
        self.store.replace(merged)
        self.store.commits += 1
        self.committed = True
        # Later changes in this unit of work are measured from what was just committed.
        self.base = copy.deepcopy(self.work)

    async def rollback(self) -> None:
        """Forget every uncommitted change; later reads see the store again."""
        self.rolled_back = True
        self._begin()


def _merge(current: Tables, base: Tables, work: Tables) -> Tables:
    """Apply one unit of work's inserts and changed fields to the current committed state."""
    for name in TABLES:
        target = current[name]
        for key in base[name].keys() - work[name].keys():
            target.pop(key, None)  # deleted in this unit of work
        for key, obj in work[name].items():
            before = base[name].get(key)
            if before is None:
                if key in target:
                    raise Conflict(f"{name}: key {key} was taken by another transaction")
                target[key] = copy.deepcopy(obj)
                continue
            if key not in target:
                raise IntegrityViolation(f"{name}: row {key} vanished")
            versioned = name in ("tickets", "checkins", "surveys", "deliveries")
            if versioned and obj != before and target[key] != before:
                # The SQL tickets table carries a version: a change raced by another commit loses.
                raise Conflict(f"tickets: #{key} was changed by another transaction")
            for f in dataclasses.fields(obj):
                value = getattr(obj, f.name)
                if value != getattr(before, f.name):
                    setattr(target[key], f.name, copy.deepcopy(value))
    return current


def _unique(rows: Iterable[Any], table: str, *names: str, skip_nulls: bool = False) -> None:
    seen: set[tuple[Any, ...]] = set()
    for row in rows:
        key = tuple(getattr(row, n) for n in names)
        if skip_nulls and None in key:
            continue
        if key in seen:
            raise Conflict(f"UNIQUE constraint failed: {table}.{', '.join(names)} {key}")
        seen.add(key)


def _check(tables: Tables) -> None:
    """The database's rules: uniqueness (a Conflict), keys that point somewhere, aware datetimes."""
    _unique(tables["identities"].values(), "identities", "platform", "external_id")
    _unique(tables["agents"].values(), "agents", "platform", "external_id")
    _unique(tables["entries"].values(), "entries", "platform", "external_id", skip_nulls=True)
    _unique(tables["anchors"].values(), "anchors", "platform", "channel_id", "message_id")
    _unique(tables["snippets"].values(), "snippets", "name")
    _unique(tables["checkins"].values(), "checkins", "key")
    _unique(tables["surveys"].values(), "surveys", "ticket_number", "cycle")
    _unique(tables["promises"].values(), "promises", "ticket_number", "number")
    _unique(tables["sla_clocks"].values(), "sla_clocks", "ticket_number", "metric", "cycle")

    def points(table: str, key: int | None, what: str) -> None:
        if key is not None and key not in tables[table]:
            raise IntegrityViolation(f"{what} refers to missing {table} row {key}")

    for identity in tables["identities"].values():
        points("customers", identity.customer_id, "identity")
    for ticket in tables["tickets"].values():
        points("customers", ticket.customer_id, f"ticket #{ticket.number}")
        points("agents", ticket.assignee_id, f"ticket #{ticket.number}")
        points("tickets", ticket.previous_number, f"ticket #{ticket.number}")
    for entry in tables["entries"].values():
        points("tickets", entry.ticket_number, "entry")
    for event in tables["timeline"].values():
        points("tickets", event.ticket_number, "timeline event")
    for anchor in tables["anchors"].values():
        points("tickets", anchor.ticket_number, "anchor")
    for row in [*tables["profile_notes"].values(), *tables["incentives"].values()]:
        points("customers", row.customer_id, "profile note or incentive")
        points("tickets", row.ticket_number, "profile note or incentive")
    for name in TABLES:
        for row in tables[name].values():
            for f in dataclasses.fields(row):
                value = getattr(row, f.name)
                if isinstance(value, datetime) and value.tzinfo is None:
                    raise ValueError(f"{name}.{f.name}: naive datetimes are not stored")


# --- a desk over the fakes -----------------------------------------------------------------------


def person(name: str, platform: str = "slack", user_id: str | None = None) -> Person:
    """Someone on a platform; their user id defaults to U + their lower-cased first name."""
    return Person(platform, user_id or "U" + name.split()[0].lower(), name)


def customer(name: str, platform: str = "slack", user_id: str | None = None) -> Actor:
    return Actor(person(name, platform, user_id), Role.CUSTOMER)


def colleague(name: str, platform: str = "slack", user_id: str | None = None) -> Actor:
    return Actor(person(name, platform, user_id), Role.COLLEAGUE)


def agent(name: str, platform: str = "slack", user_id: str | None = None) -> Actor:
    return Actor(person(name, platform, user_id), Role.AGENT)


def dm(actor: Actor, thread_id: str | None = None) -> Conversation:
    """The actor's own support conversation with the bot."""
    return Conversation(actor.person.platform, f"D-{actor.person.user_id}", thread_id)


class Delivering:
    """The desk as an adapter uses it when every platform takes every message: what each call says is
    settled in the outbox at once, so no sweep sends it again. Outbox tests use the bare `Desk`."""

    def __init__(self, desk: Desk) -> None:
        self.bare = desk

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.bare, name)
        if not inspect.iscoroutinefunction(found):
            return found

        async def settled(*args: Any, **kwargs: Any) -> Any:
            said = await found(*args, **kwargs)
            if isinstance(said, list) and all(isinstance(m, CustomerMessage | StaffMessage) for m in said):
                await self.bare.settle(said)
            return said

        return settled


@dataclass
class Harness:
    """A desk over a fake store, with a clock that moves only when told to."""

    desk: Desk
    store: FakeStore
    clock: FakeClock
    policy: Policy
    _messages: int = 0

    async def write(
        self,
        actor: Actor,
        text: str,
        conversation: Conversation | None = None,
        message_id: str | None = None,
    ) -> list[Outgoing]:
        """The actor writes in their support conversation (a DM unless told); each message gets an id."""
        if message_id is None:
            self._messages += 1
            message_id = f"m{self._messages}"
        where = conversation or dm(actor)
        return await self.desk.receive(IncomingMessage(actor, text, where, message_id))

    async def run(self, actor: Actor, text: str, conversation: Conversation | None = None) -> list[Outgoing]:
        """The actor types a command."""
        return await self.desk.command(actor, text, conversation)


def build_desk(
    store: FakeStore | None = None,
    clock: FakeClock | None = None,
    policy: Policy | None = None,
) -> Harness:
    """A Desk over the fakes: a fresh store, the packaged default policy and a clock at START."""
    store = store if store is not None else FakeStore()
    clock = clock or FakeClock(START)
    policy = policy or load_policy()
    return Harness(Delivering(Desk(store.uow, clock, policy)), store, clock, policy)  # type: ignore[arg-type]
