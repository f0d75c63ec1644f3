"""Handoff packets (issue #5): whoever receives a ticket gets the whole story, and the customer never
has to repeat it.

The packet is built from our records and rendered within a budget (the policy's `handoff.packet_chars`,
capped by the platform: Discord 2000, Slack 3000). These tests drive one conversation, whose facts are
spread over several messages, through a claim, a transfer to an agent, a transfer to a queue and a
`/ticket show`, on Slack and on Discord, and check every packet and every message to the customer.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from fakes import START, Harness, agent, build_desk, customer

from bot import packet as packets
from bot.commands import Actor
from bot.domain import Entry, EntryKind
from bot.messages import CustomerMessage, InternalText, Outgoing, StaffMessage, ToAgent, ToAgents
from bot.packet import PromiseView
from bot.policy import Facts, Handoff, Policy, load_policy

FOOTER = "Everything: /ticket transcript #1"

MESSAGES = (
    "Hi, my kettle stopped heating after two days. Order number A-77812.",
    "You can email me at dana.scully@example.com if chat is slow.",
    "I paid €89.99 on 2026-02-14 and the receipt says the same.",
    "It's the Acme Kettle Pro, the brushed steel one.",
)
FACTS = (
    "order A-77812",
    "email dana.scully@example.com",
    "amount €89.99",
    "date 2026-02-14",
    "product Acme Kettle Pro",
)
NOTE_1 = "Warehouse confirms thermostat batch 7 is faulty"
NOTE_2 = "Replacement unit reserved, waiting on a courier slot"
NOTE_3 = "Refund is simpler than a replacement here"
PROFILE_NOTE = "Hard of hearing: prefers written updates"
INCENTIVE = "10% voucher KETTLE10"
TO_BEN_REASON = "Ben handles thermostat recalls"
TO_BILLING_REASON = "refund needs finance approval"
STAFF_ONLY = (NOTE_1, NOTE_2, NOTE_3, PROFILE_NOTE, INCENTIVE, "KETTLE10", TO_BEN_REASON, TO_BILLING_REASON)


def scenario_policy(packet_chars: int = 1800) -> Policy:
    """The packaged policy with a product list (so product names are facts) and a packet budget."""
    return load_policy().model_copy(
        update={"facts": Facts(products=["Acme Kettle Pro"]), "handoff": Handoff(packet_chars=packet_chars)}
    )


@dataclass
class People:
    dana: Actor
    ana: Actor
    ben: Actor
    carl: Actor


def people(platform: str) -> People:
    """A customer and three agents on one platform (Discord ids are numbers, Slack ids U...)."""
    if platform == "discord":
        return People(
            customer("Dana Scully", "discord", "4711"),
            agent("Ana Lima", "discord", "1001"),
            agent("Ben Okafor", "discord", "1002"),
            agent("Carl Berg", "discord", "1003"),
        )
    return People(customer("Dana Scully"), agent("Ana Lima"), agent("Ben Okafor"), agent("Carl Berg"))


@dataclass
class Story:
    h: Harness
    who: People
    everything: list[Outgoing] = field(default_factory=list)
    packets: dict[str, StaffMessage] = field(default_factory=dict)
    audiences: dict[str, ToAgent | ToAgents] = field(default_factory=dict)
    notes_by_then: dict[str, tuple[str, ...]] = field(default_factory=dict)


def packet_in(out: Sequence[Outgoing]) -> StaffMessage:
    """The one handoff packet among what the desk said (it ends by pointing at the transcript)."""
    found = [m for m in out if isinstance(m, StaffMessage) and FOOTER in m.text]
    assert len(found) == 1, [m.text for m in out]
    return found[0]


async def tell_the_story(platform: str, packet_chars: int = 1800) -> Story:
    """Facts over four messages; notes, a profile note and an incentive; a claim; a transfer to an agent;
    a transfer to a queue; a `/ticket show` and a claim from the queue. Every packet is kept."""
    who = people(platform)
    h = build_desk(policy=scenario_policy(packet_chars))
    story = Story(h, who)
    await h.desk.register_agents([who.ben.person, who.carl.person])
    notes: list[str] = []

    async def step(minutes: int, actor: Actor, text: str, packet: str | None = None) -> None:
        h.clock.advance(timedelta(minutes=minutes))
        out = await (h.write(actor, text) if not actor.is_agent else h.run(actor, text))
        story.everything += out
        if packet:
            story.packets[packet] = packet_in(out)
            story.audiences[packet] = packet_in(out).audience
            story.notes_by_then[packet] = tuple(notes)

    for text in MESSAGES:
        await step(2, who.dana, text)
    await step(2, who.ana, f"/ticket note #1 {NOTE_1}")
    notes.append(NOTE_1)
    await step(1, who.ana, f"/ticket profile #1 note {PROFILE_NOTE}")
    await step(1, who.ana, f"/ticket incentive #1 {INCENTIVE}")
    await step(1, who.ana, "/ticket claim #1", packet="claim")
    await step(2, who.ana, "/ticket reply #1 Sorry about this, Dana. I'm checking with our warehouse now.")
    await step(2, who.dana, "any update?")
    await step(1, who.dana, "thanks")
    await step(2, who.ana, f"/ticket note #1 {NOTE_2}")
    notes.append(NOTE_2)
    await step(2, who.ana, f"/ticket transfer #1 <@{who.ben.person.user_id}> {TO_BEN_REASON}", "to agent")
    await step(3, who.ben, f"/ticket note #1 {NOTE_3}")
    notes.append(NOTE_3)
    await step(2, who.ben, f"/ticket transfer #1 billing {TO_BILLING_REASON}", packet="to queue")
    await step(2, who.carl, "/ticket show #1", packet="show")
    await step(1, who.carl, "/ticket claim #1", packet="claim from queue")
    return story


def customer_texts(story: Story) -> list[str]:
    return [m.text for m in story.everything if isinstance(m, CustomerMessage)]


# --- the scenario on both platforms ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "packet_chars", "limit"),
    [
        ("slack", 1800, 1800),
        ("discord", 1800, 1800),
        ("slack", 6000, 3000),
        ("discord", 6000, 2000),
    ],
)
async def test_every_packet_holds_every_fact_and_every_note_within_the_limit(
    platform: str, packet_chars: int, limit: int
):
    """Claim, transfer to an agent, transfer to a queue, show: each packet has all the facts from four
    messages, every internal note written so far, the profile note and the incentive, and fits the
    smaller of the policy's budget and the platform's message limit."""
    story = await tell_the_story(platform, packet_chars)

    assert list(story.packets) == ["claim", "to agent", "to queue", "show", "claim from queue"]
    for name, message in story.packets.items():
        text = message.text
        assert len(text) <= limit, (name, len(text))
        for fact in FACTS:
            assert fact in text, (name, fact)
        for note in (*story.notes_by_then[name], PROFILE_NOTE):
            assert note in text, (name, note)
        assert INCENTIVE in text, name
        assert "Who: Dana Scully" in text
        assert text.rstrip().endswith(FOOTER)
        internal = [p.hidden for p in message.parts if isinstance(p, InternalText)]
        for note in (*story.notes_by_then[name], PROFILE_NOTE):
            assert any(note in part for part in internal), f"{note!r} travels as InternalText"


@pytest.mark.parametrize("platform", ["slack", "discord"])
async def test_a_600_character_packet_keeps_the_facts_and_says_what_it_left_out(platform: str):
    """The smallest budget the policy allows still shows what the ticket is about and every fact, and
    the footer counts what was condensed away and points at the transcript."""
    story = await tell_the_story(platform, packet_chars=600)

    for name, message in story.packets.items():
        text = message.text
        assert len(text) <= 600, (name, len(text))
        for fact in FACTS:
            assert fact in text, (name, fact)
        assert f"#1 · {MESSAGES[0]}\n" in text, "what it is about: the subject, in the customer's words"
        footer = re.search(r"\((\d+) older or less telling items left out of (\d+)\.\) " + FOOTER, text)
        assert footer, (name, text)
        left_out, total = map(int, footer.groups())
        assert 0 < left_out <= total


@pytest.mark.parametrize("platform", ["slack", "discord"])
async def test_a_600_character_packet_still_shows_the_profile_note(platform: str):
    """A profile note is shown on every future packet: it outranks everything but promises and the first
    message, so the smallest packet keeps it before any lower-scored line."""
    story = await tell_the_story(platform, packet_chars=600)

    for name, message in story.packets.items():
        assert PROFILE_NOTE in message.text, name


@pytest.mark.parametrize("platform", ["slack", "discord"])
async def test_packets_go_privately_to_the_new_owner_and_to_the_staff_channel_on_a_queue_transfer(
    platform: str,
):
    story = await tell_the_story(platform)
    who = story.who

    assert story.audiences["claim"] == ToAgent(who.ana.person)
    assert story.audiences["to agent"] == ToAgent(who.ben.person)
    assert story.audiences["to queue"] == ToAgents(1, platform)
    assert story.audiences["show"] == ToAgent(who.carl.person)
    assert story.audiences["claim from queue"] == ToAgent(who.carl.person)
    to_agent = story.packets["to agent"].text
    assert to_agent.startswith(f"Ana Lima handed #1 over to you. Reason: {TO_BEN_REASON}\n")
    to_queue = story.packets["to queue"].text
    assert to_queue.startswith(f"#1 moved to billing by Ben Okafor, unclaimed. Reason: {TO_BILLING_REASON}")
    assert "billing · unclaimed" in to_queue


@pytest.mark.parametrize("platform", ["slack", "discord"])
async def test_no_customer_message_ever_holds_a_note_a_profile_note_or_an_incentive(platform: str):
    """Over the whole story, nothing staff-only reaches the customer: not the notes, the profile note,
    the incentive, nor the transfer reasons."""
    story = await tell_the_story(platform)

    texts = customer_texts(story)
    assert len(texts) == 6, "the greeting, two claims, the reply and both transfers"
    for text in texts:
        for secret in STAFF_ONLY:
            assert secret.casefold() not in text.casefold(), (secret, text)


@pytest.mark.parametrize("platform", ["slack", "discord"])
async def test_the_customer_learns_by_name_who_looks_after_them_and_need_not_repeat_anything(
    platform: str,
):
    story = await tell_the_story(platform)

    texts = customer_texts(story)
    assert "Hi Dana, Ana Lima is now looking after your request #1 and will be in touch here." in texts
    assert (
        "Hi Dana, Ben Okafor is now looking after your request #1. They have the full conversation, "
        "so you won't need to repeat anything."
    ) in texts
    assert (
        "Hi Dana, I've passed your request #1 to our billing team. They have the full conversation, "
        "so you won't need to repeat anything."
    ) in texts
    assert "Hi Dana, Carl Berg is now looking after your request #1 and will be in touch here." in texts


# --- the handoff timeline -------------------------------------------------------------------------


async def test_each_handoff_is_recorded_with_from_to_reason_and_time_and_the_receiver_claims():
    """Transfer to an agent: "transferred" then the receiver's "claimed" (handed_by); to a queue:
    from whom and from which queue; the claim from the queue is the receiver's own."""
    story = await tell_the_story("slack")
    events = [e for e in story.h.store.events_for(1) if e.action in ("transferred", "claimed")]

    summary = [(e.action, e.actor_name, e.at - START, e.detail) for e in events]
    assert summary == [
        ("claimed", "Ana Lima", timedelta(minutes=13), {"agent": "Ana Lima"}),
        (
            "transferred",
            "Ana Lima",
            timedelta(minutes=22),
            {"from_agent": "Ana Lima", "to_agent": "Ben Okafor", "reason": TO_BEN_REASON},
        ),
        ("claimed", "Ben Okafor", timedelta(minutes=22), {"agent": "Ben Okafor", "handed_by": "Ana Lima"}),
        (
            "transferred",
            "Ben Okafor",
            timedelta(minutes=27),
            {
                "from_agent": "Ben Okafor",
                "from_queue": "general",
                "to_queue": "billing",
                "reason": TO_BILLING_REASON,
            },
        ),
        ("claimed", "Carl Berg", timedelta(minutes=30), {"agent": "Carl Berg"}),
    ]


