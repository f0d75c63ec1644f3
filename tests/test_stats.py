"""`/ticket stats` through the desk: the figures to the asking agent only, with a PNG chart."""

from __future__ import annotations

import struct
from datetime import timedelta

from fakes import Harness, agent, build_desk, customer

from bot.messages import CustomerMessage, StaffMessage, ToAgent

DANA, EVE, ANA, BEN = customer("Dana Scully"), customer("Eve Moreau"), agent("Ana Lima"), agent("Ben Okafor")


async def week_of_work() -> Harness:
    h = build_desk()
    await h.desk.register_agents([ANA.person, BEN.person])
    await h.write(DANA, "My order A-1234 never arrived")
    await h.write(EVE, "My invoice INV-9 is wrong", None)
    h.clock.advance(timedelta(minutes=30))
    await h.run(ANA, "/ticket reply #1 Sorry about that, looking now")
    await h.run(BEN, "/ticket reply #2 Fixed, a new invoice is on its way")
    await h.run(ANA, "/ticket resolve #1")
    await h.run(BEN, "/ticket resolve #2")
    await h.write(DANA, "5")
    await h.write(EVE, "2")
    h.clock.advance(timedelta(hours=1))
    return h


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


async def test_the_asking_agent_gets_the_figures_and_a_chart():
    h = await week_of_work()
    out = await h.run(ANA, "/ticket stats")
    [answer] = out
    assert isinstance(answer, StaffMessage) and isinstance(answer.audience, ToAgent)
    assert answer.audience.person.user_id == ANA.person.user_id
    assert answer.text.startswith("Last 7 days: 2 opened, 2 resolved")
    assert "CSAT (rated 4-5) 50% (1/2)" in answer.text
    assert "Ana Lima: 1 resolved" in answer.text and "Ben Okafor: 1 resolved" in answer.text
    [chart] = answer.attachments
    assert (chart.filename, chart.media_type) == ("relaydesk-stats.png", "image/png")
    assert png_size(chart.data) == (1200, 800)


async def test_stats_for_one_agent_and_one_queue():
    h = await week_of_work()
    [mine] = await h.run(ANA, "/ticket stats 30d <@Uben>")
    assert mine.text.startswith("Last 30 days · Ben Okafor: 1 opened, 1 resolved")
    [queue] = await h.run(ANA, "/ticket stats today billing")
    assert queue.text.startswith("Last 24 hours · billing: 0 opened, 0 resolved")


async def test_wrong_stats_requests_are_refused_politely():
    h = await week_of_work()
    [unknown] = await h.run(ANA, "/ticket stats nowhere")
    assert unknown.text.startswith("There's no queue called 'nowhere'")
    [nobody] = await h.run(ANA, "/ticket stats @zed")
    assert nobody.text.startswith("I couldn't find an agent called @zed")
    [customer_asks] = await h.run(DANA, "/ticket stats")
    assert isinstance(customer_asks, CustomerMessage) and "Ticket" not in customer_asks.text
