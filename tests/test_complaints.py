"""Upset customers through the desk: flagged once, priority raised, routed to the complaints queue, the
mood trend in the packet, and tone guidance for the agent who answers."""

from __future__ import annotations

from fakes import Harness, agent, build_desk, customer

from bot.domain import Priority
from bot.messages import CustomerMessage, StaffMessage, ToAgent, ToAgents

DANA, ANA, BEN = customer("Dana Scully"), agent("Ana Lima"), agent("Ben Okafor")
ANGRY = "This is ridiculous, the third time I write. Absolutely useless, I want a refund!"


def staff_texts(out: list) -> list[str]:
    return [m.text for m in out if isinstance(m, StaffMessage)]


def flags(out: list) -> list[str]:
    return [t for t in staff_texts(out) if t.startswith("Upset customer:")]


async def opened(h: Harness, text: str = "My order A-1234 never arrived") -> list:
    return await h.write(DANA, text)


async def test_a_calm_question_is_not_flagged():
    h = build_desk()
    out = await opened(h, "Hello! Could you tell me when order A-1234 ships? Thanks a lot")
    assert flags(out) == []
    ticket = h.store.ticket(1)
    assert (ticket.priority, ticket.queue) == (Priority.NORMAL, "general")
    assert h.store.entries_for(1)[0].mood is not None and h.store.entries_for(1)[0].mood > 0


async def test_an_angry_message_flags_raises_and_routes_to_the_specialists():
    h = build_desk()
    await opened(h)
    await h.run(ANA, "/ticket claim #1")
    out = await h.write(DANA, ANGRY)

    [flag] = flags(out)
    assert "Dana Scully" in flag and "refund" in flag
    assert "priority raised to high" in flag.lower() and "moved to complaints" in flag
    ticket = h.store.ticket(1)
    assert (ticket.priority, ticket.queue, ticket.assignee_id) == (Priority.HIGH, "complaints", None)
    packet = next(m for m in out if isinstance(m, StaffMessage) and "needs a specialist" in m.text)
    assert isinstance(packet.audience, ToAgents) and "Mood:" in packet.text and "flagged upset" in packet.text
    told = [m.text for m in out if isinstance(m, CustomerMessage)]
    assert any("customer care team" in t and "won't need to repeat" in t for t in told)
    moved = h.store.events_for(1, "transferred")[-1]
    assert moved.detail["to_queue"] == "complaints" and moved.detail["from_agent"] == "Ana Lima"


async def test_an_escalation_phrase_alone_is_enough():
    h = build_desk()
    out = await opened(h, "Please cancel my subscription, thank you")
    assert len(flags(out)) == 1
    assert h.store.ticket(1).queue == "complaints"


async def test_an_upset_first_message_is_flagged_on_the_card_and_told_the_complaints_time():
    h = build_desk()
    out = await opened(h, ANGRY)
    [card] = [m for m in out if isinstance(m, StaffMessage) and m.card is not None]
    assert "Flagged: the customer is upset." in card.text and "high priority · complaints" in card.text
    [greeting] = [m.text for m in out if isinstance(m, CustomerMessage)]
    assert "our customer care team will reply" in greeting
    first = next(c for c in h.store.sla_clocks.values() if c.metric == "first_response")
    assert first.target == h.policy.standards.targets(h.store.ticket(1).kind, Priority.HIGH).first_response


async def test_a_ticket_is_flagged_once_however_upset_the_customer_stays():
    h = build_desk()
    await opened(h, ANGRY)
    out = await h.write(DANA, "Still nothing. This is the worst service, I will call my lawyer.")
    assert flags(out) == []
    assert len(h.store.events_for(1, "upset")) == 2, "every upset message is on the timeline"
    assert h.store.events_for(1, "transferred") == [], "it opened in complaints: nothing to move"
    assert h.store.ticket(1).queue == "complaints"


async def test_an_urgent_ticket_is_not_lowered():
    h = build_desk()
    await opened(h)
    await h.run(ANA, "/ticket priority #1 urgent")
    await h.write(DANA, ANGRY)
    assert h.store.ticket(1).priority is Priority.URGENT


async def test_the_agent_answering_an_upset_customer_gets_tone_guidance_once():
    h = build_desk()
    await opened(h, ANGRY)
    await h.run(BEN, "/ticket claim #1")
    out = await h.run(BEN, "/ticket reply #1 I'm so sorry, Dana. I've refunded you; it shows by Friday.")
    guidance = [m for m in out if isinstance(m, StaffMessage) and "Acknowledge how they feel" in m.text]
    assert len(guidance) == 1 and isinstance(guidance[0].audience, ToAgent)
    assert guidance[0].audience.person.user_id == BEN.person.user_id
    assert all("Acknowledge" not in m.text for m in out if isinstance(m, CustomerMessage))
    again = await h.run(BEN, "/ticket reply #1 Anything else I can do?")
    assert not [m for m in again if isinstance(m, StaffMessage) and "Acknowledge how they feel" in m.text]


async def test_the_packet_shows_the_mood_getting_worse():
    h = build_desk()
    await opened(h, "Hi, my order A-1234 has not arrived yet.")
    await h.write(DANA, "It's been two weeks now and nobody answers. I'm getting annoyed.")
    await h.write(DANA, "This is terrible, horrible service. I am furious.")
    out = await h.run(ANA, "/ticket show #1")
    [packet] = [m for m in out if isinstance(m, StaffMessage)]
    mood = next(line for line in packet.text.splitlines() if line.startswith("Mood:"))
    assert "getting worse" in mood and "3 messages" in mood and "flagged upset" in mood


async def test_without_a_complaints_queue_the_ticket_stays_where_it_is():
    h = build_desk()
    policy = h.policy.model_copy(
        update={"complaints": h.policy.complaints.model_copy(update={"queue": None})}
    )
    h = build_desk(policy=policy)
    out = await opened(h, ANGRY)
    [flag] = flags(out)
    assert "moved" not in flag
    assert (h.store.ticket(1).queue, h.store.ticket(1).priority) == ("general", Priority.HIGH)
