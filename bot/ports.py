"""What the core needs from storage: repositories behind a unit of work.

`storage/` implements these with SQLAlchemy; tests use in-memory fakes. A unit of work rolls back unless
`commit()` was called, so a refused command changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from bot.domain import (
    Agent,
    Anchor,
    AuditRecord,
    Checkin,
    Customer,
    Delivery,
    Entry,
    EntryLine,
    Identity,
    Incentive,
    ProfileNote,
    Promise,
    SlaClock,
    StoredSnippet,
    Survey,
    Ticket,
    TicketKind,
    TimelineEvent,
)


class Conflict(Exception):
    """A uniqueness rule was hit at commit (another process recorded the same thing first)."""


class Unavailable(Exception):
    """The database could not be reached (a dropped connection, a restarting server, a file locked
    longer than the busy timeout) before the work committed: nothing was written, so it may run again."""


class CustomerRepository(Protocol):
    async def by_identity(self, platform: str, external_id: str, *, lock: bool = False) -> Customer | None:
        """`lock`: until the unit of work ends, so one known person's messages arriving at once take
        turns (two messages where they have no ticket yet would otherwise open two)."""
        ...

    async def get(self, customer_id: int) -> Customer | None: ...
    async def add(self, customer: Customer, identity: Identity) -> Customer:
        """Store a new customer with their first identity (its customer_id is filled in)."""
        ...

    async def identity(self, platform: str, external_id: str) -> Identity | None: ...
    async def identities(self, customer_id: int) -> list[Identity]:
        """Every platform identity of a customer, oldest first."""
        ...

    async def set_identity(self, identity_id: int, external_id: str, display_name: str) -> None:
        """Overwrite an identity's platform user id and name (used to forget a customer)."""
        ...

    async def find(self, platform: str, key: str) -> list[Customer]:
        """Customers with an identity on the platform whose user id is `key`, or else whose name is
        `key` in any case (several people may share a name)."""
        ...

    async def with_email(self, email: str) -> list[Customer]:
        """Customers (not merged away) whose email is this one, in any case, oldest first."""
        ...

    async def move_identities(self, from_customer: int, to_customer: int) -> int:
        """Give every identity of one customer to another (linking); returns how many moved."""
        ...


class ProfileRepository(Protocol):
    """What we keep about a customer beyond their tickets: notes for every future ticket, incentives."""

    async def add_note(self, note: ProfileNote) -> None: ...
    async def notes(self, customer_id: int) -> list[ProfileNote]:
        """The customer's profile notes, oldest first."""
        ...

    async def add_incentive(self, incentive: Incentive) -> None: ...
    async def incentives(self, customer_id: int) -> list[Incentive]:
        """Incentives given to the customer, oldest first."""
        ...

    async def move(self, from_customer: int, to_customer: int) -> None:
        """Give one customer's notes and incentives to another (linking)."""
        ...

    async def erase(self, customer_id: int, placeholder: str) -> tuple[int, int]:
        """Forget: delete the customer's notes and overwrite what each incentive was with the placeholder.
        Returns (notes deleted, incentives erased)."""
        ...


class AgentRepository(Protocol):
    async def by_identity(self, platform: str, external_id: str) -> Agent | None: ...
    async def find(self, platform: str, key: str) -> Agent | None:
        """An agent on a platform by user id, or else by display name (any case)."""
        ...

    async def get(self, agent_id: int) -> Agent | None: ...
    async def add(self, agent: Agent) -> Agent: ...


class TicketRepository(Protocol):
    async def get(self, number: int) -> Ticket | None: ...
    async def by_thread(self, platform: str, channel_id: str, thread_id: str) -> Ticket | None: ...
    async def latest_in(
        self, customer_id: int, platform: str, channel_id: str, kind: TicketKind
    ) -> Ticket | None:
        """The customer's most recent ticket of this kind in a conversation without threads."""
        ...

    async def add(self, ticket: Ticket) -> Ticket:
        """Store a new ticket and give it the next number."""
        ...

    async def unassigned(self, queue: str | None, limit: int) -> list[Ticket]: ...
    async def in_queue(self, queue: str, limit: int) -> list[Ticket]:
        """The queue's tickets still being worked (claimed or not), most urgent first."""
        ...

    async def assigned_to(self, agent_id: int, limit: int) -> list[Ticket]: ...
    async def count_for_customer(self, customer_id: int, before: int | None = None) -> int:
        """How many tickets the customer has (numbered below `before`, when given)."""
        ...

    async def resolved_before(self, moment: datetime, limit: int) -> list[Ticket]: ...
    async def touched_between(self, start: datetime, end: datetime, limit: int) -> list[Ticket]:
        """Tickets opened before `end` and changed since `start` or still being worked (their clocks may
        have fallen due in the period): what a report of the period needs."""
        ...

    async def for_customer(self, customer_id: int) -> list[Ticket]:
        """Every ticket of the customer, by number."""
        ...


class EntryRepository(Protocol):
    async def add(self, entry: Entry) -> None: ...
    async def seen(self, platform: str, external_id: str) -> bool:
        """Whether a platform message was already recorded."""
        ...

    async def for_ticket(self, number: int) -> list[Entry]: ...
    async def lines_for_ticket(self, number: int) -> list[EntryLine]:
        """Every entry of a ticket but the bot's, in order, as light lines (for handoff packets)."""
        ...

    async def by_message(self, platform: str, external_id: str) -> Entry | None:
        """The entry recorded from a platform message, locked until the unit of work ends: two copies
        of one edit or deletion take turns."""
        ...

    async def set_body(self, entry_id: int, body: str) -> None: ...
    async def redact(self, entry_id: int, body: str, author_name: str) -> None:
        """Overwrite an entry's body and author and drop its platform message id (forgetting)."""
        ...


