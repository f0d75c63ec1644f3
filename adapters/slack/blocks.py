"""Block Kit for the desk: ticket cards, the App Home, the request form; and text that fits Slack."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from adapters.text import split_text
from bot.domain import Priority
from bot.messages import Attachment, Overview, SurveyPrompt, TicketCard, TicketLine
from bot.text import clean, defuse_mentions, shorten

TEXT_LIMIT = 3500
"""Slack truncates text above 40,000 characters and a section at 3,000; we split well below both."""
SECTION_LIMIT = 2900

CLAIM_ACTION = "ticket_claim"
RESOLVE_ACTION = "ticket_resolve"
REQUEST_CALLBACK = "request_form"
REQUEST_SHORTCUT = "raise_request"
SURVEY_ACTION_PREFIX = "survey_rate_"
SURVEY_ACTION = re.compile(rf"^{SURVEY_ACTION_PREFIX}[0-9]{{1,2}}$")
"""A survey's rating buttons: `survey_rate_<n>` (action ids are unique within a block), each with the
value `<ticket>:<n>`, so a click carries everything and works whenever it comes."""
SURVEY_BUTTONS_MAX = 25
"""Slack takes at most 25 elements in an actions block."""

URGENCY_LABELS = {
    Priority.LOW: "Whenever you can",
    Priority.NORMAL: "Normal",
    Priority.HIGH: "Soon: it's blocking my work",
    Priority.URGENT: "Urgent: several people are affected",
}


def chunks(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Text in pieces Slack keeps whole."""
    return split_text(text, limit)


def names(files: Sequence[Attachment]) -> str:
    """File names in a sentence (`a.md`, `a.md` and `b.json`, ...); a name can neither break the code
    formatting nor ping anyone."""
    shown = ["`" + defuse_mentions(clean(f.filename)).replace("`", "'") + "`" for f in files]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"


def card_blocks(card: TicketCard, text: str) -> list[dict[str, Any]]:
    """A ticket's card: what it is, and buttons that carry the ticket number (they survive restarts)."""
    value = str(card.number)
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": shorten_lines(text, SECTION_LIMIT)}},
        {
            "type": "actions",
            "block_id": f"ticket-{card.number}",
            "elements": [
                _button("Claim", CLAIM_ACTION, value, style="primary"),
                _button("Resolve", RESOLVE_ACTION, value),
            ],
        },
    ]


def survey_blocks(text: str, survey: SurveyPrompt) -> list[dict[str, Any]]:
    """A survey: its words, then a button for each rating from 1 to the survey's scale."""
    ticket = survey.ticket_number
    top = max(1, min(survey.scale, SURVEY_BUTTONS_MAX))
    return [
        _section(text),
        {
            "type": "actions",
            "block_id": f"survey-{ticket}",
            "elements": [
                _button(str(n), f"{SURVEY_ACTION_PREFIX}{n}", f"{ticket}:{n}") for n in range(1, top + 1)
            ],
        },
    ]


def survey_choice(value: str | None) -> tuple[int, int] | None:
    """The ticket and rating a survey button carries (`"12:4"`), or None for anything else."""
    ticket, _, rating = (value or "").partition(":")
    if not (ticket.isascii() and ticket.isdigit() and rating.isascii() and rating.isdigit()):
        return None
    if len(ticket) > 9 or len(rating) > 2:
        return None
    return int(ticket), int(rating)


def survey_rated(blocks: list[dict[str, Any]], text: str, rating: int) -> tuple[str, list[dict[str, Any]]]:
    """A survey message once rated: the same words, and the chosen rating where its buttons were."""
    buttons = [e for b in blocks if b.get("type") == "actions" for e in b.get("elements") or []]
    chosen = rated_line(rating, len(buttons) or 5)
    kept = [b for b in blocks if b.get("type") != "actions"] or [_section(text)]
    kept.append({"type": "context", "elements": [{"type": "mrkdwn", "text": chosen}]})
    return f"{text}\n{chosen}", kept


def rated_line(rating: int, scale: int) -> str:
    """`Your rating: ★★★★☆ 4/5`."""
    stars = "★" * rating + "☆" * (scale - rating) if 0 < rating <= scale <= 10 else ""
    return f"Your rating: {stars} {rating}/{scale}".replace("  ", " ")


def home_view(overview: Overview | None) -> dict[str, Any]:
    """The App Home: an agent's tickets and the unclaimed queue; for others, how to get help."""
    if overview is None:
        help_text = (
            "Need help? Write in the support channel or send me a message here, and we'll open a "
            "ticket for you. Colleagues can raise a request with `/request`."
        )
        return {"type": "home", "blocks": [_section(help_text)]}
    blocks: list[dict[str, Any]] = [_header(f"Your tickets ({len(overview.mine)})")]
    blocks += [_ticket_line(line, claim=False) for line in overview.mine] or [
        _section("Nothing in progress.")
    ]
    blocks += [{"type": "divider"}, _header(f"Unclaimed ({len(overview.unclaimed)})")]
    blocks += [_ticket_line(line, claim=True) for line in overview.unclaimed] or [
        _section("No unclaimed tickets. Nice work.")
    ]
    figures = [
        {"type": "divider"},
        _header("Your week"),
        _section(overview.my_week or "No figures yet."),
        _header("The team's week"),
        _section(overview.team_week or "No figures yet."),
    ]
    return {"type": "home", "blocks": blocks[: 100 - len(figures)] + figures}


def request_modal(categories: list[str]) -> dict[str, Any]:
    """The form colleagues fill in to raise an internal request."""
    return {
        "type": "modal",
        "callback_id": REQUEST_CALLBACK,
        "title": {"type": "plain_text", "text": "Raise a request"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "category",
                "label": {"type": "plain_text", "text": "What is it about?"},
                "element": {
                    "type": "static_select",
                    "action_id": "value",
                    "options": [_option(name[:75], name[:75]) for name in categories[:100]],
                },
            },
            {
                "type": "input",
                "block_id": "urgency",
                "label": {"type": "plain_text", "text": "How urgent is it?"},
                "element": {
                    "type": "static_select",
                    "action_id": "value",
                    "initial_option": _option(URGENCY_LABELS[Priority.NORMAL], Priority.NORMAL.value),
                    "options": [_option(label, level.value) for level, label in URGENCY_LABELS.items()],
                },
            },
            {
                "type": "input",
                "block_id": "description",
                "label": {"type": "plain_text", "text": "What do you need?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "multiline": True,
                    "max_length": 3000,
                },
            },
        ],
    }


def shorten_lines(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ticket_line(line: TicketLine, claim: bool) -> dict[str, Any]:
    block = _section(
        f"*#{line.number}* · {line.priority} · {line.status} · {line.queue} · {line.age} old\n"
        f"{line.customer_name}: {shorten(line.subject, 150)}"
    )
    if claim:
        block["accessory"] = _button("Claim", CLAIM_ACTION, str(line.number))
    return block


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": shorten_lines(text, SECTION_LIMIT)}}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text}, "value": value}
