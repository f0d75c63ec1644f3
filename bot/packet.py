"""Handoff packets: everything the next owner of a ticket needs, at a glance.

A packet is built from our own records (never by re-reading a platform) and is deterministic: the same
ticket gives the same packet. `build` picks out what matters (the customer and their profile, the problem
in their words, the facts, what was tried, the handoffs); `render` lays it out within a character budget,
condensing a long ticket so that the most informative and the most recent items stay, and says what was
left out and where the rest is (`/ticket transcript`).

Promises, SLA clocks and the mood trend have their slots here already; the service-standards and
satisfaction work fill them.
"""

from __future__ import annotations

import gc
import re
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple

from bot.domain import (
    STATUS_WORDS,
    Customer,
    Entry,
    EntryKind,
    EntryLine,
    Identity,
    Incentive,
    ProfileNote,
    Ticket,
    TimelineEvent,
)
from bot.facts import Fact, FactFinder
from bot.facts import describe as describe_facts
from bot.messages import InternalText
from bot.text import defuse_mentions, shorten

MESSAGE_LIMITS = {"discord": 2000, "slack": 3000}
"""How much text one message may hold on each platform (Discord's content limit; a Slack section)."""

ITEM_CHARS = 300
"""The most any one quoted message takes in a packet; the transcript has the rest."""

_WORD = re.compile(r"[^\W\d_]{4,}")
_COMMON_WORDS = (
    "this that with have from your what when where which there their they them then than been were "
    "will would could should about also just still some into over only very much more here please "
    "thanks thank hello again does doesn didn isn wasn anyone someone anything something know want "
    "need help waiting wait update news today yesterday tomorrow still there where sorry okay fine"
)
_COMMON = frozenset(_COMMON_WORDS.split())
"""Words that carry no information about a problem, so they never make a message look new."""
NEW_WORDS_TO_COUNT = 2
"""A later message adds information when it names a new fact or at least this many new words."""
READINGS_REMEMBERED = 20_000
"""Messages whose reading (facts, words) each fact finder remembers, most recently used first."""


@dataclass(frozen=True)
class PastTicket:
    number: int
    subject: str
    status: str
    opened_at: datetime
    satisfaction: int | None = None
    """The customer's rating of it (1-5), once satisfaction is measured."""


@dataclass(frozen=True)
class ProfileView:
    """A customer as the desk knows them: profile fields, notes, incentives, identities, history."""

    customer_id: int
    name: str
    address_as: str | None
    kind: str
    timezone: str | None
    organisation: str | None
    email: str | None
    email_verified: bool
    tags: tuple[str, ...]
    identities: tuple[str, ...]
    customer_since: datetime
    notes: tuple[ProfileNote, ...]
    incentives: tuple[Incentive, ...]
    past: tuple[PastTicket, ...]

    @property
    def returning(self) -> bool:
        return bool(self.past)

    @property
    def last_satisfaction(self) -> int | None:
        rated = [p.satisfaction for p in self.past if p.satisfaction is not None]
        return rated[-1] if rated else None


@dataclass(frozen=True)
class Said:
    """A customer message that tells the problem: the first one, or a later one adding information."""

    at: datetime
    author: str
    text: str
    new_facts: int
    new_words: int
    first: bool = False


class Step(NamedTuple):
    """Something done or said by staff: a public reply, an internal note, a status or priority change.
    (A named tuple: a long ticket has thousands.)"""

    at: datetime
    who: str
    kind: str
    text: str | InternalText


@dataclass(frozen=True)
class Handoff:
    """A ticket changing hands: from whom, to whom (an agent or a queue), why, by whom, when."""

    at: datetime
    by: str
    to: str
    from_owner: str | None = None
    reason: str = ""
    claim: bool = False
    """A claim: the receiving agent took the ticket (after a handoff to a queue, say)."""


@dataclass(frozen=True)
class PromiseView:
    """An open promise to the customer and when it falls due (filled by the service-standards work)."""

    what: str
    due: datetime
    overdue: bool = False


