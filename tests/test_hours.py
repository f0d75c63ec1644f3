"""Business hours: open-time arithmetic checked against cases worked out by hand.

Each case writes the expected answer as a local wall time (`2026-01-12 Mon 09:59 CET`) with a comment
on how it was worked out, so a reader can check the arithmetic without running anything.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.hours import Block, BusinessHours, HoursError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
AUCKLAND = ZoneInfo("Pacific/Auckland")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
EVERY_DAY = (*WEEKDAYS, "sat", "sun")
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def local(zone: ZoneInfo, y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """An aware moment from a local wall time (never one skipped or repeated by DST in these tests)."""
    return datetime(y, mo, d, h, mi, tzinfo=zone)


def wall(moment: datetime, zone: ZoneInfo) -> str:
    """A moment as a local wall time, the way the expected answers are written."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %a %H:%M %Z")


def hours(
    week: dict[str, list[str]], zone: str = "Europe/Berlin", holidays: tuple[date, ...] = ()
) -> BusinessHours:
    return BusinessHours.build("test", zone, week, holidays)


def weekdays(*blocks: str, zone: str = "Europe/Berlin", holidays: tuple[date, ...] = ()) -> BusinessHours:
    """Mon-Fri with the same blocks every day."""
    return hours({day: list(blocks) for day in WEEKDAYS}, zone, holidays)


OFFICE = weekdays("09:00-17:00")
SPLIT = weekdays("09:00-12:00", "13:00-17:00")
FRIDAY_NIGHT = hours({"fri": ["22:00-06:00"]})
ALWAYS = BusinessHours.build("always", "Europe/Berlin", {}, always=True)


# --- weekends, and starts inside and outside open time -----------------------------------------------


def test_friday_1659_with_a_one_hour_target_is_due_monday_0959() -> None:
    """One minute left on Friday (16:59-17:00), the other 59 minutes from Monday 09:00."""
    opened = local(BERLIN, 2026, 1, 9, 16, 59)  # Friday
    assert wall(OFFICE.add(opened, HOUR), BERLIN) == "2026-01-12 Mon 09:59 CET"


def test_a_ticket_opened_on_saturday_starts_counting_on_monday_morning() -> None:
    """Nothing counts over the weekend: the hour runs Monday 09:00-10:00."""
    opened = local(BERLIN, 2026, 1, 10, 10, 0)  # Saturday
    assert wall(OFFICE.add(opened, HOUR), BERLIN) == "2026-01-12 Mon 10:00 CET"


def test_a_start_inside_open_time_counts_from_the_start() -> None:
    """Tuesday 10:00 + 2h, all inside 09:00-17:00."""
    opened = local(BERLIN, 2026, 1, 13, 10, 0)
    assert wall(OFFICE.add(opened, 2 * HOUR), BERLIN) == "2026-01-13 Tue 12:00 CET"


def test_a_start_before_opening_counts_from_opening() -> None:
    """Tuesday 07:00 is before 09:00: the 30 minutes run 09:00-09:30."""
    opened = local(BERLIN, 2026, 1, 13, 7, 0)
    assert wall(OFFICE.add(opened, 30 * MINUTE), BERLIN) == "2026-01-13 Tue 09:30 CET"


def test_a_start_after_closing_counts_from_the_next_morning() -> None:
    """Tuesday 18:00 is after 17:00: the 30 minutes run Wednesday 09:00-09:30."""
    opened = local(BERLIN, 2026, 1, 13, 18, 0)
    assert wall(OFFICE.add(opened, 30 * MINUTE), BERLIN) == "2026-01-14 Wed 09:30 CET"


def test_a_duration_that_exactly_fills_the_day_ends_at_closing_time() -> None:
    """Tuesday 16:00 + 1h is 17:00 the same day, not 09:00 the next morning."""
    opened = local(BERLIN, 2026, 1, 13, 16, 0)
    assert wall(OFFICE.add(opened, HOUR), BERLIN) == "2026-01-13 Tue 17:00 CET"


