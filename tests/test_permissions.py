"""Who may do what: every `/ticket` verb for every role, through the desk's public API.

The roles are a customer (the ticket's own customer), a colleague (staff who raise internal requests),
an agent, and a lead (an agent the policy names as a team's `lead`; the packaged policy's support team,
which owns the `general` queue, is led by "ana").

`ALLOWED` classifies every verb of the grammar: a verb added to `bot.grammar.VERBS` fails
`test_every_verb_is_classified` until it is given a row here and a realistic command in `CASES`.

For each verb, role and form (`#1` typed out, or left out inside the ticket's thread) a realistic command
runs against a ticket that exists. Allowed: the command acted (the store changed as the verb says, or
the expected answer came back). Refused: one polite answer to that person only, and not one committed
row changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import pytest
from fakes import START, Harness, agent, build_desk, colleague, customer

from bot.commands import Actor
from bot.domain import (
    BLOCKED_FOR_GOOD,
    Agent,
    EntryKind,
    Priority,
    PromiseState,
    Status,
    SurveyState,
    TicketKind,
)
from bot.grammar import VERBS
from bot.messages import (
    Conversation,
    CustomerMessage,
    InternalText,
    MessageRef,
    Outgoing,
    Overview,
    StaffKind,
    StaffMessage,
    ToAgent,
    ToAgents,
    ToCustomer,
    is_private_answer,
)
from bot.voice import customer_help, not_a_customer_command
from bot.work import Work, lead_of

T = TypeVar("T")
DAY = timedelta(days=1)

DANA = customer("Dana Scully")  # ticket #1's customer
EVE = customer("Eve Moss")  # ticket #2's customer
CARL = colleague("Carl Jung")
BEN = agent("Ben Okafor")  # an agent who leads no team
LEAD = agent("Ana Lead", user_id="ana")  # the packaged policy's lead of general and complaints
OTTO = agent("Otto Vance")  # another agent, who prepares the scene

ROLES: dict[str, Actor] = {"customer": DANA, "colleague": CARL, "agent": BEN, "lead": LEAD}
EVERYONE = frozenset(ROLES)
STAFF = frozenset({"agent", "lead"})
LEADS = frozenset({"lead"})

THREAD = Conversation("slack", "C-help", "T-dana")
"""Ticket #1's customer conversation: a thread, so its commands may leave out the #id."""

FORMS = {"hash": "#1 ", "thread": ""}
"""How a command names ticket #1: typed out (anywhere), or left out inside the ticket's thread."""

ALLOWED: dict[str, frozenset[str]] = {
    "claim": STAFF,
    "release": STAFF,
    "reply": STAFF,
    "note": STAFF,
    "transfer": STAFF,
    "pending": STAFF,
    "hold": STAFF,
    "resolve": STAFF,
    "reopen": STAFF,
    "priority": STAFF,
    "show": STAFF,
    "snippet": STAFF,
    "customer": STAFF,
    "profile": STAFF,
    "incentive": STAFF,
    "link": STAFF,
    "transcript": STAFF,
    "promise": STAFF,
    "kept": STAFF,
    "stats": STAFF,
    "queue": STAFF,
    "mine": STAFF,
    "help": EVERYONE,  # customers and colleagues get their own short help
    # Agents may block for a while (a day unless they say); longer than the policy's agent limit, or
    # forever, takes a lead: those forms have their own rows in CASES.
    "block": STAFF,
    "unblock": STAFF,
}
UPCOMING = frozenset({"block", "unblock"})
"""Verbs classified while they were being added to the grammar: a case runs only once VERBS has its verb,
and the classification test accepts their rows either way. (Both are in the grammar now; this may go.)"""


# --- reading the store ---------------------------------------------------------------------------


def agent_id(h: Harness, actor: Actor) -> int | None:
    return next((a.id for a in h.store.agents.values() if a.external_id == actor.person.user_id), None)


def customer_id(h: Harness, actor: Actor) -> int:
    return next(
        i.customer_id
        for i in h.store.identities.values()
        if (i.platform, i.external_id) == (actor.person.platform, actor.person.user_id)
    )


def entries(h: Harness, kind: EntryKind, number: int = 1) -> list[object]:
    return [e.body for e in h.store.entries_for(number) if e.kind is kind]


def private_texts(out: Sequence[Outgoing], actor: Actor) -> list[str]:
    return [m.text for m in out if is_private_answer(m, actor.person)]


def to_dana(out: Sequence[Outgoing]) -> list[str]:
    return [
        m.text
        for m in out
        if isinstance(m, CustomerMessage)
        and m.audience.ticket_number == 1
        and m.audience.person.user_id == DANA.person.user_id
    ]