class AnchorRepository(Protocol):
    async def add(self, anchor: Anchor) -> None: ...
    async def by_message(self, platform: str, channel_id: str, message_id: str) -> Anchor | None: ...
    async def for_ticket(self, number: int, platform: str) -> Anchor | None: ...


class TimelineRepository(Protocol):
    async def add(self, event: TimelineEvent) -> None: ...
    async def for_ticket(self, number: int) -> list[TimelineEvent]: ...
    async def for_tickets(self, numbers: list[int]) -> list[TimelineEvent]: ...
    async def redact(self, event_id: int, actor_name: str, detail: dict[str, Any]) -> None:
        """Overwrite an event's actor and details (forgetting)."""
        ...


class AuditRepository(Protocol):
    async def add(self, record: AuditRecord) -> AuditRecord: ...
    async def for_subject(self, customer_id: int) -> list[AuditRecord]:
        """The audit log about one customer, oldest first."""
        ...


class SnippetRepository(Protocol):
    async def get(self, name: str) -> StoredSnippet | None: ...
    async def add(self, snippet: StoredSnippet) -> StoredSnippet:
        """Store a new snippet; a name already taken raises Conflict."""
        ...

    async def names(self) -> list[str]:
        """Every stored snippet's name, in alphabetical order."""
        ...


class ClockRepository(Protocol):
    async def add(self, clock: SlaClock) -> SlaClock:
        """Store a new clock; one per ticket, metric and cycle (a second raises Conflict)."""
        ...

    async def for_ticket(self, number: int) -> list[SlaClock]:
        """Every clock of a ticket, oldest first; changes to them are saved on commit."""
        ...

    async def for_tickets(self, numbers: list[int]) -> list[SlaClock]: ...


class PromiseRepository(Protocol):
    async def add(self, promise: Promise) -> Promise: ...
    async def for_ticket(self, number: int) -> list[Promise]:
        """A ticket's promises by number; changes to them are saved on commit."""
        ...

    async def for_tickets(self, numbers: list[int]) -> list[Promise]: ...
    async def open_due_before(self, moment: datetime, limit: int) -> list[Promise]:
        """Open promises falling due before a moment, soonest first (for the digest)."""
        ...


class CheckinRepository(Protocol):
    async def get(self, key: str) -> Checkin | None: ...
    async def add(self, checkin: Checkin) -> Checkin:
        """Store a new check-in; its key is unique (a second raises Conflict)."""
        ...

    async def claim_due(self, moment: datetime, limit: int) -> list[Checkin]:
        """Pending check-ins due by `moment`, soonest first, locked against other processes' sweeps
        (skipped when another has them); changes to them are saved on commit."""
        ...

    async def pending_count(self) -> int: ...


class SurveyRepository(Protocol):
    async def add(self, survey: Survey) -> Survey:
        """Store a new survey; one per ticket and resolution (a second raises Conflict)."""
        ...

    async def for_ticket(self, number: int) -> list[Survey]:
        """A ticket's surveys, oldest first; changes to them are saved on commit."""
        ...

    async def for_tickets(self, numbers: list[int]) -> list[Survey]:
        """The surveys of these tickets, by ticket number and, within a ticket, oldest first."""
        ...

    async def touched_between(self, start: datetime, end: datetime) -> list[Survey]:
        """Surveys sent or rated in a period."""
        ...

    async def latest_for_customer(self, customer_id: int) -> Survey | None:
        """The customer's most recent survey (for the cooldown)."""
        ...


class DeliveryRepository(Protocol):
    """The outbox: messages said, until a platform took them."""

    async def add_many(self, deliveries: list[Delivery]) -> list[Delivery]: ...
    async def get(self, delivery_id: int) -> Delivery | None: ...
    async def mark_sent(self, ids: list[int], moment: datetime) -> None:
        """Settle these as taken by their platform (those still pending; a repeat changes nothing)."""
        ...

    async def hold(self, ids: list[int], until: datetime) -> None:
        """Renew the lease of these (still pending) deliveries: they are being sent right now."""
        ...

    async def claim_due(
        self, moment: datetime, limit: int, platforms: Collection[str] | None = None
    ) -> list[Delivery]:
        """Pending deliveries whose time has come (a try that never settled, a retry), for these
        platforms (and every adapter's) or all, locked so that no other process's sweep sends them too."""
        ...

    async def prune(self, settled_before: datetime) -> int:
        """Forget deliveries settled (sent, or given up) before then; how many."""
        ...

    async def forget(self, ticket_numbers: list[int]) -> int:
        """Drop every delivery about these tickets, sent or not (their customer asked to be forgotten)."""
        ...


class UnitOfWork(Protocol):
    @property
    def customers(self) -> CustomerRepository: ...
    @property
    def agents(self) -> AgentRepository: ...
    @property
    def tickets(self) -> TicketRepository: ...
    @property
    def entries(self) -> EntryRepository: ...
    @property
    def timeline(self) -> TimelineRepository: ...
    @property
    def anchors(self) -> AnchorRepository: ...
    @property
    def snippets(self) -> SnippetRepository: ...
    @property
    def profiles(self) -> ProfileRepository: ...
    @property
    def clocks(self) -> ClockRepository: ...
    @property
    def promises(self) -> PromiseRepository: ...
    @property
    def checkins(self) -> CheckinRepository: ...
    @property
    def surveys(self) -> SurveyRepository: ...
    @property
    def deliveries(self) -> DeliveryRepository: ...
    @property
    def audit(self) -> AuditRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None:
        """Make the work permanent; raises Conflict when a uniqueness rule was hit."""
        ...

    async def rollback(self) -> None: ...