def test_a_forty_hour_target_is_one_whole_working_week() -> None:
    """5 days x 8h = 40h: Monday 09:00 + 40h is Friday 17:00; one hour more is the next Monday 10:00."""
    opened = local(BERLIN, 2026, 1, 12, 9, 0)  # Monday
    assert wall(OFFICE.add(opened, 40 * HOUR), BERLIN) == "2026-01-16 Fri 17:00 CET"
    assert wall(OFFICE.add(opened, 41 * HOUR), BERLIN) == "2026-01-19 Mon 10:00 CET"


def test_adding_zero_inside_open_time_is_the_start_itself() -> None:
    opened = local(BERLIN, 2026, 1, 13, 10, 0)
    assert OFFICE.add(opened, timedelta(0)) == opened


def test_adding_zero_outside_open_time_is_the_next_opening() -> None:
    """Zero open time from a closed moment is reached as soon as the queue opens."""
    saturday = local(BERLIN, 2026, 1, 10, 12, 0)
    assert wall(OFFICE.add(saturday, timedelta(0)), BERLIN) == "2026-01-12 Mon 09:00 CET"
    closing = local(BERLIN, 2026, 1, 13, 17, 0)  # 17:00 is already closed
    assert wall(OFFICE.add(closing, timedelta(0)), BERLIN) == "2026-01-14 Wed 09:00 CET"


def test_add_returns_utc_whatever_zone_the_start_is_in() -> None:
    due = OFFICE.add(local(NEW_YORK, 2026, 1, 13, 4, 0), HOUR)  # 04:00 EST = 10:00 CET
    assert due.utcoffset() == timedelta(0)
    assert wall(due, BERLIN) == "2026-01-13 Tue 11:00 CET"


def test_between_counts_only_open_time() -> None:
    """Friday 16:00 to Monday 10:00: 1h on Friday and 1h on Monday."""
    start, end = local(BERLIN, 2026, 1, 9, 16, 0), local(BERLIN, 2026, 1, 12, 10, 0)
    assert OFFICE.between(start, end) == 2 * HOUR


def test_between_is_zero_when_the_end_is_not_after_the_start() -> None:
    moment = local(BERLIN, 2026, 1, 13, 10, 0)
    assert OFFICE.between(moment, moment) == timedelta(0)
    assert OFFICE.between(moment, moment - HOUR) == timedelta(0)


def test_between_inside_one_closed_stretch_is_zero() -> None:
    """Saturday to Sunday: closed all the way."""
    assert OFFICE.between(local(BERLIN, 2026, 1, 10, 9), local(BERLIN, 2026, 1, 11, 18)) == timedelta(0)


# --- is_open and next_open -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wall_time", "expected"),
    [
        ((2026, 1, 13, 8, 59), False),
        ((2026, 1, 13, 9, 0), True),  # opening minute is open
        ((2026, 1, 13, 16, 59), True),
        ((2026, 1, 13, 17, 0), False),  # closing minute is closed
        ((2026, 1, 10, 12, 0), False),  # Saturday
    ],
)
def test_is_open_at_the_edges_of_a_block(wall_time: tuple[int, ...], expected: bool) -> None:
    assert OFFICE.is_open(local(BERLIN, *wall_time)) is expected


def test_next_open_is_the_moment_itself_when_open() -> None:
    moment = local(BERLIN, 2026, 1, 13, 10, 30)
    assert OFFICE.next_open(moment) == moment


@pytest.mark.parametrize(
    ("wall_time", "expected"),
    [
        ((2026, 1, 13, 7, 0), "2026-01-13 Tue 09:00 CET"),  # before opening
        ((2026, 1, 13, 17, 0), "2026-01-14 Wed 09:00 CET"),  # at closing
        ((2026, 1, 9, 20, 0), "2026-01-12 Mon 09:00 CET"),  # Friday evening: after the weekend
        ((2026, 1, 11, 23, 59), "2026-01-12 Mon 09:00 CET"),  # late Sunday
    ],
)
def test_next_open_when_closed(wall_time: tuple[int, ...], expected: str) -> None:
    assert wall(OFFICE.next_open(local(BERLIN, *wall_time)), BERLIN) == expected


