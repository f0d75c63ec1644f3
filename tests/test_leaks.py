"""Internal text never reaches a customer, and a customer never hears about someone else's ticket.

First the type-level guard (`InternalText` will not become a `str`, `CustomerMessage` takes only `str`),
then a stateful test that drives the desk with random command sequences and checks every message said.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import timedelta

import pytest
from fakes import Harness, agent, build_desk, customer
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bot.commands import Actor, IncomingMessage
from bot.domain import EntryKind
from bot.messages import (
    Conversation,
    CustomerMessage,
    InternalText,
    Outgoing,
    Person,
    StaffKind,
    StaffMessage,
    ToAgent,
    ToAgents,
    ToCustomer,
    staff,
)

SOMEONE = Person("slack", "U1", "Dana Scully")

# --- the type-level guard -----------------------------------------------------------------------


def test_a_customer_message_refuses_internal_text():
    with pytest.raises(TypeError):
        CustomerMessage(ToCustomer(SOMEONE), InternalText("warehouse lost it"))  # type: ignore[arg-type]


@pytest.mark.parametrize("audience", [ToAgents(1), ToAgent(SOMEONE)])
def test_a_customer_message_refuses_a_staff_audience(audience: ToAgents | ToAgent):
    with pytest.raises(TypeError):
        CustomerMessage(audience, "hello")  # type: ignore[arg-type]


def test_a_staff_message_refuses_a_customer_audience():
    with pytest.raises(TypeError):
        StaffMessage(ToCustomer(SOMEONE), ("hello",))  # type: ignore[arg-type]


@pytest.mark.parametrize("part", [42, b"bytes", None, ["list"]])
def test_a_staff_message_refuses_parts_that_are_not_text(part: object):
    with pytest.raises(TypeError):
        StaffMessage(ToAgents(1), ("ok", part))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "turn_into_text",
    [
        pytest.param(str, id="str"),
        pytest.param(lambda t: f"{t}", id="f-string"),
        pytest.param(lambda t: f"note: {t!s}", id="f-string-!s"),
        pytest.param(lambda t: format(t), id="format"),
        pytest.param(lambda t: format(t, ">20"), id="format-spec"),
        pytest.param(lambda t: "{}".format(t), id="str.format"),  # noqa: UP032
        pytest.param(lambda t: "%s" % t, id="percent"),  # noqa: UP031
        pytest.param(lambda t: "note: " + t, id="concatenation"),
        pytest.param(lambda t: " ".join([t]), id="join"),
    ],
)
def test_internal_text_refuses_to_become_a_str(turn_into_text):
    with pytest.raises(TypeError):
        turn_into_text(InternalText("warehouse lost it"))


def test_internal_text_repr_hides_the_text():
    note = InternalText("warehouse lost it")
    assert "warehouse" not in repr(note)
    assert "warehouse" not in f"{note!r}"
    assert "warehouse" not in repr([note])


def test_internal_text_is_immutable():
    note = InternalText("warehouse lost it")
    with pytest.raises(AttributeError):
        note.hidden = "nothing"  # type: ignore[misc]


def test_a_staff_message_reveals_internal_text():
    message = staff(ToAgents(3, "slack"), "#3 note: ", InternalText("warehouse lost it"), kind=StaffKind.NOTE)
    assert message.text == "#3 note: warehouse lost it"
    assert message.parts[1] == InternalText("warehouse lost it")


def test_a_staff_message_defuses_mentions_inside_internal_text():
    message = StaffMessage(ToAgents(), (InternalText("ping @everyone and <!here>"),))
    assert "@everyone" not in message.text and "<!here>" not in message.text
    assert "everyone" in message.text


def test_a_customer_message_defuses_mentions():
    message = CustomerMessage(ToCustomer(SOMEONE), "hi @here <!channel> <@&99>")
    assert "@here" not in message.text
    assert "<!channel>" not in message.text
    assert "<@&99>" not in message.text


# --- random command sequences --------------------------------------------------------------------

ANA = agent("Ana")
BEN = agent("Ben")
AGENTS = (ANA, BEN)
CUSTOMERS = (customer("Cleo Park"), customer("Dev Rao"))
QUEUES = ("general", "billing", "complaints", "internal", "nowhere")
PLACES = ("dm", "channel", "thread-1", "thread-2")
TEXTS = (
    "My order never arrived",
    "thanks!",
    "ok",
    "The app crashes when I log in\nevery time",
    "Hello @everyone <!channel>",
    "I was charged twice",
    "   ",
    "/request access to the partner portal",
)

MARKER = re.compile(r"(NOTE|HOLD|RESOLVE|TRANSFER)-\d+-SECRET")
_TICKET_REF = re.compile(r"#(\d+)")
_RAW_MENTION = re.compile(r"@(everyone|here|channel)\b|<!(channel|here|everyone)(\|[^>]*)?>|<@&\d+>")


def conversation(who: Actor, place: str) -> Conversation:
    """Each customer's own DM and threads, plus one channel both write in without threads."""
    if place == "dm":
        return Conversation("slack", f"D-{who.person.user_id}")
    if place == "channel":
        return Conversation("slack", "C-help")
    return Conversation("slack", "C-help", f"{place}-{who.person.user_id}")


