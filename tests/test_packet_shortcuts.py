"""The handoff packet's shortcuts for long tickets change nothing it says: light entry lines build the same
packet as entries, and a step's lower bound of size (so one that cannot fit is never made) never drops or
keeps a line that making every candidate would not."""

from __future__ import annotations

import dataclasses
import gc
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import packet as packets
from bot.domain import Customer, Entry, EntryKind, EntryLine, Priority, Ticket, TicketKind, TimelineEvent
from bot.messages import InternalText
from bot.policy import load_policy

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
POLICY = load_policy()

_PIECES = [
    "order A-1234",
    "invoice INV-9",
    "dana@example.com",
    "€40",
    "2026-03-01",
    "<!channel>",
    "<!here|here>",
    "<!subteam^S1|@support>",
    "<@&123>",
    "@everyone",
    "@here",
    "<",
    "@",
    "  ",
    "\n",
    "\t",
    "x" * 120,
    "the kettle still leaks",
    "refund",
    "thanks",
    "printer",
    "firmware update",
]
texts = st.lists(st.sampled_from(_PIECES), min_size=0, max_size=6).map(" ".join)
names = st.sampled_from(["Ana Lima", "Ben", "<!channel>", "@everyone", "Carl <x>", "D"])
kinds = st.sampled_from([EntryKind.CUSTOMER, EntryKind.REPLY, EntryKind.NOTE, EntryKind.BOT])


@st.composite
def entries(draw: st.DrawFn) -> list[Entry]:
    count = draw(st.integers(min_value=1, max_value=60))
    found = []
    moment = START
    for _ in range(count):
        kind = draw(kinds)
        text = draw(texts)
        moment += timedelta(minutes=draw(st.sampled_from([0, 0, 1, 7, 60 * 24 * 40])))
        body: str | InternalText = InternalText(text) if kind is EntryKind.NOTE else text
        found.append(Entry(1, kind, draw(names), body, moment, mood=draw(st.none() | st.floats(-1, 1))))
    return found


def _ticket() -> Ticket:
    return Ticket(
        TicketKind.EXTERNAL,
        "billing",
        Priority.NORMAL,
        "Kettle",
        1,
        "U1",
        "slack",
        "C1",
        START,
        START,
        number=1,
    )


def _profile() -> packets.ProfileView:
    customer = dataclasses.replace(Customer("Dana", TicketKind.EXTERNAL, START), id=1)
    return packets.profile_view(customer, [], [], [], [], exclude=1)


def _events() -> list[TimelineEvent]:
    return [
        TimelineEvent(1, "status", "Ana Lima", START + timedelta(minutes=1), {"old": "new", "new": "open"}),
        TimelineEvent(1, "claimed", "Ana Lima", START + timedelta(minutes=1), {"agent": "Ana Lima"}),
        TimelineEvent(
            1, "priority", "<!here>", START + timedelta(minutes=9), {"old": "normal", "new": "high"}
        ),
    ]


def _build(said: list[Entry] | list[EntryLine]) -> packets.HandoffPacket:
    finder = POLICY.facts.finder()
    return packets.build(_ticket(), "Ana Lima", _profile(), said, _events(), finder, POLICY.is_courtesy)


def _lines(said: list[Entry]) -> list[EntryLine]:
    return [
        EntryLine(e.kind, e.author_name, e.body, e.created_at, e.mood)
        for e in said
        if e.kind is not EntryKind.BOT
    ]


@settings(max_examples=300, deadline=None)
@given(entries(), st.integers(min_value=250, max_value=3000))
def test_lines_build_the_same_packet_as_entries(said: list[Entry], budget: int):
    from_entries, from_lines = _build(said), _build(_lines(said))
    assert from_lines == from_entries
    assert packets.render(from_lines, budget) == packets.render(from_entries, budget)


@settings(max_examples=500, deadline=None)
@given(
    st.builds(
        packets.Step,
        st.just(START),
        names,
        st.sampled_from(["reply", "note", "status", "priority"]),
        texts | texts.map(InternalText),
    )
)
def test_a_steps_lower_bound_is_never_more_than_what_it_makes(step: packets.Step):
    stamp = len("\n[] ") + packets._shortest_when()
    assert stamp + packets._step_least(step) <= packets._size(packets._step_parts(step))


@settings(max_examples=300, deadline=None)
@given(entries(), st.integers(min_value=250, max_value=3000))
def test_the_lower_bound_chooses_what_making_every_candidate_chooses(said: list[Entry], budget: int):
    built = _build(said)
    quick = packets.render(built, budget)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(packets, "_step_least", lambda step: 0)
        assert packets.render(built, budget) == quick


def test_the_collector_rests_while_a_packet_is_made_and_runs_again_after():
    assert gc.isenabled()
    with pytest.raises(RuntimeError), packets.collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("a packet that failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with packets.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "only the caller that paused it starts it again"
    finally:
        gc.enable()


_FOLDING = "aAzZ1_- \u00df\u1e9e\u0130\u0131\u017f\u212a\ufb01\u03a3\u03c3\u03c2\u00e9\u00c9"
"""Letters whose case folding is not one-to-one: sharp s, dotted and dotless i, long s, Kelvin, a ligature,
the sigmas."""


@settings(max_examples=1500, deadline=None)
@given(
    st.text(alphabet=st.characters(max_codepoint=127), max_size=60)
    | st.text(alphabet=st.sampled_from(_FOLDING), max_size=30)
)
def test_a_messages_telling_words_are_the_same_however_they_are_folded(text: str):
    """An ASCII text is lowercased before its words are found (quicker); any text gives each word
    found, case-folded, as before."""
    read = packets._reader(POLICY.facts.finder())
    _, words = read(text)
    expected = frozenset(w.casefold() for w in packets._WORD.findall(text)) - packets._COMMON
    assert len(words) == len(expected)
    assert frozenset(words) == expected
