"""The one command grammar every adapter shares: text in, a command dataclass (or a polite error) out."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from bot.commands import (
    PROFILE_FIELDS,
    AddSnippet,
    AgentMention,
    Block,
    Claim,
    Command,
    CustomerRef,
    GiveIncentive,
    Help,
    Hold,
    Kept,
    Link,
    ListQueue,
    ListSnippets,
    MakePromise,
    Mine,
    Note,
    Pending,
    Profile,
    QueueName,
    Release,
    Reopen,
    Reply,
    Request,
    Resolve,
    SetPriority,
    Show,
    ShowCustomer,
    ShowStats,
    Snippet,
    Transcript,
    Transfer,
    Unblock,
)
from bot.domain import Priority
from bot.durations import parse_duration
from bot.policy import SNIPPET_ADD, snippet_name_problem
from bot.when import WhenError, split_when


@dataclass(frozen=True, slots=True)
class Verb:
    usage: str
    purpose: str


VERBS: dict[str, Verb] = {
    "claim": Verb("/ticket claim [#id]", "take a ticket; the customer learns who is helping them"),
    "release": Verb("/ticket release [#id]", "put your ticket back in its queue"),
    "reply": Verb("/ticket reply [#id] <text>", "answer the customer"),
    "note": Verb("/ticket note [#id] <text>", "add an internal note (never shown to the customer)"),
    "transfer": Verb(
        "/ticket transfer [#id] <@agent|queue> [reason]", "hand the ticket to an agent or a queue"
    ),
    "pending": Verb("/ticket pending [#id]", "mark it as waiting on the customer"),
    "hold": Verb("/ticket hold [#id] <reason>", "put it on hold while a colleague or vendor helps"),
    "resolve": Verb("/ticket resolve [#id] [summary]", "mark it resolved (summary stays internal)"),
    "reopen": Verb("/ticket reopen [#id]", "reopen a resolved ticket"),
    "priority": Verb("/ticket priority [#id] <low|normal|high|urgent>", "change its priority"),
    "show": Verb("/ticket show [#id]", "see the ticket, its conversation and its notes"),
    "snippet": Verb(
        "/ticket snippet [#id] <name>",
        "send a saved reply; alone, it lists them; /ticket snippet add <name> <text> saves one",
    ),
    "customer": Verb("/ticket customer <@user|#id>", "see a customer's profile and history"),
    "profile": Verb(
        "/ticket profile [#id] [note <text> | <field> <value>]",
        "see the customer's profile; add a note for every future ticket, or set " + "|".join(PROFILE_FIELDS),
    ),
    "incentive": Verb("/ticket incentive [#id] <what>", "record a goodwill gesture (a refund, a gift)"),
    "link": Verb(
        "/ticket link <@user|#id|platform:user> <@user|#id|platform:user>",
        "two accounts are one customer: merge their profiles and histories",
    ),
    "block": Verb(
        "/ticket block <@user|#id> [duration|forever]",
        "stop taking someone's messages for a while (a day unless you say); forever takes a team lead",
    ),
    "unblock": Verb("/ticket unblock <@user|#id>", "take someone's messages again"),
    "transcript": Verb("/ticket transcript [#id]", "the whole ticket as Markdown and JSON files"),
    "promise": Verb(
        "/ticket promise [#id] <when> <what>",
        "promise the customer something by a time (2h, 16:00, tomorrow 10:00, fri); it is tracked",
    ),
    "kept": Verb("/ticket kept [#id] [n]", "mark a promise kept"),
    "stats": Verb(
        "/ticket stats [7d|30d|today] [queue|@agent]",
        "the figures: volume, response and resolution times, SLA, CSAT, promises, per agent",
    ),
    "queue": Verb("/ticket queue [name]", "list unclaimed tickets"),
    "mine": Verb("/ticket mine", "list the tickets you are working on"),
    "help": Verb("/ticket help [verb]", "this help"),
}
REQUEST_USAGE = "/request <what you need>"
SNIPPET_ADD_USAGE = "/ticket snippet add <name> <text>"

_TICKET_ID = re.compile(r"#(\d{1,9})")
_BARE_ID = re.compile(r"\d{1,9}")
_MENTION = re.compile(r"<@!?([A-Za-z0-9_.\-]+)(?:\|[^>]*)?>|@([^\s@<>]+)")
_IDENTITY = re.compile(r"([a-z]{2,20}):(\S+)")
_TOKEN = re.compile(r"\s*(\S+)")


class ParseError(ValueError):
    """The text is not a valid command; `message` says why and `usage` shows the right form."""

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage

    def __str__(self) -> str:
        return self.message if self.usage is None else f"{self.message}\nUsage: {self.usage}"


def parse(text: str) -> Command:
    """Parse `/ticket ...` or `/request ...` into a command."""
    name, rest = _command_name(text)
    if name == "ticket":
        return _parse_ticket(rest)
    if name == "request":
        if not rest.strip():
            raise ParseError("Please tell us what you need after /request.", REQUEST_USAGE)
        return Request(rest.strip())
    raise ParseError(
        f"I don't know the command /{_short(name)}. Try /ticket help, or /request for an internal request."
    )


def _command_name(text: str) -> tuple[str, str]:
    """The command's name without its slashes, and the rest of the text."""
    head, rest = _split_first(text.strip())
    return head.lower().lstrip("/"), rest


