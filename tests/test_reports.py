"""Reports: each figure checked against a week of tickets built by hand, with the arithmetic in comments.

The desk's hours are Mon-Fri 09:00-17:00 Europe/Berlin (CET, UTC+1 in January) for `general`; `billing`
is open around the clock, so per-queue hours are exercised too. The week is Mon 12 - Sun 18 January 2026.

    t0  Grace  general  opened Thu 8, resolved Fri 9, rated 2 on Mon 12 09:00, reopened Mon 12 10:00
    t1  Ada    general  opened Fri 9 16:30, first reply Mon 09:50 (target 1h: met late),
                        resolved Tue 11:00, reopened Tue 15:00, resolved again Wed 11:00, rated 4
    t2  Ada    general  opened Mon 10:00, first reply 10:30, waiting Mon 12:00 - Tue 15:00, resolved
                        Wed 10:00, rated 5
    t3  Grace  general  opened Mon 09:00, first reply 11:00, waiting from Mon 13:00 until it resolved
                        itself Fri 13:00 (met while paused), rated 3; its update clock breached Mon 12:00
    t4  Grace  billing  opened Mon 18:00, first reply Tue 09:20, still open
    t5  -      general  opened Fri 16 15:00, first response due 16:00 and still running
    t6  Ada    general  opened Tue 09:00, resolved Tue 10:00, survey expired unanswered (no clocks, to keep
                        the arithmetic short)
"""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

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
from bot.reports import (
    TEXT_LIMIT,
    AgentRow,
    Ratio,
    ReportData,
    Spread,
    Stats,
    chart_png,
    compute,
    daily,
    hm,
    median,
    p90,
    render_text,
)

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = BusinessHours.build(
    "office", "Europe/Berlin", {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
)
ALWAYS = BusinessHours.build("always", "Europe/Berlin", {}, always=True)
HOURS = {"general": OFFICE, "billing": ALWAYS}
ADA, GRACE = 7, 8
M = timedelta(minutes=1)
H = timedelta(hours=1)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Berlin wall time in January 2026, as UTC (Mon 12 is day 12)."""
    return datetime(2026, 1, day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


START, END = at(12), at(19)


def hours_for(queue: str) -> BusinessHours:
    return HOURS[queue]


def ticket(
    number: int,
    created: datetime,
    assignee: int | None,
    status: Status,
    queue: str = "general",
    resolved: datetime | None = None,
) -> Ticket:
    return Ticket(
        kind=TicketKind.EXTERNAL,
        queue=queue,
        priority=Priority.NORMAL,
        subject=f"ticket {number}",
        customer_id=100 + number,
        customer_user_id=f"U{number}",
        platform="console",
        channel_id="C1",
        created_at=created,
        updated_at=created,
        status=status,
        assignee_id=assignee,
        resolved_at=resolved,
        number=number,
    )


def met(
    number: int,
    metric: Metric,
    target: timedelta,
    started: datetime,
    met_at: datetime,
    *,
    consumed: timedelta = timedelta(0),
    resumed: datetime | None = None,
    late: bool = False,
    cycle: int = 1,
) -> SlaClock:
    return SlaClock(
        number,
        metric,
        cycle,
        target,
        started_at=started,
        resumed_at=resumed or started,
        due_at=started + target,  # not read for met clocks
        state=ClockState.MET,
        consumed=consumed,
        met_at=met_at,
        breached_at=met_at if late else None,
    )


def status(number: int, when: datetime, old: Status, new: Status) -> TimelineEvent:
    """As the desk logs it: `log(..., "status", old=..., new=...)` stores the words as strings."""
    return TimelineEvent(number, "status", "someone", when, {"old": str(old), "new": str(new)})


def survey(
    number: int,
    cycle: int,
    sent: datetime,
    rating: int | None = None,
    rated: datetime | None = None,
    state: SurveyState | None = None,
) -> Survey:
    chosen = state or (SurveyState.RATED if rating is not None else SurveyState.OPEN)
    return Survey(number, 100 + number, cycle, sent, sent + timedelta(days=3), chosen, rating, rated)


def promise(
    number: int,
    serial: int,
    due: datetime,
    state: PromiseState = PromiseState.OPEN,
    kept: datetime | None = None,
    broken: datetime | None = None,
) -> Promise:
    return Promise(number, serial, "call back", due, "Ada", due - 2 * H, state, kept, broken)


def week() -> ReportData:
    tickets = [
        ticket(0, at(8, 10), GRACE, Status.OPEN, resolved=at(9, 10)),
        ticket(1, at(9, 16, 30), ADA, Status.RESOLVED, resolved=at(14, 11)),
        ticket(2, at(12, 10), ADA, Status.RESOLVED, resolved=at(14, 10)),
        ticket(3, at(12, 9), GRACE, Status.RESOLVED, resolved=at(16, 13)),
        ticket(4, at(12, 18), GRACE, Status.OPEN, queue="billing"),
        ticket(5, at(16, 15), None, Status.NEW),
        ticket(6, at(13, 9), ADA, Status.RESOLVED, resolved=at(13, 10)),
    ]
    clocks = [
        met(0, Metric.FIRST_RESPONSE, 4 * H, at(8, 10), at(8, 11)),  # before the week: not counted
        # Fri 16:30-17:00 (30m) + Mon 09:00-09:50 (50m) = 1h20m of business time, over the 1h target.
        met(1, Metric.FIRST_RESPONSE, H, at(9, 16, 30), at(12, 9, 50), late=True),
        met(2, Metric.FIRST_RESPONSE, H, at(12, 10), at(12, 10, 30)),  # 30m
        # Paused Mon 12:00 after 2h (consumed), resumed Tue 15:00: Tue 15-17 (2h) + Wed 09-10 (1h) = 3h.
        met(2, Metric.RESOLUTION, 40 * H, at(12, 10), at(14, 10), consumed=2 * H, resumed=at(13, 15)),
        SlaClock(2, Metric.UPDATE, 1, 8 * H, at(12, 10, 30), at(13, 15), at(14, 15), ClockState.CANCELLED),
        met(3, Metric.FIRST_RESPONSE, 4 * H, at(12, 9), at(12, 11)),  # 2h
        # Ran Mon 09:00-13:00 (4h, consumed), then paused until it was met on Fri: 4h, not 40h.
        met(3, Metric.RESOLUTION, 40 * H, at(12, 9), at(16, 13), consumed=4 * H),
        SlaClock(
            3,
            Metric.UPDATE,
            1,
            H,
            at(12, 11),
            at(12, 11),
            at(12, 12),
            ClockState.CANCELLED,
            H,
            None,
            at(12, 12),
        ),
        # Billing is open around the clock: Mon 18:00 to Tue 09:20 is 15h20m.
        met(4, Metric.FIRST_RESPONSE, 24 * H, at(12, 18), at(13, 9, 20)),
        SlaClock(
            4, Metric.RESOLUTION, 1, 200 * H, at(12, 18), at(12, 18), at(12, 18) + 200 * H
        ),  # due next week
        SlaClock(
            5, Metric.FIRST_RESPONSE, 1, H, at(16, 15), at(16, 15), at(16, 16)
        ),  # overdue, still running
    ]
    events = [
        status(0, at(9, 10), Status.OPEN, Status.RESOLVED),
        status(0, at(12, 10), Status.RESOLVED, Status.OPEN),  # reopens an earlier week's resolution
        status(1, at(12, 9, 50), Status.NEW, Status.OPEN),
        status(1, at(13, 11), Status.OPEN, Status.RESOLVED),
        status(1, at(13, 15), Status.RESOLVED, Status.OPEN),
        status(1, at(14, 11), Status.OPEN, Status.RESOLVED),
        status(2, at(12, 10, 30), Status.NEW, Status.OPEN),
        status(2, at(12, 12), Status.OPEN, Status.WAITING_ON_CUSTOMER),
        status(2, at(13, 15), Status.WAITING_ON_CUSTOMER, Status.OPEN),
        status(2, at(14, 10), Status.OPEN, Status.RESOLVED),
        status(3, at(12, 11), Status.NEW, Status.OPEN),
        status(3, at(12, 13), Status.OPEN, Status.WAITING_ON_CUSTOMER),
        status(3, at(16, 13), Status.WAITING_ON_CUSTOMER, Status.RESOLVED),
        status(6, at(13, 10), Status.NEW, Status.RESOLVED),
        TimelineEvent(3, "breached", "Relaydesk", at(12, 12), {"metric": "update", "cycle": "1"}),
    ]
    surveys = [
        survey(0, 1, at(9, 10), 2, at(12, 9)),  # sent last week, rated this week
        survey(1, 1, at(13, 11), state=SurveyState.WITHDRAWN),  # the reopen withdrew it
        survey(1, 2, at(14, 11), 4, at(14, 12)),
        survey(2, 1, at(14, 10), 5, at(14, 10, 30)),
        survey(3, 1, at(16, 13), 3, at(16, 14)),
        survey(6, 1, at(13, 10), state=SurveyState.EXPIRED),
    ]
    promises = [
        promise(2, 1, at(13, 12), PromiseState.KEPT, kept=at(13, 11)),
        promise(1, 1, at(14, 12), PromiseState.KEPT, kept=at(14, 13), broken=at(14, 12)),  # kept late
        promise(3, 1, at(15, 12), broken=at(15, 12)),  # still open, overdue
        promise(2, 2, at(15, 12), PromiseState.CANCELLED),
        promise(4, 1, at(20, 12)),  # due next week
        promise(4, 2, at(16, 16), PromiseState.KEPT, kept=at(16, 15)),
    ]
    return ReportData(tickets, clocks, promises, surveys, events, {ADA: "Ada", GRACE: "Grace"})


def stats(queue: str | None = None, agent_id: int | None = None) -> Stats:
    return compute(week(), START, END, hours_for, queue, agent_id)


# --- medians and p90 -------------------------------------------------------------------------------------


def test_median_of_an_odd_count_is_the_middle_value() -> None:
    assert median([3 * H, H, 2 * H]) == 2 * H


def test_median_of_an_even_count_is_the_mean_of_the_two_middle_values() -> None:
    assert median([10 * H, H, 3 * H, 2 * H]) == 2 * H + 30 * M


def test_p90_is_the_nearest_rank() -> None:
    ten = [n * H for n in range(1, 11)]
    assert p90(ten) == 9 * H  # ceil(0.9 * 10) = 9th
    assert p90([*ten, 11 * H]) == 10 * H  # ceil(0.9 * 11) = ceil(9.9) = 10th
    assert p90([n * H for n in range(20, 0, -1)]) == 18 * H  # ceil(18.0) = 18th, whatever the order
    assert p90([5 * M]) == 5 * M


def test_no_values_have_no_median_or_p90() -> None:
    assert median([]) is None
    assert p90([]) is None
    assert Spread.of([]) == Spread(0, None, None)


# --- the week's figures ---------------------------------------------------------------------------------


def test_opened_and_resolved_count_tickets_in_the_period() -> None:
    result = stats()
    assert result.opened == 5  # t2, t3, t4, t5, t6 (t0 and t1 opened the week before)
    assert result.resolved == 4  # t1 (twice, counted once), t2, t3, t6; t0 was resolved last week


def test_first_response_counts_business_hours_across_the_weekend_and_per_queue() -> None:
    # t1 1h20m (Friday 30m + Monday 50m), t2 30m, t3 2h, t4 15h20m (billing, always open).
    # Sorted 30m, 1h20m, 2h, 15h20m: median (1h20m + 2h) / 2 = 1h40m; p90 rank ceil(3.6) = 4: 15h20m.
    assert stats().first_response == Spread(4, H + 40 * M, 15 * H + 20 * M)


def test_resolution_leaves_out_time_waiting_on_the_customer() -> None:
    # t2 2h before the wait + 3h after it = 5h (16h of business time, 48h by the calendar);
    # t3 4h: resolved while paused, so nothing after its pause counts (not 4h + 36h).
    # Median (4h + 5h) / 2 = 4h30m; p90 rank ceil(1.8) = 2: 5h.
    assert stats().resolution == Spread(2, 4 * H + 30 * M, 5 * H)


def test_sla_achievement_counts_met_late_and_overdue_running_clocks_as_missed() -> None:
    sla = stats().sla
    # Met on time t2, t3, t4; met late t1; t5 running past its 16:00 due time. t0 met last week.
    assert sla[Metric.FIRST_RESPONSE] == Ratio(3, 5)
    assert sla[Metric.FIRST_RESPONSE].percent == 60
    # t2 and t3 met; t4's running clock is due next week, so not missed yet.
    assert sla[Metric.RESOLUTION] == Ratio(2, 2)
    # t3's update clock breached Mon 12:00 and was cancelled at the resolution; t2's never breached.
    assert sla[Metric.UPDATE] == Ratio(0, 1)
    assert sla[Metric.NEXT_REPLY] == Ratio(0, 0)
    assert sla[Metric.NEXT_REPLY].percent is None


def test_csat_is_the_share_of_4_and_5_among_ratings_in_the_period() -> None:
    result = stats()
    # Rated this week: 2 (t0, sent last week), 4 (t1), 5 (t2), 3 (t3): two of four are 4-5.
    assert result.csat == Ratio(2, 4)
    assert result.csat.share == 0.5


def test_response_rate_is_rated_of_sent_in_the_period_without_withdrawn_surveys() -> None:
    # Sent this week: t1 cycle 2, t2, t3 (rated) and t6 (expired); t1 cycle 1 withdrawn by the reopen.
    assert stats().response == Ratio(3, 4)


def test_promises_kept_late_are_broken() -> None:
    # Due this week: kept on time (t2 #1, t4 #2), kept late (t1), overdue and open (t3); cancelled and
    # next week's left out.
    assert stats().promises == Ratio(2, 4)


def test_reopen_rate_is_of_tickets_resolved_in_the_period() -> None:
    # Resolved this week: t1, t2, t3, t6; t1 reopened after it. t0's reopen undoes last week's resolution.
    assert stats().reopens == Ratio(1, 4)
    assert stats().reopens.percent == 25


def test_per_agent_rows_for_recognition() -> None:
    assert stats().agents == (
        # t1, t2, t6 resolved; first responses 1h20m and 30m: median 55m; ratings 4 and 5.
        AgentRow(ADA, "Ada", 3, Spread(2, 55 * M, H + 20 * M), Ratio(2, 2)),
        # t3 resolved; first responses 2h and 15h20m: median 8h40m; ratings 2 (t0) and 3.
        AgentRow(GRACE, "Grace", 1, Spread(2, 8 * H + 40 * M, 15 * H + 20 * M), Ratio(0, 2)),
    )


def test_an_agent_without_a_known_name_is_shown_by_id() -> None:
    data = week()
    unnamed = ReportData(data.tickets, data.clocks, data.promises, data.surveys, data.events)
    assert [row.name for row in compute(unnamed, START, END, hours_for).agents] == ["agent 7", "agent 8"]


def test_now_holds_back_what_is_not_due_yet() -> None:
    result = compute(week(), START, END, hours_for, now=at(16, 15, 30))
    assert result.sla[Metric.FIRST_RESPONSE] == Ratio(3, 4)  # t5 is due at 16:00, not yet missed
    assert result.promises == Ratio(1, 3)  # t4 #2 is due at 16:00
    assert result.opened == 5  # what already happened still counts


# --- filters -------------------------------------------------------------------------------------------


def test_queue_filter() -> None:
    result = stats(queue="general")
    assert result.opened == 4  # t4 is billing's
    # 30m, 1h20m, 2h: median 1h20m; p90 rank ceil(2.7) = 3: 2h.
    assert result.first_response == Spread(3, H + 20 * M, 2 * H)
    assert result.sla[Metric.FIRST_RESPONSE] == Ratio(2, 4)
    assert result.promises == Ratio(1, 3)  # billing's promises (t4) left out
    assert result.resolved == 4
    assert stats(queue="billing").first_response == Spread(1, 15 * H + 20 * M, 15 * H + 20 * M)


def test_agent_filter() -> None:
    result = stats(agent_id=GRACE)  # t0, t3, t4
    assert (result.opened, result.resolved) == (2, 1)
    assert result.first_response == Spread(2, 8 * H + 40 * M, 15 * H + 20 * M)
    assert result.resolution == Spread(1, 4 * H, 4 * H)
    assert result.csat == Ratio(0, 2)
    assert result.reopens == Ratio(0, 1)
    assert result.reopens.percent == 0  # a measured zero, not "no data"
    assert result.promises == Ratio(1, 2)  # t3 overdue, t4 #2 kept
    assert [row.agent_id for row in result.agents] == [GRACE]


def test_records_of_unknown_tickets_count_only_without_filters() -> None:
    data = ReportData([], surveys=[survey(99, 1, at(13, 9), 5, at(13, 10))])
    assert compute(data, START, END, hours_for).csat == Ratio(1, 1)
    assert compute(data, START, END, hours_for, queue="general").csat == Ratio(0, 0)


# --- an empty period ------------------------------------------------------------------------------------


def test_an_empty_period_has_none_rather_than_zero() -> None:
    result = compute(week(), at(1), at(8), hours_for)
    assert (result.opened, result.resolved) == (0, 0)
    assert result.first_response == Spread(0, None, None)
    assert result.resolution == Spread(0, None, None)
    assert all(ratio.share is None for ratio in result.sla.values())
    for ratio in (result.csat, result.response, result.promises, result.reopens):
        assert ratio.share is None
        assert ratio.percent is None
    assert result.agents == ()
    assert compute(ReportData([]), START, END, hours_for).first_response.median is None


# --- daily points ---------------------------------------------------------------------------------------


def test_daily_points_per_local_day() -> None:
    points = daily(week(), START, END, hours_for, BERLIN)
    assert [p.day for p in points] == [date(2026, 1, d) for d in range(12, 19)]
    assert [p.opened for p in points] == [3, 1, 0, 0, 1, 0, 0]
    # Tue: t1's first resolution and t6; Wed: t1 again and t2; Fri: t3.
    assert [p.resolved for p in points] == [0, 2, 2, 0, 1, 0, 0]
    # Mon: 30m, 1h20m, 2h: median 1h20m; Tue: t4's 15h20m.
    assert [p.first_response_hours for p in points] == [4 / 3, 15 + 1 / 3, None, None, None, None, None]
    # Mon: a 2; Wed: a 4 and a 5; Fri: a 3.
    assert [p.csat for p in points] == [0.0, None, 1.0, None, 0.0, None, None]


def test_days_break_at_local_midnight_and_follow_the_period() -> None:
    # 00:30 in Berlin on Tuesday is Monday 23:30 UTC: it is Tuesday's ticket.
    late = ticket(1, at(13, 0, 30), None, Status.NEW)
    points = daily(ReportData([late]), at(12, 12), at(14, 6), hours_for, BERLIN)
    assert [(p.day, p.opened) for p in points] == [
        (date(2026, 1, 12), 0),
        (date(2026, 1, 13), 1),
        (date(2026, 1, 14), 0),
    ]
    assert daily(ReportData([late]), END, START, hours_for, BERLIN) == []


# --- words ----------------------------------------------------------------------------------------------


def test_hours_and_minutes() -> None:
    assert [hm(d) for d in (None, 45 * M, H + 12 * M, 41 * H, 30 * M + timedelta(seconds=29))] == [
        "—",
        "45m",
        "1h12m",
        "41h",
        "30m",
    ]


def test_render_text_mentions_each_figure() -> None:
    text = render_text(stats(), "Last 7 days · all queues")
    for expected in (
        "Last 7 days · all queues: 5 opened, 4 resolved",
        "First response median 1h40m, p90 15h20m (n=4)",
        "resolution median 4h30m, p90 5h (n=2)",
        "business hours",
        "first response 60% (3/5)",
        "next reply — (0)",
        "update 0% (0/1)",
        "resolution 100% (2/2)",
        "CSAT (rated 4-5) 50% (2/4)",
        "survey response rate 75% (3/4)",
        "Promises kept on time 50% (2/4)",
        "reopened 25% (1/4)",
        "• Ada: 3 resolved, first response 55m, CSAT 100% (2/2)",
        "• Grace: 1 resolved, first response 8h40m, CSAT 0% (0/2)",
    ):
        assert expected in text, expected
    assert len(text) <= TEXT_LIMIT


def test_render_text_of_an_empty_period() -> None:
    text = render_text(compute(ReportData([]), START, END, hours_for), "Today")
    assert text.startswith("Today: 0 opened, 0 resolved")
    assert "First response: none" in text
    assert "CSAT (rated 4-5) — (0)" in text
    assert "By agent" not in text


def test_render_text_fits_discord_however_many_agents() -> None:
    rows = tuple(
        AgentRow(n, "A very long agent display name " * 5, 10, Spread(1, H, H), Ratio(1, 1))
        for n in range(300)
    )
    base = stats()
    crowded = Stats(
        base.start,
        base.end,
        None,
        None,
        base.opened,
        base.resolved,
        base.first_response,
        base.resolution,
        base.sla,
        base.csat,
        base.response,
        base.promises,
        base.reopens,
        rows,
    )
    text = render_text(crowded, "x" * 5000)
    assert len(text) <= TEXT_LIMIT
    assert text.rstrip().endswith("more")
    shown = text.count("\n• ")
    assert f"…and {300 - shown} more" in text


# --- the chart ------------------------------------------------------------------------------------------


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the signature and that IHDR comes first."""
    assert png[:8] == PNG_SIGNATURE
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_chart_is_a_png_of_the_asked_size() -> None:
    points = daily(week(), START, END, hours_for, BERLIN)
    assert png_size(chart_png(points, "Last 7 days · all queues")) == (1200, 800)
    assert png_size(chart_png(points, "odd size", width_px=641, height_px=479)) == (641, 479)


def test_chart_of_no_data() -> None:
    assert png_size(chart_png([], "Nothing yet")) == (1200, 800)
    quiet = daily(ReportData([]), START, END, hours_for, BERLIN)
    assert png_size(chart_png(quiet, "A quiet week")) == (1200, 800)
