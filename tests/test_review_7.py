"""Review 7: surveys, upset customers and reports, through the desk's public services.

Some tests pin down bugs a review found (now fixed), so they stay fixed; the others check behaviour the
review verified and found untested.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest
from fakes import START, Delivering, Harness, agent, build_desk, colleague, customer

from bot import data_rights
from bot.clock import FakeClock
from bot.commands import IncomingMessage
from bot.desk import Desk
from bot.domain import EntryKind, Priority, Status, SurveyState, TicketKind
from bot.messages import Conversation, CustomerMessage, Outgoing, StaffMessage, ToAgent, ToAgents
from bot.policy import load_policy
from bot.ports import UnitOfWork

DANA, EVE, ANA, BEN = customer("Dana Scully"), customer("Eve Moss"), agent("Ana Lima"), agent("Ben Okafor")
CARL, LEAD = colleague("Carl Jung"), agent("ana", user_id="U-lead")
THANKS = "Thank you, Dana! If you'd like to tell us more, just reply here; we read every word."
COMMENT_THANKS = "Thank you, Dana. We've passed that on to the team."
CLOSED = "survey has closed"
ANGRY = "This is ridiculous, the third time I write. Absolutely useless, I want a refund!"


def to_dana(out: Sequence[Outgoing], number: int = 1) -> list[str]:
    return [
        m.text
        for m in out
        if isinstance(m, CustomerMessage)
        and m.audience.ticket_number == number
        and m.audience.person.user_id == DANA.person.user_id
    ]


def staff_thread(out: Sequence[Outgoing], number: int = 1) -> list[str]:
    return [
        m.text
        for m in out
        if isinstance(m, StaffMessage)
        and isinstance(m.audience, ToAgents)
        and m.audience.ticket_number == number
    ]


def flags(out: Sequence[Outgoing]) -> list[str]:
    return [m.text for m in out if isinstance(m, StaffMessage) and m.text.startswith("Upset customer:")]


async def resolved(h: Harness | None = None) -> Harness:
    """Dana's ticket #1, answered by Ana and resolved with a survey (the packaged policy)."""
    h = h or build_desk()
    await h.desk.register_agents([ANA.person, BEN.person])
    await h.write(DANA, "My order A-1234 never arrived")
    await h.run(ANA, "/ticket reply #1 Sorry, Dana, a replacement ships today.")
    await h.run(ANA, "/ticket resolve #1")
    [survey] = h.store.surveys.values()
    assert survey.state is SurveyState.OPEN
    return h


def survey_of(h: Harness, number: int = 1):
    [survey] = [s for s in h.store.surveys.values() if s.ticket_number == number]
    return survey


# --- bugs: surveys -------------------------------------------------------------------------------


async def test_a_double_clicked_rating_button_thanks_the_customer_once() -> None:
    h = await resolved()

    first, second = await asyncio.gather(h.desk.rate(DANA, 1, 4), h.desk.rate(DANA, 1, 4))

    said = [*first, *second]
    assert to_dana(said).count(THANKS) == 1
    assert len([t for t in staff_thread(said) if "rated #1" in t or "rating of #1" in t]) == 1


async def test_a_rating_racing_the_expiry_ends_either_rated_or_expired_unrated() -> None:
    h = await resolved()
    expires = survey_of(h).expires_at
    h.clock.set(expires - timedelta(seconds=1))
    sweeper = Delivering(Desk(h.store.uow, FakeClock(expires), h.policy))  # another process, a second later

    await asyncio.gather(h.desk.rate(DANA, 1, 5), sweeper.run_due_work())

    survey = survey_of(h)
    assert (survey.state, survey.rating) in ((SurveyState.RATED, 5), (SurveyState.EXPIRED, None))


async def test_a_rating_button_on_a_reopened_ticket_is_refused() -> None:
    h = await resolved()
    await h.desk.rate(DANA, 1, 4)
    await h.write(DANA, "reopen")
    assert h.store.ticket(1).status is Status.OPEN

    out = await h.desk.rate(DANA, 1, 1)

    assert any(CLOSED in m.text or "already have your rating" in m.text for m in out)
    assert survey_of(h).rating == 4
    assert not any(isinstance(m, StaffMessage) and "Low rating" in m.text for m in out)