def help_text(topic: str | None = None, in_thread: bool = False) -> str:
    """The agents' help, for all verbs or one. `in_thread`: the platform told us the ticket's thread,
    so the #id may be left out; elsewhere (the console, Slack's slash commands) it must be given."""
    if topic and topic.lower() in VERBS:
        verb = VERBS[topic.lower()]
        return f"{verb.usage}: {verb.purpose}"
    where = (
        "here, inside a ticket's thread, the #id may be left out"
        if in_thread
        else "give the ticket's #id with each command, e.g. /ticket claim #12"
    )
    lines = [f"Ticket commands ({where}):"]
    lines += [f"  {verb.usage}: {verb.purpose}" for verb in VERBS.values()]
    lines.append(f"  {REQUEST_USAGE}: raise an internal request")
    return "\n".join(lines)


def _split_first(text: str) -> tuple[str, str]:
    match = _TOKEN.match(text)
    if not match:
        return "", ""
    return match.group(1), text[match.end() :]


def _parse_ticket(args: str) -> Command:
    verb_word, rest = _split_first(args)
    if not verb_word:
        raise ParseError("Which ticket command? Here is the list.\n" + help_text())
    verb = verb_word.lower()
    if verb not in VERBS:
        guess = difflib.get_close_matches(verb, VERBS, n=1)
        hint = f" Did you mean '{guess[0]}'?" if guess else ""
        raise ParseError(f"I don't know the ticket command '{_short(verb_word)}'.{hint}", VERBS["help"].usage)
    return _BUILDERS[verb](rest, VERBS[verb].usage)


def _take_ticket(rest: str, allow_bare: bool) -> tuple[int | None, str]:
    """Take a leading `#id` (or a bare number where no free text follows) off the arguments."""
    word, after = _split_first(rest)
    match = _TICKET_ID.fullmatch(word) or (allow_bare and _BARE_ID.fullmatch(word))
    if match:
        return int(match.group(1) if match.re is _TICKET_ID else match.group(0)), after
    return None, rest


def _no_more(rest: str, usage: str) -> None:
    if rest.strip():
        raise ParseError(f"I didn't expect '{_short(rest.strip())}' there.", usage)


def _only_ticket(cls: type) -> Callable[[str, str], Command]:
    def build(rest: str, usage: str) -> Command:
        ticket, rest = _take_ticket(rest, allow_bare=True)
        _no_more(rest, usage)
        return cls(ticket)

    return build


def _with_text(cls: type, required: str | None) -> Callable[[str, str], Command]:
    """A verb followed by free text: required (with this complaint when missing) or optional.

    A bare number is the ticket id only when it stands alone; otherwise it belongs to the text, so
    `/ticket reply 3 parcels shipped` never answers ticket #3, nor `/ticket hold 2 weeks` holds #2.
    """

    def build(rest: str, usage: str) -> Command:
        ticket, rest = _take_ticket(rest, allow_bare=rest.strip().isdigit())
        text = rest.strip()
        if required and not text:
            raise ParseError(required, usage)
        return cls(ticket, text)

    return build


def _transfer(rest: str, usage: str) -> Command:
    ticket, rest = _take_ticket(rest, allow_bare=True)
    word, reason = _split_first(rest)
    if not word:
        raise ParseError("Who should take it over? Name an agent (@name) or a queue.", usage)
    mention = _MENTION.fullmatch(word)
    target = AgentMention(mention.group(1) or mention.group(2)) if mention else QueueName(word.lower())
    return Transfer(ticket, target, reason.strip())


