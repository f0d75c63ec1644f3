"""Data rights: export everything held about a customer, or forget them.

`export` gathers the customer, their platform identities and their tickets (every entry, internal notes
marked as such, and the timeline) as JSON-safe data. `forget` erases their personal data and the texts
on their tickets for good, keeping what anonymous statistics need: ticket numbers, kinds, statuses,
priorities, queues, timestamps, who on staff handled them, and the kinds and counts of entries and
events. Both write a row to the audit log (counts only, never personal data).

A customer is named by their number (`12`) or by a platform identity (`slack:U123`, `console:dana`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from bot.clock import Clock
from bot.domain import AuditRecord, Customer, Entry, EntryKind, Identity, Survey, Ticket, TimelineEvent
from bot.messages import InternalText
from bot.ports import UnitOfWork

FORGOTTEN_NAME = "forgotten customer"
ERASED = "[erased]"
BOT_NAME = "Relaydesk"

_SAFE_DETAIL = frozenset(
    {
        "old",
        "new",
        "kind",
        "follows",
        "entry",
        "by_replying",
        "from_queue",
        "to_queue",
        "field",
        "into",
        "how",
    }
    | {"agent", "from_agent", "to_agent", "handed_by"}
)
"""Timeline details that hold statuses, numbers, queues or staff names: kept when forgetting."""
_ALL_TEXT = frozenset({"moved"})
"""Timeline actions whose every detail is about the customer's conversation (its channel and thread)."""


class UnknownCustomer(LookupError):
    """No customer matches the reference; the message says how to name one."""


@dataclass(frozen=True)
class Holdings:
    """How much is held about a customer: what `forget` erases, in numbers."""

    customer_id: int
    identities: int
    tickets: int
    entries: int
    timeline_events: int
    profile_notes: int = 0
    incentives: int = 0

    def as_detail(self) -> dict[str, int]:
        detail = asdict(self)
        del detail["customer_id"]
        return detail


UowFactory = Callable[[], UnitOfWork]


async def survey(uow_factory: UowFactory, customer_ref: str) -> Holdings:
    """What is held about the customer, counted; changes nothing and is not audited."""
    async with uow_factory() as uow:
        customer = await _find(uow, customer_ref)
        return await _holdings(uow, customer)


async def export(
    uow_factory: UowFactory, customer_ref: str, clock: Clock, actor: str = BOT_NAME
) -> dict[str, Any]:
    """Everything held about the customer, JSON-safe (ISO 8601 times); the export is audited."""
    async with uow_factory() as uow:
        customer = await _find(uow, customer_ref)
        assert customer.id is not None
        now = clock.now()
        identities = await uow.customers.identities(customer.id)
        tickets = []
        for ticket in await uow.tickets.for_customer(customer.id):
            assert ticket.number is not None
            assignee = await uow.agents.get(ticket.assignee_id) if ticket.assignee_id is not None else None
            entries = await uow.entries.for_ticket(ticket.number)
            events = await uow.timeline.for_ticket(ticket.number)
            surveys = await uow.surveys.for_ticket(ticket.number)
            tickets.append(
                ticket_data(ticket, assignee.display_name if assignee else None)
                | {
                    "entries": [entry_data(entry) for entry in entries],
                    "timeline": [event_data(event) for event in events],
                    "surveys": [survey_data(survey) for survey in surveys],
                }
            )
        data = {
            "exported_at": _iso(now),
            "customer": {
                "id": customer.id,
                "display_name": customer.display_name,
                "kind": str(customer.kind),
                "created_at": _iso(customer.created_at),
                "address_as": customer.address_as,
                "timezone": customer.timezone,
                "organisation": customer.organisation,
                "email": customer.email,
                "email_verified": customer.email_verified,
                "tags": list(customer.tags),
            },
            "identities": [identity_data(identity) for identity in identities],
            "profile_notes": [
                {
                    "text": note.text.hidden,
                    "visibility": "internal note (staff only, never shown to the customer)",
                    "author": note.author_name,
                    "at": _iso(note.created_at),
                    "ticket": note.ticket_number,
                }
                for note in await uow.profiles.notes(customer.id)
            ],
            "incentives": [
                {
                    "what": incentive.what,
                    "given_by": incentive.given_by,
                    "at": _iso(incentive.given_at),
                    "ticket": incentive.ticket_number,
                }
                for incentive in await uow.profiles.incentives(customer.id)
            ],
            "tickets": tickets,
        }
        holdings = await _holdings(uow, customer)
        await uow.audit.add(AuditRecord("export", customer.id, actor, now, holdings.as_detail()))
        await uow.commit()
    return data