@dataclass(frozen=True)
class HandoffPacket:
    ticket: Ticket
    owner: str | None
    profile: ProfileView
    problem: tuple[Said, ...]
    facts: tuple[Fact, ...]
    tried: tuple[Step, ...]
    handoffs: tuple[Handoff, ...]
    messages: int
    """Every message on the ticket, from the customer and from staff (for "N of M shown")."""
    heading: str | None = None
    promises: tuple[PromiseView, ...] = ()
    sla: tuple[str, ...] = ()
    """One line per SLA clock (metric, due, state), once service standards are measured."""
    mood: str | None = None
    """The customer's mood trend, once messages are scored for sentiment."""


def profile_view(
    customer: Customer,
    identities: Sequence[Identity],
    notes: Sequence[ProfileNote],
    incentives: Sequence[Incentive],
    tickets: Sequence[Ticket],
    exclude: int | None = None,
    ratings: Mapping[int, int] | None = None,
) -> ProfileView:
    """`ratings`: each ticket's latest satisfaction rating, by ticket number."""
    assert customer.id is not None
    ratings = ratings or {}
    past = tuple(
        PastTicket(t.number, t.subject, STATUS_WORDS[t.status], t.created_at, ratings.get(t.number))
        for t in tickets
        if t.number is not None and t.number != exclude
    )
    return ProfileView(
        customer_id=customer.id,
        name=customer.display_name,
        address_as=customer.address_as,
        kind=str(customer.kind),
        timezone=customer.timezone,
        organisation=customer.organisation,
        email=customer.email,
        email_verified=customer.email_verified,
        tags=customer.tags,
        identities=tuple(f"{i.platform} {i.display_name}" for i in identities),
        customer_since=customer.created_at,
        notes=tuple(notes),
        incentives=tuple(incentives),
        past=past,
    )


def build(
    ticket: Ticket,
    owner: str | None,
    profile: ProfileView,
    entries: Sequence[Entry] | Sequence[EntryLine],
    events: Sequence[TimelineEvent],
    finder: FactFinder,
    is_courtesy: Callable[[str], bool],
    heading: str | None = None,
) -> HandoffPacket:
    """Pick out of a ticket's record what the next owner needs. `entries` in order: as `Entry`s, or as the
    `EntryLine`s a repository gives for packets (light, for the thousands of a long ticket)."""
    # Each message is read once (facts, words) for both uses below, and remembered (a long ticket has
    # thousands); one pass, in order, over what was said in public, the customer's words among it.
    read = _reader(finder)
    customer, reply, note = EntryKind.CUSTOMER, EntryKind.REPLY, EntryKind.NOTE
    problem: list[Said] = []
    seen_facts: set[tuple[str, str]] = set()
    seen_words: set[str] = set()
    merged: dict[tuple[str, str], Fact] = {}  # as finder.find over all of them: first mention first
    first = True
    for entry in entries:
        kind, body = entry.kind, entry.body
        if (kind is not customer and kind is not reply) or not isinstance(body, str):
            continue
        in_entry, words = read(body)
        for key, fact in in_entry:
            if key not in merged:
                merged[key] = fact
        if kind is not customer:
            continue
        new_facts = new_words = 0
        if in_entry and not seen_facts.issuperset(key for key, _ in in_entry):
            new_facts = sum(1 for key, _ in in_entry if key not in seen_facts)
            seen_facts.update(key for key, _ in in_entry)
        if not seen_words.issuperset(words):
            new_words = len(words) - len(seen_words.intersection(words))
            seen_words.update(words)
        informative = new_facts > 0 or new_words >= NEW_WORDS_TO_COUNT
        if first or (informative and not is_courtesy(body)):
            problem.append(Said(entry.created_at, entry.author_name, body, new_facts, new_words, first))
        first = False
    facts = list(merged.values())
    make = tuple.__new__  # Step's own __new__, without its Python frame (a long ticket has thousands)
    tried = [
        make(Step, (e.created_at, e.author_name, "note" if e.kind is note else "reply", e.body))
        for e in entries
        if e.kind is reply or e.kind is note
    ]
    tried += [step for step in map(_event_step, events) if step is not None]
    tried.sort(key=itemgetter(0))  # by `at`
    handoffs = tuple(h for h in map(_handoff, events) if h is not None)
    bot = EntryKind.BOT
    spoken = sum(1 for e in entries if e.kind is not bot)
    return HandoffPacket(
        ticket=ticket,
        owner=owner,
        profile=profile,
        problem=tuple(problem),
        facts=tuple(facts),
        tried=tuple(tried),
        handoffs=handoffs,
        messages=spoken,
        heading=heading,
    )


