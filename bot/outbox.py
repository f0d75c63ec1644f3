"""The outbox: what the desk says is written in the same transaction as the change that made it.

A process can die between committing a change and sending what it said. So every message a customer or
the agents' channel must get is kept as a `Delivery` row, committed with the change, and settled once
its platform took it. A row not settled within the policy's lease is sent by the next sweep of any
process; a failed send is tried again after a backoff, and a message that cannot be delivered is marked
on its ticket and the agents are told. Private answers to the person who acted are not kept: they are
answers to a click, and that person sees at once whether one came.

Delivery is at least once: a process killed after the platform took a message but before the
settlement committed sends it again after the lease. The window is the time of one database write.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import Collection
from dataclasses import replace
from enum import StrEnum
from typing import Any

from bot import voice
from bot.domain import Delivery, DeliveryState
from bot.messages import (
    Attachment,
    Conversation,
    CustomerMessage,
    Handover,
    InternalText,
    MessageRef,
    Outgoing,
    Person,
    StaffKind,
    StaffMessage,
    SurveyPrompt,
    TicketCard,
    ToAgent,
    ToAgents,
    ToCustomer,
    Undelivered,
    is_private_answer,
    platform_of,
    staff,
)
from bot.policy import Delivery as DeliveryPolicy
from bot.work import Work, agents_about
from bot.work import log as log_on_ticket

log = logging.getLogger(__name__)

SWEEP_LIMIT = 500
"""Deliveries one sweep claims at most to send again; the next sweep takes the rest."""
ERROR_LENGTH = 500
UNSETTLED_TRIES = 10
"""Tries beyond the retries after which a delivery nobody settles is given up."""

_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        CustomerMessage,
        StaffMessage,
        ToCustomer,
        ToAgents,
        ToAgent,
        Person,
        Conversation,
        MessageRef,
        TicketCard,
        Handover,
        Attachment,
        SurveyPrompt,
        InternalText,
    )
}
_ENUMS: dict[str, type[StrEnum]] = {"StaffKind": StaffKind}


def encode(value: Any) -> Any:
    """A message as JSON-ready data, tagged with its classes so `decode` rebuilds it exactly."""
    if isinstance(value, StrEnum):
        return {"_": type(value).__name__, "value": value.value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {"_": type(value).__name__}
        for field in dataclasses.fields(value):
            if field.name not in ("delivery", "resent"):
                data[field.name] = encode(getattr(value, field.name))
        return data
    if isinstance(value, bytes):
        return {"_": "bytes", "base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, tuple | list):
        return [encode(item) for item in value]
    return value


def decode(data: Any) -> Any:
    if isinstance(data, list):
        return tuple(decode(item) for item in data)
    if not isinstance(data, dict):
        return data
    tag = data["_"]
    if tag == "bytes":
        return base64.b64decode(data["base64"])
    if tag in _ENUMS:
        return _ENUMS[tag](data["value"])
    return _CLASSES[tag](**{key: decode(value) for key, value in data.items() if key != "_"})


def ticket_of(message: Outgoing) -> int | None:
    """The ticket a message is about, so forgetting a customer forgets what was said about them too."""
    return message.audience.ticket_number


async def keep(
    work: Work, policy: DeliveryPolicy, acting: Person | None, platforms: Collection[str] | None = None
) -> None:
    """Write what this unit of work will say to the outbox (all but private answers to `acting`), and
    number each message with its row, so the adapter that sends it can settle it. A message for every
    adapter's agents' channel becomes one per platform served, so each is settled on its own."""
    if platforms:
        work.out = [copy for message in work.out for copy in _per_platform(message, platforms)]
    kept = [
        (index, message)
        for index, message in enumerate(work.out)
        if message.delivery is None and (acting is None or not is_private_answer(message, acting))
    ]
    if not kept:
        return
    due = work.now + policy.lease
    rows = await work.uow.deliveries.add_many(
        [
            Delivery(encode(message), work.now, due, ticket_of(message), platform_of(message))
            for _, message in kept
        ]
    )
    for (index, message), row in zip(kept, rows, strict=True):
        work.out[index] = replace(message, delivery=row.id)


def _per_platform(message: Outgoing, platforms: Collection[str]) -> list[Outgoing]:
    audience = message.audience
    if not isinstance(message, StaffMessage) or not isinstance(audience, ToAgents) or audience.platform:
        return [message]
    return [replace(message, audience=replace(audience, platform=p)) for p in sorted(platforms)]


async def settle_sent(work: Work, messages: list[Outgoing]) -> None:
    ids = [m.delivery for m in messages if m.delivery is not None]
    if ids:
        await work.uow.deliveries.mark_sent(ids, work.now)


async def settle_failed(work: Work, policy: DeliveryPolicy, failure: Undelivered) -> None:
    """A send failed. Try again after the next backoff; when none is left, or the platform said it never
    will work (`final`: no such channel, no permission), mark it undeliverable on its ticket and tell
    the agents there (unless it was for them: that would only fail again)."""
    message, reason, final = failure.message, failure.reason, failure.final
    if message.delivery is None:
        return
    delivery = await work.uow.deliveries.get(message.delivery)
    if delivery is None or delivery.state is not DeliveryState.PENDING:
        return
    delivery.error = reason[:ERROR_LENGTH]
    tries_left = delivery.attempts <= len(policy.retry_after)
    if tries_left and not final:
        delivery.due_at = work.now + policy.retry_after[delivery.attempts - 1]
        return
    delivery.state, delivery.settled_at = DeliveryState.FAILED, work.now
    number = ticket_of(message)
    ticket = await work.uow.tickets.get(number) if number is not None else None
    if ticket is None:
        return
    await log_on_ticket(
        work, ticket, "undeliverable", "Relaydesk", delivery=delivery.id, reason=delivery.error
    )
    if isinstance(message, CustomerMessage):
        notice = voice.undeliverable(ticket, message.text, delivery.error, delivery.attempts)
        work.say(staff(agents_about(ticket), notice))


async def due_again(work: Work, policy: DeliveryPolicy, platforms: Collection[str] | None = None) -> int:
    """Claim deliveries whose time came (a send that never settled, a retry) and say them again; the
    ones for these platforms (and every adapter's) when a process serves only some. One claimed over and
    over that its adapter never settles (a message it cannot take), or that no longer reads as a
    message (stored by another version), is given up, and logged."""
    claimed = await work.uow.deliveries.claim_due(work.now, SWEEP_LIMIT, platforms)
    for delivery in claimed:
        if delivery.attempts >= len(policy.retry_after) + UNSETTLED_TRIES:
            delivery.state, delivery.settled_at = DeliveryState.FAILED, work.now
            delivery.error = delivery.error or "never settled: no process took it"
            log.error(
                "outbox: delivery %s was never settled after %s tries; given up",
                delivery.id,
                delivery.attempts,
            )
            continue
        try:
            message = decode(delivery.payload)
        except (KeyError, TypeError, ValueError) as error:
            delivery.state, delivery.settled_at = DeliveryState.FAILED, work.now
            delivery.error = f"unreadable: {error}"[:ERROR_LENGTH]
            log.error("outbox: delivery %s cannot be read (%s); given up", delivery.id, error)
            continue
        delivery.attempts += 1
        delivery.due_at = work.now + policy.lease
        work.out.append(replace(message, delivery=delivery.id, resent=True))
    if len(claimed) < SWEEP_LIMIT:
        await work.uow.deliveries.prune(work.now - policy.keep_sent)
    return len(claimed)
