"""The core's support for threaded platforms: staff threads, agents answering in customer threads,
edits and deletions, request forms, and the agent overview. Through the Desk's public methods."""

from __future__ import annotations

import pytest
from fakes import Harness, agent, build_desk, customer

from bot.commands import Request
from bot.domain import EntryKind, Priority, Status, TicketKind
from bot.messages import (
    Conversation,
    CustomerMessage,
    InternalText,
    MessageRef,
    StaffKind,
    StaffMessage,
    ToAgents,
)

DANA = customer("Dana Scully", user_id="UDANA")
ANA = agent("Ana Lima", user_id="UANA")
CARL = customer("Carl Sagan", user_id="UCARL")
SUPPORT = "CSUP"
AGENTS = "CAGENTS"


def thread(ts: str) -> Conversation:
    return Conversation("slack", SUPPORT, ts, "T1")


@pytest.fixture
def h() -> Harness:
    return build_desk()


async def opened_in_thread(h: Harness, ts: str = "100.1") -> None:
    await h.write(DANA, "My order A-1234 never arrived", thread(ts), message_id=f"{SUPPORT}:{ts}")


async def test_a_ticket_remembers_its_workspace_and_customer_messages_carry_it(h: Harness):
    out = await h.write(DANA, "Hello", thread("100.1"), message_id="m1")
    assert h.store.ticket(1).workspace_id == "T1"
    greeting = next(m for m in out if isinstance(m, CustomerMessage))
    assert greeting.audience.conversation == thread("100.1")
    card = next(m for m in out if isinstance(m, StaffMessage))
    assert card.audience == ToAgents(1, "slack", workspace_id="T1")


async def test_after_a_card_is_attached_staff_messages_go_to_its_thread(h: Harness):
    await opened_in_thread(h)
    await h.desk.attach_card(1, "slack", MessageRef(AGENTS, "200.1"))
    await h.desk.attach_card(1, "slack", MessageRef(AGENTS, "999.9"))
    out = await h.write(DANA, "Any news?", thread("100.1"), message_id="m2")
    relay = next(m for m in out if isinstance(m, StaffMessage))
    assert relay.audience.staff_thread == MessageRef(AGENTS, "200.1"), "the first card stays the thread"
    other = await h.write(CARL, "Another question", Conversation("console", "support"), message_id="m3")
    card = next(m for m in other if isinstance(m, StaffMessage))
    assert card.audience.staff_thread is None


async def test_an_agent_writing_in_the_staff_thread_adds_a_note(h: Harness):
    await opened_in_thread(h)
    await h.desk.attach_card(1, "slack", MessageRef(AGENTS, "200.1"))
    staff_thread = Conversation("slack", AGENTS, "200.1", "T1")
    out = await h.desk.note_from_staff_thread(ANA, staff_thread, "warehouse says lost", "CAGENTS:201.1")
    assert out == []
    notes = [e for e in h.store.entries_for(1) if e.kind is EntryKind.NOTE]
    assert [n.body for n in notes] == [InternalText("warehouse says lost")]
    again = await h.desk.note_from_staff_thread(ANA, staff_thread, "warehouse says lost", "CAGENTS:201.1")
    assert again == [] and len([e for e in h.store.entries_for(1) if e.kind is EntryKind.NOTE]) == 1


@pytest.mark.parametrize(
    ("who", "where"),
    [
        (DANA, Conversation("slack", AGENTS, "200.1")),
        (ANA, Conversation("slack", AGENTS, "404.4")),
        (ANA, Conversation("slack", AGENTS, None)),
    ],
    ids=["not-an-agent", "not-a-card", "top-level"],
)
async def test_only_agents_in_a_cards_thread_add_notes(h: Harness, who, where):
    await opened_in_thread(h)
    await h.desk.attach_card(1, "slack", MessageRef(AGENTS, "200.1"))
    before = h.store.snapshot()
    assert await h.desk.note_from_staff_thread(who, where, "hello", "x:1") == []
    assert h.store.snapshot()["entries"] == before["entries"]


async def test_an_agent_answering_in_the_customer_thread_is_a_public_reply(h: Harness):
    await opened_in_thread(h)
    out = await h.write(ANA, "Sorry Dana, checking now", thread("100.1"), message_id="CSUP:100.5")
    ticket = h.store.ticket(1)
    assert ticket.status is Status.OPEN and ticket.first_agent_reply_at == h.clock.now()
    assert ticket.assignee_id == h.store.agent("Ana Lima").id
    replies = [e for e in h.store.entries_for(1) if e.kind is EntryKind.REPLY]
    assert [r.body for r in replies] == ["Sorry Dana, checking now"]
    assert not [m for m in out if isinstance(m, CustomerMessage)], "it is already in the thread"
    assert len(h.store.tickets) == 1


