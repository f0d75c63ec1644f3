"""The support desk's domain: customers, agents, tickets and what is said on them.

Plain dataclasses with no database or platform code, so the rules can be tested on their own and every
adapter shares them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from bot.messages import InternalText


class Role(StrEnum):
    """What a person may do, as the adapter knows it from the platform (agent list, role, ...)."""

    CUSTOMER = "customer"
    COLLEAGUE = "colleague"
    AGENT = "agent"


class TicketKind(StrEnum):
    EXTERNAL = "external"
    INTERNAL = "internal"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Status(StrEnum):
    NEW = "new"
    OPEN = "open"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"


ACTIVE_STATUSES = frozenset({Status.OPEN, Status.WAITING_ON_CUSTOMER, Status.ON_HOLD})
WORKABLE_STATUSES = ACTIVE_STATUSES | {Status.NEW}

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset(ACTIVE_STATUSES | {Status.RESOLVED}),
    Status.OPEN: frozenset({Status.WAITING_ON_CUSTOMER, Status.ON_HOLD, Status.RESOLVED}),
    Status.WAITING_ON_CUSTOMER: frozenset({Status.OPEN, Status.ON_HOLD, Status.RESOLVED}),
    Status.ON_HOLD: frozenset({Status.OPEN, Status.WAITING_ON_CUSTOMER, Status.RESOLVED}),
    Status.RESOLVED: frozenset({Status.OPEN, Status.CLOSED}),
    Status.CLOSED: frozenset(),
}

STATUS_WORDS = {
    Status.NEW: "new",
    Status.OPEN: "open",
    Status.WAITING_ON_CUSTOMER: "waiting on customer",
    Status.ON_HOLD: "on hold",
    Status.RESOLVED: "resolved",
    Status.CLOSED: "closed",
}


class EntryKind(StrEnum):
    """What kind of thing was said on a ticket."""

    CUSTOMER = "customer"
    REPLY = "reply"
    BOT = "bot"
    NOTE = "note"


class TransitionError(ValueError):
    """A status change the lifecycle does not allow."""


@dataclass
class Customer:
    """One person across platforms: their identities (a Slack user, a Discord user) all point here.

    `address_as` is how they like to be addressed; greetings use it over the platform name. `email` is
    either one a platform verified (`email_verified`), which links identities by itself, or one an agent
    typed in. `merged_into` marks a profile folded into another by a link: it holds nothing personal.
    """

    display_name: str
    kind: TicketKind
    created_at: datetime
    address_as: str | None = None
    timezone: str | None = None
    organisation: str | None = None
    email: str | None = None
    email_verified: bool = False
    tags: tuple[str, ...] = ()
    merged_into: int | None = None
    blocked_until: datetime | None = None
    """Set while an agent has blocked them: their messages are not taken (`BLOCKED_FOR_GOOD`: until
    someone unblocks them)."""
    block_told: bool = False
    """Whether they were told of the block, so a flood gets one answer, not one per message."""
    burst_started_at: datetime | None = None
    """The start of the rate limit's current window, and how many messages they sent in it."""
    burst_count: int = 0
    burst_told: bool = False
    id: int | None = None

    def is_blocked(self, now: datetime) -> bool:
        return self.blocked_until is not None and now < self.blocked_until

    def count_message(self, now: datetime, window: timedelta) -> int:
        """Count one more message in the rate limit's window (a new window when the last one is over);
        the count so far in this window, this message included."""
        if self.burst_started_at is None or now - self.burst_started_at >= window:
            self.burst_started_at, self.burst_count, self.burst_told = now, 0, False
        self.burst_count += 1
        return self.burst_count

    @property
    def name_to_use(self) -> str:
        """What to call them: how they asked to be addressed, or else their first name."""
        if self.address_as:
            return self.address_as
        return self.display_name.split()[0] if self.display_name.strip() else "there"


BLOCKED_FOR_GOOD = datetime(9999, 12, 31, tzinfo=UTC)
"""`blocked_until` for a block with no end: it lasts until an agent lifts it."""


@dataclass
class Identity:
    """One platform account of a customer: how we recognise them when they write."""

    customer_id: int
    platform: str
    external_id: str
    display_name: str
    id: int | None = None