async def test_only_the_tickets_customer_can_rate_it_by_typing() -> None:
    h = build_desk()
    await h.desk.register_agents([ANA.person])
    thread = Conversation("slack", "C-support", "T-1")
    await h.write(DANA, "My order A-1234 never arrived", thread)
    await h.run(ANA, "/ticket resolve #1")

    out = await h.write(EVE, "1", thread)

    survey = survey_of(h)
    assert survey.rating is None, "Eve's '1' is not Dana's rating"
    assert not [m for m in out if "rated" in getattr(m, "text", "")]


async def test_a_comment_saying_not_to_reopen_does_not_reopen() -> None:
    h = await resolved()
    await h.write(DANA, "4")

    out = await h.write(DANA, "No need to reopen, thanks")

    assert h.store.ticket(1).status is Status.RESOLVED
    assert to_dana(out) == [COMMENT_THANKS]
    assert survey_of(h).comment == "No need to reopen, thanks"


async def test_a_survey_comment_is_scored_for_mood() -> None:
    h = await resolved()
    await h.write(DANA, "1")
    await h.write(DANA, "Absolutely useless, the worst service I have ever had. Terrible.")

    comment = h.store.entries_for(1)[-1]
    assert comment.kind is EntryKind.CUSTOMER and "worst service" in str(comment.body)
    assert comment.mood is not None and comment.mood < 0


async def test_the_export_says_when_the_customer_commented() -> None:
    h = await resolved()
    await h.write(DANA, "2")
    h.clock.advance(timedelta(minutes=3))
    await h.write(DANA, "It took a week")

    data = await data_rights.export(h.store.uow, "slack:Udana", FakeClock(h.clock.now()))

    [survey] = data["tickets"][0]["surveys"]
    assert survey["comment"] == "It took a week"
    assert survey.get("commented_at") == h.clock.now().isoformat()


# --- bugs: upset customers -----------------------------------------------------------------------


async def test_a_colleagues_internal_request_stays_with_the_internal_help_desk() -> None:
    h = build_desk()

    out = await h.write(CARL, "Please cancel my old laptop order, I no longer need it")

    ticket = h.store.ticket(1)
    assert ticket.kind is TicketKind.INTERNAL
    assert (ticket.queue, ticket.priority) == ("internal", Priority.NORMAL)
    assert not any(isinstance(m, CustomerMessage) and "customer care team" in m.text for m in out)


# --- bugs: reports -------------------------------------------------------------------------------


async def test_stats_count_the_breaches_of_a_neglected_open_ticket() -> None:
    h = build_desk()
    await h.desk.register_agents([ANA.person])
    await h.write(DANA, "My order A-1234 never arrived")
    await h.run(ANA, "/ticket reply #1 Looking into it")
    h.clock.advance(timedelta(days=8))
    await h.desk.run_due_work()  # the resolution clock fell due days ago, and nobody touched the ticket
    resolution = [c for c in h.store.sla_clocks.values() if c.metric == "resolution"]
    assert resolution and resolution[0].breached_at is not None
    start = h.clock.now() - timedelta(days=6)
    assert h.store.ticket(1).updated_at < start <= resolution[0].due_at

    stats, _ = await h.desk.report(start, h.clock.now() + timedelta(seconds=1))

    assert stats.sla["resolution"].whole == 1 and stats.sla["resolution"].part == 0


# --- verified behaviour ---------------------------------------------------------------------------


async def test_an_upset_ticket_sent_back_by_the_specialists_does_not_bounce_to_complaints_again() -> None:
    h = build_desk()
    await h.desk.register_agents([ANA.person, BEN.person])
    await h.write(DANA, "My order A-1234 never arrived")
    assert flags(await h.write(DANA, ANGRY))
    assert h.store.ticket(1).queue == "complaints"

    await h.run(BEN, "/ticket transfer #1 general billing question, not a complaint")
    out = await h.write(DANA, ANGRY + " Worst company ever!")

    assert flags(out) == []
    assert h.store.ticket(1).queue == "general"
    assert len(h.store.events_for(1, "transferred")) == 2