@pytest.mark.parametrize(
    "where",
    [Conversation("slack", "D-UANA"), Conversation("slack", SUPPORT, "555.5"), thread("100.1")],
    ids=["dm", "own-top-level-message", "closed-ticket-thread"],
)
async def test_an_agent_writing_outside_an_open_tickets_thread_opens_nothing(h: Harness, where):
    await opened_in_thread(h)
    await h.run(ANA, "/ticket resolve #1")
    h.clock.advance(h.policy.lifecycle.close_resolved_after)
    await h.desk.run_due_work()
    before = h.store.snapshot()
    assert await h.write(ANA, "Team lunch at noon!", where, message_id="m9") == []
    assert h.store.snapshot() == before
    assert not [c for c in h.store.customers.values() if c.display_name == "Ana Lima"]


async def test_someone_else_writing_in_a_closed_tickets_thread_is_not_told_about_it(h: Harness):
    await opened_in_thread(h)
    await h.run(ANA, "/ticket resolve #1")
    h.clock.advance(h.policy.lifecycle.close_resolved_after)
    await h.desk.run_due_work()
    out = await h.write(CARL, "I have the same problem", thread("100.1"), message_id="m9")
    assert h.store.ticket(2).previous_number is None
    told = next(m for m in out if isinstance(m, CustomerMessage)).text
    assert "#1" not in told and "welcome back" not in told


async def test_a_request_does_not_swallow_the_customer_conversation(h: Harness):
    where = Conversation("console", "support")
    await h.write(DANA, "My refund has not arrived", where, message_id="m1")
    await h.run(DANA, "/request need a parking badge", where)
    out = await h.write(DANA, "Any news on the refund?", where, message_id="m2")
    relay = next(m for m in out if isinstance(m, StaffMessage))
    assert relay.audience.ticket_number == 1
    assert [e.body for e in h.store.entries_for(2) if e.kind is EntryKind.CUSTOMER] == [
        "need a parking badge"
    ]


async def test_an_edit_updates_the_record_and_keeps_the_original_on_the_timeline(h: Harness):
    await opened_in_thread(h)
    out = await h.desk.message_edited("slack", f"{SUPPORT}:100.1", "My order A-9999 never arrived")
    first = h.store.entries_for(1)[0]
    assert first.body == "My order A-9999 never arrived"
    event = h.store.events_for(1, "edited")[0]
    assert event.detail["original"] == "My order A-1234 never arrived"
    relay = next(m for m in out if isinstance(m, StaffMessage))
    assert relay.kind is StaffKind.RELAY and "A-9999" in relay.text and "edited" in relay.text
    assert await h.desk.message_edited("slack", f"{SUPPORT}:100.1", "My order A-9999 never arrived") == []
    assert len(h.store.events_for(1, "edited")) == 1


async def test_edits_of_unknown_or_non_customer_messages_change_nothing(h: Harness):
    await opened_in_thread(h)
    before = h.store.snapshot()
    assert await h.desk.message_edited("slack", "CSUP:555.5", "whatever") == []
    assert await h.desk.message_edited("slack", f"{SUPPORT}:100.1", "   ") == []
    assert h.store.snapshot() == before


async def test_a_deletion_is_noted_once_and_the_text_is_kept(h: Harness):
    await opened_in_thread(h)
    out = await h.desk.message_deleted("slack", f"{SUPPORT}:100.1")
    assert "deleted a message" in next(m for m in out if isinstance(m, StaffMessage)).text
    assert h.store.entries_for(1)[0].body == "My order A-1234 never arrived"
    assert await h.desk.message_deleted("slack", f"{SUPPORT}:100.1") == []
    assert len(h.store.events_for(1, "deleted")) == 1


async def test_a_request_form_sets_priority_and_category(h: Harness):
    where = Conversation("slack", "D-UCARL", None, "T1")
    request = Request("Need access to the billing dashboard", "Access and accounts", Priority.HIGH)
    out = await h.desk.execute(CARL, request, where)
    ticket = h.store.ticket(1)
    assert ticket.kind is TicketKind.INTERNAL and ticket.queue == "internal"
    assert ticket.priority is Priority.HIGH
    assert ticket.subject == "Access and accounts: Need access to the billing dashboard"
    greeting = next(m for m in out if isinstance(m, CustomerMessage))
    assert greeting.audience.conversation == where


