"""A ticket's full transcript for staff: Markdown to read, JSON to process.

The handoff packet condenses; the transcript leaves nothing out: every message (internal notes marked
as such), every timeline event, the customer as the profile knows them. It is for staff only and goes
to the agent who asked, as files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.data_rights import entry_data, event_data, ticket_data
from bot.domain import (
    STATUS_WORDS,
    Customer,
    Entry,
    EntryKind,
    Incentive,
    ProfileNote,
    Ticket,
    TimelineEvent,
)
from bot.messages import Attachment, InternalText

_LABELS = {
    EntryKind.CUSTOMER: "customer",
    EntryKind.REPLY: "reply",
    EntryKind.BOT: "Relaydesk",
    EntryKind.NOTE: "INTERNAL NOTE",
}


@dataclass(frozen=True)
class TicketRecord:
    """Everything we hold on one ticket, and what its customer's profile says for every ticket."""

    ticket: Ticket
    customer: Customer
    assignee: str | None
    entries: Sequence[Entry]
    events: Sequence[TimelineEvent]
    notes: Sequence[ProfileNote] = ()
    incentives: Sequence[Incentive] = ()


def files(record: TicketRecord, made_at: datetime) -> tuple[Attachment, Attachment]:
    """The transcript as `ticket-<n>.md` and `ticket-<n>.json`."""
    name = f"ticket-{record.ticket.number}"
    data = json.dumps(_data(record, made_at), indent=2, ensure_ascii=False)
    return (
        Attachment(f"{name}.md", markdown(record, made_at), "text/markdown"),
        Attachment(f"{name}.json", data, "application/json"),
    )


def markdown(record: TicketRecord, made_at: datetime) -> str:
    ticket, customer = record.ticket, record.customer
    lines = [
        f"# Ticket {ticket.ref}: {_inline(ticket.subject)}",
        "",
        "Staff only: this transcript includes internal notes.",
        "",
        f"- Customer: {_inline(customer.display_name)} ({customer.kind})",
        f"- Status: {STATUS_WORDS[ticket.status]} · priority {ticket.priority} · queue {ticket.queue}",
        f"- Owner: {_inline(record.assignee) if record.assignee else 'unclaimed'}",
        f"- Opened: {_iso(ticket.created_at)} on {ticket.platform}",
        f"- Transcript made: {_iso(made_at)}",
    ]
    if record.notes:
        lines += ["", f"## Profile notes ({len(record.notes)}, internal)", ""]
        lines += [
            f"- {_iso(n.created_at)} · {_inline(n.author_name)}: {_inline(n.text.hidden)}"
            for n in record.notes
        ]
    if record.incentives:
        lines += ["", f"## Incentives given ({len(record.incentives)})", ""]
        lines += [
            f"- {_iso(i.given_at)} · {_inline(i.given_by)}"
            + (f" · on #{i.ticket_number}" if i.ticket_number else "")
            + f": {_inline(i.what)}"
            for i in record.incentives
        ]
    lines += ["", f"## Conversation ({len(record.entries)} messages)"]
    for entry in record.entries:
        body = entry.body.hidden if isinstance(entry.body, InternalText) else entry.body
        label = _LABELS[entry.kind]
        lines += ["", f"**{_inline(entry.author_name)}** ({label}) · {_iso(entry.created_at)}", ""]
        lines += [f"> {line}" if line else ">" for line in body.splitlines() or [""]]
    lines += ["", f"## Timeline ({len(record.events)} events)", ""]
    for event in record.events:
        detail = ", ".join(f"{k}: {_inline(str(v))}" for k, v in event.detail.items() if v is not None)
        line = f"- {_iso(event.at)} · {event.action} · {_inline(event.actor_name)}"
        lines.append(line + (f" · {detail}" if detail else ""))
    return "\n".join(lines) + "\n"


def _data(record: TicketRecord, made_at: datetime) -> dict[str, object]:
    customer = record.customer
    return {
        "transcript_made_at": _iso(made_at),
        "staff_only": True,
        "ticket": ticket_data(record.ticket, record.assignee),
        "customer": {"id": customer.id, "display_name": customer.display_name, "kind": str(customer.kind)},
        "profile_notes": [
            {"text": n.text.hidden, "internal_note": True, "author": n.author_name, "at": _iso(n.created_at)}
            for n in record.notes
        ],
        "incentives": [
            {"what": i.what, "given_by": i.given_by, "at": _iso(i.given_at), "ticket": i.ticket_number}
            for i in record.incentives
        ],
        "entries": [entry_data(entry) for entry in record.entries],
        "timeline": [event_data(event) for event in record.events],
    }


def _inline(text: str) -> str:
    """One line of text inside Markdown: no line breaks, no stray emphasis or heading markers."""
    return " ".join(text.split()).replace("*", "\\*").replace("_", "\\_").replace("#", "\\#")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
