"""A report's tally counted by the database (see bot/reports.py for every definition).

A month of a busy desk is tens of thousands of tickets with their clocks, events and surveys: too many to
bring into memory for a report that is asked for interactively. Here the counts are SQL aggregates, per
day of the chart where it needs them. Durations are the business time each met clock kept when it was
met (`sla_clocks.business`), read from an index: PostgreSQL sorts them and hands back only the values a
median or p90 is made of (`measures`); SQLite hands them over as plain integers (`durations`), which
Python sorts faster than SQLite's window functions rank them. Clocks met before durations were kept
(NULL) are measured as before: when a period holds one, its met first-response and resolution clocks come
back row by row (`spans`, a few columns each, with what the timeline says the status was when each was
met) for Python to measure. Otherwise the same SQL runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    select,
    text,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, array_agg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.functions import FunctionElement

from bot.domain import ClockState, Metric, PromiseState, Status, SurveyState
from bot.hours import BusinessHours
from bot.reports import Measured, Period, Ratio, Span, Spread, Tally, elapsed, spread_at, spread_of
from storage.models import AgentRow, PromiseRow, SlaClockRow, SurveyRow, TicketRow, TimelineRow

_STATUS = "status"
_MICROSECOND = timedelta(microseconds=1)
Query = Select[*tuple[Any, ...]]
"""A SELECT of any columns."""


def _within(column: Any, start: Any, end: Any) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


def _day(column: Any, period: Period) -> ColumnElement[int]:
    """The day of the period a moment in it falls on: the boundaries come from the period (local
    midnights computed in Python), so both databases cut days alike, without time zone support. A
    binary search in nested CASEs: five comparisons a row for a month, not up to thirty."""
    days = period.days

    def within(first: int, last: int) -> Any:  # the day among first..last
        if first == last:
            return literal(first)
        middle = (first + last + 1) // 2
        return case((column < days[middle], within(first, middle - 1)), else_=within(middle, last))

    return within(0, max(0, len(days) - 1))  # type: ignore[no-any-return]


def _kept(period: Period) -> list[ColumnElement[bool]]:
    """The filters, on the ticket (its queue and assignee now)."""
    found = []
    if period.queue is not None:
        found.append(TicketRow.queue == period.queue)
    if period.agent_id is not None:
        found.append(TicketRow.assignee_id == period.agent_id)
    return found


def _filtered(statement: Query, ticket_number: Any, period: Period) -> Query:
    """Only records of tickets the filters keep (without filters, every record counts)."""
    kept = _kept(period)
    if not kept:
        return statement
    return statement.join(TicketRow, TicketRow.number == ticket_number).where(*kept)


def _new(event: Any) -> ColumnElement[str]:
    return event.detail["new"].as_string()


def _old(event: Any) -> ColumnElement[str]:
    return event.detail["old"].as_string()


def opened(period: Period) -> Query:
    """Tickets created, per day."""
    kept = (
        select(_day(TicketRow.created_at, period).label("day"))
        .where(_within(TicketRow.created_at, period.start, period.end), *_kept(period))
        .subquery()
    )
    return select(kept.c.day, func.count()).group_by(kept.c.day)


def resolved(period: Period) -> Query:
    """Tickets with a resolution (a status event to resolved, or the ticket's resolved_at) in the period:
    ('day', day, tickets) rows, and ('agent', assignee, tickets, reopened) rows, where reopened counts a
    status event from resolved to open after the ticket's first resolution in the period. Status events
    are read once, from the period's start on: a reopen after a resolution in the period is among them."""
    resolved_, open_ = Status.RESOLVED.value, Status.OPEN.value
    changes = (
        select(
            TimelineRow.ticket_number.label("n"),
            TimelineRow.at.label("at"),
            _new(TimelineRow).label("new"),
            _old(TimelineRow).label("old"),
        )
        .where(
            TimelineRow.action == _STATUS,
            TimelineRow.at >= period.start,
            # Only changes from or to resolved count here, and their JSON text says so: a cheap test
            # that spares parsing the other changes' JSON (PostgreSQL parses json at every ->>).
            cast(TimelineRow.detail, Text).like(f'%"{resolved_}"%'),
        )
        .cte("changes")
    )
    moments = union_all(
        select(changes.c.n, changes.c.at).where(changes.c.new == resolved_, changes.c.at < period.end),
        select(TicketRow.number, TicketRow.resolved_at).where(
            _within(TicketRow.resolved_at, period.start, period.end)
        ),
    ).cte("moments")
    firsts = select(moments.c.n, func.min(moments.c.at).label("first")).group_by(moments.c.n).cte("firsts")
    owners = (
        select(firsts.c.n, firsts.c.first, TicketRow.assignee_id.label("agent"))
        .join(TicketRow, TicketRow.number == firsts.c.n)
        .where(*_kept(period))
        .cte("owners")
    )
    reopens = (
        select(changes.c.n, func.max(changes.c.at).label("last"))
        .where(changes.c.old == resolved_, changes.c.new == open_)
        .group_by(changes.c.n)
        .subquery("reopens")
    )
    again = case((reopens.c.last > owners.c.first, 1), else_=0)
    per_agent = (
        select(literal("agent").label("what"), owners.c.agent, func.count(), func.sum(again))
        .select_from(owners.outerjoin(reopens, reopens.c.n == owners.c.n))
        .group_by(owners.c.agent)
    )
    day_rows = select(moments.c.n, _day(moments.c.at, period).label("day"))
    if _kept(period):
        day_rows = day_rows.where(moments.c.n.in_(select(owners.c.n)))
    days = day_rows.subquery("days")
    per_day = select(literal("day"), days.c.day, func.count(days.c.n.distinct()), literal(0))
    return union_all(per_day.group_by(days.c.day), per_agent)  # type: ignore[return-value]


def sla(period: Period) -> Query:
    """(metric, clocks that ended, of them met on time): met in the period, or missed (a running clock
    fell due, a paused or cancelled one was breached) by `until`."""
    clock = SlaClockRow
    met = select(clock.metric, func.count(), func.sum(case((clock.breached_at.is_(None), 1), else_=0))).where(
        clock.state == ClockState.MET, _within(clock.met_at, period.start, period.end)
    )
    due = select(clock.metric, func.count(), literal(0)).where(
        clock.state == ClockState.RUNNING, _within(clock.due_at, period.start, period.until)
    )
    breached = select(clock.metric, func.count(), literal(0)).where(
        clock.state.not_in([ClockState.MET, ClockState.RUNNING]),
        _within(clock.breached_at, period.start, period.until),
    )
    parts = [_filtered(s, clock.ticket_number, period).group_by(clock.metric) for s in (met, due, breached)]
    return union_all(*parts)  # type: ignore[return-value]


class micros(FunctionElement[int]):
    """A moment as whole microseconds since the epoch, computed by the database: thousands of spans come
    back as plain integers instead of each being parsed into a datetime."""

    type = BigInteger()
    inherit_cache = True


@compiles(micros, "sqlite")
def _micros_sqlite(element: micros, compiler: Any, **kw: Any) -> str:
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's form): whole seconds, then the digits after.
    moment = compiler.process(next(iter(element.clauses)), **kw)
    return f"(CAST(strftime('%s', {moment}) AS INTEGER) * 1000000 + CAST(substr({moment}, 21, 6) AS INTEGER))"


@compiles(micros, "postgresql")
def _micros_postgresql(element: micros, compiler: Any, **kw: Any) -> str:
    moment = compiler.process(next(iter(element.clauses)), **kw)
    return (
        f"(CAST(EXTRACT(EPOCH FROM date_trunc('second', {moment})) AS BIGINT) * 1000000"
        f" + CAST(EXTRACT(MICROSECONDS FROM {moment}) AS BIGINT) % 1000000)"
    )


def _status_before() -> ColumnElement[str]:
    """The status just before a clock was met: the old status of a status event at that very moment (the
    first such), else the new one of the last before it. A change at the moment with no old status gives
    '' (not a status, and not NULL, which says there was no change at the moment). Two subqueries rather
    than one ordered by whether a change was at that moment: SQLite does not see the outer row from a
    subquery's ORDER BY."""
    event = aliased(TimelineRow)
    met_at = SlaClockRow.met_at
    changes = (event.ticket_number == SlaClockRow.ticket_number, event.action == _STATUS)
    at_once = select(func.coalesce(_old(event), "")).where(*changes, event.at == met_at)
    earlier = select(_new(event)).where(*changes, event.at < met_at)
    return func.coalesce(
        at_once.order_by(event.id).limit(1).scalar_subquery(),
        earlier.order_by(event.at.desc(), event.id.desc()).limit(1).scalar_subquery(),
    )


def _met_clocks(period: Period) -> list[ColumnElement[bool]]:
    """The met clocks whose durations count: cycle 1 of first response, and every resolution clock."""
    clock = SlaClockRow
    return [
        clock.state == ClockState.MET,
        _within(clock.met_at, period.start, period.end),
        clock.metric.in_([Metric.FIRST_RESPONSE, Metric.RESOLUTION]),
        (clock.metric == Metric.RESOLUTION.value) | (clock.cycle == 1),
        *_kept(period),
    ]


MISSING = "missing"
"""The `measures` row that counts met clocks without a kept duration (then the ranks are not used)."""


def _met(period: Period) -> Any:
    """The met clocks whose durations count, as (r, day, agent, v): r 0 for a first response, 1 for a
    resolution; the day of the period it was met on; its ticket's assignee (first responses only, when
    there is no filter); the business time it kept, in microseconds (NULL if it kept none)."""
    clock = SlaClockRow
    first_response = clock.metric == Metric.FIRST_RESPONSE.value
    if _kept(period):
        owner: Any = TicketRow.assignee_id
    else:  # only first responses count per agent: their tickets alone are looked up, one by one
        assignee = select(TicketRow.assignee_id).where(TicketRow.number == clock.ticket_number)
        owner = case((first_response, assignee.scalar_subquery()))
    chosen = select(
        case((first_response, 0), else_=1).label("r"),
        _day(clock.met_at, period).label("day"),
        owner.label("agent"),
        type_coerce(clock.business, BigInteger).label("v"),
    )
    if _kept(period):
        chosen = chosen.join(TicketRow, TicketRow.number == clock.ticket_number)
    return chosen.where(*_met_clocks(period))  # every column in ix_sla_clocks_met: no clock row is read


def durations(period: Period) -> Query:
    """The kept durations of the period's met clocks, one row each (see `_met`), for Python to rank:
    SQLite hands over tens of thousands of integers faster than it ranks them with window functions."""
    return _met(period)  # type: ignore[no-any-return]


def measures(period: Period) -> Query:
    """The values a report's spreads are made of (durations in microseconds), ranked by PostgreSQL: one
    row per spread, (what, key, n, low, high, ninetieth) for first responses ('all', 0), resolutions
    ('all', 1), first responses per day ('day', day) and per assignee ('agent', agent): n durations and
    the values at the ranks `bot.reports.ranks` names, picked from each spread's values sorted into an
    array. And ('missing', 0, clocks without a kept duration, NULL, NULL, NULL)."""
    met = _met(period).cte("met")
    spreads = (
        ("all", met.c.r, ()),  # r: 0 first responses, 1 resolutions
        ("day", met.c.day, (met.c.r == 0,)),
        ("agent", met.c.agent, (met.c.r == 0, met.c.agent.is_not(None))),
    )
    picked = []
    for what, key, where in spreads:
        values = select(
            key.label("key"),
            func.count().label("n"),
            array_agg(aggregate_order_by(met.c.v, met.c.v)).label("values"),
        )
        inner = values.where(*where).group_by(key).subquery()
        n, found = inner.c.n, inner.c["values"]
        low, high, ninetieth = found[(n + 1) // 2], found[n // 2 + 1], found[(9 * n + 9) // 10]
        picked.append(select(literal(what), inner.c.key, n, low, high, ninetieth))
    nothing = literal(None, BigInteger)
    missing = select(
        literal(MISSING), literal(0), func.count() - func.count(met.c.v), nothing, nothing, nothing
    ).select_from(met)
    return union_all(*picked, missing)  # type: ignore[return-value]


def spans(period: Period) -> Query:
    """The met clocks whose durations count, a few plain columns each (there are tens of thousands):
    cycle 1 of the first-response clocks (which never pause) and every resolution clock met in the period,
    and for those whether the ticket was waiting on the customer when it was met (then it was paused)."""
    clock = SlaClockRow
    return (
        select(*_span_columns(), type_coerce(clock.business, BigInteger))
        .join(TicketRow, TicketRow.number == clock.ticket_number)
        .where(*_met_clocks(period))
    )


def _span_columns() -> list[Any]:
    """What a met clock's `Span` is made of: (is a resolution, queue, assignee, resumed, met, consumed
    seconds, met while paused)."""
    clock = SlaClockRow
    resolution = clock.metric == Metric.RESOLUTION.value
    paused = func.coalesce(_status_before(), "") == Status.WAITING_ON_CUSTOMER.value
    return [
        case((resolution, 1), else_=0),
        TicketRow.queue,
        TicketRow.assignee_id,
        micros(clock.resumed_at),
        micros(clock.met_at),
        type_coerce(clock.consumed, Integer),
        case((resolution, case((paused, 1), else_=0)), else_=0),
    ]


def _span(
    is_resolution: int, queue: str, agent: int | None, resumed: int, met: int, seconds: int, paused: int
) -> Span:
    return Span(queue, agent, resumed, met, seconds * 1_000_000, paused == 1)


async def keep_durations(
    session: AsyncSession, hours_for: Callable[[str], BusinessHours], batch: int = 2000
) -> int:
    """Keep the business time of every met clock a report measures that has none (clocks met before
    migration 0012): measured as reports measured it, in the hours of its ticket's queue now, and
    committed batch by batch. Returns how many clocks it measured (`relaydesk db upgrade` runs it)."""
    clock = SlaClockRow
    kept = 0
    after = 0
    while True:
        unkept = (
            select(clock.id, *_span_columns())
            .join(TicketRow, TicketRow.number == clock.ticket_number)
            .where(
                clock.state == ClockState.MET,
                clock.met_at.is_not(None),
                clock.metric.in_([Metric.FIRST_RESPONSE, Metric.RESOLUTION]),
                (clock.metric == Metric.RESOLUTION.value) | (clock.cycle == 1),
                clock.business.is_(None),
                clock.id > after,
            )
            .order_by(clock.id)
            .limit(batch)
        )
        found = (await session.execute(unkept)).all()
        if not found:
            return kept
        measured = elapsed([_span(*row[1:]) for row in found], hours_for)
        values = [
            {"id": row[0], "business": value * _MICROSECOND}
            for row, value in zip(found, measured, strict=True)
        ]
        await session.execute(update(SlaClockRow), values)
        await session.commit()
        kept += len(found)
        after = found[-1][0]


def ratings(period: Period) -> Query:
    """(day, assignee, ratings 4-5, ratings) of the surveys rated in the period."""
    survey = SurveyRow
    rated = (
        select(
            _day(survey.rated_at, period).label("day"),
            TicketRow.assignee_id.label("agent"),
            case((survey.rating >= 4, 1), else_=0).label("good"),
        )
        .select_from(survey)
        .outerjoin(TicketRow, TicketRow.number == survey.ticket_number)
        .where(survey.rating.is_not(None), _within(survey.rated_at, period.start, period.end), *_kept(period))
        .subquery()
    )
    return select(rated.c.day, rated.c.agent, func.sum(rated.c.good), func.count()).group_by(
        rated.c.day, rated.c.agent
    )


def responses(period: Period) -> Query:
    """(surveys sent in the period and not withdrawn, of them rated)."""
    survey = SurveyRow
    statement = select(func.count(), func.count(survey.rating)).where(
        _within(survey.sent_at, period.start, period.end), survey.state != SurveyState.WITHDRAWN
    )
    return _filtered(statement, survey.ticket_number, period)


def promises(period: Period) -> Query:
    """(promises due by `until` and not cancelled, of them kept on time: kept, never broken)."""
    promise = PromiseRow
    on_time = and_(
        promise.state == PromiseState.KEPT,
        promise.broken_at.is_(None),
        (promise.kept_at.is_(None)) | (promise.kept_at <= promise.due_at),
    )
    statement = select(func.count(), func.sum(case((on_time, 1), else_=0))).where(
        _within(promise.due_at, period.start, period.until), promise.state != PromiseState.CANCELLED
    )
    return _filtered(statement, promise.ticket_number, period)


def statements(period: Period, dialect: str = "") -> list[Query]:
    """Every statement a tally runs on a database of that dialect (the benchmark times them alone, as
    the database's share)."""
    return [
        opened(period),
        resolved(period),
        sla(period),
        measures(period) if dialect == "postgresql" else durations(period),
        ratings(period),
        responses(period),
        promises(period),
    ]


async def tally(connection: AsyncSession | AsyncConnection, period: Period) -> Tally:
    """Count the period in SQL (as `bot.reports.tally` counts domain objects)."""
    day_count = len(period.days)
    bind = connection.bind if isinstance(connection, AsyncSession) else connection
    assert bind is not None, "a report needs a session bound to its database"
    if bind.dialect.name == "postgresql":
        # PostgreSQL compiles queries it expects to be long to machine code (JIT): over a million tickets
        # that costs a report more (about 100 ms) than it saves. For this transaction only.
        await connection.execute(text("SET LOCAL jit = off"))
        # Durations are ranked in memory (a month of a busy desk sorts in a few MB, not on disk).
        await connection.execute(text("SET LOCAL work_mem = '64MB'"))

    async def rows(statement: Query) -> Sequence[Any]:
        return (await connection.execute(statement)).all()

    opened_per_day = [0] * day_count
    for day, count in await rows(opened(period)):
        opened_per_day[day] = count
    resolved_per_day = [0] * day_count
    resolved_total = reopened = 0
    resolved_by_agent: dict[int, int] = {}
    for what, key, count, again in await rows(resolved(period)):
        if what == "day":
            resolved_per_day[key] = count
            continue
        resolved_total += count
        reopened += int(again or 0)
        if key is not None:
            resolved_by_agent[key] = count
    sla_parts = {metric: [0, 0] for metric in Metric}
    for metric, count, on_time in await rows(sla(period)):
        sla_parts[Metric(metric)][0] += int(on_time or 0)
        sla_parts[Metric(metric)][1] += count
    first: list[Span] = []
    resolutions: list[Span] = []
    if bind.dialect.name == "postgresql":
        measured = _measured(await rows(measures(period)), day_count)
    else:
        measured = _ranked(await rows(durations(period)), day_count)
    if measured is None:  # clocks met before their durations were kept: measured in Python
        for *columns, kept in await rows(spans(period)):
            span = dataclasses.replace(_span(*columns), business=kept)
            (resolutions if columns[0] else first).append(span)
    csat = [[0, 0] for _ in range(day_count)]
    csat_by_agent: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for day, agent, good, count in await rows(ratings(period)):
        csat[day][0] += int(good or 0)
        csat[day][1] += count
        if agent is not None:
            csat_by_agent[agent][0] += int(good or 0)
            csat_by_agent[agent][1] += count
    [(sent, rated)] = await rows(responses(period))
    [(due, kept)] = await rows(promises(period))
    agents = set(resolved_by_agent) | set(csat_by_agent) | {s.assignee_id for s in first if s.assignee_id}
    if measured is not None:
        agents |= set(measured.first_response_by_agent)
    names = {agent: "?" for agent in agents}
    if agents:
        found = await rows(select(AgentRow.id, AgentRow.display_name).where(AgentRow.id.in_(sorted(agents))))
        names.update({agent_id: name for agent_id, name in found})
    return Tally(
        period=period,
        opened=tuple(opened_per_day),
        resolved=tuple(resolved_per_day),
        resolved_total=resolved_total,
        reopened=reopened,
        resolved_by_agent=resolved_by_agent,
        first_responses=tuple(first),
        resolutions=tuple(resolutions),
        sla={metric: Ratio(part, whole) for metric, (part, whole) in sla_parts.items()},
        csat=tuple(Ratio(part, whole) for part, whole in csat),
        csat_by_agent={agent: Ratio(part, whole) for agent, (part, whole) in csat_by_agent.items()},
        response=Ratio(rated, sent),
        promises=Ratio(int(kept or 0), due),
        agents=names,
        measured=measured,
    )


def _ranked(found: Sequence[Any], day_count: int) -> Measured | None:
    """The spreads of the rows of `durations`, ranked here; None when a met clock has no kept duration."""
    first: list[int] = []
    resolutions: list[int] = []
    days: list[list[int]] = [[] for _ in range(day_count)]
    agents: dict[int, list[int]] = defaultdict(list)
    for r, day, agent, value in found:
        if value is None:
            return None
        if r:
            resolutions.append(value)
            continue
        first.append(value)
        days[day].append(value)
        if agent is not None:
            agents[agent].append(value)
    return Measured(
        first_response=spread_of(first),
        first_response_days=tuple(spread_of(values).median for values in days),
        first_response_by_agent={agent: spread_of(values) for agent, values in agents.items()},
        resolution=spread_of(resolutions),
    )


def _measured(found: Sequence[Any], day_count: int) -> Measured | None:
    """The spreads from the rows of `measures`; None when a met clock has no kept duration."""
    if any(what == MISSING and n for what, _, n, *_ in found):
        return None
    spreads = {
        (what, key): spread_at(n, low, high, ninetieth)
        for what, key, n, low, high, ninetieth in found
        if what != MISSING
    }

    def spread(what: str, key: int) -> Spread:
        return spreads.get((what, key), Spread(0, None, None))

    return Measured(
        first_response=spread("all", 0),
        first_response_days=tuple(spread("day", day).median for day in range(day_count)),
        first_response_by_agent={key: found for (what, key), found in spreads.items() if what == "agent"},
        resolution=spread("all", 1),
    )