# --- holidays ---------------------------------------------------------------------------------------------


def test_a_holiday_monday_pushes_the_weekend_case_to_tuesday() -> None:
    """Friday 16:59 + 1h: one minute on Friday, Monday 12 January is a holiday, 59 minutes on Tuesday."""
    office = weekdays("09:00-17:00", holidays=(date(2026, 1, 12),))
    opened = local(BERLIN, 2026, 1, 9, 16, 59)
    assert wall(office.add(opened, HOUR), BERLIN) == "2026-01-13 Tue 09:59 CET"


def test_easter_closes_from_good_friday_to_easter_monday() -> None:
    """Thursday 2 April 16:30 CEST + 1h: 30m on Thursday; Good Friday, the weekend and Easter Monday are
    closed; the other 30m on Tuesday 7 April."""
    office = weekdays("09:00-17:00", holidays=(date(2026, 4, 3), date(2026, 4, 6)))
    opened = local(BERLIN, 2026, 4, 2, 16, 30)
    assert wall(office.add(opened, HOUR), BERLIN) == "2026-04-07 Tue 09:30 CEST"
    assert office.between(opened, local(BERLIN, 2026, 4, 7, 9, 30)) == HOUR


def test_a_holiday_is_a_local_date_even_when_utc_is_still_the_day_before() -> None:
    """Auckland is UTC+13 in February: Waitangi Day, Friday 6 February 10:00 NZDT, is Thursday 21:00 UTC.
    The queue is closed then, and Thursday 16:30 + 1h runs 30m on Thursday and 30m on Monday 9 February."""
    office = weekdays("09:00-17:00", zone="Pacific/Auckland", holidays=(date(2026, 2, 6),))
    holiday_morning = local(AUCKLAND, 2026, 2, 6, 10, 0)
    assert holiday_morning.astimezone(UTC).date() == date(2026, 2, 5)
    assert not office.is_open(holiday_morning)
    assert wall(office.next_open(holiday_morning), AUCKLAND) == "2026-02-09 Mon 09:00 NZDT"
    opened = local(AUCKLAND, 2026, 2, 5, 16, 30)
    assert wall(office.add(opened, HOUR), AUCKLAND) == "2026-02-09 Mon 09:30 NZDT"


def test_a_holiday_just_after_local_midnight_is_closed_in_a_round_the_clock_week() -> None:
    """Weekdays 00:00-24:00 in Berlin, Tuesday 13 January a holiday: Tuesday 00:30 CET is Monday 23:30 UTC,
    and closed; Monday 23:30 CET + 1h is 30m on Monday, then Wednesday 00:30."""
    office = weekdays("00:00-24:00", holidays=(date(2026, 1, 13),))
    just_after_midnight = local(BERLIN, 2026, 1, 13, 0, 30)
    assert just_after_midnight.astimezone(UTC).date() == date(2026, 1, 12)
    assert not office.is_open(just_after_midnight)
    assert wall(office.add(local(BERLIN, 2026, 1, 12, 23, 30), HOUR), BERLIN) == "2026-01-14 Wed 00:30 CET"


def test_an_overnight_block_belongs_to_the_day_it_starts_on_for_holidays() -> None:
    """A holiday on the Friday drops the whole Friday 22:00-06:00 block; a holiday on the Saturday does
    not shorten Friday's block on Saturday morning."""
    friday_holiday = hours({"fri": ["22:00-06:00"]}, holidays=(date(2026, 1, 9),))
    assert not friday_holiday.is_open(local(BERLIN, 2026, 1, 10, 2, 0))
    saturday_holiday = hours({"fri": ["22:00-06:00"]}, holidays=(date(2026, 1, 10),))
    assert saturday_holiday.is_open(local(BERLIN, 2026, 1, 10, 2, 0))


# --- several blocks a day -------------------------------------------------------------------------------