def one(items: Sequence[T]) -> T:
    assert len(items) == 1, items
    return items[0]


# --- the scene -----------------------------------------------------------------------------------


async def scene() -> Harness:
    """Dana's ticket #1 (in a thread, queue general, led by LEAD) and Eve's #2 (in her DM), unclaimed;
    the agents are known to the desk."""
    h = build_desk()
    await h.desk.register_agents([BEN.person, LEAD.person, OTTO.person])
    await h.write(DANA, "My order A-1234 never arrived", THREAD)
    await h.write(EVE, "I was charged twice")
    assert sorted(h.store.tickets) == [1, 2]
    assert h.store.ticket(1).thread_id == THREAD.thread_id
    return h


async def ok(h: Harness, actor: Actor, text: str) -> None:
    """A step of a setup, which must succeed (change the store)."""
    before = h.store.snapshot()
    out = await h.run(actor, text)
    assert h.store.snapshot() != before, (text, [m.text for m in out])


async def claimed_by_actor_or_otto(h: Harness, actor: Actor) -> None:
    await ok(h, actor if actor.is_agent else OTTO, "/ticket claim #1")


async def claimed_by_actor(h: Harness, actor: Actor) -> None:
    if actor.is_agent:
        await ok(h, actor, "/ticket claim #1")


async def resolved_by_otto(h: Harness, _: Actor) -> None:
    await ok(h, OTTO, "/ticket resolve #1")


async def promised_by_otto(h: Harness, _: Actor) -> None:
    await ok(h, OTTO, "/ticket promise #1 2h send the return label")


async def dana_blocked_for_a_day(h: Harness, _: Actor) -> None:
    await ok(h, OTTO, "/ticket block <@Udana> 1d")


# --- what "acted" means, verb by verb ------------------------------------------------------------