async def test_the_packet_lists_the_handoffs_in_order_with_from_to_reason_and_time():
    story = await tell_the_story("slack")

    text = story.packets["claim from queue"].text
    handoffs = text.split("\nHandoffs:\n", 1)[1].split("\n" + FOOTER)[0].splitlines()
    assert handoffs == [
        "[02 Mar 09:13] claimed by Ana Lima",
        f"[02 Mar 09:22] Ana Lima → Ben Okafor, by Ana Lima: {TO_BEN_REASON}",
        f"[02 Mar 09:27] Ben Okafor → queue billing, by Ben Okafor: {TO_BILLING_REASON}",
        "[02 Mar 09:30] claimed by Carl Berg",
    ]
    assert "with Carl Berg" in text


async def test_the_packet_shows_what_was_tried_in_order():
    """Replies, notes, status and priority changes, oldest first, each with who and when."""
    story = await tell_the_story("slack")
    h, ben = story.h, story.who.ben
    await h.run(story.who.carl, "/ticket priority #1 high")

    text = packet_in(await h.run(ben, "/ticket show #1")).text
    tried = text.split("\nTried and said so far:\n", 1)[1].split("\nHandoffs:")[0].splitlines()
    assert tried == [
        f"[02 Mar 09:10] Ana Lima (note): {NOTE_1}",
        f"[02 Mar 09:12] Ana Lima: gave {INCENTIVE}",
        "[02 Mar 09:13] Ana Lima: new → open",
        "[02 Mar 09:15] Ana Lima replied: Sorry about this, Dana. I'm checking with our warehouse now.",
        f"[02 Mar 09:20] Ana Lima (note): {NOTE_2}",
        f"[02 Mar 09:25] Ben Okafor (note): {NOTE_3}",
        "[02 Mar 09:30] Carl Berg: priority normal → high",
    ]


