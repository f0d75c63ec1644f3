"""The business time a clock keeps when it is met (`SlaClock.business`) is the duration reports measured.

Reports used to measure every met clock when asked: `consumed` plus the open time of the ticket's queue
from `resumed_at` to `met_at`, or just `consumed` when the timeline shows the ticket was waiting on the
customer when the clock was met (bot/reports.py). The desk now keeps that duration on the clock as it is
met, and storage ranks the kept values (storage/report_queries.py `measures`). Here a week of tickets
goes through the desk on each database, over the weekend, a holiday, waits on the customer, a ticket
resolved while waiting and one reopened and resolved again; every met clock's kept time must be what
the report measures from the clock and the timeline, and the SQL report over the kept times must give
the figures the Python report gives when it measures every clock itself.
"""

from __future__ import annotations

import dataclasses
import tomllib
from datetime import timedelta

from fakes import Delivering, FakeClock, FakeStore, Harness, customer
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from test_standards import ANA, BEN, BERLIN, DANA, EVE, POLICY_TOML, berlin

from bot import reports
from bot.desk import Desk
from bot.domain import ClockState, Metric, SlaClock
from bot.policy import Policy
from bot.reports import Period, ReportData
from storage import report_queries
from storage.engine import session_factory
from storage.models import SlaClockRow
from storage.uow import SqlUnitOfWork

FOX = customer("Fox Mulder")
OFFICE = 'blocks = ["09:00-17:00"]\n'
HOLIDAY_POLICY = Policy.model_validate(
    tomllib.loads(POLICY_TOML.replace(OFFICE, OFFICE + 'holidays = ["2026-03-06"]\n'))
)
"""Mon-Fri 09:00-17:00 in Berlin, closed on Friday 6 March 2026."""
H, M = timedelta(hours=1), timedelta(minutes=1)


async def a_week_of_tickets(engine: AsyncEngine) -> Harness:
    """#1 answered in an hour, waits a day, resolved; later reopened over the holiday and the weekend and
    resolved again. #2 opened at half past four, answered next morning, resolved while waiting. #3 opened
    the evening before the holiday, answered the Monday after."""
    sessions = session_factory(engine)
    clock = FakeClock(berlin("2026-03-02 09:00"))
    desk = Delivering(Desk(lambda: SqlUnitOfWork(sessions), clock, HOLIDAY_POLICY))
    h = Harness(desk, FakeStore(), clock, HOLIDAY_POLICY)  # type: ignore[arg-type]
    await h.desk.register_agents([ANA.person, BEN.person])
    await h.write(DANA, "My parcel never arrived")
    clock.set(berlin("2026-03-02 10:00"))
    await h.run(ANA, "/ticket reply #1 Could you send a photo of the label?")
    clock.set(berlin("2026-03-02 11:00"))
    await h.run(ANA, "/ticket pending #1")
    clock.set(berlin("2026-03-02 16:30"))
    await h.write(EVE, "My invoice is wrong")
    clock.set(berlin("2026-03-03 09:15"))
    await h.run(BEN, "/ticket reply #2 Which invoice number is it?")
    clock.set(berlin("2026-03-03 09:30"))
    await h.run(BEN, "/ticket pending #2")
    clock.set(berlin("2026-03-03 10:00"))
    await h.write(DANA, "Here is the photo")
    clock.set(berlin("2026-03-03 11:00"))
    await h.run(BEN, "/ticket resolve #2")
    clock.set(berlin("2026-03-03 12:00"))
    await h.run(ANA, "/ticket resolve #1")
    clock.set(berlin("2026-03-05 16:00"))
    await h.run(ANA, "/ticket reopen #1")
    clock.set(berlin("2026-03-05 16:45"))
    await h.write(FOX, "The app crashes on start")
    clock.set(berlin("2026-03-09 09:10"))
    await h.run(ANA, "/ticket reply #3 Which version do you run?")
    clock.set(berlin("2026-03-09 10:00"))
    await h.run(ANA, "/ticket resolve #1")
    clock.set(berlin("2026-03-09 12:00"))
    return h


async def gathered(engine: AsyncEngine) -> ReportData:
    async with SqlUnitOfWork(session_factory(engine)) as uow:
        tickets = [t for n in (1, 2, 3) if (t := await uow.tickets.get(n)) is not None]
        numbers = [1, 2, 3]
        names = {}
        for ticket in tickets:
            if ticket.assignee_id is not None:
                agent = await uow.agents.get(ticket.assignee_id)
                names[ticket.assignee_id] = agent.display_name if agent else "?"
        return ReportData(
            tickets=tickets,
            clocks=await uow.clocks.for_tickets(numbers),
            events=await uow.timeline.for_tickets(numbers),
            agents=names,
        )


def forgotten(data: ReportData) -> ReportData:
    """The same records with no kept durations: the report measures every clock as it used to."""
    clocks = [dataclasses.replace(c, business=None) for c in data.clocks]
    return dataclasses.replace(data, clocks=clocks)


