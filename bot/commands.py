"""Commands: what people ask the desk to do, as small frozen dataclasses.

Adapters build `IncomingMessage` from platform events; the grammar builds the rest from command text, so
`/ticket transfer 12 @ana waiting on billing` means the same on every platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.domain import Priority, Role
from bot.messages import Conversation, Person


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, and in what role the platform says they have."""

    person: Person
    role: Role

    @property
    def is_agent(self) -> bool:
        return self.role is Role.AGENT


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A customer wrote something in a support conversation.

    `message_id` identifies the message on its platform (unique there: Slack's `ts` is unique only
    per channel, so its adapter sends `channel:ts`); the same id seen twice is recorded once.
    """

    actor: Actor
    text: str
    conversation: Conversation
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class AgentMention:
    """An agent named in a command: a platform user id or a display name."""

    key: str


@dataclass(frozen=True, slots=True)
class QueueName:
    name: str


@dataclass(frozen=True, slots=True)
class TicketCommand:
    """A `/ticket` verb; `ticket` is None when the command did not name one."""

    ticket: int | None


@dataclass(frozen=True, slots=True)
class Claim(TicketCommand):
    pass


@dataclass(frozen=True, slots=True)
class Release(TicketCommand):
    pass


@dataclass(frozen=True, slots=True)
class Reply(TicketCommand):
    text: str


@dataclass(frozen=True, slots=True)
class Note(TicketCommand):
    text: str


@dataclass(frozen=True, slots=True)
class Transfer(TicketCommand):
    target: AgentMention | QueueName
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Pending(TicketCommand):
    pass


@dataclass(frozen=True, slots=True)
class Hold(TicketCommand):
    reason: str


@dataclass(frozen=True, slots=True)
class Resolve(TicketCommand):
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Reopen(TicketCommand):
    pass


@dataclass(frozen=True, slots=True)
class SetPriority(TicketCommand):
    level: Priority


@dataclass(frozen=True, slots=True)
class Show(TicketCommand):
    pass


@dataclass(frozen=True, slots=True)
class Snippet(TicketCommand):
    """Send the customer a saved reply (a snippet) by name, its variables filled in."""

    name: str


@dataclass(frozen=True, slots=True)
class CustomerRef:
    """A customer named in a command: by the ticket they opened (`#12`), by a mention or name on the
    agent's own platform (`<@U123>`, `@dana`), or by a platform identity (`discord:4711`)."""

    ticket: int | None = None
    key: str | None = None
    platform: str | None = None


@dataclass(frozen=True, slots=True)
class ShowCustomer:
    """`/ticket customer <@user|#id>`: a customer's profile, privately to the agent."""

    customer: CustomerRef


PROFILE_FIELDS = ("address", "timezone", "org", "email", "tags", "kind")
"""What `/ticket profile [#id] <field> <value>` sets; `note` adds a note instead."""


@dataclass(frozen=True, slots=True)
class Profile(TicketCommand):
    """`/ticket profile [#id]` shows the profile of the ticket's customer; with a field it sets it, and
    `note <text>` adds a note shown on every future ticket of theirs. An empty value clears a field."""

    field: str | None = None
    value: str = ""


@dataclass(frozen=True, slots=True)
class GiveIncentive(TicketCommand):
    """`/ticket incentive [#id] <what>`: record a goodwill gesture (a replacement, a discount)."""

    what: str


@dataclass(frozen=True, slots=True)
class Link:
    """`/ticket link <customer> <customer>`: two identities are one person; their histories merge."""

    first: CustomerRef
    second: CustomerRef


@dataclass(frozen=True, slots=True)
class Block:
    """`/ticket block <customer> [duration|forever]`: their messages are not taken for a while.
    `duration` None: the policy's default; `forever`: until someone unblocks them."""

    customer: CustomerRef
    duration: timedelta | None = None
    forever: bool = False


@dataclass(frozen=True, slots=True)
class Unblock:
    """`/ticket unblock <customer>`: lift a block early."""

    customer: CustomerRef


@dataclass(frozen=True, slots=True)
class Transcript(TicketCommand):
    """`/ticket transcript [#id]`: the whole ticket as Markdown and JSON files, for the agent."""


@dataclass(frozen=True, slots=True)
class MakePromise(TicketCommand):
    """`/ticket promise [#id] <when> <what>`: tell the customer what will happen by when, and track it."""

    when: str
    what: str


@dataclass(frozen=True, slots=True)
class Kept(TicketCommand):
    """`/ticket kept [#id] [n]`: promise n (or the only open one) was kept."""

    number: int | None = None


@dataclass(frozen=True, slots=True)
class ShowStats:
    """`/ticket stats [period] [queue|@agent]`: the figures for a period (the last 7 days by default)."""

    period: timedelta = timedelta(days=7)
    queue: str | None = None
    agent: AgentMention | None = None


@dataclass(frozen=True, slots=True)
class AddSnippet:
    """Save a new snippet for every agent to use."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class ListSnippets:
    pass


@dataclass(frozen=True, slots=True)
class ListQueue:
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class Mine:
    pass


@dataclass(frozen=True, slots=True)
class Help:
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """`/request <text>`, or a request form: a colleague raises an internal request."""

    text: str
    category: str | None = None
    priority: Priority | None = None


Command = (
    Claim
    | Release
    | Reply
    | Note
    | Transfer
    | Pending
    | Hold
    | Resolve
    | Reopen
    | SetPriority
    | Show
    | Snippet
    | ShowCustomer
    | Profile
    | GiveIncentive
    | Link
    | Block
    | Unblock
    | Transcript
    | MakePromise
    | Kept
    | ShowStats
    | AddSnippet
    | ListSnippets
    | ListQueue
    | Mine
    | Help
    | Request
)
