"""The outbox (issue #8): what the desk says is kept with the change that made it, until a platform took it.

Through the public services: the bare `Desk` (no adapter settles for it), `Desk.settle` as adapters call
it, and `run_due_work` as the scheduler calls it. Over the fakes, and over SQLite and PostgreSQL for the
sweep's claim.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from fakes import START, FakeStore, agent, customer

from bot import outbox
from bot.clock import FakeClock
from bot.commands import IncomingMessage
from bot.desk import Desk
from bot.domain import DeliveryState
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
)
from bot.policy import load_policy
from bot.ports import UnitOfWork

DANA, BEN = customer("Dana Scully"), agent("Ben Okafor")
LEASE = timedelta(minutes=2)
"""The default policy's lease."""


class Bare:
    """A desk nobody settles for, as if every process died right after its commits."""

    def __init__(self, store: FakeStore | None = None) -> None:
        self.store = store or FakeStore()
        self.clock = FakeClock(START)
        self.desk = Desk(self.store.uow, self.clock, load_policy())
        self._messages = 0

    async def write(self, text: str = "My order A-1234 never arrived") -> list[Outgoing]:
        self._messages += 1
        where = Conversation("slack", "D-Udana")
        return await self.desk.receive(IncomingMessage(DANA, text, where, f"m{self._messages}"))


def kept(out: list[Outgoing]) -> list[Outgoing]:
    return [m for m in out if m.delivery is not None]


def resent(out: list[Outgoing], earlier: list[Outgoing]) -> list[Outgoing]:
    """What a sweep sends again of what was said earlier (a sweep also says new things: digests)."""
    ids = {m.delivery for m in earlier}
    return [m for m in out if m.delivery in ids]


# --- what is kept -----------------------------------------------------------------------------------


async def test_what_the_desk_says_is_kept_but_private_answers_are_not():
    bare = Bare()
    opened = await bare.write()
    assert len(opened) == 2 and all(m.delivery is not None for m in opened), "greeting and card"
    answered = await bare.desk.command(BEN, "/ticket show #1")
    assert answered and kept(answered) == [], "an answer to the agent who asked is not kept"
    rows = bare.store.deliveries
    assert sorted(rows) == sorted(m.delivery for m in opened)
    assert all(d.state is DeliveryState.PENDING and d.ticket_number == 1 for d in rows.values())


async def test_a_refused_command_keeps_nothing():
    bare = Bare()
    await bare.write()
    before = len(bare.store.deliveries)
    await bare.desk.command(BEN, "/ticket claim #99")
    assert len(bare.store.deliveries) == before


# --- a process that died before sending ---------------------------------------------------------------


async def test_what_was_never_settled_is_sent_again_after_the_lease_and_only_once():
    bare = Bare()
    opened = await bare.write()
    bare.clock.advance(LEASE - timedelta(seconds=1))
    await bare.desk.settle(kept(await bare.desk.run_due_work()))  # the sweep's own news, sent
    assert resent(await bare.desk.run_due_work(), opened) == [], "its process may still be sending"
    bare.clock.advance(timedelta(seconds=1))
    again = resent(await bare.desk.run_due_work(), opened)
    assert again == opened, "the same messages, whole"
    assert [m.delivery for m in again] == [m.delivery for m in opened]
    assert resent(await bare.desk.run_due_work(), opened) == [], "claimed: the next sweep leaves them"
    await bare.desk.settle(again)
    bare.clock.advance(timedelta(hours=1))
    assert resent(await bare.desk.run_due_work(), opened) == []
    assert all(bare.store.deliveries[m.delivery].state is DeliveryState.SENT for m in opened)


async def test_settled_messages_are_never_sent_again():
    bare = Bare()
    opened = await bare.write()
    await bare.desk.settle(opened)
    bare.clock.advance(timedelta(days=1))
    assert resent(await bare.desk.run_due_work(), opened) == []