def test_lunch_does_not_count() -> None:
    """09:00-12:00 and 13:00-17:00: Tuesday 11:30 + 1h is 30m before lunch and 30m after, so 13:30."""
    opened = local(BERLIN, 2026, 1, 13, 11, 30)
    assert wall(SPLIT.add(opened, HOUR), BERLIN) == "2026-01-13 Tue 13:30 CET"


def test_a_start_during_lunch_counts_from_the_afternoon_block() -> None:
    """Tuesday 12:15 + 15m: nothing counts until 13:00, so 13:15."""
    opened = local(BERLIN, 2026, 1, 13, 12, 15)
    assert wall(SPLIT.add(opened, 15 * MINUTE), BERLIN) == "2026-01-13 Tue 13:15 CET"
    assert not SPLIT.is_open(opened)
    assert wall(SPLIT.next_open(opened), BERLIN) == "2026-01-13 Tue 13:00 CET"


def test_a_duration_ending_at_lunch_ends_at_noon() -> None:
    """Tuesday 11:00 + 1h fills the morning block exactly: 12:00, not 13:00."""
    opened = local(BERLIN, 2026, 1, 13, 11, 0)
    assert wall(SPLIT.add(opened, HOUR), BERLIN) == "2026-01-13 Tue 12:00 CET"


def test_between_across_lunch_and_the_evening() -> None:
    """Tuesday 11:00 to 14:00 is 1h + 1h; Tuesday 16:30 to Wednesday 09:30 is 30m + 30m; a whole day is 7h."""
    assert SPLIT.between(local(BERLIN, 2026, 1, 13, 11), local(BERLIN, 2026, 1, 13, 14)) == 2 * HOUR
    assert SPLIT.between(local(BERLIN, 2026, 1, 13, 16, 30), local(BERLIN, 2026, 1, 14, 9, 30)) == HOUR
    assert SPLIT.between(local(BERLIN, 2026, 1, 13), local(BERLIN, 2026, 1, 14)) == 7 * HOUR


# --- overnight blocks ----------------------------------------------------------------------------------


def test_an_overnight_block_counts_past_midnight() -> None:
    """Friday 22:00-06:00: Friday 21:00 + 1h is 23:00; + 8h fills the block to Saturday 06:00."""
    opened = local(BERLIN, 2026, 1, 9, 21, 0)
    assert wall(FRIDAY_NIGHT.add(opened, HOUR), BERLIN) == "2026-01-09 Fri 23:00 CET"
    assert wall(FRIDAY_NIGHT.add(opened, 8 * HOUR), BERLIN) == "2026-01-10 Sat 06:00 CET"


def test_an_overnight_block_spills_the_rest_into_the_next_week() -> None:
    """Friday 21:00 + 9h: the 8h block, then 1h from next Friday 22:00, so Friday 16 January 23:00."""
    opened = local(BERLIN, 2026, 1, 9, 21, 0)
    assert wall(FRIDAY_NIGHT.add(opened, 9 * HOUR), BERLIN) == "2026-01-16 Fri 23:00 CET"


def test_saturday_morning_is_inside_fridays_overnight_block() -> None:
    """Saturday 05:00 is open (Friday's block runs to 06:00); + 2h is 1h now and 1h next Friday night."""
    saturday_early = local(BERLIN, 2026, 1, 10, 5, 0)
    assert FRIDAY_NIGHT.is_open(saturday_early)
    assert not FRIDAY_NIGHT.is_open(local(BERLIN, 2026, 1, 10, 6, 0))
    assert wall(FRIDAY_NIGHT.add(saturday_early, 2 * HOUR), BERLIN) == "2026-01-16 Fri 23:00 CET"


def test_between_over_an_overnight_block() -> None:
    """Friday 20:00 to Saturday 12:00 holds the whole block, 22:00-06:00: 8h."""
    start, end = local(BERLIN, 2026, 1, 9, 20), local(BERLIN, 2026, 1, 10, 12)
    assert FRIDAY_NIGHT.between(start, end) == 8 * HOUR


