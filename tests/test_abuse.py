"""One person cannot flood the desk (issue #8): a per-customer rate limit and `/ticket block`.

Past the policy's burst limit a customer's messages are still recorded, but the desk goes quiet: one
notice to them, one alert to the agents, no relay per message, and a colleague's /request is refused.
A blocked customer's messages are not taken; they hear so once. Through the public services, over the
fakes and over SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from fakes import START, Harness, agent, build_desk, colleague, customer

from bot.clock import FakeClock
from bot.commands import IncomingMessage
from bot.desk import Desk
from bot.domain import BLOCKED_FOR_GOOD, EntryKind
from bot.messages import Conversation, CustomerMessage, Outgoing, StaffMessage
from bot.policy import load_policy
from bot.ports import UnitOfWork

DANA, EVE = customer("Dana Scully"), customer("Eve Moss")
BEN = agent("Ben Okafor")
ANA = agent("Ana Lima", user_id="ana")
"""The default policy names `ana` as the support team's lead."""
RAJ = colleague("Raj Patel")
LIMIT = 20


def to_customer(out: list[Outgoing]) -> list[str]:
    return [m.text for m in out if isinstance(m, CustomerMessage)]


def to_staff(out: list[Outgoing]) -> list[str]:
    return [m.text for m in out if isinstance(m, StaffMessage)]


def customer_entries(h: Harness) -> list[str]:
    return [
        e.body for e in h.store.entries.values() if e.kind is EntryKind.CUSTOMER and isinstance(e.body, str)
    ]


async def flood(h: Harness, count: int, who=DANA) -> list[list[Outgoing]]:
    return [await h.write(who, f"message {i}") for i in range(count)]


# --- the rate limit ---------------------------------------------------------------------------------


async def test_below_the_limit_every_message_is_relayed():
    h = build_desk()
    said = await flood(h, LIMIT)
    assert all(to_staff(out) for out in said)
    assert len(customer_entries(h)) == LIMIT


async def test_past_the_limit_messages_are_recorded_but_quiet_with_one_notice_each_way():
    h = build_desk()
    said = await flood(h, LIMIT + 30)
    over = said[LIMIT:]
    assert len(customer_entries(h)) == LIMIT + 30, "nothing is lost"
    assert len(h.store.tickets) == 1
    first = over[0]
    assert len(to_customer(first)) == 1 and "no need to send more" in to_customer(first)[0]
    assert len(to_staff(first)) == 1 and "/ticket block" in to_staff(first)[0]
    assert all(out == [] for out in over[1:]), "one notice, not one per message"


async def test_the_limit_counts_per_window_and_resets():
    h = build_desk()
    await flood(h, LIMIT + 1)
    h.clock.advance(h.policy.abuse.burst_window)
    out = await h.write(DANA, "a new minute")
    assert to_staff(out), "a new window relays again"


async def test_one_customers_flood_does_not_quiet_another():
    h = build_desk()
    await flood(h, LIMIT + 5)
    out = await h.write(EVE, "My invoice is wrong")
    assert to_customer(out) and to_staff(out)


async def test_a_colleague_past_the_limit_is_refused_a_new_request_politely():
    h = build_desk()
    for i in range(LIMIT):
        await h.run(RAJ, f"/request laptop {i}")
    tickets = len(h.store.tickets)
    out = await h.run(RAJ, "/request one more")
    assert len(h.store.tickets) == tickets
    assert len(to_customer(out)) == 1 and "wait a minute" in to_customer(out)[0]


# --- blocks -----------------------------------------------------------------------------------------


async def test_an_agent_blocks_a_customer_for_the_default_day_and_they_hear_once():
    h = build_desk()
    await h.write(DANA, "My order A-1234 never arrived")
    out = await h.run(BEN, "/ticket block #1")
    assert "Blocked Dana Scully until" in to_staff(out)[0]
    assert h.store.customer("Dana Scully").blocked_until == h.clock.now() + timedelta(hours=24)
    first = await h.write(DANA, "hello??")
    again = await h.write(DANA, "HELLO")
    assert len(to_customer(first)) == 1 and "paused messages from you until" in to_customer(first)[0]
    assert to_staff(first) == [] and again == []
    assert customer_entries(h) == ["My order A-1234 never arrived"]


async def test_a_block_ends_by_itself():
    h = build_desk()
    await h.write(DANA, "My order A-1234 never arrived")
    await h.run(BEN, "/ticket block #1 2h")
    h.clock.advance(timedelta(hours=2))
    out = await h.write(DANA, "Still waiting")
    assert to_staff(out) and "Still waiting" in customer_entries(h)


async def test_an_agent_unblocks_and_a_second_unblock_is_refused():
    h = build_desk()
    await h.write(DANA, "My order A-1234 never arrived")
    await h.run(BEN, "/ticket block #1")
    out = await h.run(BEN, "/ticket unblock #1")
    assert "Unblocked Dana Scully" in to_staff(out)[0]
    assert to_staff(await h.write(DANA, "thanks"))
    assert "isn't blocked" in to_staff(await h.run(BEN, "/ticket unblock #1"))[0]