def measured_by_the_report(data: ReportData, clock: SlaClock) -> timedelta:
    """What the report measured for a met clock before durations were kept (bot/reports.py)."""
    span = reports._View(forgotten(data), None, None).span(dataclasses.replace(clock, business=None))
    assert span is not None
    return reports._Elapsed(HOLIDAY_POLICY.hours_for, [span])(span) * timedelta(microseconds=1)


async def test_every_met_clock_keeps_the_business_time_the_report_measured(engine: AsyncEngine) -> None:
    await a_week_of_tickets(engine)
    data = await gathered(engine)
    met = [c for c in data.clocks if c.state is ClockState.MET]
    kinds = {(c.ticket_number, c.metric, c.cycle) for c in met}
    assert {(1, Metric.RESOLUTION, 1), (1, Metric.RESOLUTION, 2), (2, Metric.RESOLUTION, 1)} <= kinds
    for clock in met:
        assert clock.business is not None, clock
        assert clock.business == measured_by_the_report(data, clock), clock
    kept = {(c.ticket_number, c.metric, c.cycle): c.business for c in met}
    # Worked by hand: the hours are Mon-Fri 09:00-17:00, Friday 6 March a holiday.
    assert kept[1, Metric.FIRST_RESPONSE, 1] == H
    assert kept[1, Metric.RESOLUTION, 1] == 2 * H + 2 * H, "2h before the wait, 10:00-12:00 after it"
    assert kept[1, Metric.RESOLUTION, 2] == 2 * H, "Thu 16:00-17:00, no Friday, Mon 09:00-10:00"
    assert kept[2, Metric.FIRST_RESPONSE, 1] == 45 * M, "16:30-17:00 and 09:00-09:15"
    assert kept[2, Metric.RESOLUTION, 1] == H, "resolved while waiting: only the time before the wait"
    assert kept[3, Metric.FIRST_RESPONSE, 1] == 25 * M, "16:45-17:00, then Monday 09:00-09:10"


async def test_the_sql_report_over_kept_durations_gives_the_figures_measured_in_python(
    engine: AsyncEngine,
) -> None:
    await a_week_of_tickets(engine)
    data = await gathered(engine)
    start, end = berlin("2026-03-02 00:00"), berlin("2026-03-10 00:00")
    for queue, agent_id in ((None, None), ("general", None), ("internal", None)):
        period = Period.of(start, end, queue=queue, agent_id=agent_id, zone=BERLIN)
        async with SqlUnitOfWork(session_factory(engine)) as uow:
            tally = await uow.tickets.report_tally(period)
        assert tally.measured is not None, "every clock kept its duration: the database ranks them"
        from_sql = reports.figures(tally, HOLIDAY_POLICY.hours_for)
        assert from_sql == reports.figures(reports.tally(forgotten(data), period), HOLIDAY_POLICY.hours_for)
        assert from_sql == reports.figures(reports.tally(data, period), HOLIDAY_POLICY.hours_for)
    stats = reports.figures(
        reports.tally(data, Period.of(start, end, zone=BERLIN)), HOLIDAY_POLICY.hours_for
    )[0]
    assert stats.first_response == reports.Spread(3, 45 * M, H)
    assert stats.resolution == reports.Spread(3, 2 * H, 4 * H)


async def test_clocks_met_before_durations_were_kept_are_measured_as_the_report_measured_them(
    engine: AsyncEngine,
) -> None:
    """`relaydesk db upgrade` keeps the business time of clocks met before migration 0012 (NULL): the
    same durations the desk keeps when a clock is met, so reports rank them in SQL from then on."""
    await a_week_of_tickets(engine)
    before = await gathered(engine)
    sessions = session_factory(engine)
    async with sessions() as session:
        await session.execute(update(SlaClockRow).values(business=None))
        await session.commit()
    period = Period.of(berlin("2026-03-02 00:00"), berlin("2026-03-10 00:00"), zone=BERLIN)
    async with SqlUnitOfWork(sessions) as uow:
        assert (await uow.tickets.report_tally(period)).measured is None, "measured in Python meanwhile"
    async with sessions() as session:
        measured = await report_queries.keep_durations(session, HOLIDAY_POLICY.hours_for, batch=2)
    counted = [
        c
        for c in before.clocks
        if c.state is ClockState.MET
        and (c.metric is Metric.RESOLUTION or (c.metric is Metric.FIRST_RESPONSE and c.cycle == 1))
    ]
    assert measured == len(counted) == 6
    after = {(c.ticket_number, c.metric, c.cycle): c.business for c in (await gathered(engine)).clocks}
    for clock in counted:
        assert after[clock.ticket_number, clock.metric, clock.cycle] == clock.business, clock
    async with SqlUnitOfWork(sessions) as uow:
        assert (await uow.tickets.report_tally(period)).measured is not None
    async with sessions() as session:
        assert await report_queries.keep_durations(session, HOLIDAY_POLICY.hours_for) == 0