async def test_sent_rows_are_pruned_after_the_policy_keeps_them():
    bare = Bare()
    opened = await bare.write()
    await bare.desk.settle(opened)
    bare.clock.advance(timedelta(days=7, minutes=1))
    await bare.desk.run_due_work()
    assert [d for d in bare.store.deliveries.values() if d.state is DeliveryState.SENT] == []


async def test_a_process_sweeps_only_the_platforms_it_serves():
    """A Discord-only process does not take Slack's messages (it could not send them), but does take
    what goes to every adapter's agents' channel."""
    bare = Bare()
    opened = await bare.write()
    bare.clock.advance(LEASE)
    assert resent(await bare.desk.run_due_work({"discord"}), opened) == []
    assert resent(await bare.desk.run_due_work({"slack"}), opened) == opened


async def test_a_delivery_nobody_ever_settles_is_given_up_in_the_end():
    bare = Bare()
    opened = await bare.write()
    tries = 0
    for _ in range(40):
        bare.clock.advance(LEASE)
        tries += len(resent(await bare.desk.run_due_work(), opened)) // len(opened)
    assert 5 <= tries < 40
    assert {bare.store.deliveries[m.delivery].state for m in opened} == {DeliveryState.FAILED}
    assert all("never settled" in (bare.store.deliveries[m.delivery].error or "") for m in opened)


async def test_what_goes_to_every_adapter_is_kept_once_per_platform_served():
    """A digest is for every adapter's agents' channel: each platform gets its own copy to settle, so
    Slack taking it says nothing about Discord."""
    bare = Bare()
    bare.desk.serve({"slack", "discord"})
    await bare.desk.settle(await bare.write())
    bare.clock.advance(timedelta(days=1))
    said = await bare.desk.run_due_work()
    digests = [m for m in said if isinstance(m, StaffMessage) and m.text.startswith("Daily digest")]
    assert digests and all(m.delivery is not None for m in digests)
    platforms = Counter(m.audience.platform for m in digests)
    assert set(platforms) == {"slack", "discord"} and platforms["slack"] == platforms["discord"]
    slack_only = [m for m in digests if m.audience.platform == "slack"]
    await bare.desk.settle(slack_only)
    bare.clock.advance(LEASE)
    again = resent(await bare.desk.run_due_work(), digests)
    assert again and {m.audience.platform for m in again} == {"discord"}


async def test_a_delivery_that_cannot_be_read_is_given_up_and_the_sweep_goes_on():
    bare = Bare()
    opened = await bare.write()
    broken = opened[0].delivery
    assert broken is not None
    bare.store.deliveries[broken].payload = {"_": "AMessageFromAnotherVersion", "text": "?"}
    bare.clock.advance(LEASE)
    again = resent(await bare.desk.run_due_work(), opened)
    assert [m.delivery for m in again] == [m.delivery for m in opened[1:]]
    assert bare.store.deliveries[broken].state is DeliveryState.FAILED
    assert "unreadable" in (bare.store.deliveries[broken].error or "")


# --- failures -------------------------------------------------------------------------------------


async def test_a_failed_send_is_retried_with_backoff_then_marked_and_the_agents_told():
    bare = Bare()
    greeting = next(m for m in await bare.write() if isinstance(m, CustomerMessage))
    waits = [timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30)]
    for wait in waits:
        assert await bare.desk.settle([], [Undelivered(greeting, "ratelimited")]) == []
        bare.clock.advance(wait - timedelta(seconds=1))
        assert greeting not in await bare.desk.run_due_work(), "not before its backoff"
        bare.clock.advance(timedelta(seconds=1))
        [greeting] = [m for m in await bare.desk.run_due_work() if isinstance(m, CustomerMessage)]
    notices = await bare.desk.settle([], [Undelivered(greeting, "ratelimited")])
    [notice] = notices
    assert isinstance(notice, StaffMessage) and notice.audience.ticket_number == 1
    assert "Couldn't deliver our message" in notice.text and "after 4 tries" in notice.text
    assert notice.delivery is not None, "the notice is kept too"
    [event] = [e for e in bare.store.timeline.values() if e.action == "undeliverable"]
    assert event.detail["reason"] == "ratelimited" and event.ticket_number == 1
    delivery = bare.store.deliveries[greeting.delivery]
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, 4)
    bare.clock.advance(timedelta(days=1))
    assert greeting not in await bare.desk.run_due_work()