async def test_courtesy_and_empty_follow_ups_are_not_quoted_as_the_problem():
    """Courtesy ("thanks") and empty follow-ups ("any update?") add nothing: they are not quoted, even
    with room to spare; a later message with a new fact or new words is."""
    story = await tell_the_story("slack")

    text = story.packets["show"].text
    words = text.split("\nIn their words:\n", 1)[1].split("\nTried and said so far:")[0].splitlines()
    assert [line.split("] ", 1)[1] for line in words] == list(MESSAGES)
    assert "any update?" not in text and "] thanks" not in text


# --- budgets and platform limits ------------------------------------------------------------------


@pytest.mark.parametrize(("platform", "limit"), [("slack", 3000), ("discord", 2000)])
async def test_a_generous_policy_budget_is_capped_by_the_platforms_message_limit(platform: str, limit: int):
    """With packet_chars = 6000 and a long ticket, the packet is as long as the platform allows, no more."""
    who = people(platform)
    h = build_desk(policy=scenario_policy(6000))
    for n in range(40):
        h.clock.advance(timedelta(minutes=1))
        await h.write(
            who.dana, f"Detail {n}: invoice INV-{5000 + n} " + "lorem ipsum dolor sit amet " * 8 + f"w{n}x"
        )

    text = packet_in(await h.run(who.ana, "/ticket claim #1")).text

    assert limit - 400 < len(text) <= limit
    assert "left out of" in text