@contextmanager
def collector_paused() -> Iterator[None]:
    """Making a long ticket's packet makes tens of thousands of short-lived objects (a line per entry, a
    step, a choice), all gone when it is sent. The cyclic collector, counting them, would run many times
    meanwhile, move them to its oldest generation, and soon make a full pass over the whole heap (tens of
    milliseconds) for what reference counting frees anyway; so it rests while a packet is made. Only the
    caller that paused it starts it again, and only if it was running."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def budget_for(platform: str | None, packet_chars: int) -> int:
    """The packet's size: the policy's reading budget, or the platform's limit when that is smaller."""
    return min(packet_chars, MESSAGE_LIMITS.get(platform or "", packet_chars))


# --- rendering ------------------------------------------------------------------------------------

Parts = list[str | InternalText]


class _Choice(NamedTuple):
    """An optional line (a long ticket has thousands). Its first three fields order the choosing: the best
    score first, then the most recent; serials differ, so the order never looks past them. Its text is
    made from `source` only when the budget still has room for `least` characters."""

    minus_score: float
    minus_timestamp: float
    minus_serial: int
    section: int
    at: datetime
    make: Callable[[Any], Parts]
    source: Any
    least: int


_SLA, _NOTES, _INCENTIVES, _PROMISES, _PROBLEM, _TRIED, _HANDOFFS = range(7)
_TITLES = {
    _SLA: "Service clocks:",
    _NOTES: "Profile notes:",
    _INCENTIVES: "Incentives given:",
    _PROMISES: "Open promises:",
    _PROBLEM: "In their words:",
    _TRIED: "Tried and said so far:",
    _HANDOFFS: "Handoffs:",
}


def render(packet: HandoffPacket, budget: int) -> Parts:
    """The packet as staff text of at most `budget` characters.

    The head (who, what, why it is handed over, the facts, SLA and mood) always shows; the rest is
    chosen by score, most informative and most recent first, and shown in time order per section.
    """
    ticket = packet.ticket
    head = _head(packet)
    optional = _items(packet)

    def footer(shown: int) -> str:
        left_out = len(optional) - shown
        where = f"Everything: /ticket transcript {ticket.ref}"
        if left_out:
            return f"\n({left_out} older or less telling items left out of {len(optional)}.) {where}"
        return f"\n{where}"

    chosen: list[tuple[int, tuple[datetime, int], Parts]] = []  # section, order within it, text
    room = budget - _size(head) - len(footer(0)) - 4
    titles_used: set[int] = set()
    optional.sort()
    for _, _, serial, section, at, make, source, least in optional:
        heading = 0 if section in titles_used else len(_TITLES[section]) + 1
        if least + heading > room:
            continue  # cannot fit, whatever its text
        made = make(source)
        cost = _size(made) + heading
        if cost <= room:
            chosen.append((section, (at, -serial), made))
            titles_used.add(section)
            room -= cost
    parts = list(head)
    for section, title in _TITLES.items():
        lines = sorted((c for c in chosen if c[0] == section), key=lambda c: c[1])
        if not lines:
            continue
        parts.append("\n" + title)
        for _, _, made in lines:
            parts += made
    parts.append(footer(len(chosen)))
    return _fit(parts, budget)


