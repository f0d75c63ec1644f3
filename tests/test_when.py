"""Promise times as agents type them (`2h`, `16:00`, `tomorrow 10:00`, `fri`, ...) and as customers read them.

Expected answers are local wall times (`2026-01-16 Fri 17:30 CET`), worked out by hand from a fixed `now`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.hours import BusinessHours
from bot.when import WhenError, customer_time, resolve, split_when

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")

# Closes at 17:30, not at when.py's fallback 17:00, so "close of business" is visibly the last block's end.
BERLIN_OFFICE = BusinessHours.build(
    "office",
    "Europe/Berlin",
    {day: ["09:00-12:00", "13:00-17:30"] for day in WEEKDAYS},
    holidays=[date(2026, 12, 24)],
)
NEW_YORK_OFFICE = BusinessHours.build(
    "office", "America/New_York", {day: ["09:00-17:00"] for day in WEEKDAYS}
)


def utc_of(zone: ZoneInfo, y: int, mo: int, d: int, h: int, mi: int) -> datetime:
    """A local wall time as the UTC moment the bot's clock gives (`Clock.now()` is always UTC)."""
    return datetime(y, mo, d, h, mi, tzinfo=zone).astimezone(UTC)


# Wednesday 14 January 2026, 11:00 CET (10:00 UTC).
BERLIN_NOW = utc_of(BERLIN, 2026, 1, 14, 11, 0)
# Friday 6 March 2026, 15:00 EST (20:00 UTC); the clocks go forward on Sunday 8 March.
NEW_YORK_NOW = utc_of(NEW_YORK, 2026, 3, 6, 15, 0)


def wall(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %a %H:%M %Z")


def in_berlin(spec: str, now: datetime = BERLIN_NOW, hours: BusinessHours | None = BERLIN_OFFICE) -> str:
    return wall(resolve(spec, now, BERLIN, hours), BERLIN)


def in_new_york(spec: str, now: datetime = NEW_YORK_NOW) -> str:
    return wall(resolve(spec, now, NEW_YORK, NEW_YORK_OFFICE), NEW_YORK)


# --- split_when -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "when", "rest"),
    [
        ("2h check the refund", "2h", "check the refund"),
        ("1h30m refund", "1h30m", "refund"),
        ("16:00 call back", "16:00", "call back"),
        ("9.30 call back", "9.30", "call back"),
        ("today 16:00 send the label", "today 16:00", "send the label"),
        ("tomorrow 10:00 send the label", "tomorrow 10:00", "send the label"),
        ("tomorrow send the label", "tomorrow", "send the label"),
        ("fri confirm the refund", "fri", "confirm the refund"),
        ("Friday 14:00 ship it", "Friday 14:00", "ship it"),
        ("2026-12-01 10:00 follow up", "2026-12-01 10:00", "follow up"),
        ("2026-12-01 follow up", "2026-12-01", "follow up"),
        ("  tomorrow   10:00   spaced   out ", "tomorrow 10:00", "spaced out"),
        ("fri", "fri", ""),
    ],
)
def test_split_when_separates_the_time_words_from_the_rest(text: str, when: str, rest: str) -> None:
    assert split_when(text) == (when, rest)


def test_split_when_leaves_a_clock_after_a_duration_to_the_rest() -> None:
    """Only day words take a clock after them; `2h 16:00` is a duration and some text."""
    assert split_when("2h 16:00 call") == ("2h", "16:00 call")


def test_split_when_refuses_empty_text() -> None:
    with pytest.raises(WhenError, match=r"^When\? Give a time like 2h, 16:00, tomorrow 10:00, fri or "):
        split_when("   ")


@pytest.mark.parametrize("text", ["soon please", "next week", "0m later", "25:00 call", "tmrw 10:00"])
def test_split_when_refuses_text_that_does_not_start_with_a_time(text: str) -> None:
    first = text.split()[0]
    with pytest.raises(WhenError, match=rf"^'{first}' is not a time I understand\. Try 2h, 16:00, "):
        split_when(text)


def test_split_when_shortens_a_long_first_word_in_its_message() -> None:
    with pytest.raises(WhenError) as caught:
        split_when("x" * 200 + " rest")
    assert f"'{'x' * 30}' is not a time" in str(caught.value)
    assert "x" * 31 not in str(caught.value)