async def forget(uow_factory: UowFactory, customer_ref: str, clock: Clock, actor: str) -> Holdings:
    """Erase the customer's personal data and every text on their tickets, irreversibly; audited.

    Identities get placeholder user ids, so the same person writing again is a new customer.
    Returns what was erased, counted.
    """
    async with uow_factory() as uow:
        customer = await _find(uow, customer_ref)
        assert customer.id is not None
        holdings = await _holdings(uow, customer)
        identities = await uow.customers.identities(customer.id)
        names = {customer.display_name} | {identity.display_name for identity in identities}

        for n, identity in enumerate(identities, start=1):
            assert identity.id is not None
            await uow.customers.set_identity(identity.id, f"forgotten:{customer.id}:{n}", FORGOTTEN_NAME)
        customer.display_name = FORGOTTEN_NAME
        customer.address_as = customer.timezone = customer.organisation = customer.email = None
        customer.email_verified = False
        customer.tags = ()
        await uow.profiles.erase(customer.id, ERASED)

        tickets = await uow.tickets.for_customer(customer.id)
        await uow.deliveries.forget([t.number for t in tickets if t.number is not None])
        for ticket in tickets:
            assert ticket.number is not None
            ticket.subject = ERASED
            ticket.customer_user_id = f"forgotten:{customer.id}"
            ticket.channel_id = ERASED
            ticket.thread_id = None

            async def staff_or_forgotten(name: str, ticket: Ticket = ticket) -> str:
                if name == BOT_NAME:
                    return name
                if name in names or await uow.agents.find(ticket.platform, name) is None:
                    return FORGOTTEN_NAME
                return name

            for entry in await uow.entries.for_ticket(ticket.number):
                assert entry.id is not None
                author = (
                    FORGOTTEN_NAME
                    if entry.kind is EntryKind.CUSTOMER
                    else await staff_or_forgotten(entry.author_name)
                )
                await uow.entries.redact(entry.id, ERASED, author)
            for survey in await uow.surveys.for_ticket(ticket.number):
                if survey.comment is not None:
                    survey.comment = ERASED  # their words; the rating stays for the statistics
            for event in await uow.timeline.for_ticket(ticket.number):
                assert event.id is not None
                await uow.timeline.redact(
                    event.id, await staff_or_forgotten(event.actor_name), _erased_detail(event)
                )

        await uow.audit.add(AuditRecord("forget", customer.id, actor, clock.now(), holdings.as_detail()))
        await uow.commit()
    return holdings


def parse_ref(customer_ref: str) -> int | tuple[str, str]:
    """A customer's number, or a (platform, user id) identity; UnknownCustomer when neither."""
    ref = customer_ref.strip()
    if ref.isdecimal():
        return int(ref)
    platform, colon, user_id = ref.partition(":")
    if colon and platform.strip() and user_id.strip():
        return platform.strip(), user_id.strip()
    raise UnknownCustomer(
        f"{customer_ref!r} is not a customer reference. Give the customer's number (e.g. 12) "
        "or a platform identity as platform:user_id (e.g. slack:U123)."
    )


async def _find(uow: UnitOfWork, customer_ref: str) -> Customer:
    ref = parse_ref(customer_ref)
    if isinstance(ref, int):
        customer = await uow.customers.get(ref)
        while customer is not None and customer.merged_into is not None:
            customer = await uow.customers.get(customer.merged_into)  # linked into another profile
    else:
        customer = await uow.customers.by_identity(*ref)
    if customer is None:
        raise UnknownCustomer(
            f"There is no customer {customer_ref.strip()!r}. Give the customer's number (e.g. 12) "
            "or a platform identity as platform:user_id (e.g. slack:U123)."
        )
    return customer


async def _holdings(uow: UnitOfWork, customer: Customer) -> Holdings:
    assert customer.id is not None
    tickets = await uow.tickets.for_customer(customer.id)
    entries = events = 0
    for ticket in tickets:
        assert ticket.number is not None
        entries += len(await uow.entries.for_ticket(ticket.number))
        events += len(await uow.timeline.for_ticket(ticket.number))
    identities = len(await uow.customers.identities(customer.id))
    notes = len(await uow.profiles.notes(customer.id))
    incentives = len(await uow.profiles.incentives(customer.id))
    return Holdings(customer.id, identities, len(tickets), entries, events, notes, incentives)


def _erased_detail(event: TimelineEvent) -> dict[str, Any]:
    if event.action in _ALL_TEXT:
        return {key: ERASED if value is not None else None for key, value in event.detail.items()}
    return {
        key: value if key in _SAFE_DETAIL or value is None else ERASED for key, value in event.detail.items()
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def identity_data(identity: Identity) -> dict[str, Any]:
    return {
        "platform": identity.platform,
        "user_id": identity.external_id,
        "display_name": identity.display_name,
    }


def ticket_data(ticket: Ticket, assignee: str | None) -> dict[str, Any]:
    return {
        "number": ticket.number,
        "kind": str(ticket.kind),
        "queue": ticket.queue,
        "priority": str(ticket.priority),
        "status": str(ticket.status),
        "subject": ticket.subject,
        "platform": ticket.platform,
        "user_id": ticket.customer_user_id,
        "channel_id": ticket.channel_id,
        "thread_id": ticket.thread_id,
        "workspace_id": ticket.workspace_id,
        "assignee": assignee,
        "follows_ticket": ticket.previous_number,
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
        "first_agent_reply_at": _iso(ticket.first_agent_reply_at),
        "last_customer_message_at": _iso(ticket.last_customer_message_at),
        "resolved_at": _iso(ticket.resolved_at),
        "closed_at": _iso(ticket.closed_at),
    }


def entry_data(entry: Entry) -> dict[str, Any]:
    internal = isinstance(entry.body, InternalText) or entry.kind is EntryKind.NOTE
    text = entry.body.hidden if isinstance(entry.body, InternalText) else entry.body
    return {
        "kind": str(entry.kind),
        "internal_note": internal,
        "visibility": "internal note (staff only, never shown to the customer)" if internal else "public",
        "author": entry.author_name,
        "text": text,
        "at": _iso(entry.created_at),
        "platform": entry.platform,
        "message_id": entry.external_id,
    }


def survey_data(survey: Survey) -> dict[str, Any]:
    return {
        "cycle": survey.cycle,
        "sent_at": _iso(survey.sent_at),
        "expires_at": _iso(survey.expires_at),
        "state": str(survey.state),
        "rating": survey.rating,
        "rated_at": _iso(survey.rated_at),
        "comment": survey.comment,
        "commented_at": _iso(survey.commented_at),
    }


def event_data(event: TimelineEvent) -> dict[str, Any]:
    return {
        "action": event.action,
        "actor": event.actor_name,
        "at": _iso(event.at),
        "detail": dict(event.detail),
    }