async def test_the_packet_budget_is_the_smaller_of_policy_and_platform():
    assert packets.budget_for("slack", 1800) == 1800
    assert packets.budget_for("slack", 6000) == 3000
    assert packets.budget_for("discord", 6000) == 2000
    assert packets.budget_for("console", 6000) == 6000
    assert packets.budget_for(None, 600) == 600


async def test_a_packet_full_of_mass_mentions_still_fits_the_discord_limit():
    """Mentions are defused (made one character longer) before sending; the budget must count that."""
    who = people("discord")
    h = build_desk(policy=scenario_policy(6000))
    await h.write(who.dana, "My order A-77812 never arrived")
    await h.desk.register_agents([who.ben.person])
    await h.run(who.ana, "/ticket claim #1")

    reason = "@here " * 500
    out = await h.run(who.ana, f"/ticket transfer #1 <@{who.ben.person.user_id}> {reason}")

    packet = next(m for m in out if isinstance(m, StaffMessage) and m.audience == ToAgent(who.ben.person))
    assert len(packet.text) <= 2000


async def test_a_long_transfer_reason_does_not_push_the_facts_out_of_the_packet():
    who = people("slack")
    h = build_desk(policy=scenario_policy())
    for text in MESSAGES:
        await h.write(who.dana, text)
    await h.desk.register_agents([who.ben.person])
    await h.run(who.ana, "/ticket claim #1")
    reason = "Customer history, pasted from the old CRM: " + "called about the kettle again; " * 50

    out = await h.run(who.ana, f"/ticket transfer #1 <@Uben> {reason}")

    packet = next(m for m in out if isinstance(m, StaffMessage) and m.audience == ToAgent(who.ben.person))
    assert len(packet.text) <= 1800
    for fact in FACTS:
        assert fact in packet.text, fact