@pytest.mark.parametrize("spec", ["2h", "16:00", "today 16:00", "tomorrow 10:00", "fri", "fri 14:00"])
def test_what_split_when_takes_resolve_understands(spec: str) -> None:
    when, rest = split_when(f"{spec} send the label")
    assert (when, rest) == (spec, "send the label")
    assert resolve(when, BERLIN_NOW, BERLIN, BERLIN_OFFICE) > BERLIN_NOW


# --- resolve in Berlin, from Wednesday 14 January 11:00 CET ----------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("2h", "2026-01-14 Wed 13:00 CET"),  # durations are wall-clock time from now, not business time
        ("90m", "2026-01-14 Wed 12:30 CET"),
        ("1h30m", "2026-01-14 Wed 12:30 CET"),
        ("1d", "2026-01-15 Thu 11:00 CET"),
        ("16:00", "2026-01-14 Wed 16:00 CET"),  # later today
        ("16.00", "2026-01-14 Wed 16:00 CET"),
        ("10:00", "2026-01-15 Thu 10:00 CET"),  # already past today: tomorrow
        ("today 16:00", "2026-01-14 Wed 16:00 CET"),
        ("today", "2026-01-14 Wed 17:30 CET"),  # close of business: the end of the last block
        ("tomorrow 10:00", "2026-01-15 Thu 10:00 CET"),
        ("tomorrow", "2026-01-15 Thu 17:30 CET"),
        ("fri", "2026-01-16 Fri 17:30 CET"),  # close of business that Friday
        ("friday", "2026-01-16 Fri 17:30 CET"),
        ("FRI", "2026-01-16 Fri 17:30 CET"),
        ("fri 14:00", "2026-01-16 Fri 14:00 CET"),
        ("mon", "2026-01-19 Mon 17:30 CET"),  # Monday has passed this week: next Monday
        ("wed 16:00", "2026-01-14 Wed 16:00 CET"),  # today's weekday, later today
        ("wed 10:00", "2026-01-21 Wed 10:00 CET"),  # today's weekday, already past: next week
        ("sat", "2026-01-17 Sat 17:00 CET"),  # closed on Saturdays: the 17:00 fallback
        ("2026-12-01 10:00", "2026-12-01 Tue 10:00 CET"),
        ("2026-12-01", "2026-12-01 Tue 17:30 CET"),
        ("2026-12-24", "2026-12-24 Thu 17:00 CET"),  # a holiday: the 17:00 fallback
        ("2026-07-01 10:00", "2026-07-01 Wed 10:00 CEST"),  # a summer date gets the summer offset
    ],
)
def test_resolve_in_berlin(spec: str, expected: str) -> None:
    assert in_berlin(spec) == expected


def test_resolve_returns_utc() -> None:
    due = resolve("fri 14:00", BERLIN_NOW, BERLIN, BERLIN_OFFICE)
    assert due == datetime(2026, 1, 16, 13, 0, tzinfo=UTC)


def test_a_day_without_hours_closes_at_five() -> None:
    """Without business hours, a day named alone means 17:00 local time."""
    assert in_berlin("fri", hours=None) == "2026-01-16 Fri 17:00 CET"
    assert in_berlin("tomorrow", hours=None) == "2026-01-15 Thu 17:00 CET"


def test_a_day_whose_last_block_runs_past_midnight_closes_at_2359() -> None:
    night = BusinessHours.build("night", "Europe/Berlin", {"fri": ["18:00-02:00"]})
    assert in_berlin("fri", hours=night) == "2026-01-16 Fri 23:59 CET"


def test_round_the_clock_hours_close_at_five() -> None:
    always = BusinessHours.build("always", "Europe/Berlin", {}, always=True)
    assert in_berlin("fri", hours=always) == "2026-01-16 Fri 17:00 CET"


def test_fri_typed_on_friday_before_close_is_today() -> None:
    friday_morning = utc_of(BERLIN, 2026, 1, 16, 10, 0)
    assert in_berlin("fri", now=friday_morning) == "2026-01-16 Fri 17:30 CET"


def test_fri_1000_typed_on_friday_afternoon_means_next_friday() -> None:
    friday_afternoon = utc_of(BERLIN, 2026, 1, 16, 15, 0)
    assert in_berlin("fri 10:00", now=friday_afternoon) == "2026-01-23 Fri 10:00 CET"
    assert in_berlin("fri 16:00", now=friday_afternoon) == "2026-01-16 Fri 16:00 CET"