@pytest.mark.parametrize("how_long", ["forever", "30d"])
async def test_a_long_block_needs_a_lead(how_long: str):
    h = build_desk()
    await h.write(DANA, "My order A-1234 never arrived")
    refused = await h.run(BEN, f"/ticket block #1 {how_long}")
    assert "need a team lead" in to_staff(refused)[0]
    assert h.store.customer("Dana Scully").blocked_until is None
    await h.run(ANA, f"/ticket block #1 {how_long}")
    until = h.store.customer("Dana Scully").blocked_until
    assert until == (BLOCKED_FOR_GOOD if how_long == "forever" else h.clock.now() + timedelta(days=30))
    told = to_customer(await h.write(DANA, "hi"))
    assert ("until further notice" in told[0]) is (how_long == "forever")


async def test_a_block_covers_the_customer_on_every_platform_once_linked():
    h = build_desk()
    dana_discord = customer("dana", platform="discord", user_id="4711")
    await h.write(DANA, "My order A-1234 never arrived")
    await h.write(dana_discord, "Same here on Discord")
    await h.run(BEN, "/ticket link #1 #2")
    await h.run(BEN, "/ticket block #1")
    out = await h.write(dana_discord, "hello from discord")
    assert to_staff(out) == [] and len(to_customer(out)) == 1


async def test_a_blocked_customers_edits_are_not_taken_either():
    h = build_desk()
    await h.write(DANA, "My order A-1234 never arrived", message_id="first")
    await h.run(BEN, "/ticket block #1")
    out = await h.desk.message_edited("slack", "first", "NOW READ THIS, EVERYONE")
    assert out == [] and customer_entries(h) == ["My order A-1234 never arrived"]


async def test_a_block_follows_the_person_when_their_accounts_are_linked():
    h = build_desk()
    dana_discord = customer("dana", platform="discord", user_id="4711")
    await h.write(DANA, "My order A-1234 never arrived")
    await h.write(dana_discord, "Same here on Discord")
    await h.run(BEN, "/ticket block #2")
    await h.run(BEN, "/ticket link #1 #2")
    out = await h.write(DANA, "hello from slack")
    assert to_staff(out) == [] and len(to_customer(out)) == 1, "the kept profile carries the block"


async def test_blocks_are_in_the_audit_log():
    h = build_desk()
    await h.write(DANA, "My order A-1234 never arrived")
    await h.run(BEN, "/ticket block #1 3h")
    await h.run(BEN, "/ticket unblock #1")
    actions = [(r.action, r.actor) for r in h.store.audit_log.values()]
    assert actions == [("blocked", "Ben Okafor"), ("unblocked", "Ben Okafor")]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("/ticket block", "Whom should I block?"),
        ("/ticket block #1 soon", "is not a duration"),
        ("/ticket block #1 0m", "longer than nothing"),
        ("/ticket block #1 2h extra", "didn't expect"),
        ("/ticket block #99", "#99"),
        ("/ticket unblock", "Whom should I unblock?"),
    ],
)
async def test_bad_block_commands_get_a_polite_error_and_change_nothing(text: str, why: str):
    h = build_desk()
    await h.write(DANA, "My order A-1234 never arrived")
    before = h.store.snapshot()
    out = await h.run(BEN, text)
    assert len(out) == 1 and why in to_staff(out)[0]
    assert h.store.snapshot() == before


async def test_customers_cannot_block():
    h = build_desk()
    await h.write(DANA, "My order A-1234 never arrived")
    await h.write(EVE, "Me too")
    out = await h.run(EVE, "/ticket block #1")
    assert h.store.customer("Dana Scully").blocked_until is None
    assert len(to_customer(out)) == 1


# --- on the real storage ----------------------------------------------------------------------------


async def test_blocks_and_the_rate_limit_on_sql(uow_factory: Callable[[], UnitOfWork]):
    clock = FakeClock(START)
    desk = Desk(uow_factory, clock, load_policy())
    where = Conversation("slack", "D-Udana")

    async def write(number: int, text: str) -> list[Outgoing]:
        return await desk.receive(IncomingMessage(DANA, text, where, f"m{number}"))

    said = [await write(i, f"message {i}") for i in range(LIMIT + 3)]
    assert [bool(to_staff(out)) for out in said[LIMIT:]] == [True, False, False]
    await desk.command(BEN, "/ticket block #1 1h")
    out = await write(100, "blocked now")
    assert len(to_customer(out)) == 1 and to_staff(out) == []
    async with uow_factory() as uow:
        entries = await uow.entries.for_ticket(1)
        found = await uow.customers.by_identity("slack", "Udana")
    assert len([e for e in entries if e.kind is EntryKind.CUSTOMER]) == LIMIT + 3
    assert found is not None and found.blocked_until == clock.now() + timedelta(hours=1) and found.block_told