# --- condensing a very long ticket ----------------------------------------------------------------

FILLERS = ("thanks", "any update?", "Thanks!", "hello?", "ok")


async def long_ticket(h: Harness, dana: Actor) -> tuple[int, str]:
    """A ticket with 2,000 customer messages: the first, 1,998 stored straight into the fake database
    (every 10th adds a new invoice number, the rest are courtesy or "any update?"), and a last one with
    new information. Returns how many messages add information, and the last message."""
    await h.write(dana, "My order A-1234 never arrived and the tracking page is blank")
    informative = 1
    number = max(h.store.entries)
    for i in range(1, 1999):
        if i % 10 == 0:
            text = f"Another detail: invoice INV-{1000 + i} was charged twice on my card"
            informative += 1
        else:
            text = FILLERS[i % len(FILLERS)]
        number += 1
        at = START + timedelta(minutes=i)
        h.store.entries[number] = Entry(
            1, EntryKind.CUSTOMER, "Dana Scully", text, at, "slack", f"x{i}", number
        )
    h.clock.advance(timedelta(days=2))
    last = "Update: the courier says the parcel went to depot Leeds, reference LDS-99812"
    await h.write(dana, last)
    assert sum(1 for e in h.store.entries_for(1) if e.kind is EntryKind.CUSTOMER) == 2000
    return informative + 1, last


async def test_a_ticket_with_2000_messages_is_condensed_within_the_budget():
    """The first message and the latest informative one stay; the footer counts what was left out."""
    h = build_desk()
    dana, ana = customer("Dana Scully"), agent("Ana Lima")
    informative, last = await long_ticket(h, dana)

    text = packet_in(await h.run(ana, "/ticket show #1")).text

    assert len(text) <= 1800
    quoted = text.split("\nIn their words:\n", 1)[1].split("\n(")[0].splitlines()
    assert quoted[0].endswith("] My order A-1234 never arrived and the tracking page is blank")
    assert quoted[-1].endswith("] " + last)
    footer = re.search(r"\((\d+) older or less telling items left out of (\d+)\.\) " + FOOTER, text)
    assert footer, text
    left_out, total = map(int, footer.groups())
    # The candidates: the first message, those adding information, and the two running service clocks
    # (first response and resolution).
    assert total == informative + 2, "only the first message and those adding information are quoted"
    clocks = text.split("\nService clocks:\n", 1)[1].split("\nIn their words:")[0].splitlines()
    assert len(clocks) == 2
    assert total - left_out == len(quoted) + len(clocks)
    assert "Facts: order A-1234" in text and "and 185 more" in text
    for filler in FILLERS:
        assert f"] {filler}\n" not in text + "\n"