def render_profile(profile: ProfileView, budget: int) -> Parts:
    """A customer's profile for an agent: `/ticket customer` and `/ticket profile`."""
    details = _profile_details(profile)
    parts: Parts = [_who_line(profile, whole_profile=True) + (f" · {details}" if details else "")]
    parts.append(f"\nCustomer since {_day(profile.customer_since)} · customer {profile.customer_id}")
    if profile.notes:
        parts.append("\nProfile notes:")
        for note in profile.notes:
            parts += [f"\n• ({note.author_name}, {_day(note.created_at)}) ", InternalText(note.text.hidden)]
    if profile.incentives:
        parts.append("\nIncentives given:")
        parts += [_incentive_line(i) for i in profile.incentives]
    if profile.past:
        parts.append(f"\nTickets ({len(profile.past)}):")
        parts += [
            f"\n  #{p.number} · {p.status} · {_day(p.opened_at)} · {shorten(p.subject, 60)}"
            + (f" · rated {p.satisfaction}/5" if p.satisfaction is not None else "")
            for p in profile.past[-10:]
        ]
        if len(profile.past) > 10:
            parts.append(f"\n  ({len(profile.past) - 10} earlier tickets not shown)")
    parts.append(
        "\nAdd a note for every future ticket: /ticket profile #<id> note <text>. Set a field: "
        "/ticket profile #<id> <address|timezone|org|email|tags|kind> <value>"
    )
    return _fit(parts, budget)


def _head(packet: HandoffPacket) -> Parts:
    ticket, profile = packet.ticket, packet.profile
    owner = f"with {packet.owner}" if packet.owner else "unclaimed"
    parts: Parts = []
    if packet.heading:
        parts.append(packet.heading + "\n")
    parts.append(
        f"{ticket.ref} · {shorten(ticket.subject, 100)}\n"
        f"{STATUS_WORDS[ticket.status]} · {ticket.priority} priority · {ticket.queue} · {owner} · "
        f"opened {_when(ticket.created_at)}\n"
    )
    details = _profile_details(profile)
    parts.append(_who_line(profile) + (f" · {details}" if details else ""))
    if packet.facts:
        parts.append("\nFacts: " + describe_facts(list(packet.facts), limit=15))
    if packet.mood:
        parts.append("\nMood: " + packet.mood)
    return parts


def _who_line(profile: ProfileView, whole_profile: bool = False) -> str:
    """Who the customer is. On a ticket, `past` holds their other tickets; a whole profile counts all."""
    addressed = f' (address as "{profile.address_as}")' if profile.address_as else ""
    kind = "colleague" if profile.kind == "internal" else "customer"
    if whole_profile:
        if len(profile.past) <= 1:
            return f"Who: {profile.name}{addressed} · new {kind}"
        return f"Who: {profile.name}{addressed} · returning {kind}, {len(profile.past)} tickets"
    if profile.past:
        plural = "s" if len(profile.past) != 1 else ""
        last = profile.past[-1]
        history = f"returning: {len(profile.past)} earlier ticket{plural}, last #{last.number} {last.status}"
        if profile.last_satisfaction is not None:
            history += f", last rating {profile.last_satisfaction}/5"
    else:
        history = f"new {kind}"
    return f"Who: {profile.name}{addressed} · {history}"


def _profile_details(profile: ProfileView) -> str:
    bits = []
    if profile.organisation:
        bits.append(profile.organisation)
    if profile.timezone:
        bits.append(profile.timezone)
    if profile.email:
        bits.append(profile.email + ("" if profile.email_verified else " (unverified)"))
    if profile.tags:
        bits.append("tags: " + ", ".join(profile.tags))
    if len(profile.identities) > 1:
        bits.append("on " + ", ".join(profile.identities))
    return " · ".join(bits)