def test_a_bare_time_typed_at_that_very_minute_rolls_to_tomorrow() -> None:
    """Never in the past, and not "now" either: 11:00 typed at 11:00 is tomorrow 11:00."""
    assert in_berlin("11:00") == "2026-01-15 Thu 11:00 CET"


# --- resolve across DST --------------------------------------------------------------------------------


def test_fri_1000_typed_friday_afternoon_in_new_york_lands_after_the_clocks_change() -> None:
    """Friday 6 March 15:00 EST: next Friday 13 March 10:00 is EDT, 14:00 UTC (it would be 15:00 in EST)."""
    assert in_new_york("fri 10:00") == "2026-03-13 Fri 10:00 EDT"
    assert resolve("fri 10:00", NEW_YORK_NOW, NEW_YORK, NEW_YORK_OFFICE) == datetime(
        2026, 3, 13, 14, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("2h", "2026-03-06 Fri 17:00 EST"),
        ("16:00", "2026-03-06 Fri 16:00 EST"),
        ("14:00", "2026-03-07 Sat 14:00 EST"),  # past today: tomorrow
        ("fri", "2026-03-06 Fri 17:00 EST"),
        ("tomorrow 10:00", "2026-03-07 Sat 10:00 EST"),
        ("sun 10:00", "2026-03-08 Sun 10:00 EDT"),  # the morning after the clocks went forward
        ("mon 9:00", "2026-03-09 Mon 09:00 EDT"),
        ("mon", "2026-03-09 Mon 17:00 EDT"),
        ("2026-11-01 10:00", "2026-11-01 Sun 10:00 EST"),  # the day the clocks go back
    ],
)
def test_resolve_in_new_york(spec: str, expected: str) -> None:
    assert in_new_york(spec) == expected


def test_a_duration_across_spring_forward_is_real_time() -> None:
    """Sunday 29 March 01:30 CET (00:30 UTC) + 2h is 02:30 UTC, which the wall clock shows as 04:30 CEST."""
    night = utc_of(BERLIN, 2026, 3, 29, 1, 30)
    assert in_berlin("2h", now=night) == "2026-03-29 Sun 04:30 CEST"


def test_a_day_across_fall_back_is_24_real_hours() -> None:
    """Saturday 31 October 12:00 EDT + 1d: 24 real hours later the clocks have gone back, so 11:00 EST."""
    saturday = utc_of(NEW_YORK, 2026, 10, 31, 12, 0)
    assert in_new_york("1d", now=saturday) == "2026-11-01 Sun 11:00 EST"
    assert in_new_york("tomorrow 10:00", now=saturday) == "2026-11-01 Sun 10:00 EST"


def test_a_bare_time_rolls_to_tomorrow_across_spring_forward() -> None:
    """Saturday 28 March 20:00 CET: 09:00 has passed, so Sunday 09:00, which is CEST (07:00 UTC)."""
    saturday_evening = utc_of(BERLIN, 2026, 3, 28, 20, 0)
    due = resolve("09:00", saturday_evening, BERLIN, BERLIN_OFFICE)
    assert wall(due, BERLIN) == "2026-03-29 Sun 09:00 CEST"
    assert due == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)


def test_fri_typed_before_the_spring_change_keeps_its_wall_time() -> None:
    """Friday 27 March 15:00 CET, `fri 10:00`: next Friday 3 April 10:00 CEST, 08:00 UTC."""
    friday = utc_of(BERLIN, 2026, 3, 27, 15, 0)
    assert in_berlin("fri 10:00", now=friday) == "2026-04-03 Fri 10:00 CEST"
    assert in_berlin("mon 09:00", now=friday) == "2026-03-30 Mon 09:00 CEST"


def test_a_wall_time_skipped_by_spring_forward_counts_from_the_offset_before() -> None:
    """02:30 does not exist on Sunday 8 March in New York; read as EST it is 07:30 UTC, shown 03:30 EDT."""
    assert in_new_york("sun 02:30") == "2026-03-08 Sun 03:30 EDT"