def test_next_open_before_an_overnight_block() -> None:
    assert wall(FRIDAY_NIGHT.next_open(local(BERLIN, 2026, 1, 10, 6)), BERLIN) == "2026-01-16 Fri 22:00 CET"


# --- around the clock -------------------------------------------------------------------------------


def test_always_open_counts_every_minute_even_across_a_dst_change() -> None:
    """Saturday 28 March 23:00 CET + 5h of real time is Sunday 05:00 CEST (the clocks skipped 02:00-03:00)."""
    opened = local(BERLIN, 2026, 3, 28, 23, 0)
    due = ALWAYS.add(opened, 5 * HOUR)
    assert wall(due, BERLIN) == "2026-03-29 Sun 05:00 CEST"
    assert ALWAYS.between(opened, due) == 5 * HOUR
    assert ALWAYS.is_open(local(BERLIN, 2026, 1, 10, 3, 0))
    assert ALWAYS.next_open(opened) == opened


# --- DST: Europe/Berlin (29 March / 25 October 2026) and America/New_York (8 March / 1 November 2026) ----


def test_berlin_office_hours_move_with_the_clocks_in_spring() -> None:
    """Friday 27 March 16:00 CET + 2h: 1h on Friday, then Monday 09:00-10:00, now CEST (08:00 UTC)."""
    opened = local(BERLIN, 2026, 3, 27, 16, 0)
    due = OFFICE.add(opened, 2 * HOUR)
    assert wall(due, BERLIN) == "2026-03-30 Mon 10:00 CEST"
    assert due == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)


def test_berlin_office_hours_move_with_the_clocks_in_autumn() -> None:
    """Friday 23 October 16:00 CEST + 2h: 1h on Friday, then Monday 26 October 09:00-10:00 CET."""
    opened = local(BERLIN, 2026, 10, 23, 16, 0)
    assert wall(OFFICE.add(opened, 2 * HOUR), BERLIN) == "2026-10-26 Mon 10:00 CET"


def test_berlin_overnight_block_is_one_hour_shorter_on_the_spring_forward_night() -> None:
    """Saturday 28 March 22:00 CET (21:00 UTC) to Sunday 06:00 CEST (04:00 UTC) is 7h of real time."""
    saturday_night = hours({"sat": ["22:00-06:00"]})
    start, end = local(BERLIN, 2026, 3, 28, 21), local(BERLIN, 2026, 3, 29, 12)
    assert saturday_night.between(start, end) == 7 * HOUR
    due = saturday_night.add(local(BERLIN, 2026, 3, 28, 22), 7 * HOUR)
    assert wall(due, BERLIN) == "2026-03-29 Sun 06:00 CEST"
    assert saturday_night.is_open(local(BERLIN, 2026, 3, 29, 5, 30))


def test_berlin_overnight_block_is_one_hour_longer_on_the_fall_back_night() -> None:
    """Saturday 24 October 22:00 CEST (20:00 UTC) to Sunday 06:00 CET (05:00 UTC) is 9h; 8h in, the wall
    clock reads only 05:00 CET (04:00 UTC), because 02:00-03:00 happened twice."""
    saturday_night = hours({"sat": ["22:00-06:00"]})
    start, end = local(BERLIN, 2026, 10, 24, 21), local(BERLIN, 2026, 10, 25, 12)
    assert saturday_night.between(start, end) == 9 * HOUR
    due = saturday_night.add(local(BERLIN, 2026, 10, 24, 22), 8 * HOUR)
    assert wall(due, BERLIN) == "2026-10-25 Sun 05:00 CET"


def test_berlin_whole_day_blocks_are_23_and_25_hours_on_dst_sundays() -> None:
    """Every day 00:00-24:00: the spring Sunday has 23 hours, the autumn Sunday 25."""
    whole_days = hours({day: ["00:00-24:00"] for day in EVERY_DAY})
    assert whole_days.between(local(BERLIN, 2026, 3, 29), local(BERLIN, 2026, 3, 30)) == 23 * HOUR
    assert whole_days.between(local(BERLIN, 2026, 10, 25), local(BERLIN, 2026, 10, 26)) == 25 * HOUR