def _priority(rest: str, usage: str) -> Command:
    ticket, rest = _take_ticket(rest, allow_bare=True)
    word, after = _split_first(rest)
    if not word:
        raise ParseError("Which priority?", usage)
    try:
        level = Priority(word.lower())
    except ValueError:
        raise ParseError(f"'{_short(word)}' is not a priority.", usage) from None
    _no_more(after, usage)
    return SetPriority(ticket, level)


def _snippet(rest: str, usage: str) -> Command:
    """`/ticket snippet` lists the snippets, `/ticket snippet add <name> <text>` saves one, and
    `/ticket snippet [#id] <name>` sends one."""
    if not rest.strip():
        return ListSnippets()
    word, after = _split_first(rest)
    if word.lower() == SNIPPET_ADD:
        return _add_snippet(after)
    ticket, rest = _take_ticket(rest, allow_bare=True)
    name, after = _split_first(rest)
    if not name:
        raise ParseError("Which snippet? /ticket snippet on its own lists them.", usage)
    _no_more(after, usage)
    return Snippet(ticket, name.lower())


def _add_snippet(rest: str) -> Command:
    name, text = _split_first(rest)
    if not name:
        raise ParseError("What should the new snippet be called, and what should it say?", SNIPPET_ADD_USAGE)
    problem = snippet_name_problem(name.lower())
    if problem:
        raise ParseError(f"'{_short(name)}' can't be a snippet's name: {problem}.", SNIPPET_ADD_USAGE)
    if not text.strip():
        raise ParseError(f"What should the snippet '{name.lower()}' say?", SNIPPET_ADD_USAGE)
    return AddSnippet(name.lower(), text.strip())


def _customer_ref(word: str) -> CustomerRef:
    """`#12` or `12`: the customer of that ticket; `platform:user_id`: an identity; anything else, a
    mention or a name on the agent's own platform."""
    ticket = _TICKET_ID.fullmatch(word)
    if ticket:
        return CustomerRef(ticket=int(ticket.group(1)))
    mention = _MENTION.fullmatch(word)
    if mention:
        return CustomerRef(key=mention.group(1) or mention.group(2))
    identity = _IDENTITY.fullmatch(word)
    if identity:
        return CustomerRef(key=identity.group(2), platform=identity.group(1))
    if _BARE_ID.fullmatch(word):
        return CustomerRef(ticket=int(word))
    return CustomerRef(key=word.lstrip("@"))


def _show_customer(rest: str, usage: str) -> Command:
    """One customer: a `#id`, a mention or identity, or a name, which may have spaces (`Dana Scully`)."""
    word, after = _split_first(rest)
    if not word:
        raise ParseError("Which customer?", usage)
    ref = _customer_ref(word)
    if after.strip():
        if ref.key is None or ref.platform is not None or (_MENTION.fullmatch(word) and word.startswith("<")):
            raise ParseError(f"I didn't expect '{_short(after.strip())}' there.", usage)
        ref = CustomerRef(key=" ".join(rest.split()).lstrip("@"))
    return ShowCustomer(ref)


def _profile(rest: str, usage: str) -> Command:
    ticket, rest = _take_ticket(rest, allow_bare=rest.strip().isdigit())
    word, value = _split_first(rest)
    if not word:
        return Profile(ticket)
    field = word.lower()
    if field == "note":
        if not value.strip():
            raise ParseError("What should the profile note say?", usage)
        return Profile(ticket, "note", value.strip())
    if field not in PROFILE_FIELDS:
        guess = difflib.get_close_matches(field, (*PROFILE_FIELDS, "note"), n=1)
        hint = f" Did you mean '{guess[0]}'?" if guess else ""
        raise ParseError(f"A profile has no '{_short(word)}'.{hint}", usage)
    return Profile(ticket, field, value.strip())


def _link(rest: str, usage: str) -> Command:
    first, rest = _split_first(rest)
    second, after = _split_first(rest)
    if not second:
        raise ParseError("Which two accounts are the same customer?", usage)
    _no_more(after, usage)
    return Link(_customer_ref(first), _customer_ref(second))


FOREVER_WORDS = ("forever", "permanently", "permanent", "indefinitely")