async def test_a_condensed_packet_is_deterministic():
    """The same ticket gives the same packet, whenever it is asked for."""
    h = build_desk()
    dana, ana = customer("Dana Scully"), agent("Ana Lima")
    await long_ticket(h, dana)

    first = packet_in(await h.run(ana, "/ticket show #1")).text
    h.clock.advance(timedelta(hours=5))
    second = packet_in(await h.run(ana, "/ticket show #1")).text

    assert first == second


async def test_later_informative_messages_outrank_older_ones():
    """Condensing keeps the most recent of equally telling messages."""
    h = build_desk()
    dana, ana = customer("Dana Scully"), agent("Ana Lima")
    await long_ticket(h, dana)

    text = packet_in(await h.run(ana, "/ticket show #1")).text

    shown = [int(n) for n in re.findall(r"invoice INV-(\d+) was charged twice", text)]
    assert shown, text
    assert shown == sorted(shown)
    assert min(shown) > 2000, "the newest informative messages are the ones kept"


# --- promises -------------------------------------------------------------------------------------


def built_packet(h: Harness) -> packets.HandoffPacket:
    """The packet of ticket #1, built from the fake database with the public packet functions."""
    ticket = h.store.ticket(1)
    who = h.store.customers[ticket.customer_id]
    identities = [i for i in h.store.identities.values() if i.customer_id == who.id]
    notes = [n for n in h.store.profile_notes.values() if n.customer_id == who.id]
    incentives = [i for i in h.store.incentives.values() if i.customer_id == who.id]
    tickets = [t for t in h.store.tickets.values() if t.customer_id == who.id]
    profile = packets.profile_view(who, identities, notes, incentives, tickets, exclude=1)
    return packets.build(
        ticket,
        "Ana Lima",
        profile,
        h.store.entries_for(1),
        h.store.events_for(1),
        h.policy.facts.finder(),
        h.policy.is_courtesy,
    )


def rendered(parts: Sequence[str | InternalText]) -> str:
    return "".join(p.hidden if isinstance(p, InternalText) else p for p in parts)


async def test_open_promises_come_first_even_in_a_tiny_budget():
    """A promise to the customer outranks everything optional: with room for one item, it is the one."""
    story = await tell_the_story("slack")
    built = built_packet(story.h)
    due = START + timedelta(days=1, hours=8)
    promise = PromiseView("Call Dana back about the refund", due)
    overdue = PromiseView("Email the replacement's tracking number", START + timedelta(hours=1), overdue=True)
    with_promises = dataclasses.replace(built, promises=(promise, overdue))

    roomy = rendered(packets.render(with_promises, 3000))
    assert "\nOpen promises:\n• Email the replacement's tracking number, due 02 Mar 10:00 (overdue)" in roomy
    assert "• Call Dana back about the refund, due 03 Mar 17:00" in roomy
    assert roomy.index("Open promises:") < roomy.index("In their words:") < roomy.index("Tried and said")

    bare = rendered(packets.render(built, 3000))
    head = bare.split("\nProfile notes:")[0]
    tiny_budget = len(head) + 165
    tiny = rendered(packets.render(dataclasses.replace(built, promises=(promise,)), tiny_budget))
    assert len(tiny) <= tiny_budget
    assert tiny.startswith(head + "\nOpen promises:\n• Call Dana back about the refund, due 03 Mar 17:00\n(")
    for section in ("Profile notes:", "Incentives given:", "In their words:", "Tried and said", "Handoffs:"):
        assert section not in tiny
    assert re.search(r"\n\((\d+) older or less telling items left out of \1\.\) ", tiny) is None
    assert re.search(r"\n\(\d+ older or less telling items left out of \d+\.\) " + FOOTER + "$", tiny)