@dataclass
class Agent:
    platform: str
    external_id: str
    display_name: str
    id: int | None = None


@dataclass
class Ticket:
    kind: TicketKind
    queue: str
    priority: Priority
    subject: str
    customer_id: int
    customer_user_id: str
    platform: str
    channel_id: str
    created_at: datetime
    updated_at: datetime
    status: Status = Status.NEW
    thread_id: str | None = None
    assignee_id: int | None = None
    previous_number: int | None = None
    workspace_id: str | None = None
    first_agent_reply_at: datetime | None = None
    last_customer_message_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    status_changed_at: datetime | None = None
    """When the status last changed: a check-in planned for one spell of waiting knows if it still holds."""
    number: int | None = None

    @property
    def ref(self) -> str:
        return f"#{self.number}"

    @property
    def is_closed(self) -> bool:
        return self.status is Status.CLOSED

    def move_to(self, new: Status, now: datetime) -> Status:
        """Change status if the lifecycle allows it; returns the old status."""
        old = self.status
        if new not in TRANSITIONS[old]:
            raise TransitionError(f"{STATUS_WORDS[old]} -> {STATUS_WORDS[new]}")
        self.status = new
        self.updated_at = now
        self.status_changed_at = now
        if new is Status.RESOLVED:
            self.resolved_at = now
        elif new is Status.CLOSED:
            self.closed_at = now
        return old

    def customer_wrote(self, now: datetime) -> Status | None:
        """A customer message brings a waiting, held or resolved ticket back to open.

        Returns the old status when it changed.
        """
        self.last_customer_message_at = now
        self.updated_at = now
        if self.status in (Status.WAITING_ON_CUSTOMER, Status.ON_HOLD, Status.RESOLVED):
            return self.move_to(Status.OPEN, now)
        return None

    def agent_answered(self, now: datetime) -> Status | None:
        """A public agent reply: the first one is the first response; a new ticket becomes open."""
        if self.first_agent_reply_at is None:
            self.first_agent_reply_at = now
        self.updated_at = now
        if self.status is Status.NEW:
            return self.move_to(Status.OPEN, now)
        return None

    def assign(self, agent_id: int | None, now: datetime) -> Status | None:
        """Give the ticket to an agent (or nobody); a new ticket becomes open. Returns the old status
        when it changed."""
        self.assignee_id = agent_id
        self.updated_at = now
        if agent_id is not None and self.status is Status.NEW:
            return self.move_to(Status.OPEN, now)
        return None


@dataclass
class Entry:
    """Something said on a ticket. A note's body is InternalText, so it cannot reach a customer."""

    ticket_number: int
    kind: EntryKind
    author_name: str
    body: str | InternalText
    created_at: datetime
    platform: str | None = None
    external_id: str | None = None
    id: int | None = None
    mood: float | None = None
    """A customer message's sentiment (VADER compound, -1 to 1), scored once when it arrives."""


class EntryLine(NamedTuple):
    """An entry as a handoff packet reads it, light enough for the thousands of a long ticket: what
    kind, who, what (a note's body InternalText, as on an Entry), when, and a customer message's mood."""

    kind: EntryKind
    author_name: str
    body: str | InternalText
    created_at: datetime
    mood: float | None


@dataclass
class Anchor:
    """A platform message tied to a ticket (its card in the agents' channel), found again by id."""

    ticket_number: int
    platform: str
    channel_id: str
    message_id: str
    id: int | None = None


@dataclass
class ProfileNote:
    """Something to remember about a customer on every future ticket (preferences, background).
    Staff knowledge: the text is InternalText, so it cannot reach a customer."""

    customer_id: int
    text: InternalText
    author_name: str
    created_at: datetime
    ticket_number: int | None = None
    id: int | None = None


@dataclass
class Incentive:
    """A goodwill gesture given to a customer (a replacement, a discount, a gift): what, when, by whom,
    on which ticket, so the next agent knows what was already offered."""

    customer_id: int
    ticket_number: int | None
    what: str
    given_by: str
    given_at: datetime
    id: int | None = None


class Metric(StrEnum):
    """The service standards a ticket is measured by."""

    FIRST_RESPONSE = "first_response"
    NEXT_REPLY = "next_reply"
    UPDATE = "update"
    RESOLUTION = "resolution"