def claimed(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    assert h.store.ticket(1).assignee_id == agent_id(h, actor) is not None
    assert any("is now looking after" in text for text in to_dana(out))


def released(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    assert h.store.ticket(1).assignee_id is None


def replied(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    assert entries(h, EntryKind.REPLY) == ["Thanks, a replacement ships today"]
    assert to_dana(out) == [f"{actor.person.display_name}: Thanks, a replacement ships today"]


def noted(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    assert entries(h, EntryKind.NOTE) == [InternalText("Warehouse confirmed the loss")]
    assert not to_dana(out)


def transferred(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    assert h.store.ticket(1).queue == "billing"
    assert any("billing team" in text for text in to_dana(out))


def status_is(status: Status) -> Callable[[Harness, Actor, list[Outgoing]], None]:
    def check(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
        assert h.store.ticket(1).status is status

    return check


def prioritised(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    assert h.store.ticket(1).priority is Priority.HIGH


def shown(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    packet = "\n".join(private_texts(out, actor))
    assert "#1" in packet and "My order A-1234 never arrived" in packet


def snippet_sent(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    [reply] = entries(h, EntryKind.REPLY)
    assert isinstance(reply, str) and reply.startswith("Thanks for bearing with me, Dana.")
    assert one(to_dana(out)).endswith(reply)


def profile_shown(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    assert "Dana Scully" in "\n".join(private_texts(out, actor))


def profile_noted(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    [note] = h.store.profile_notes.values()
    assert (note.customer_id, note.text) == (customer_id(h, DANA), InternalText("Prefers email over chat"))


def incentive_given(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    [given] = h.store.incentives.values()
    assert (given.customer_id, given.what, given.given_by) == (
        customer_id(h, DANA),
        "free express shipping",
        actor.person.display_name,
    )


def linked(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    dana, eve = customer_id(h, DANA), customer_id(h, EVE)
    assert dana == eve, "Eve's identity now belongs to Dana's profile"
    assert h.store.ticket(2).customer_id == dana


def transcribed(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    [answer] = [m for m in out if isinstance(m, StaffMessage) and m.audience == ToAgent(actor.person)]
    assert answer.attachments
    assert [e.action for e in h.store.events_for(1, "transcript")] == ["transcript"]


def promised(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    [promise] = h.store.promises.values()
    assert (promise.ticket_number, promise.what) == (1, "send the return label")
    assert any("send the return label" in text for text in to_dana(out))


def kept(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    [promise] = h.store.promises.values()
    assert promise.state is PromiseState.KEPT


def stats_given(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    [answer] = out
    assert isinstance(answer, StaffMessage) and answer.audience == ToAgent(actor.person)
    assert [a.media_type for a in answer.attachments] == ["image/png"]


def listed_ticket_1(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    [answer] = out
    assert isinstance(answer, StaffMessage) and answer.audience == ToAgent(actor.person)
    assert "#1" in answer.text


def helped(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    text = one(private_texts(out, actor))
    if actor.is_agent:
        assert "/ticket claim" in text
    else:
        assert text == customer_help()


def blocked_until(until: Callable[[Harness], datetime]) -> Callable[[Harness, Actor, list[Outgoing]], None]:
    def check(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
        dana = h.store.customers[customer_id(h, DANA)]
        assert dana.blocked_until == until(h)
        [record] = [r for r in h.store.audit_log.values() if r.action == "blocked"]
        assert (record.subject, record.actor) == (dana.id, actor.person.display_name)
        assert "Blocked Dana Scully" in one(private_texts(out, actor))

    return check


def unblocked(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    assert h.store.customers[customer_id(h, DANA)].blocked_until is None
    assert [r.actor for r in h.store.audit_log.values() if r.action == "unblocked"] == [
        actor.person.display_name
    ]


@dataclass(frozen=True)
class Case:
    """A realistic command for a verb: `{t}` is `#1 ` or nothing (inside ticket #1's thread)."""

    verb: str
    command: str
    acted: Callable[[Harness, Actor, list[Outgoing]], None]
    """Checks that an allowed command did its work."""
    setup: Callable[[Harness, Actor], Awaitable[None]] | None = None
    allowed: frozenset[str] | None = None
    """Who may run this form of the command, when it differs from the verb's row in ALLOWED."""
    read_only: bool = False
    """Only answers the actor: nothing is said to anyone else and nothing but agent records change."""
    name: str = ""

    @property
    def who(self) -> frozenset[str]:
        return self.allowed if self.allowed is not None else ALLOWED[self.verb]

    @property
    def id(self) -> str:
        return self.name or self.verb


CASES = [
    Case("claim", "/ticket claim {t}", claimed),
    Case("release", "/ticket release {t}", released, claimed_by_actor_or_otto),
    Case("reply", "/ticket reply {t}Thanks, a replacement ships today", replied),
    Case("note", "/ticket note {t}Warehouse confirmed the loss", noted),
    Case("transfer", "/ticket transfer {t}billing needs a refund check", transferred),
    Case("pending", "/ticket pending {t}", status_is(Status.WAITING_ON_CUSTOMER)),
    Case("hold", "/ticket hold {t}waiting on the courier", status_is(Status.ON_HOLD)),
    Case("resolve", "/ticket resolve {t}replacement sent", status_is(Status.RESOLVED)),
    Case("reopen", "/ticket reopen {t}", status_is(Status.OPEN), resolved_by_otto),
    Case("priority", "/ticket priority {t}high", prioritised),
    Case("show", "/ticket show {t}", shown, read_only=True),
    Case("snippet", "/ticket snippet {t}looking-into-it", snippet_sent),
    Case("customer", "/ticket customer #1", profile_shown, read_only=True),
    Case("profile", "/ticket profile {t}note Prefers email over chat", profile_noted),
    Case("incentive", "/ticket incentive {t}free express shipping", incentive_given),
    Case("link", "/ticket link #1 #2", linked),
    Case("transcript", "/ticket transcript {t}", transcribed),
    Case("promise", "/ticket promise {t}2h send the return label", promised),
    Case("kept", "/ticket kept {t}", kept, promised_by_otto),
    Case("stats", "/ticket stats 7d", stats_given, read_only=True),
    Case("queue", "/ticket queue", listed_ticket_1, read_only=True),
    Case("mine", "/ticket mine", listed_ticket_1, claimed_by_actor),
    Case("help", "/ticket help", helped, read_only=True),
    Case("block", "/ticket block <@Udana> 1d", blocked_until(lambda h: START + DAY), name="block-for-a-day"),
    Case("block", "/ticket block <@Udana>", blocked_until(lambda h: START + DAY), name="block-default"),
    Case(
        "block",
        "/ticket block <@Udana> 7d",
        blocked_until(lambda h: START + 7 * DAY),
        name="block-up-to-the-agents-limit",
    ),
    Case(
        "block",
        "/ticket block <@Udana> 8d",
        blocked_until(lambda h: START + 8 * DAY),
        allowed=LEADS,
        name="block-past-the-agents-limit",
    ),
    Case(
        "block",
        "/ticket block <@Udana> forever",
        blocked_until(lambda h: BLOCKED_FOR_GOOD),
        allowed=LEADS,
        name="block-forever",
    ),
    Case("unblock", "/ticket unblock <@Udana>", unblocked, dana_blocked_for_a_day),
]
RUNNABLE = [case for case in CASES if case.verb in VERBS]


def test_every_verb_is_classified():
    """A verb new to the grammar must be given its roles here (and a case below) before this passes."""
    classified = {verb for verb in ALLOWED if verb in VERBS or verb not in UPCOMING}
    assert classified == set(VERBS), "classify new verbs in ALLOWED; drop the ones the grammar lost"
    assert {case.verb for case in CASES} == set(ALLOWED)
    assert all(who <= EVERYONE for who in ALLOWED.values())


async def test_the_lead_is_the_lead_of_ticket_1s_queue_and_the_agent_is_not():
    h = await scene()
    ticket = h.store.ticket(1)
    async with h.store.uow() as uow:
        lead = await lead_of(Work(uow, h.clock.now()), h.policy, ticket)
    assert isinstance(lead, Agent) and lead.external_id == LEAD.person.user_id
    assert h.policy.lead_of(ticket.queue) not in (BEN.person.user_id, BEN.person.display_name.lower())
    assert LEAD.is_agent and BEN.is_agent and not DANA.is_agent and not CARL.is_agent
    # The block cases' lengths sit either side of these.
    assert (h.policy.abuse.default_block, h.policy.abuse.agent_block_limit) == (DAY, 7 * DAY)


# --- every verb, every role ----------------------------------------------------------------------


def assert_refused(h: Harness, actor: Actor, out: list[Outgoing], before: object) -> None:
    """One polite answer to the actor alone; nothing stored, nothing said to anyone else."""
    assert h.store.snapshot() == before, "a refused command changed the store"
    message = one(out)
    assert is_private_answer(message, actor.person), message
    if actor.is_agent:
        assert isinstance(message, StaffMessage) and message.kind is StaffKind.INFO
        assert message.audience == ToAgent(actor.person)
    else:
        assert isinstance(message, CustomerMessage) and message.survey is None
        assert message.audience == ToCustomer(actor.person)
        # The agents-only wording: no agent usage, no internal words, the person by first name.
        assert message.text == not_a_customer_command(actor.person.display_name)
    assert message.text.strip()
    assert "Traceback" not in message.text and "Error" not in message.text


def assert_addressed_sensibly(h: Harness, actor: Actor, out: list[Outgoing]) -> None:
    """What an allowed command says goes to the actor, the agents, or a ticket's own customer."""
    for message in out:
        audience = message.audience
        if isinstance(message, StaffMessage):
            assert isinstance(audience, ToAgents) or (
                isinstance(audience, ToAgent) and audience.person.user_id
            )
            if isinstance(audience, ToAgent):
                agents = {a.external_id for a in h.store.agents.values()}
                assert audience.person.user_id in agents, f"a staff message to a non-agent: {message}"
            continue
        assert isinstance(audience, ToCustomer)
        if audience.ticket_number is None:
            assert audience.person == actor.person, f"a private answer to someone else: {message}"
        else:
            ticket = h.store.ticket(audience.ticket_number)
            assert audience.person.user_id == ticket.customer_user_id, message


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", RUNNABLE, ids=[case.id for case in RUNNABLE])
async def test_a_verb_acts_for_the_roles_allowed_and_is_politely_refused_for_the_rest(
    case: Case, role: str, form: str
):
    h = await scene()
    actor = ROLES[role]
    if case.setup is not None:
        await case.setup(h, actor)
    before = h.store.snapshot()

    out = await h.run(actor, case.command.format(t=FORMS[form]), THREAD if form == "thread" else None)

    if role not in case.who:
        assert_refused(h, actor, out, before)
        return
    assert out, "an allowed command answers"
    assert_addressed_sensibly(h, actor, out)
    case.acted(h, actor, out)
    if case.read_only:
        assert all(is_private_answer(m, actor.person) for m in out), out
        after = h.store.snapshot()
        assert {name: rows for name, rows in after.items() if name != "agents"} == {
            name: rows for name, rows in before.items() if name != "agents"
        }


@pytest.mark.parametrize("role", ROLES)
async def test_anyone_may_raise_an_internal_request(role: str):
    """`/request` is outside the verbs: README says anyone may raise one."""
    h = await scene()
    actor = ROLES[role]

    out = await h.run(actor, "/request access to the partner portal")

    ticket = h.store.ticket(3)
    assert (ticket.kind, ticket.queue, ticket.customer_user_id) == (
        TicketKind.INTERNAL,
        "internal",
        actor.person.user_id,
    )
    greeting = [m for m in out if isinstance(m, CustomerMessage) and m.audience.ticket_number == 3]
    assert one(greeting).audience.person.user_id == actor.person.user_id
    assert_addressed_sensibly(h, actor, out)


# --- rating buttons ------------------------------------------------------------------------------


async def resolved_with_survey() -> Harness:
    h = await scene()
    await ok(h, OTTO, "/ticket reply #1 A replacement ships today.")
    await ok(h, OTTO, "/ticket resolve #1")
    assert [s.state for s in h.store.surveys.values()] == [SurveyState.OPEN]
    return h


async def test_the_tickets_own_customer_may_rate_it():
    h = await resolved_with_survey()

    out = await h.desk.rate(DANA, 1, 4)

    [survey] = h.store.surveys.values()
    assert (survey.rating, survey.state) == (4, SurveyState.RATED)
    assert any("Thank you, Dana" in text for text in to_dana(out))
    assert_addressed_sensibly(h, DANA, out)


RATERS = {**{role: actor for role, actor in ROLES.items() if role != "customer"}, "other customer": EVE}


@pytest.mark.parametrize("role", RATERS)
async def test_nobody_else_may_rate_a_ticket(role: str):
    h = await resolved_with_survey()
    actor = RATERS[role]
    before = h.store.snapshot()

    out = await h.desk.rate(actor, 1, 5)

    assert h.store.snapshot() == before
    message = one(out)
    assert isinstance(message, CustomerMessage) and message.audience == ToCustomer(actor.person)
    assert "survey has closed" in message.text


@pytest.mark.parametrize(("ticket", "rating"), [(1, 0), (1, 6), (1, -1), (2, 4), (99, 4)])
async def test_a_rating_out_of_range_or_for_another_ticket_changes_nothing(ticket: int, rating: int):
    h = await resolved_with_survey()
    before = h.store.snapshot()

    out = await h.desk.rate(DANA, ticket, rating)

    assert h.store.snapshot() == before
    assert is_private_answer(one(out), DANA.person)


# --- the agents' overview and snippet names ------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
async def test_the_overview_is_for_agents_only(role: str):
    h = await scene()
    actor = ROLES[role]
    before = h.store.snapshot()

    overview = await h.desk.overview(actor)

    if role in STAFF:
        assert isinstance(overview, Overview)
        assert [line.number for line in overview.unclaimed] == [1, 2]
        assert overview.mine == ()
    else:
        assert overview is None
        assert h.store.snapshot() == before


@pytest.mark.parametrize("role", ROLES)
async def test_snippet_names_are_for_agents_only(role: str):
    h = await scene()
    actor = ROLES[role]
    before = h.store.snapshot()

    names = await h.desk.snippet_names(actor)

    if role in STAFF:
        assert names == sorted(h.policy.snippets) and "looking-into-it" in names
    else:
        assert names == []
        assert h.store.snapshot() == before


# --- the staff thread ----------------------------------------------------------------------------

CARD = MessageRef("C-agents", "card-1")
STAFF_THREAD = Conversation("slack", CARD.channel_id, CARD.message_id)


@pytest.mark.parametrize("role", ROLES)
async def test_only_agents_words_in_a_tickets_staff_thread_become_notes(role: str):
    h = await scene()
    await h.desk.attach_card(1, "slack", CARD)
    actor = ROLES[role]
    before = h.store.snapshot()

    out = await h.desk.note_from_staff_thread(actor, STAFF_THREAD, "Courier says it is lost", "staff-1")

    assert out == [], "the note already stands in the thread"
    if role in STAFF:
        assert entries(h, EntryKind.NOTE) == [InternalText("Courier says it is lost")]
    else:
        assert h.store.snapshot() == before


# --- who counts as a lead ------------------------------------------------------------------------


async def test_an_agent_who_takes_the_leads_name_is_not_a_lead_once_the_lead_is_known():
    h = await scene()  # LEAD, whose user id is the policy's "ana", is known to the desk
    impostor = agent("ana", user_id="Uimpostor")
    before = h.store.snapshot()

    out = await h.run(impostor, "/ticket block <@Udana> forever")

    assert "need a team lead" in one(private_texts(out, impostor))
    assert h.store.snapshot() == before


async def test_an_agent_who_takes_the_leads_name_is_not_a_lead_before_the_lead_is_known():
    h = build_desk()
    await h.write(DANA, "My order A-1234 never arrived", THREAD)
    impostor = agent("ana", user_id="Uimpostor")
    before = h.store.snapshot()

    out = await h.run(impostor, "/ticket block <@Udana> forever")

    assert "need a team lead" in one(private_texts(out, impostor))
    assert h.store.customers[customer_id(h, DANA)].blocked_until is None
    assert {n: t for n, t in h.store.snapshot().items() if n != "agents"} == {
        n: t for n, t in before.items() if n != "agents"
    }