async def test_an_angry_message_on_a_resolved_ticket_reopens_it_and_is_flagged_once() -> None:
    h = await resolved()
    out = await h.write(DANA, ANGRY)

    ticket = h.store.ticket(1)
    assert ticket.status is Status.OPEN and ticket.queue == "complaints"
    assert len(flags(out)) == 1
    assert survey_of(h).state is SurveyState.WITHDRAWN


@pytest.mark.parametrize("odd", ["\u200b", "5" * 100_000, "\uff15", "★★★★★★", "10/10", "\ud800", "👍👍"])
async def test_odd_replies_to_a_survey_neither_crash_nor_rate(odd: str) -> None:
    h = await resolved()
    await h.write(DANA, odd)
    assert survey_of(h).rating is None


async def test_an_expiry_after_a_rating_keeps_the_rating_and_ends_the_comment_window() -> None:
    h = await resolved()
    await h.desk.rate(DANA, 1, 5)
    h.clock.advance(timedelta(days=3, minutes=1))
    await h.desk.run_due_work()
    survey = survey_of(h)
    assert (survey.state, survey.rating) == (SurveyState.RATED, 5)

    out = await h.write(DANA, "Actually the replacement is broken too")

    assert COMMENT_THANKS not in to_dana(out) and survey_of(h).comment is None
    assert h.store.ticket(1).status is Status.OPEN


async def test_the_overview_shows_the_agents_week_and_the_teams_week() -> None:
    h = build_desk()
    await h.desk.register_agents([ANA.person, BEN.person])
    await h.write(DANA, "My order A-1234 never arrived")
    await h.write(EVE, "My invoice is wrong")
    h.clock.advance(timedelta(minutes=30))
    await h.run(ANA, "/ticket reply #1 On it")
    await h.run(BEN, "/ticket reply #2 On it")
    await h.run(ANA, "/ticket resolve #1")
    await h.desk.rate(DANA, 1, 5)

    overview = await h.desk.overview(ANA)

    assert overview is not None
    assert "2 opened, 1 resolved" in overview.team_week
    assert "Ana Lima" in overview.my_week and "1 resolved" in overview.my_week
    assert "CSAT (rated 4-5) 100% (1/1)" in overview.my_week
    assert await h.desk.overview(DANA) is None


async def test_forgetting_erases_survey_comments_in_the_database(
    uow_factory: Callable[[], UnitOfWork],
) -> None:
    clock = FakeClock(START)
    desk = Delivering(Desk(uow_factory, clock, load_policy()))
    await desk.register_agents([ANA.person])
    where = Conversation("slack", "D-Udana")
    await desk.receive(IncomingMessage(DANA, "My order A-1234 never arrived", where, "m1"))
    await desk.command(ANA, "/ticket resolve #1")
    await desk.receive(IncomingMessage(DANA, "2", where, "m2"))
    await desk.receive(IncomingMessage(DANA, "Bob from Flat 4 took it", where, "m3"))

    await data_rights.forget(uow_factory, "slack:Udana", clock, "operator")

    async with uow_factory() as uow:
        [survey] = await uow.surveys.for_ticket(1)
    assert (survey.rating, survey.comment) == (2, data_rights.ERASED)


async def test_a_low_rating_alerts_the_lead_only_privately() -> None:
    h = build_desk()
    await h.desk.register_agents([LEAD.person])  # the packaged policy's support lead is "ana"
    h = await resolved(h)
    out = await h.desk.rate(DANA, 1, 2)
    alerts = [m for m in out if isinstance(m, StaffMessage) and "Low rating" in m.text]
    assert len(alerts) == 1 and isinstance(alerts[0].audience, ToAgent)
    assert alerts[0].audience.person == LEAD.person
    assert not any("Low rating" in m.text for m in out if isinstance(m, CustomerMessage))