class ClockState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    MET = "met"
    CANCELLED = "cancelled"


@dataclass
class SlaClock:
    """One service target on one ticket, for one cycle (the second next reply is cycle 2).

    The target is copied from the policy when the clock starts, so a later policy change does not
    rewrite history. `consumed` is the business time used before the last pause; while running, the
    clock falls due at `due_at` (UTC). `breached_at` is set once the target is missed. `business` is the
    business time the clock took, set when it is met (see `bot.standards.business_time`), so reports
    add up stored durations instead of working out each; None for a clock met before it was kept.
    """

    ticket_number: int
    metric: Metric
    cycle: int
    target: timedelta
    started_at: datetime
    resumed_at: datetime
    due_at: datetime
    state: ClockState = ClockState.RUNNING
    consumed: timedelta = timedelta(0)
    met_at: datetime | None = None
    breached_at: datetime | None = None
    business: timedelta | None = None
    id: int | None = None

    @property
    def running(self) -> bool:
        return self.state is ClockState.RUNNING


class PromiseState(StrEnum):
    OPEN = "open"
    KEPT = "kept"
    CANCELLED = "cancelled"


@dataclass
class Promise:
    """Something an agent told the customer would happen by a time. `broken_at` is set when it ran
    late; kept late still counts as broken in the reports."""

    ticket_number: int
    number: int
    what: str
    due_at: datetime
    made_by: str
    made_at: datetime
    state: PromiseState = PromiseState.OPEN
    kept_at: datetime | None = None
    broken_at: datetime | None = None
    id: int | None = None


class CheckinState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    DROPPED = "dropped"


@dataclass
class Checkin:
    """Something to do at a time: warn of a breach, remind of a promise, check in with a customer.

    `key` is unique (ticket, kind and cycle), so each fires at most once; the sweep re-checks the ticket
    when it fires and drops what no longer makes sense.
    """

    key: str
    kind: str
    due_at: datetime
    ticket_number: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    state: CheckinState = CheckinState.PENDING
    fired_at: datetime | None = None
    outcome: str | None = None
    id: int | None = None


class SurveyState(StrEnum):
    OPEN = "open"
    RATED = "rated"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


@dataclass
class Survey:
    """A satisfaction survey after one resolution of a ticket (`cycle`: the first resolution is 1).

    Open until rated, expired, or withdrawn by a reopen. After a rating the customer's next message
    on the ticket, before `expires_at`, is their comment.
    """

    ticket_number: int
    customer_id: int
    cycle: int
    sent_at: datetime
    expires_at: datetime
    state: SurveyState = SurveyState.OPEN
    rating: int | None = None
    rated_at: datetime | None = None
    comment: str | None = None
    commented_at: datetime | None = None
    id: int | None = None

    @property
    def awaits_comment(self) -> bool:
        return self.state is SurveyState.RATED and self.comment is None


@dataclass
class StoredSnippet:
    """A saved reply an agent added (`/ticket snippet add`); the policy file's snippets are not stored."""

    name: str
    text: str
    created_by: str
    created_at: datetime
    id: int | None = None


@dataclass
class TimelineEvent:
    """One change on a ticket, for the audit trail: who did what, when, and the details."""

    ticket_number: int
    action: str
    actor_name: str
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass
class AuditRecord:
    """A data-rights action (an export, a forget) for the audit log: no personal data in `detail`."""

    action: str
    subject: int
    actor: str
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass
class Delivery:
    """One message the desk said, kept in the same transaction as the change that made it, until the
    platform has taken it: a crash between the two loses nothing, since the next sweep sends it.

    `due_at` is when a sweep may (re)send it: a lease after the try in flight, or a failed try's backoff.
    `attempts` counts tries begun. `payload` is the message (bot.outbox encodes and decodes it).
    """

    payload: dict[str, Any]
    created_at: datetime
    due_at: datetime
    ticket_number: int | None = None
    platform: str | None = None
    """Which adapter sends it (None: every adapter's agents' channel), so a process sweeps only its own."""
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 1
    error: str | None = None
    settled_at: datetime | None = None
    id: int | None = None