# --- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("today 10:00", "today 10:00 has already passed; give a time in the future."),
        ("2025-12-01 10:00", "2025-12-01 10:00 has already passed; give a time in the future."),
        ("2026-01-14 09:00", "2026-01-14 09:00 has already passed"),
        ("2026-02-30 10:00", "'2026-02-30' is not a date."),
        ("next week", "'next week' is not a time I understand. Try 2h, 16:00, tomorrow 10:00, fri or "),
        ("25:00", "'25:00' is not a time I understand."),
        ("0m", "'0m' is not a time I understand."),
        ("2h 16:00", "'2h 16:00' is not a time I understand."),
    ],
)
def test_bad_specs_raise_a_helpful_when_error(spec: str, message: str) -> None:
    with pytest.raises(WhenError) as caught:
        resolve(spec, BERLIN_NOW, BERLIN, BERLIN_OFFICE)
    assert str(caught.value).startswith(message)


def test_today_after_close_of_business_has_passed() -> None:
    evening = utc_of(BERLIN, 2026, 1, 14, 18, 0)
    with pytest.raises(WhenError, match=r"^today has already passed"):
        resolve("today", evening, BERLIN, BERLIN_OFFICE)


def test_an_empty_spec_raises_when_error() -> None:
    with pytest.raises(WhenError):
        resolve("", BERLIN_NOW, BERLIN, BERLIN_OFFICE)


@pytest.mark.parametrize("spec", ["tomorrow banana", "fri 10:00 15:00"])
def test_words_resolve_does_not_understand_are_refused(spec: str) -> None:
    with pytest.raises(WhenError):
        resolve(spec, BERLIN_NOW, BERLIN, BERLIN_OFFICE)


# --- customer_time ------------------------------------------------------------------------------------


def test_customer_time_later_today() -> None:
    moment = utc_of(BERLIN, 2026, 1, 14, 16, 0)
    assert customer_time(moment, BERLIN, BERLIN_NOW) == "16:00 CET today"


def test_customer_time_tomorrow_drops_the_leading_zero() -> None:
    moment = utc_of(BERLIN, 2026, 1, 15, 9, 5)
    assert customer_time(moment, BERLIN, BERLIN_NOW) == "9:05 CET tomorrow"


def test_customer_time_further_ahead_names_the_weekday_and_date() -> None:
    moment = utc_of(BERLIN, 2026, 1, 19, 10, 30)
    assert customer_time(moment, BERLIN, BERLIN_NOW) == "10:30 CET on Monday 19 January"


def test_customer_time_uses_the_summer_abbreviation() -> None:
    moment = utc_of(BERLIN, 2026, 4, 3, 10, 0)
    assert customer_time(moment, BERLIN, BERLIN_NOW) == "10:00 CEST on Friday 3 April"


def test_customer_time_in_the_customers_own_zone() -> None:
    """Wednesday 16:00 CET is 10:00 EST the same day in New York and 00:00 JST Thursday in Tokyo."""
    moment = utc_of(BERLIN, 2026, 1, 14, 16, 0)
    assert customer_time(moment, NEW_YORK, BERLIN_NOW) == "10:00 EST today"
    assert customer_time(moment, TOKYO, BERLIN_NOW) == "0:00 JST tomorrow"


def test_today_and_tomorrow_are_the_customers_days() -> None:
    """At Wednesday 23:30 CET (17:30 EST), Thursday 01:00 CET is tomorrow in Berlin but 19:00 EST today."""
    late = utc_of(BERLIN, 2026, 1, 14, 23, 30)
    moment = utc_of(BERLIN, 2026, 1, 15, 1, 0)
    assert customer_time(moment, BERLIN, late) == "1:00 CET tomorrow"
    assert customer_time(moment, NEW_YORK, late) == "19:00 EST today"


def test_a_duration_from_a_local_now_is_real_time_in_utc() -> None:
    """Only with a `now` that is not UTC (the bot's clock gives UTC): Sunday 29 March 01:30 CET + 2h is
    02:30 UTC (04:30 CEST), not 03:30 CEST."""
    night = datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN)
    due = resolve("2h", night, BERLIN, BERLIN_OFFICE)
    assert due.utcoffset() == timedelta(0)
    assert due == datetime(2026, 3, 29, 2, 30, tzinfo=UTC)


def test_customer_time_of_a_resolved_promise() -> None:
    """The round trip the bot makes: an agent in Berlin types `fri 14:00`, a New York customer reads it."""
    due = resolve("fri 14:00", BERLIN_NOW, BERLIN, BERLIN_OFFICE)
    assert customer_time(due, NEW_YORK, BERLIN_NOW) == "8:00 EST on Friday 16 January"