class LeakMachine(RuleBasedStateMachine):
    """Customers write, agents work tickets, time passes; every message said is checked."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.h: Harness = build_desk()
        self.loop.run_until_complete(self.h.desk.register_agents([a.person for a in AGENTS]))
        self.secrets = 0
        self.delivered: list[IncomingMessage] = []
        self.said = 0

    def teardown(self) -> None:
        self.loop.close()

    # --- helpers -----------------------------------------------------------------------------

    def secret(self, kind: str) -> str:
        self.secrets += 1
        return f"{kind}-{self.secrets}-SECRET"

    def ticket_count(self) -> int:
        return len(self.h.store.tickets)

    def command(self, actor: Actor, text: str, where: Conversation | None = None) -> list[Outgoing]:
        out = self.loop.run_until_complete(self.h.desk.command(actor, text, where))
        self.check(actor, out)
        return out

    def receive(self, message: IncomingMessage) -> list[Outgoing]:
        out = self.loop.run_until_complete(self.h.desk.receive(message))
        self.check(message.actor, out)
        return out

    def check(self, actor: Actor, out: Sequence[Outgoing]) -> None:
        tickets = self.h.store.tickets
        agent_ids = {a.person.user_id for a in AGENTS}
        for message in out:
            self.said += 1
            assert not _RAW_MENTION.search(message.text), message
            if isinstance(message, StaffMessage):
                if isinstance(message.audience, ToAgent):
                    assert message.audience.person.user_id in agent_ids, message
                continue
            assert not MARKER.search(message.text), f"internal text reached a customer: {message}"
            audience = message.audience
            reader = audience.person.user_id
            assert reader not in agent_ids, f"an agent was answered as a customer: {message}"
            if audience.ticket_number is None:
                assert audience.person == actor.person, f"a private answer went to someone else: {message}"
            else:
                ticket = tickets[audience.ticket_number]
                assert reader == ticket.customer_user_id, f"told about someone else's ticket: {message}"
                owner = self.h.store.customers[ticket.customer_id]
                assert audience.person.display_name == owner.display_name, f"names someone else: {message}"
                where = Conversation(ticket.platform, ticket.channel_id, ticket.thread_id)
                assert audience.conversation == where, message
            for number in map(int, _TICKET_REF.findall(message.text)):
                assert number in tickets, message
                assert tickets[number].customer_user_id == reader, f"names another's ticket: {message}"

    # --- customers ---------------------------------------------------------------------------

    @rule(who=st.sampled_from(CUSTOMERS), place=st.sampled_from(PLACES), text=st.sampled_from(TEXTS))
    def customer_writes(self, who: Actor, place: str, text: str) -> None:
        if text.startswith("/request"):
            self.command(who, text, conversation(who, place) if place != "dm" else None)
            return
        message = IncomingMessage(who, text, conversation(who, place), f"m{len(self.delivered)}")
        self.delivered.append(message)
        self.receive(message)

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def a_message_is_delivered_again(self, data: st.DataObject) -> None:
        message = data.draw(st.sampled_from(self.delivered))
        before = self.h.store.snapshot()
        assert self.receive(message) == []
        assert self.h.store.snapshot() == before

    @rule(
        who=st.sampled_from(CUSTOMERS),
        verb=st.sampled_from(["claim", "show", "reply", "note", "resolve", "transfer", "queue", "mine"]),
        data=st.data(),
    )
    def customer_tries_an_agent_command(self, who: Actor, verb: str, data: st.DataObject) -> None:
        number = data.draw(st.integers(1, self.ticket_count() + 1))
        args = {"reply": " hi", "note": " hi", "transfer": " @ana", "queue": "", "mine": ""}
        text = f"/ticket {verb}" + ("" if verb in ("queue", "mine") else f" #{number}") + args.get(verb, "")
        before = self.h.store.snapshot()
        out = self.command(who, text)
        assert len(out) == 1 and isinstance(out[0], CustomerMessage)
        assert self.h.store.snapshot() == before

    # --- agents ------------------------------------------------------------------------------

    def work_on(self, actor: Actor, verb: str, in_thread: bool, data: st.DataObject) -> None:
        """Run `/ticket <verb>` on a known ticket (now and then an unknown one), with its arguments."""
        count = self.ticket_count()
        unknown = data.draw(st.integers(0, 9), label="unknown ticket?") == 0
        number = count + 1 if unknown else data.draw(st.integers(1, count), label="ticket")
        ticket = self.h.store.tickets.get(number)
        where = None
        ref = f"#{number}"
        if in_thread and ticket is not None and ticket.thread_id is not None:
            where, ref = Conversation(ticket.platform, ticket.channel_id, ticket.thread_id), ""
        if verb == "transfer-agent":
            extra = data.draw(st.sampled_from(["@ana", "@ben", "@nobody"])) + " " + self.secret("TRANSFER")
        elif verb == "transfer-queue":
            extra = data.draw(st.sampled_from(QUEUES)) + " " + self.secret("TRANSFER")
        elif verb == "priority":
            extra = data.draw(st.sampled_from(["low", "normal", "high", "urgent"]))
        else:
            extra = {
                "reply": "We are on it, thanks for waiting",
                "note": self.secret("NOTE") + " courier says the parcel is lost",
                "hold": self.secret("HOLD") + " vendor is checking",
                "resolve": self.secret("RESOLVE") + " refunded shipping",
            }.get(verb, "")
        name = verb.split("-")[0]
        text = " ".join(part for part in (f"/ticket {name}", ref, extra) if part)
        self.command(actor, text, where)

    @precondition(lambda self: self.h.store.tickets)
    @rule(
        actor=st.sampled_from(AGENTS),
        verb=st.sampled_from(
            ["claim", "release", "reply", "note", "transfer-agent", "transfer-queue", "show"]
        ),
        in_thread=st.booleans(),
        data=st.data(),
    )
    def agent_handles_a_ticket(self, actor: Actor, verb: str, in_thread: bool, data: st.DataObject) -> None:
        self.work_on(actor, verb, in_thread, data)

    @precondition(lambda self: self.h.store.tickets)
    @rule(
        actor=st.sampled_from(AGENTS),
        verb=st.sampled_from(["pending", "hold", "resolve", "resolve-quietly", "reopen", "priority", "note"]),
        in_thread=st.booleans(),
        data=st.data(),
    )
    def agent_changes_a_status(self, actor: Actor, verb: str, in_thread: bool, data: st.DataObject) -> None:
        self.work_on(actor, verb, in_thread, data)

    @rule(actor=st.sampled_from(AGENTS), listing=st.sampled_from(("mine", *(f"queue {q}" for q in QUEUES))))
    def agent_lists_tickets(self, actor: Actor, listing: str) -> None:
        self.command(actor, f"/ticket {listing}")

    # --- time --------------------------------------------------------------------------------

    @rule(hours=st.sampled_from([1, 24, 4 * 24, 8 * 24]))
    def time_passes(self, hours: int) -> None:
        self.h.clock.advance(timedelta(hours=hours))
        out = self.loop.run_until_complete(self.h.desk.run_due_work())
        self.check(ANA, out)

    # --- what must always hold ---------------------------------------------------------------

    @invariant()
    def what_customers_were_told_holds_no_internal_text(self) -> None:
        for entry in self.h.store.entries.values():
            if entry.kind is EntryKind.NOTE:
                assert isinstance(entry.body, InternalText)
            else:
                assert isinstance(entry.body, str)
                assert not MARKER.search(entry.body), entry

    @invariant()
    def a_customers_words_land_only_on_their_own_tickets(self) -> None:
        store = self.h.store
        for entry in store.entries.values():
            if entry.kind is EntryKind.CUSTOMER:
                owner = store.customers[store.tickets[entry.ticket_number].customer_id]
                assert entry.author_name == owner.display_name, entry

    @invariant()
    def tickets_are_numbered_from_one(self) -> None:
        assert sorted(self.h.store.tickets) == list(range(1, self.ticket_count() + 1))


LeakMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestNoLeaks = LeakMachine.TestCase
