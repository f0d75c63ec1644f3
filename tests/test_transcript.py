"""`/ticket transcript` (issue #5): the whole ticket, as Markdown and JSON files, for the agent who asked.

The handoff packet condenses and points here for everything; so the transcript leaves nothing out:
every message (internal notes marked as such) and every timeline event. It is staff-only: only the
requesting agent receives it, and customers cannot ask for one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest
from fakes import START, Delivering, Harness, agent, build_desk, customer
from test_handoff import INCENTIVE, NOTE_1, NOTE_2, NOTE_3, PROFILE_NOTE, tell_the_story

from bot.clock import FakeClock
from bot.commands import IncomingMessage
from bot.desk import Desk
from bot.domain import Entry
from bot.messages import (
    Attachment,
    Conversation,
    CustomerMessage,
    InternalText,
    Outgoing,
    StaffKind,
    StaffMessage,
    ToAgent,
    ToCustomer,
)
from bot.policy import load_policy
from storage.uow import SqlUnitOfWork

DANA = customer("Dana Scully")
ANA = agent("Ana Lima")
BEN = agent("Ben Okafor")


def body(entry: Entry) -> str:
    return entry.body.hidden if isinstance(entry.body, InternalText) else entry.body


def the_transcript(out: Sequence[Outgoing], who_asked: ToAgent) -> tuple[StaffMessage, str, dict]:
    """The one message the desk said: to the agent who asked, with ticket-N.md and ticket-N.json."""
    assert len(out) == 1, out
    [message] = out
    assert isinstance(message, StaffMessage)
    assert message.audience == who_asked
    assert message.kind is StaffKind.INFO
    markdown, data = message.attachments
    assert isinstance(markdown, Attachment) and isinstance(data, Attachment)
    assert (markdown.filename, markdown.media_type) == ("ticket-1.md", "text/markdown")
    assert (data.filename, data.media_type) == ("ticket-1.json", "application/json")
    return message, markdown.content, json.loads(data.content)


@pytest.fixture
async def story_desk() -> Harness:
    """The handoff story of test_handoff (facts, notes, a claim, two transfers, a show, a claim)."""
    story = await tell_the_story("slack")
    return story.h


# --- who gets it ----------------------------------------------------------------------------------


async def test_the_transcript_goes_only_to_the_agent_who_asked(story_desk: Harness):
    h = story_desk
    entries, events = len(h.store.entries_for(1)), len(h.store.events_for(1)) + 1

    out = await h.run(ANA, "/ticket transcript #1")

    message, _, _ = the_transcript(out, ToAgent(ANA.person))
    assert message.text == (
        f"Transcript of #1: {entries} messages and {events} events, internal notes included "
        "(staff only). Markdown and JSON attached."
    )
    assert not any(isinstance(m, CustomerMessage) for m in out)


async def test_asking_for_a_transcript_is_on_the_timeline(story_desk: Harness):
    h = story_desk
    h.clock.advance(timedelta(minutes=7))
    await h.run(BEN, "/ticket transcript #1")

    asked = h.store.events_for(1, "transcript")
    assert [(e.actor_name, e.at) for e in asked] == [("Ben Okafor", h.clock.now())]


async def test_inside_the_tickets_thread_the_number_may_be_left_out():
    h = build_desk()
    thread = Conversation("slack", "C-help", "T-1")
    await h.write(DANA, "The app crashes when I open settings", thread)

    out = await h.run(ANA, "/ticket transcript", thread)

    _, markdown, data = the_transcript(out, ToAgent(ANA.person))
    assert data["ticket"]["number"] == 1
    assert "> The app crashes when I open settings" in markdown


async def test_a_customer_cannot_ask_for_a_transcript(story_desk: Harness):
    h = story_desk
    before = h.store.snapshot()

    out = await h.run(DANA, "/ticket transcript #1")

    [answer] = out
    assert isinstance(answer, CustomerMessage)
    assert answer.audience == ToCustomer(DANA.person)
    assert answer.text.startswith("Sorry Dana, I didn't catch that.")
    assert NOTE_1 not in answer.text
    assert h.store.snapshot() == before


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("/ticket transcript #99", "I can't find ticket #99. /ticket queue lists the unclaimed ones"),
        ("/ticket transcript", "Which ticket? Add its number with a #, e.g. /ticket transcript #12"),
        ("/ticket transcript #1 please", "I didn't expect 'please' there."),
    ],
)
async def test_a_transcript_of_no_or_an_unknown_ticket_is_refused_politely(
    story_desk: Harness, command: str, answer: str
):
    h = story_desk
    before = h.store.snapshot()

    out = await h.run(ANA, command)

    [message] = out
    assert isinstance(message, StaffMessage)
    assert message.audience == ToAgent(ANA.person)
    assert message.text.startswith(answer)
    assert message.attachments == ()
    assert h.store.snapshot() == before


# --- what is in it --------------------------------------------------------------------------------


async def test_the_json_transcript_has_every_entry_with_internal_notes_marked(story_desk: Harness):
    h = story_desk
    stored = h.store.entries_for(1)

    _, _, data = the_transcript(await h.run(ANA, "/ticket transcript #1"), ToAgent(ANA.person))

    assert data["staff_only"] is True
    assert data["ticket"]["number"] == 1 and data["ticket"]["status"] == "open"
    assert data["ticket"]["assignee"] == "Carl Berg"
    assert data["customer"]["display_name"] == "Dana Scully"
    got = [(e["kind"], e["author"], e["text"], e["internal_note"]) for e in data["entries"]]
    assert got == [(str(e.kind), e.author_name, body(e), e.kind == "note") for e in stored]
    notes = [e for e in data["entries"] if e["internal_note"]]
    assert [e["text"] for e in notes] == [NOTE_1, NOTE_2, NOTE_3]
    assert all(e["visibility"].startswith("internal note") for e in notes)
    assert all(e["visibility"] == "public" for e in data["entries"] if not e["internal_note"])
    assert [e["action"] for e in data["timeline"]] == [e.action for e in h.store.events_for(1)]
    transferred = next(e for e in data["timeline"] if e["action"] == "transferred")
    assert transferred["detail"]["to_agent"] == "Ben Okafor"
    assert transferred["at"] == (START + timedelta(minutes=22)).isoformat()


async def test_the_markdown_transcript_has_every_message(story_desk: Harness):
    h = story_desk
    stored = h.store.entries_for(1)

    _, markdown, _ = the_transcript(await h.run(ANA, "/ticket transcript #1"), ToAgent(ANA.person))

    assert markdown.startswith("# Ticket #1: Hi, my kettle stopped heating after two days.")
    assert "Staff only: this transcript includes internal notes." in markdown
    assert f"## Conversation ({len(stored)} messages)" in markdown
    for entry in stored:
        assert f"> {body(entry)}\n" in markdown, body(entry)
    for note in (NOTE_1, NOTE_2, NOTE_3):
        header = markdown.split(f"> {note}\n")[0].rstrip().splitlines()[-1]
        assert "(INTERNAL NOTE)" in header, header
    assert "transferred · Ana Lima · from_agent: Ana Lima" in markdown


async def test_multi_line_and_markdown_looking_text_stays_inside_its_quote():
    """A customer's text cannot break the transcript's layout: every line stays quoted, and names are
    escaped so they cannot turn into emphasis or headings."""
    h = build_desk()
    odd = customer("dana_*the* #1 fan", user_id="Uodd")
    await h.write(odd, "First line\n\n# not a heading\n**not bold either**")

    _, markdown, data = the_transcript(await h.run(ANA, "/ticket transcript #1"), ToAgent(ANA.person))

    assert "> First line\n>\n> # not a heading\n> **not bold either**\n" in markdown
    assert "**dana\\_\\*the\\* \\#1 fan** (customer)" in markdown
    assert data["entries"][0]["text"] == "First line\n\n# not a heading\n**not bold either**"
    assert data["entries"][0]["author"] == "dana_*the* #1 fan"


async def test_a_resolved_ticket_still_has_its_transcript():
    h = build_desk()
    await h.write(DANA, "Where is my refund for order A-1?")
    await h.run(ANA, "/ticket resolve #1 refunded by bank transfer")

    _, markdown, data = the_transcript(await h.run(ANA, "/ticket transcript #1"), ToAgent(ANA.person))

    assert data["ticket"]["status"] == "resolved"
    assert "> Resolved: refunded by bank transfer" in markdown
    assert data["entries"][-3]["internal_note"] is True  # then the resolution message and the survey


async def test_the_transcript_holds_the_profile_notes_and_incentives(story_desk: Harness):
    """The packet condenses and says "Everything: /ticket transcript"; what it may leave out (the
    customer's profile notes and incentives) must be there."""
    h = story_desk

    _, markdown, data = the_transcript(await h.run(ANA, "/ticket transcript #1"), ToAgent(ANA.person))

    assert PROFILE_NOTE in markdown
    assert PROFILE_NOTE in json.dumps(data, ensure_ascii=False)
    assert INCENTIVE in json.dumps(data, ensure_ascii=False)


# --- on the SQL unit of work ----------------------------------------------------------------------


async def test_the_transcript_from_the_database_marks_notes_internal(
    uow_factory: Callable[[], SqlUnitOfWork],
):
    """Notes come back from SQLite and PostgreSQL as internal text and are marked so in the files."""
    clock = FakeClock(START)
    desk = Delivering(Desk(uow_factory, clock, load_policy()))
    where = Conversation("slack", "D-Udana")
    await desk.receive(IncomingMessage(DANA, "My invoice INV-42 is wrong", where, "m-1"))
    await desk.command(ANA, "/ticket claim #1")
    await desk.command(ANA, "/ticket note #1 billing system double-charged")
    clock.advance(timedelta(minutes=5))
    await desk.command(ANA, "/ticket reply #1 Sorry Dana, fixing it now.")

    out = await desk.command(ANA, "/ticket transcript #1")

    _, markdown, data = the_transcript(out, ToAgent(ANA.person))
    got = [(e["kind"], e["text"], e["internal_note"]) for e in data["entries"]]
    assert ("customer", "My invoice INV-42 is wrong", False) in got
    assert ("note", "billing system double-charged", True) in got
    assert ("reply", "Sorry Dana, fixing it now.", False) in got
    assert "**Ana Lima** (INTERNAL NOTE)" in markdown
    assert [e["action"] for e in data["timeline"]] == ["created", "claimed", "status", "transcript"]