def _items(packet: HandoffPacket) -> list[_Choice]:
    """Every optional line, scored: promises and profile notes matter most, then the first message, new
    facts, notes, the customer's later words, replies; within a kind, the recent beats the old. The many
    (the customer's words, what was tried, handoffs) are made when the budget asks for them."""
    items: list[_Choice] = []
    count = 0
    stamp = len("\n[] ") + _shortest_when()

    def add(section: int, at: datetime, score: float, parts: Parts) -> None:
        later(section, at, score, _as_made, parts, _size(parts))

    def later(
        section: int, at: datetime, score: float, make: Callable[[Any], Parts], source: Any, least: int
    ) -> None:
        nonlocal count
        count += 1
        items.append(_Choice(-score, -at.timestamp(), -count, section, at, make, source, least))

    for index, line in enumerate(packet.sla):
        add(_SLA, packet.ticket.created_at, 96 - index / 10, ["\n• " + line])
    for promise in packet.promises:
        late = " (overdue)" if promise.overdue else ""
        add(
            _PROMISES, promise.due, 100, [f"\n• {shorten(promise.what, 120)}, due {_when(promise.due)}{late}"]
        )
    for index, note in enumerate(reversed(packet.profile.notes)):
        # What the customer asked us to remember comes before their first message (the subject has it).
        text = InternalText(shorten(note.text.hidden, 200))
        add(_NOTES, note.created_at, 97 - min(index, 5) / 10, [f"\n• ({note.author_name}) ", text])
    for index, incentive in enumerate(reversed(packet.profile.incentives)):
        add(_INCENTIVES, incentive.given_at, 70 - index, [_incentive_line(incentive)])
    last = len(packet.problem) - 1
    for index, said in enumerate(packet.problem):
        recent = last - index  # 0 for the latest
        score = 95.0 if said.first else 50 + 8 * said.new_facts + min(said.new_words, 12) - recent
        later(_PROBLEM, said.at, score, _said_parts, said, stamp)
    last = len(packet.tried) - 1
    bases = {"note": 60, "reply": 45}
    replied = len(" replied: ")
    make = tuple.__new__
    for index, step in enumerate(packet.tried):  # `later` and `_step_least` written out: there are thousands
        count += 1
        at, who, kind, body = step
        if kind == "reply" and type(body) is str and "<" not in who and "<" not in body:
            line = " ".join(body.split())  # as `_quote` makes it, unless it is too long
            least = stamp + len(who) + replied + (len(line) if len(line) <= ITEM_CHARS else len(_quote(body)))
        else:
            least = stamp + _step_least(step)
        score = bases.get(kind, 25) - min(last - index, 20)
        items.append(make(_Choice, (-score, -at.timestamp(), -count, _TRIED, at, _step_parts, step, least)))
    for index, handoff in enumerate(reversed(packet.handoffs)):
        later(_HANDOFFS, handoff.at, 40 - index, _handoff_parts, handoff, stamp)
    return items


def _as_made(parts: Parts) -> Parts:
    return parts


def _said_parts(said: Said) -> Parts:
    return [f"\n[{_when(said.at)}] {_quote(said.text)}"]


def _step_parts(step: Step) -> Parts:
    head = f"\n[{_when(step.at)}] {step.who}"
    if isinstance(step.text, InternalText):
        return [head + " (note): ", InternalText(_quote(step.text.hidden))]
    if step.kind == "reply":
        return [head + " replied: " + _quote(step.text)]
    return [head + ": " + step.text]


def _step_least(step: Step) -> int:
    """The fewest characters `_step_parts` makes of a step beyond its stamp, so that one that cannot fit
    is never made: its text as made, when no mention defusing can shorten it (each starts with '<')."""
    if "<" in step.who:
        return 0
    text = step.text
    if isinstance(text, InternalText):
        return len(step.who) + (len(" (note): ") + len(_quote(text.hidden)) if "<" not in text.hidden else 0)
    if "<" in text:
        return len(step.who)
    if step.kind == "reply":
        return len(step.who) + len(" replied: ") + len(_quote(text))
    return len(step.who) + len(": ") + len(text)


def _handoff_parts(handoff: Handoff) -> Parts:
    return ["\n" + _handoff_line(handoff)]


def _shortest_when() -> int:
    """The fewest characters `_when` writes (month names differ in length in some languages)."""
    return min(len(_when(datetime(2001, month, 10, 10, 10))) for month in range(1, 13))


def _event_step(event: TimelineEvent) -> Step | None:
    detail = event.detail
    if event.action == "status":
        old, new = _status_word(detail.get("old")), _status_word(detail.get("new"))
        return Step(event.at, event.actor_name, "status", f"{old} → {new}")
    if event.action == "priority":
        return Step(
            event.at, event.actor_name, "priority", f"priority {detail.get('old')} → {detail.get('new')}"
        )
    if event.action == "incentive":
        return Step(event.at, event.actor_name, "incentive", f"gave {detail.get('what')}")
    return None