def test_new_york_office_hours_move_with_the_clocks_in_spring() -> None:
    """Friday 6 March 16:30 EST + 1h: 30m on Friday, 30m on Monday 9 March from 09:00 EDT (13:00 UTC)."""
    office = weekdays("09:00-17:00", zone="America/New_York")
    due = office.add(local(NEW_YORK, 2026, 3, 6, 16, 30), HOUR)
    assert wall(due, NEW_YORK) == "2026-03-09 Mon 09:30 EDT"
    assert due == datetime(2026, 3, 9, 13, 30, tzinfo=UTC)


def test_new_york_office_hours_move_with_the_clocks_in_autumn() -> None:
    """Friday 30 October 16:30 EDT + 1h: 30m on Friday, 30m on Monday 2 November from 09:00 EST."""
    office = weekdays("09:00-17:00", zone="America/New_York")
    due = office.add(local(NEW_YORK, 2026, 10, 30, 16, 30), HOUR)
    assert wall(due, NEW_YORK) == "2026-11-02 Mon 09:30 EST"
    assert due == datetime(2026, 11, 2, 14, 30, tzinfo=UTC)


def test_new_york_overnight_block_over_the_spring_forward_night_is_7_hours() -> None:
    """Saturday 7 March 22:00 EST (03:00 UTC) to Sunday 06:00 EDT (10:00 UTC): 7h."""
    saturday_night = hours({"sat": ["22:00-06:00"]}, zone="America/New_York")
    start, end = local(NEW_YORK, 2026, 3, 7, 20), local(NEW_YORK, 2026, 3, 8, 12)
    assert saturday_night.between(start, end) == 7 * HOUR
    due = saturday_night.add(local(NEW_YORK, 2026, 3, 7, 22), 7 * HOUR)
    assert wall(due, NEW_YORK) == "2026-03-08 Sun 06:00 EDT"


def test_new_york_overnight_block_over_the_fall_back_night_is_9_hours() -> None:
    """Saturday 31 October 22:00 EDT (02:00 UTC) to Sunday 06:00 EST (11:00 UTC): 9h; 8h in is 05:00 EST."""
    saturday_night = hours({"sat": ["22:00-06:00"]}, zone="America/New_York")
    start, end = local(NEW_YORK, 2026, 10, 31, 20), local(NEW_YORK, 2026, 11, 1, 12)
    assert saturday_night.between(start, end) == 9 * HOUR
    due = saturday_night.add(local(NEW_YORK, 2026, 10, 31, 22), 8 * HOUR)
    assert wall(due, NEW_YORK) == "2026-11-01 Sun 05:00 EST"
    assert due == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


# --- describe ------------------------------------------------------------------------------------------

WINTER = local(BERLIN, 2026, 1, 14, 12)
SUMMER = local(BERLIN, 2026, 7, 14, 12)


def test_describe_groups_weekdays_with_the_winter_abbreviation() -> None:
    assert OFFICE.describe(WINTER) == "Mon-Fri 9:00-17:00 CET"


def test_describe_uses_the_summer_abbreviation_in_summer() -> None:
    assert OFFICE.describe(SUMMER) == "Mon-Fri 9:00-17:00 CEST"


def test_describe_in_new_york() -> None:
    office = weekdays("09:00-17:00", zone="America/New_York")
    assert office.describe(WINTER) == "Mon-Fri 9:00-17:00 EST"
    assert office.describe(SUMMER) == "Mon-Fri 9:00-17:00 EDT"


def test_describe_lists_several_blocks_a_day() -> None:
    assert SPLIT.describe(WINTER) == "Mon-Fri 9:00-12:00, 13:00-17:00 CET"


