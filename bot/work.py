"""What one call on the desk works with, and the small helpers every service shares: recording what
was said and done, and addressing messages about a ticket."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.domain import Agent, Customer, Entry, EntryKind, Ticket, TimelineEvent
from bot.messages import (
    Conversation,
    CustomerMessage,
    InternalText,
    MessageRef,
    Outgoing,
    Person,
    ToAgent,
    ToAgents,
    ToCustomer,
)
from bot.policy import Policy
from bot.ports import UnitOfWork


@dataclass
class Work:
    """What one call needs: its unit of work, the moment it runs at, and what it will say."""

    uow: UnitOfWork
    now: datetime
    out: list[Outgoing] = field(default_factory=list)
    cards: dict[tuple[int, str], MessageRef | None] = field(default_factory=dict)
    opened: set[int] = field(default_factory=set)
    """Tickets opened in this unit of work: nothing is planned for them yet, so nothing need be looked up."""

    def say(self, message: Outgoing) -> None:
        self.out.append(message)


async def record(
    work: Work,
    ticket: Ticket,
    kind: EntryKind,
    author: Person,
    body: str | InternalText,
    message_id: str | None,
    mood: float | None = None,
) -> None:
    assert ticket.number is not None
    await work.uow.entries.add(
        Entry(
            ticket_number=ticket.number,
            kind=kind,
            author_name=author.display_name,
            body=body,
            created_at=work.now,
            platform=author.platform if message_id else None,
            external_id=message_id,
            mood=mood,
        )
    )


async def log(work: Work, ticket: Ticket, action: str, actor_name: str, **detail: object) -> None:
    assert ticket.number is not None
    clean_detail = {k: str(v) if v is not None else None for k, v in detail.items()}
    await work.uow.timeline.add(TimelineEvent(ticket.number, action, actor_name, work.now, clean_detail))


def agents_about(ticket: Ticket) -> ToAgents:
    return ToAgents(ticket.number, ticket.platform, workspace_id=ticket.workspace_id)


def to_customer(ticket: Ticket, customer: Customer, text: str) -> CustomerMessage:
    person = Person(ticket.platform, ticket.customer_user_id, customer.display_name)
    where = Conversation(ticket.platform, ticket.channel_id, ticket.thread_id, ticket.workspace_id)
    return CustomerMessage(ToCustomer(person, ticket.number, where), text)


def person_of(agent: Agent) -> Person:
    return Person(agent.platform, agent.external_id, agent.display_name)


def agent_about(agent: Agent, ticket: Ticket) -> ToAgent:
    """One agent, privately, about a ticket (in its workspace)."""
    return ToAgent(person_of(agent), ticket.workspace_id, ticket.number)


async def addressee(work: Work, ticket: Ticket, customer: Customer) -> Customer:
    """The customer as a ticket's messages address them: by the name of their account on that ticket's
    platform (a linked customer may be "Dana Scully" on Slack and "dana" on Discord, and one platform's
    name is not for another's eyes). A copy, for wording only."""
    identity = await work.uow.customers.identity(ticket.platform, ticket.customer_user_id)
    if identity is None or identity.display_name == customer.display_name:
        return customer
    return replace(customer, display_name=identity.display_name)


async def addressed_customer(work: Work, ticket: Ticket) -> Customer:
    """A ticket's customer as its messages address them (for wording, not for changes)."""
    customer = await work.uow.customers.get(ticket.customer_id)
    assert customer is not None
    return await addressee(work, ticket, customer)


async def lead_of(work: Work, policy: Policy, ticket: Ticket) -> Agent | None:
    """The lead of the team that owns the ticket's queue, as an agent on the ticket's platform."""
    name = policy.lead_of(ticket.queue)
    return await work.uow.agents.find(ticket.platform, name) if name else None