def _block(rest: str, usage: str) -> Command:
    """One customer (a mention, `#id` or `platform:user`, as one word) and, if given, for how long."""
    word, after = _split_first(rest)
    if not word:
        raise ParseError("Whom should I block?", usage)
    how_long, after = _split_first(after)
    _no_more(after, usage)
    duration, forever = block_length(how_long)
    return Block(_customer_ref(word), duration, forever)


def block_length(text: str) -> tuple[timedelta | None, bool]:
    """How long a block lasts, as typed: nothing (the policy's default), a duration, or `forever`."""
    text = text.strip()
    if not text:
        return None, False
    if text.lower() in FOREVER_WORDS:
        return None, True
    try:
        duration = parse_duration(text)
    except ValueError as error:
        raise ParseError(f"{error}, or say forever.", VERBS["block"].usage) from None
    if duration <= timedelta(0):
        raise ParseError("A block needs a duration longer than nothing.", VERBS["block"].usage)
    return duration, False


def _unblock(rest: str, usage: str) -> Command:
    word, after = _split_first(rest)
    if not word:
        raise ParseError("Whom should I unblock?", usage)
    _no_more(after, usage)
    return Unblock(_customer_ref(word))


def _promise(rest: str, usage: str) -> Command:
    ticket, rest = _take_ticket(rest, allow_bare=True)
    try:
        when, what = split_when(rest)
    except WhenError as error:
        raise ParseError(str(error), usage) from None
    if not what.strip():
        raise ParseError("What will happen by then? Say it as the customer should read it.", usage)
    return MakePromise(ticket, when, what.strip())


def _kept(rest: str, usage: str) -> Command:
    """`#12` names the ticket; a bare number is the promise's (`/ticket kept 2` in a ticket's thread)."""
    ticket, rest = _take_ticket(rest, allow_bare=False)
    word, after = _split_first(rest)
    _no_more(after, usage)
    if word and not _BARE_ID.fullmatch(word):
        raise ParseError(f"'{_short(word)}' is not a promise number.", usage)
    return Kept(ticket, int(word) if word else None)


_PERIOD_WORDS = {"today": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=30)}


def _stats(rest: str, usage: str) -> Command:
    period, queue, agent = timedelta(days=7), None, None
    for word in rest.split():
        mention = _MENTION.fullmatch(word)
        if mention:
            agent = AgentMention(mention.group(1) or mention.group(2))
        elif word.lower() in _PERIOD_WORDS:
            period = _PERIOD_WORDS[word.lower()]
        elif word[:1].isdigit():
            try:
                period = parse_duration(word)
            except ValueError as error:
                raise ParseError(str(error), usage) from None
            if not timedelta(hours=1) <= period <= timedelta(days=400):
                raise ParseError("A period runs from 1h to 400d.", usage)
        else:
            queue = word.lower()
    return ShowStats(period, queue, agent)


def _queue(rest: str, usage: str) -> Command:
    word, after = _split_first(rest)
    _no_more(after, usage)
    return ListQueue(word.lower() or None)


def _mine(rest: str, usage: str) -> Command:
    _no_more(rest, usage)
    return Mine()


def _help(rest: str, usage: str) -> Command:
    word, _ = _split_first(rest)
    return Help(word.lower() or None)


_BUILDERS: dict[str, Callable[[str, str], Command]] = {
    "claim": _only_ticket(Claim),
    "release": _only_ticket(Release),
    "reply": _with_text(Reply, "What should the reply say?"),
    "note": _with_text(Note, "What should the note say?"),
    "transfer": _transfer,
    "pending": _only_ticket(Pending),
    "hold": _with_text(Hold, "Please give a reason for the hold, so colleagues know why."),
    "resolve": _with_text(Resolve, None),
    "reopen": _only_ticket(Reopen),
    "priority": _priority,
    "show": _only_ticket(Show),
    "snippet": _snippet,
    "customer": _show_customer,
    "profile": _profile,
    "incentive": _with_text(GiveIncentive, "What did you give the customer?"),
    "link": _link,
    "block": _block,
    "unblock": _unblock,
    "transcript": _only_ticket(Transcript),
    "promise": _promise,
    "kept": _kept,
    "stats": _stats,
    "queue": _queue,
    "mine": _mine,
    "help": _help,
}


def _short(text: str, limit: int = 40) -> str:
    """Echo a bit of what the person typed, never a wall of it."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
