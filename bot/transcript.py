"""A ticket's full transcript for staff: Markdown to read, JSON to process.

The handoff packet condenses; the transcript leaves nothing out: every message (internal notes marked
as such), every timeline event, the customer as the profile knows them. It is for staff only and goes
to the agent who asked, as files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from bot.data_rights import entry_data, event_data, ticket_data
from bot.domain import STATUS_WORDS, Customer, Entry, EntryKind, Ticket, TimelineEvent
from bot.messages import Attachment, InternalText

_LABELS = {
    EntryKind.CUSTOMER: "customer",
    EntryKind.REPLY: "reply",
    EntryKind.BOT: "Relaydesk",
    EntryKind.NOTE: "INTERNAL NOTE",
}


def files(
    ticket: Ticket,
    customer: Customer,
    assignee: str | None,
    entries: Sequence[Entry],
    events: Sequence[TimelineEvent],
    made_at: datetime,
) -> tuple[Attachment, Attachment]:
    """The transcript as `ticket-<n>.md` and `ticket-<n>.json`."""
    name = f"ticket-{ticket.number}"
    return (
        Attachment(
            f"{name}.md", markdown(ticket, customer, assignee, entries, events, made_at), "text/markdown"
        ),
        Attachment(
            f"{name}.json",
            json.dumps(
                _data(ticket, customer, assignee, entries, events, made_at), indent=2, ensure_ascii=False
            ),
            "application/json",
        ),
    )


def markdown(
    ticket: Ticket,
    customer: Customer,
    assignee: str | None,
    entries: Sequence[Entry],
    events: Sequence[TimelineEvent],
    made_at: datetime,
) -> str:
    lines = [
        f"# Ticket {ticket.ref}: {_inline(ticket.subject)}",
        "",
        "Staff only: this transcript includes internal notes.",
        "",
        f"- Customer: {_inline(customer.display_name)} ({customer.kind})",
        f"- Status: {STATUS_WORDS[ticket.status]} · priority {ticket.priority} · queue {ticket.queue}",
        f"- Owner: {_inline(assignee) if assignee else 'unclaimed'}",
        f"- Opened: {_iso(ticket.created_at)} on {ticket.platform}",
        f"- Transcript made: {_iso(made_at)}",
        "",
        f"## Conversation ({len(entries)} messages)",
    ]
    for entry in entries:
        body = entry.body.hidden if isinstance(entry.body, InternalText) else entry.body
        label = _LABELS[entry.kind]
        lines += ["", f"**{_inline(entry.author_name)}** ({label}) · {_iso(entry.created_at)}", ""]
        lines += [f"> {line}" if line else ">" for line in body.splitlines() or [""]]
    lines += ["", f"## Timeline ({len(events)} events)", ""]
    for event in events:
        detail = ", ".join(f"{k}: {_inline(str(v))}" for k, v in event.detail.items() if v is not None)
        lines.append(
            f"- {_iso(event.at)} · {event.action} · {_inline(event.actor_name)}"
            + (f" · {detail}" if detail else "")
        )
    return "\n".join(lines) + "\n"


def _data(
    ticket: Ticket,
    customer: Customer,
    assignee: str | None,
    entries: Sequence[Entry],
    events: Sequence[TimelineEvent],
    made_at: datetime,
) -> dict[str, object]:
    return {
        "transcript_made_at": _iso(made_at),
        "staff_only": True,
        "ticket": ticket_data(ticket, assignee),
        "customer": {"id": customer.id, "display_name": customer.display_name, "kind": str(customer.kind)},
        "entries": [entry_data(entry) for entry in entries],
        "timeline": [event_data(event) for event in events],
    }


def _inline(text: str) -> str:
    """One line of text inside Markdown: no line breaks, no stray emphasis or heading markers."""
    return " ".join(text.split()).replace("*", "\\*").replace("_", "\\_").replace("#", "\\#")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