async def test_the_overview_lists_mine_and_unclaimed_for_agents_only(h: Harness):
    await opened_in_thread(h, "100.1")
    await h.write(CARL, "@everyone my invoice is wrong", thread("300.1"), message_id="m2")
    await h.run(ANA, "/ticket claim #1")
    overview = await h.desk.overview(ANA)
    assert overview is not None
    assert [line.number for line in overview.mine] == [1]
    assert [line.number for line in overview.unclaimed] == [2]
    assert "@everyone" not in overview.unclaimed[0].subject
    assert overview.unclaimed[0].customer_name == "Carl Sagan"
    assert await h.desk.overview(DANA) is None


async def test_a_renamed_customer_is_greeted_by_the_new_name(h: Harness):
    await h.write(DANA, "Hello", Conversation("console", "support"), message_id="m1")
    await h.run(ANA, "/ticket resolve #1")
    h.clock.advance(h.policy.lifecycle.close_resolved_after)
    await h.desk.run_due_work()
    renamed = customer("Dana Mulder", user_id="UDANA")
    out = await h.write(renamed, "Me again", Conversation("console", "support"), message_id="m2")
    assert next(m for m in out if isinstance(m, CustomerMessage)).text.startswith("Hi Dana")
    assert h.store.customer("Dana Mulder").id == h.store.ticket(2).customer_id


async def test_commands_inside_a_staff_thread_know_their_ticket(h: Harness):
    await opened_in_thread(h)
    await h.desk.attach_card(1, "slack", MessageRef(AGENTS, "200.1"))
    out = await h.run(ANA, "/ticket claim", Conversation("slack", AGENTS, "200.1"))
    assert any(isinstance(m, CustomerMessage) and "Ana Lima is now looking after" in m.text for m in out)
    help_out = await h.run(ANA, "/ticket help", Conversation("slack", AGENTS, "200.1"))
    assert "may be left out" in help_out[0].text


async def test_has_message_tells_whether_a_platform_message_is_recorded(h: Harness):
    assert not await h.desk.has_message("slack", f"{SUPPORT}:100.1")
    await opened_in_thread(h)
    assert await h.desk.has_message("slack", f"{SUPPORT}:100.1")


async def test_a_new_owner_comes_with_a_handover_naming_the_customer_conversation(h: Harness):
    await opened_in_thread(h)
    ben = agent("Ben Okafor", user_id="UBEN")
    await h.desk.register_agents([ben.person])
    claimed = await h.run(ANA, "/ticket claim #1")
    update = next(m for m in claimed if isinstance(m, StaffMessage) and m.handover is not None)
    assert update.kind is StaffKind.UPDATE
    assert update.handover.agent == ANA.person
    assert update.handover.conversation == thread("100.1")
    moved = await h.run(ANA, "/ticket transfer #1 @UBEN knows the courier")
    handover = next(m.handover for m in moved if isinstance(m, StaffMessage) and m.handover)
    assert handover.agent.user_id == "UBEN"
    queued = await h.run(ben, "/ticket transfer #1 billing")
    assert not [m for m in queued if isinstance(m, StaffMessage) and m.handover], "a queue joins nothing"


async def test_a_relocated_ticket_is_answered_and_found_in_its_new_place(h: Harness):
    await h.write(DANA, "Hello", Conversation("discord", "D-1"), message_id="m1")
    new_place = Conversation("discord", "T-9", "T-9", "G1")
    await h.desk.relocate(1, new_place)
    out = await h.write(DANA, "Still there?", new_place, message_id="m2")
    assert next(m for m in out if isinstance(m, StaffMessage)).audience.ticket_number == 1
    claimed = await h.run(ANA, "/ticket claim #1")
    told = next(m for m in claimed if isinstance(m, CustomerMessage))
    assert told.audience.conversation == new_place
    assert h.store.events_for(1, "moved")[0].detail == {"old": "D-1"}


async def test_a_long_queue_says_it_shows_only_the_first_ones(h: Harness):
    for n in range(27):
        await h.write(customer(f"Cust{n} X", user_id=f"U{n}"), f"problem {n}", message_id=f"q{n}")
    listing = (await h.run(ANA, "/ticket queue"))[0].text
    assert listing.startswith("Unclaimed tickets (the first 25):")
    assert listing.count("\n") == 25


async def test_words_in_the_conversation_a_ticket_moved_away_from_still_reach_it(h: Harness):
    old_place = Conversation("discord", "D-1")
    await h.write(DANA, "Hello", old_place, message_id="m1")
    await h.desk.relocate(1, Conversation("discord", "T-9", "T-9", "G1"))
    out = await h.write(DANA, "Did you get my message?", old_place, message_id="m2")
    assert len(h.store.tickets) == 1
    assert next(m for m in out if isinstance(m, StaffMessage)).audience.ticket_number == 1