def test_describe_groups_only_neighbouring_days_with_the_same_blocks() -> None:
    week = {
        "mon": ["09:00-17:00"],
        "tue": ["09:00-17:00"],
        "wed": ["09:00-17:00"],
        "thu": ["09:00-17:00"],
        "fri": ["09:00-15:00"],
        "sat": ["10:00-14:00"],
    }
    assert hours(week).describe(WINTER) == "Mon-Thu 9:00-17:00; Fri 9:00-15:00; Sat 10:00-14:00 CET"
    apart = hours({"mon": ["09:00-17:00"], "wed": ["09:00-17:00"]})
    assert apart.describe(WINTER) == "Mon 9:00-17:00; Wed 9:00-17:00 CET"


def test_describe_overnight_and_whole_day_blocks() -> None:
    assert FRIDAY_NIGHT.describe(WINTER) == "Fri 22:00-6:00 CET"
    assert hours({"sun": ["00:00-24:00"]}).describe(WINTER) == "Sun 0:00-24:00 CET"


def test_describe_round_the_clock() -> None:
    assert ALWAYS.describe(WINTER) == "around the clock, every day"


# --- blocks and hours that cannot work ---------------------------------------------------------------


def test_blocks_parse_to_minutes_after_midnight() -> None:
    assert Block.parse("09:00-17:30") == Block(9 * 60, 17 * 60 + 30)
    assert Block.parse(" 9:00 - 17:00 ") == Block(9 * 60, 17 * 60)
    assert Block.parse("22:00-06:00") == Block(22 * 60, 30 * 60)  # ends 06:00 the next day
    assert Block.parse("00:00-24:00") == Block(0, 24 * 60)
    assert str(Block.parse("22:00-06:00")) == "22:00-06:00"
    assert str(Block.parse("00:00-24:00")) == "00:00-24:00"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9-17", "'9-17' is not a block of hours; write it like 09:00-17:00 or 22:00-06:00"),
        ("09:00 to 17:00", "'09:00 to 17:00' is not a block of hours"),
        ("", "'' is not a block of hours"),
        ("25:00-26:00", "'25:00-26:00' has a time that does not exist"),
        ("09:00-25:00", "'09:00-25:00' has a time that does not exist"),
        ("09:60-17:00", "'09:60-17:00' has a time that does not exist"),
        ("24:00-06:00", "'24:00-06:00' has a time that does not exist"),
        ("09:00-24:30", "'09:00-24:30' has a time that does not exist"),
        ("09:00-09:00", "'09:00-09:00' is empty; use 00:00-24:00 for a whole day"),
    ],
)
def test_bad_blocks_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(HoursError, match="^" + re.escape(message)):
        Block.parse(text)


def test_overlapping_blocks_on_one_day_are_refused() -> None:
    with pytest.raises(HoursError, match=r"^tue: 09:00-12:00 and 11:00-17:00 overlap$"):
        hours({"tue": ["11:00-17:00", "09:00-12:00"]})


def test_an_overnight_block_overlapping_a_later_block_the_same_day_is_refused() -> None:
    with pytest.raises(HoursError, match=r"^fri: 22:00-06:00 and 23:00-23:30 overlap$"):
        hours({"fri": ["22:00-06:00", "23:00-23:30"]})


def test_touching_blocks_are_not_an_overlap() -> None:
    touching = hours({"mon": ["09:00-12:00", "12:00-17:00"]})
    assert touching.is_open(local(BERLIN, 2026, 1, 12, 12, 0))
    assert touching.between(local(BERLIN, 2026, 1, 12), local(BERLIN, 2026, 1, 13)) == 8 * HOUR


def test_a_week_without_hours_is_refused() -> None:
    with pytest.raises(HoursError, match=r"^no day has any hours; give some blocks, or always = true$"):
        hours({})
    with pytest.raises(HoursError, match="no day has any hours"):
        hours({"mon": []})


def test_unknown_day_names_are_refused() -> None:
    with pytest.raises(HoursError, match=r"^'monday' is not a day; use mon, tue, wed, thu, fri, sat, sun$"):
        hours({"monday": ["09:00-17:00"]})


