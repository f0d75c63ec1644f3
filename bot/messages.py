"""What the core says, and to whom.

Handlers never call a platform. They produce messages addressed to an audience, and each adapter renders
them. Two message types exist and they do not mix:

- `CustomerMessage` goes to a customer. Its text must be a plain `str`.
- `StaffMessage` goes to the agents' channel or to one agent. It may hold `InternalText`.

An internal note's text only ever exists as `InternalText`, which is not a `str` and refuses to be
formatted into one, so a note cannot end up in a customer's message by accident: the type says no.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from bot.text import defuse_mentions


@dataclass(frozen=True, slots=True)
class InternalText:
    """Text only staff may read, such as an internal note.

    It is deliberately not a `str`: `str()`, f-strings and `format()` raise, so it can only be shown by
    placing it in a `StaffMessage`.
    """

    hidden: str

    def __str__(self) -> str:
        raise TypeError("internal text cannot become a plain string; put it in a StaffMessage")

    def __format__(self, format_spec: str) -> str:
        raise TypeError("internal text cannot be formatted; put it in a StaffMessage")

    def __repr__(self) -> str:
        return "InternalText(<hidden>)"


@dataclass(frozen=True, slots=True)
class Person:
    """Someone on a platform, as the platform names them."""

    platform: str
    user_id: str
    display_name: str
    email: str | None = None
    """An email address the platform has verified for this person (Slack's profile email), if any:
    two identities with the same verified email are one customer."""
    timezone: str | None = None
    """The IANA timezone the platform knows for this person (Slack's `tz`), if any: an agent's
    promise times ("tomorrow 10:00") are read in it."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """Where a ticket's customer conversation lives: a platform channel and, if any, a thread."""

    platform: str
    channel_id: str
    thread_id: str | None = None
    workspace_id: str | None = None


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message the bot posted on a platform, such as a ticket's card whose thread is for staff."""

    channel_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class ToCustomer:
    """The customer (or colleague) of a ticket; without a ticket, an answer to just that person."""

    person: Person
    ticket_number: int | None = None
    conversation: Conversation | None = None


@dataclass(frozen=True, slots=True)
class ToAgents:
    """The agents' channel; about a ticket when `ticket_number` is set.

    `staff_thread` is the ticket's card on that platform, when one was posted: its thread is where
    everything about the ticket goes.
    """

    ticket_number: int | None = None
    platform: str | None = None
    staff_thread: MessageRef | None = None
    workspace_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToAgent:
    """One agent, privately (in the ticket's workspace, where a platform has several); about a ticket
    when `ticket_number` is set (a handoff packet, an escalation), so its record knows the ticket."""

    person: Person
    workspace_id: str | None = None
    ticket_number: int | None = field(default=None, compare=False)


class StaffKind(StrEnum):
    """What a staff message is, so adapters can place it (a card, a thread reply, an ephemeral)."""

    CARD = "card"
    RELAY = "relay"
    NOTE = "note"
    UPDATE = "update"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class TicketCard:
    """The facts of a ticket's card in the agents' channel, for adapters that draw buttons."""

    number: int
    customer_name: str
    subject: str
    priority: str
    queue: str
    status: str
    returning: bool
    assignee_name: str | None = None

    def __post_init__(self) -> None:
        for name in ("customer_name", "subject", "assignee_name"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, defuse_mentions(value))


@dataclass(frozen=True, slots=True)
class Handover:
    """A ticket now belongs to this agent; its customer conversation is here. Adapters whose
    conversations have members (Discord's private threads) bring the agent in."""

    ticket_number: int
    agent: Person
    conversation: Conversation


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file for staff, such as a ticket's transcript: adapters upload it (or, on the console, save it)."""

    filename: str
    content: str | bytes
    media_type: str

    @property
    def data(self) -> bytes:
        """The file's bytes: text as UTF-8, binary (a chart) as it is."""
        return self.content.encode("utf-8") if isinstance(self.content, str) else self.content


@dataclass(frozen=True, slots=True)
class SurveyPrompt:
    """A request for a rating of a ticket: adapters that draw buttons offer 1 to `scale`; elsewhere the
    customer answers with the number."""

    ticket_number: int
    scale: int = 5


@dataclass(frozen=True, slots=True)
class CustomerMessage:
    """Something a customer will read. Only plain text is accepted, and mass mentions are defused."""

    audience: ToCustomer
    text: str
    survey: SurveyPrompt | None = None
    delivery: int | None = field(default=None, compare=False)
    """Its row in the outbox (bot.outbox), which adapters settle once the platform took it."""
    resent: bool = field(default=False, compare=False)
    """Sent again by a sweep: an earlier try may have reached the platform before its process died, so
    adapters that can look (Slack's message metadata) check before posting it twice."""

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not isinstance(self.audience, ToCustomer):
            raise TypeError("a customer message takes a ToCustomer audience and plain text only")
        object.__setattr__(self, "text", defuse_mentions(self.text))


@dataclass(frozen=True, slots=True)
class StaffMessage:
    """Something only staff will read; may include internal text."""

    audience: ToAgents | ToAgent
    parts: tuple[str | InternalText, ...]
    kind: StaffKind = StaffKind.INFO
    card: TicketCard | None = field(default=None)
    handover: Handover | None = None
    attachments: tuple[Attachment, ...] = ()
    delivery: int | None = field(default=None, compare=False)
    """Its row in the outbox (bot.outbox), which adapters settle once the platform took it."""
    resent: bool = field(default=False, compare=False)
    """Sent again by a sweep: an earlier try may have reached the platform before its process died, so
    adapters that can look (Slack's message metadata) check before posting it twice."""

    def __post_init__(self) -> None:
        if not isinstance(self.audience, ToAgents | ToAgent):
            raise TypeError("a staff message is for the agents' channel or one agent only")
        defused: list[str | InternalText] = []
        for part in self.parts:
            if isinstance(part, InternalText):
                defused.append(InternalText(defuse_mentions(part.hidden)))
            elif isinstance(part, str):
                defused.append(defuse_mentions(part))
            else:
                raise TypeError(f"unexpected part in a staff message: {type(part).__name__}")
        object.__setattr__(self, "parts", tuple(defused))

    @property
    def text(self) -> str:
        """The rendered text, internal parts included: for staff eyes only."""
        return "".join(p.hidden if isinstance(p, InternalText) else p for p in self.parts)


Outgoing = CustomerMessage | StaffMessage


@dataclass(frozen=True, slots=True)
class Undelivered:
    """A message an adapter could not send, after its platform client's own retries. `final`: the
    platform says it never will work (no such channel, no permission), so trying again is pointless."""

    message: Outgoing
    reason: str
    final: bool = False


def platform_of(message: Outgoing) -> str | None:
    """The platform a message is for; None for the agents' channel in general (every adapter's)."""
    if isinstance(message, CustomerMessage):
        where = message.audience.conversation
        return where.platform if where else message.audience.person.platform
    audience = message.audience
    if isinstance(audience, ToAgent):
        return audience.person.platform
    return audience.platform


def is_private_answer(message: Outgoing, person: Person) -> bool:
    """Whether a message only answers `person` (the one who acted): a word to them as an agent, or
    a ticketless answer to a customer. Adapters show these where only that person sees them."""
    audience = message.audience
    if isinstance(audience, ToAgent):
        return audience.person.user_id == person.user_id
    if isinstance(message, CustomerMessage):
        return message.audience.ticket_number is None and message.audience.person.user_id == person.user_id
    return False


def staff(
    audience: ToAgents | ToAgent,
    *parts: str | InternalText,
    kind: StaffKind = StaffKind.INFO,
    card: TicketCard | None = None,
) -> StaffMessage:
    """Shorthand for a staff message made of several parts."""
    return StaffMessage(audience, tuple(parts), kind, card)


@dataclass(frozen=True, slots=True)
class TicketLine:
    """One ticket in a list, for views such as an agent's home tab."""

    number: int
    subject: str
    customer_name: str
    priority: str
    status: str
    queue: str
    age: str

    def __post_init__(self) -> None:
        for name in ("subject", "customer_name"):
            object.__setattr__(self, name, defuse_mentions(getattr(self, name)))


@dataclass(frozen=True, slots=True)
class Overview:
    """What an agent has on their plate and what waits unclaimed (staff only)."""

    mine: tuple[TicketLine, ...]
    unclaimed: tuple[TicketLine, ...]
    my_week: str = ""
    """The agent's own figures for the last 7 days, for recognition (the App Home shows them)."""
    team_week: str = ""
    """The whole team's last 7 days."""
