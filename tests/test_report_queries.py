"""Reports counted by the database (storage/report_queries.py) give the figures the Python count gives.

The same records go into a database (SQLite and PostgreSQL, see `database_url` in conftest.py) and into
`ReportData`; the SQL tally and the Python tally must make the same Stats and the same daily points:
first on the hand-worked week of test_reports.py (so also the hand-worked figures), then on seeded random
records that hit the corners (events at the very moment a clock was met, reopens, waits, clocks in every
state, withdrawn surveys, cancelled promises, days cut by DST), for several periods and filters.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import test_reports as week_data
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import reports
from bot.domain import (
    ClockState,
    Metric,
    Priority,
    Promise,
    PromiseState,
    SlaClock,
    Status,
    Survey,
    SurveyState,
    Ticket,
    TicketKind,
    TimelineEvent,
)
from bot.hours import BusinessHours
from bot.reports import Period, ReportData
from storage import report_queries
from storage.engine import session_factory
from storage.models import (
    AgentRow,
    CustomerRow,
    PromiseRow,
    SlaClockRow,
    SurveyRow,
    TicketRow,
    TimelineRow,
)
from storage.uow import SqlUnitOfWork

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
AGENTS = {7: "Ada", 8: "Grace", 9: "Linus"}
OFFICE = BusinessHours.build(
    "office",
    "Europe/Berlin",
    {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    holidays=[date(2026, 4, 3)],
)
NIGHTS = BusinessHours.build(
    "nights", "America/New_York", {d: ["22:00-06:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sun")}
)
HOURS = {"general": OFFICE, "billing": NIGHTS}


def hours_for(queue: str) -> BusinessHours:
    return HOURS[queue]


async def store(engine: AsyncEngine, data: ReportData) -> None:
    """The records as rows, with the customers and agents they point at."""
    rows: list[Any] = [
        AgentRow(id=i, platform="slack", external_id=f"U{i}", display_name=n) for i, n in AGENTS.items()
    ]
    customers = {t.customer_id for t in data.tickets} | {s.customer_id for s in data.surveys}
    first = min(t.created_at for t in data.tickets)
    rows += [
        CustomerRow(id=c, display_name=f"Customer {c}", kind=TicketKind.EXTERNAL, created_at=first)
        for c in customers
    ]
    tables: Sequence[tuple[Sequence[Any], type[Any]]] = (
        (data.tickets, TicketRow),
        (data.clocks, SlaClockRow),
        (data.promises, PromiseRow),
        (data.surveys, SurveyRow),
    )
    sessions = session_factory(engine)
    async with sessions() as session:
        session.add_all(rows)
        await session.flush()
        for records, row_type in tables:
            for record in records:
                values = {
                    k: v for k, v in dataclasses.asdict(record).items() if not (k == "id" and v is None)
                }
                session.add(row_type(**values))
            await session.flush()
        for event in data.events:
            session.add(
                TimelineRow(
                    ticket_number=event.ticket_number,
                    action=event.action,
                    actor_name=event.actor_name,
                    at=event.at,
                    detail=event.detail,
                )
            )
        await session.commit()


async def sql_figures(engine: AsyncEngine, period: Period) -> tuple[reports.Stats, list[reports.DayPoint]]:
    async with SqlUnitOfWork(session_factory(engine)) as uow:
        tally = await uow.tickets.report_tally(period)
    return reports.figures(tally, hours_for)


def python_figures(data: ReportData, period: Period) -> tuple[reports.Stats, list[reports.DayPoint]]:
    return reports.figures(reports.tally(data, period), hours_for)


# --- the hand-worked week --------------------------------------------------------------------------------


def week_hours(queue: str) -> BusinessHours:
    return week_data.HOURS[queue]


async def test_the_hand_worked_week_gives_the_same_figures_from_sql(engine: AsyncEngine) -> None:
    data = week_data.week()
    await store(engine, data)
    start, end = week_data.START, week_data.END
    for queue, agent_id, now in (
        (None, None, None),
        ("general", None, None),
        ("billing", None, None),
        (None, week_data.GRACE, None),
        (None, week_data.ADA, None),
        (None, None, week_data.at(16, 15, 30)),
    ):
        period = Period.of(start, end, now=now, queue=queue, agent_id=agent_id, zone=week_data.BERLIN)
        async with SqlUnitOfWork(session_factory(engine)) as uow:
            tally = await uow.tickets.report_tally(period)
        stats, days = reports.figures(tally, week_hours)
        expected = reports.compute(data, start, end, week_hours, queue, agent_id, now=now)
        assert stats == expected
        assert days == reports.daily(data, start, end, week_hours, week_data.BERLIN, queue, agent_id)
    # And so the hand-worked figures themselves.
    period = Period.of(start, end, zone=week_data.BERLIN)
    async with SqlUnitOfWork(session_factory(engine)) as uow:
        stats, days = reports.figures(await uow.tickets.report_tally(period), week_hours)
    h, m = week_data.H, week_data.M
    assert stats.first_response == reports.Spread(4, h + 40 * m, 15 * h + 20 * m)
    assert stats.resolution == reports.Spread(2, 4 * h + 30 * m, 5 * h)
    assert (stats.opened, stats.resolved, stats.reopens) == (5, 4, reports.Ratio(1, 4))
    assert [p.resolved for p in days] == [0, 2, 2, 0, 1, 0, 0]


# --- seeded random records --------------------------------------------------------------------------------

BASE = datetime(2026, 3, 18, 6, 0, tzinfo=UTC)
FILTERS = (
    (None, None),
    ("general", None),
    ("billing", None),
    (None, 8),
    ("general", 7),
)  # Europe moves its clocks on 29 March, New York on 8 March


def random_data(seed: int, tickets: int = 70) -> ReportData:
    """Records in every state, times with microseconds; some events fall exactly when a clock was met."""
    rng = random.Random(seed)

    def moment(days: float = 30) -> datetime:
        return BASE + timedelta(
            seconds=rng.uniform(-10 * 86400, days * 86400), microseconds=rng.randrange(10**6)
        )

    statuses = list(Status)
    all_tickets, clocks, events, surveys, promises = [], [], [], [], []
    for number in range(1, tickets + 1):
        created = moment()
        resolved = rng.choice([None, created + timedelta(hours=rng.uniform(0.1, 200))])
        all_tickets.append(
            Ticket(
                kind=TicketKind.EXTERNAL,
                queue=rng.choice(["general", "billing"]),
                priority=rng.choice(list(Priority)),
                subject=f"ticket {number}",
                customer_id=100 + number % 9,
                customer_user_id=f"U{number}",
                platform="slack",
                channel_id="C1",
                created_at=created,
                updated_at=created,
                status=rng.choice(statuses),
                assignee_id=rng.choice([None, 7, 8, 9]),
                resolved_at=resolved,
                number=number,
            )
        )
        times = sorted(created + timedelta(hours=rng.uniform(0, 300)) for _ in range(rng.randrange(0, 7)))
        for at in times:
            old, new = rng.choice(statuses), rng.choice(statuses)
            if rng.random() < 0.3:
                old, new = Status.RESOLVED, rng.choice([Status.OPEN, Status.CLOSED])
            elif rng.random() < 0.3:
                new = Status.RESOLVED
            events.append(TimelineEvent(number, "status", "someone", at, {"old": str(old), "new": str(new)}))
            if rng.random() < 0.2:  # a second change at the very same moment
                events.append(
                    TimelineEvent(number, "status", "someone", at, {"old": str(new), "new": "open"})
                )
        if rng.random() < 0.2:
            events.append(TimelineEvent(number, "claimed", "Ada", moment(), {"agent": "Ada"}))
        for metric in Metric:
            for cycle in (1, 2)[: rng.randrange(0, 3)]:
                state = rng.choice(list(ClockState))
                started = created + timedelta(minutes=rng.uniform(0, 600))
                resumed = started + timedelta(minutes=rng.choice([0, rng.uniform(0, 3000)]))
                met = None
                if state is ClockState.MET and times and rng.random() < 0.4:
                    met = rng.choice(times)  # the very moment of a status change
                elif state is ClockState.MET:
                    met = resumed + timedelta(minutes=rng.uniform(0, 9000))
                clocks.append(
                    SlaClock(
                        number,
                        metric,
                        cycle,
                        timedelta(hours=rng.choice([1, 4, 40])),
                        started_at=started,
                        resumed_at=resumed,
                        due_at=started + timedelta(hours=rng.uniform(0, 300)),
                        state=state,
                        consumed=timedelta(seconds=rng.randrange(0, 40000)),
                        met_at=met,
                        breached_at=rng.choice([None, moment()]),
                    )
                )
        for cycle in (1, 2)[: rng.randrange(0, 3)]:
            rating = rng.choice([None, 1, 2, 3, 4, 5])
            sent = moment()
            surveys.append(
                Survey(
                    number,
                    100 + number % 9,
                    cycle,
                    sent,
                    sent + timedelta(days=3),
                    rng.choice(list(SurveyState)),
                    rating,
                    None if rating is None else sent + timedelta(hours=rng.uniform(0, 100)),
                )
            )
        for serial in (1, 2)[: rng.randrange(0, 3)]:
            due = moment()
            promised = rng.choice(list(PromiseState))
            kept = due + timedelta(hours=rng.uniform(-5, 5)) if promised is PromiseState.KEPT else None
            broken = rng.choice([None, due]) if promised is not PromiseState.CANCELLED else None
            made = due - timedelta(hours=2)
            promises.append(Promise(number, serial, "call back", due, "Ada", made, promised, kept, broken))
    return ReportData(all_tickets, clocks, promises, surveys, events, AGENTS)


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_records_give_the_same_figures_from_sql(engine: AsyncEngine, seed: int) -> None:
    data = random_data(seed)
    await store(engine, data)
    now = BASE + timedelta(days=12, hours=5)
    for start, end, zone in (
        (BASE + timedelta(days=5, hours=3), now + timedelta(seconds=1), BERLIN),
        (BASE - timedelta(days=3), BASE + timedelta(days=27), NEW_YORK),
        (BASE, BASE, BERLIN),
    ):
        for queue, agent_id in FILTERS:
            period = Period.of(start, end, now=now, queue=queue, agent_id=agent_id, zone=zone)
            assert await sql_figures(engine, period) == python_figures(data, period), period


def test_business_time_from_the_running_total_is_the_walk_over_the_days() -> None:
    rng = random.Random(5)
    micros = reports.micros
    for hours in (OFFICE, NIGHTS, week_data.ALWAYS):
        first, last = BASE - timedelta(days=20), BASE + timedelta(days=40)
        table = reports._OpenTime(hours, micros(first), micros(last))
        for _ in range(400):
            a = first + timedelta(seconds=rng.uniform(0, 60 * 86400), microseconds=rng.randrange(10**6))
            b = a + rng.choice([timedelta(0), timedelta(seconds=rng.uniform(-3600, 20 * 86400))])
            found = table.between(micros(a), micros(b))
            if b > last:
                assert found is None or micros(b) <= table.covered
            if found is not None:
                assert found * timedelta(microseconds=1) == hours.between(a, b), (hours.name, a, b)


def test_spans_measured_with_running_totals_match_the_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    data = random_data(3, tickets=150)
    period = Period.of(BASE - timedelta(days=10), BASE + timedelta(days=30), zone=BERLIN)
    walked = python_figures(data, period)
    monkeypatch.setattr(reports._Elapsed, "TABLE_FROM", 1)
    assert python_figures(data, period) == walked


# --- durations kept on the clocks, ranked by the database ---------------------------------------------------


def kept(data: ReportData, seed: int, ties: bool) -> ReportData:
    """The records with each met clock keeping the duration the report measures from the clock and the
    timeline (as the desk keeps it when the clock is met); with `ties`, most replaced by one of four
    values, so the database ranks many equal ones."""
    rng = random.Random(seed)
    view = reports._View(data, None, None)
    clocks = []
    for clock in data.clocks:
        span = view.span(clock) if clock.state is ClockState.MET else None
        if span is not None:
            value = reports._Elapsed(hours_for, [span])(span) * timedelta(microseconds=1)
            if ties and rng.random() < 0.7:
                value = rng.choice([0, 1, 2, 8]) * timedelta(hours=1)
            clock = dataclasses.replace(clock, business=value)
        clocks.append(clock)
    return dataclasses.replace(data, clocks=clocks)


PERIODS = (
    (BASE + timedelta(days=5, hours=3), BASE + timedelta(days=12, hours=5, seconds=1), BERLIN),
    (BASE - timedelta(days=3), BASE + timedelta(days=27), NEW_YORK),
    (BASE, BASE, BERLIN),
)


@pytest.mark.parametrize(("seed", "ties"), [(1, False), (2, True)])
async def test_kept_durations_are_ranked_by_the_database_as_python_ranks_them(
    engine: AsyncEngine, seed: int, ties: bool
) -> None:
    measured = random_data(seed, tickets=200)
    data = kept(measured, seed, ties)
    await store(engine, data)
    now = BASE + timedelta(days=12, hours=5)
    for start, end, zone in PERIODS:
        for queue, agent_id in FILTERS:
            period = Period.of(start, end, now=now, queue=queue, agent_id=agent_id, zone=zone)
            async with SqlUnitOfWork(session_factory(engine)) as uow:
                tally = await uow.tickets.report_tally(period)
            assert tally.measured is not None and not tally.first_responses and not tally.resolutions
            figures = reports.figures(tally, hours_for)
            assert figures == python_figures(data, period), period
            if not ties:  # the kept durations are the ones the report measured
                assert figures == python_figures(measured, period), period


async def test_a_period_with_a_clock_met_before_durations_were_kept_is_measured_in_python(
    engine: AsyncEngine,
) -> None:
    data = kept(random_data(4), 4, ties=False)
    met = [i for i, c in enumerate(data.clocks) if c.metric is Metric.RESOLUTION and c.business is not None]
    clocks = list(data.clocks)
    clocks[met[len(met) // 2]] = dataclasses.replace(clocks[met[len(met) // 2]], business=None)
    data = dataclasses.replace(data, clocks=clocks)
    await store(engine, data)
    period = Period.of(BASE - timedelta(days=10), BASE + timedelta(days=40), zone=BERLIN)
    async with SqlUnitOfWork(session_factory(engine)) as uow:
        tally = await uow.tickets.report_tally(period)
    assert tally.measured is None and tally.first_responses
    assert reports.figures(tally, hours_for) == python_figures(data, period)


async def test_durations_kept_afterwards_are_the_ones_the_report_measured(engine: AsyncEngine) -> None:
    """`keep_durations` (run by `relaydesk db upgrade` for clocks met before migration 0012) keeps what
    the report measured: events at the very moment a clock was met, waits, reopens, DST and all."""
    data = random_data(5, tickets=150)
    await store(engine, data)
    async with session_factory(engine)() as session:
        measured = await report_queries.keep_durations(session, hours_for, batch=7)
    expected = {
        (c.ticket_number, c.metric, c.cycle): c.business
        for c in kept(data, 5, ties=False).clocks
        if c.business is not None
        and (c.metric is Metric.RESOLUTION or (c.metric is Metric.FIRST_RESPONSE and c.cycle == 1))
    }
    assert measured == len(expected) > 50
    async with SqlUnitOfWork(session_factory(engine)) as uow:
        found = await uow.clocks.for_tickets([t.number for t in data.tickets if t.number is not None])
    assert {
        (c.ticket_number, c.metric, c.cycle): c.business for c in found if c.business is not None
    } == expected