async def test_a_final_failure_is_marked_at_once():
    bare = Bare()
    greeting = next(m for m in await bare.write() if isinstance(m, CustomerMessage))
    [notice] = await bare.desk.settle([], [Undelivered(greeting, "channel_not_found", final=True)])
    assert "channel_not_found" in notice.text and "after 1 try" in notice.text
    assert bare.store.deliveries[greeting.delivery].state is DeliveryState.FAILED


async def test_a_staff_message_that_cannot_be_delivered_tells_nobody_so_nothing_loops():
    bare = Bare()
    card = next(m for m in await bare.write() if isinstance(m, StaffMessage))
    assert await bare.desk.settle([], [Undelivered(card, "channel_not_found", final=True)]) == []
    assert [e.action for e in bare.store.timeline.values()].count("undeliverable") == 1


async def test_settling_twice_changes_nothing():
    bare = Bare()
    opened = await bare.write()
    await bare.desk.settle(opened)
    assert await bare.desk.settle([], [Undelivered(opened[0], "late report", final=True)]) == []
    assert {d.state for d in bare.store.deliveries.values()} == {DeliveryState.SENT}


# --- the codec --------------------------------------------------------------------------------------

DANA_PERSON = Person("slack", "Udana", "Dana <!channel>", "dana@example.com", "Europe/Berlin")
WHERE = Conversation("slack", "CSUP", "171.2", "T1")
EVERY_KIND: list[Outgoing] = [
    CustomerMessage(ToCustomer(DANA_PERSON, 1, WHERE), "Hi @everyone ☕ ‮rtl", SurveyPrompt(1, 5)),
    CustomerMessage(ToCustomer(DANA_PERSON), "no ticket"),
    StaffMessage(
        ToAgents(1, "slack", MessageRef("CAG", "171.3"), "T1"),
        ("Note: ", InternalText("the warehouse lost it"), " end"),
        StaffKind.CARD,
        TicketCard(1, "Dana", "Order", "high", "general", "open", True, "Ben"),
        Handover(1, BEN.person, WHERE),
        (Attachment("t.md", "# text", "text/markdown"), Attachment("c.png", b"\x89PNG\x00\xff", "image/png")),
    ),
    StaffMessage(ToAgent(BEN.person, "T1"), ("private",), StaffKind.INFO),
]


@pytest.mark.parametrize("message", EVERY_KIND, ids=lambda m: type(m).__name__)
def test_every_message_survives_the_outbox_whole(message: Outgoing):
    stored = json.loads(json.dumps(outbox.encode(message)))
    back = outbox.decode(stored)
    assert back == message and type(back) is type(message)
    if isinstance(message, StaffMessage):
        assert back.text == message.text and back.kind is message.kind
        assert [a.data for a in back.attachments] == [a.data for a in message.attachments]


# --- on the real storage ----------------------------------------------------------------------------


async def test_sweeps_on_the_database_resend_once(uow_factory: Callable[[], UnitOfWork]):
    clock = FakeClock(START)
    desks = [Desk(uow_factory, clock, load_policy()) for _ in range(2)]
    said: list[Outgoing] = []
    for number in range(30):
        where = Conversation("slack", f"D-U{number}")
        person = customer(f"Customer {number}", user_id=f"U{number}")
        said += await desks[0].receive(IncomingMessage(person, "Where is my order?", where, f"m{number}"))
    clock.advance(LEASE)
    first, second = await asyncio.gather(*(desk.run_due_work() for desk in desks))
    again = resent(first, said) + resent(second, said)
    assert sorted(m.delivery for m in again) == sorted(m.delivery for m in said), "each once, in one sweep"
    await desks[1].settle(again)
    clock.advance(timedelta(hours=1))
    assert resent(await desks[0].run_due_work(), said) == []