def test_an_overnight_block_overlapping_the_next_days_block_is_refused() -> None:
    """Monday 22:00-06:00 runs until Tuesday 06:00, so a Tuesday block from 05:00 overlaps it. Accepted
    as it is, Monday 21:00 to Tuesday 10:00 counts 12h of open time where the real union,
    22:00-09:00, is 11h."""
    with pytest.raises(HoursError, match="overlap"):
        hours({"mon": ["22:00-06:00"], "tue": ["05:00-09:00"]})


def test_a_block_ending_in_the_spring_forward_gap_does_not_overlap_the_next_block() -> None:
    """Saturday 22:00-02:30 and Sunday 03:00-05:00 on 28/29 March: 02:30 never happens, and is taken as
    03:30 CEST (01:30 UTC), after Sunday's block opened at 03:00 CEST (01:00 UTC). Open time must still
    grow with the duration asked for."""
    night = hours({"sat": ["22:00-02:30"], "sun": ["03:00-05:00"]})
    start = local(BERLIN, 2026, 3, 28, 22)
    assert night.add(start, 4 * HOUR + 45 * MINUTE) >= night.add(start, 4 * HOUR + 30 * MINUTE)


def test_round_the_clock_hours_close_on_their_holidays() -> None:
    """`always` with a holiday list: either the holidays close the queue or the combination is refused."""
    try:
        hours_ = BusinessHours.build("24-7", "Europe/Berlin", {}, (date(2026, 12, 25),), always=True)
    except HoursError:
        return
    assert not hours_.is_open(local(BERLIN, 2026, 12, 25, 12))


# --- properties ------------------------------------------------------------------------------------------

SAMPLES = {
    "office": OFFICE,
    "split": SPLIT,
    "friday night": FRIDAY_NIGHT,
    "always": ALWAYS,
    "new york nights": hours(
        {day: ["22:00-06:00"] for day in ("mon", "wed", "sat")}, zone="America/New_York"
    ),
    "holidays": weekdays(
        "08:00-12:00", "13:00-18:00", holidays=(date(2026, 3, 30), date(2026, 10, 26), date(2026, 12, 24))
    ),
}
STARTS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC))
DURATIONS = st.integers(min_value=0, max_value=60 * 24 * 14).map(lambda m: timedelta(minutes=m))


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(SAMPLES)), start=STARTS, duration=DURATIONS)
def test_between_undoes_add(name: str, start: datetime, duration: timedelta) -> None:
    """For any start and duration, the open time between the start and its due time is the duration."""
    business = SAMPLES[name]
    due = business.add(start, duration)
    assert due >= start
    assert business.between(start, due) == duration


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(sorted(SAMPLES)), start=STARTS, duration=DURATIONS, extra=DURATIONS)
def test_add_never_goes_backwards(name: str, start: datetime, duration: timedelta, extra: timedelta) -> None:
    business = SAMPLES[name]
    assert business.add(start, duration + extra) >= business.add(start, duration)


def _open_by_wall_clock(business: BusinessHours, moment: datetime) -> bool:
    """An independent reading of the hours: the local wall time falls in a block of its own day, or in
    the part past midnight of a block of the day before."""
    here = moment.astimezone(business.zone)
    minute = here.hour * 60 + here.minute + here.second / 60 + here.microsecond / 60e6
    today, yesterday = here.date(), here.date() - timedelta(days=1)
    if today not in business.holidays and any(
        b.start <= minute < b.end for b in business.week[today.weekday()]
    ):
        return True
    return yesterday not in business.holidays and any(
        b.start <= minute + 24 * 60 < b.end for b in business.week[yesterday.weekday()]
    )


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(set(SAMPLES) - {"always"})), moment=STARTS)
def test_is_open_agrees_with_reading_the_wall_clock(name: str, moment: datetime) -> None:
    business = SAMPLES[name]
    assert business.is_open(moment) is _open_by_wall_clock(business, moment)
    opens = business.next_open(moment)
    assert business.is_open(opens)
    assert business.between(moment, opens) == timedelta(0)