def _handoff(event: TimelineEvent) -> Handoff | None:
    detail = event.detail
    if event.action == "transferred":
        to = detail.get("to_agent") or f"queue {detail.get('to_queue')}"
        return Handoff(event.at, event.actor_name, to, detail.get("from_agent"), detail.get("reason") or "")
    if event.action == "claimed" and not detail.get("handed_by"):  # a handoff's own line shows that one
        return Handoff(event.at, event.actor_name, detail.get("agent") or event.actor_name, claim=True)
    if event.action == "released":
        return Handoff(event.at, event.actor_name, "the queue, unclaimed", event.actor_name)
    return None


def _handoff_line(handoff: Handoff) -> str:
    if handoff.claim:
        return f"[{_when(handoff.at)}] claimed by {handoff.to}"
    origin = f"{handoff.from_owner} → " if handoff.from_owner else ""
    why = f": {shorten(handoff.reason, 120)}" if handoff.reason else ""
    return f"[{_when(handoff.at)}] {origin}{handoff.to}, by {handoff.by}{why}"


def _incentive_line(incentive: Incentive) -> str:
    on = f" on #{incentive.ticket_number}" if incentive.ticket_number else ""
    return f"\n• {shorten(incentive.what, 120)}{on} ({incentive.given_by}, {_day(incentive.given_at)})"


def _status_word(value: object) -> str:
    return {str(k): v for k, v in STATUS_WORDS.items()}.get(str(value), str(value))


def _quote(text: str) -> str:
    return shorten(text, ITEM_CHARS)


def _size(parts: Parts) -> int:
    """Length as staff will read it (mass mentions defused, which lengthens them a little). Every mention
    defusing changes starts with '<' or '@': text without either is its own length."""
    total = 0
    for part in parts:
        text = part.hidden if isinstance(part, InternalText) else part
        total += len(defuse_mentions(text)) if "@" in text or "<" in text else len(text)
    return total


def _fit(parts: Parts, budget: int) -> Parts:
    """Cut parts that would pass the budget (only a huge head can), marking the cut."""
    fitted: Parts = []
    used = 0
    for part in parts:
        size = _size([part])
        if used + size <= budget:
            fitted.append(part)
            used += size
            continue
        room = budget - used - 1
        text = part.hidden if isinstance(part, InternalText) else part
        cut = text[: max(room, 0)]
        while cut and len(defuse_mentions(cut)) > room:  # defused mentions grow a little
            cut = cut[: len(cut) - max(1, len(defuse_mentions(cut)) - room)]
        if cut.strip():
            cut = cut.rstrip() + "…"
            fitted.append(InternalText(cut) if isinstance(part, InternalText) else cut)
        break
    return fitted


def _when(moment: datetime) -> str:
    return moment.strftime("%d %b %H:%M")


def _day(moment: datetime) -> str:
    return moment.strftime("%d %b %Y")


Reading = tuple[tuple[tuple[tuple[str, str], Fact], ...], tuple[str, ...]]
"""What a message says: its facts in order, each with its key (kind, value in lower case), and its telling
words, each once. Tuples, which the cyclic collector stops following once they hold only strings: the
readings of a long ticket's messages live long."""
_READINGS: weakref.WeakKeyDictionary[FactFinder, dict[str, Reading]] = weakref.WeakKeyDictionary()


def _reader(finder: FactFinder) -> Callable[[str], Reading]:
    """Reads messages with this finder, remembering what each said: a ticket's packet is made again at
    every claim, transfer and `show`, and its earlier messages (thousands on a long ticket) say what
    they said before. Remembered by text, so an edited message is read again."""
    memo = _READINGS.get(finder)
    if memo is None:
        memo = _READINGS[finder] = {}

    def read(text: str) -> Reading:
        found = memo.pop(text, None)
        if found is None:
            facts = tuple(((f.kind, f.value.lower()), f) for f in finder.find([text]))  # distinct keys
            if text.isascii():  # there, folding case first finds the same words, folded
                words = frozenset(_WORD.findall(text.lower()))
            else:
                words = frozenset(w.casefold() for w in _WORD.findall(text))
            found = facts, tuple(words - _COMMON)
            if len(memo) >= READINGS_REMEMBERED:
                del memo[next(iter(memo))]  # the least recently used
        memo[text] = found
        return found

    return read
