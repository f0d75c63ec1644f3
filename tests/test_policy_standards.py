"""The policy's business hours and service standards: the packaged default, and files that cannot work.

Bad files go through `load_policy` on a TOML file, the way operators meet them, and each error must name
the key that is wrong (`hours.office: ...`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.domain import Priority, TicketKind
from bot.policy import Policy, PolicyError, load_policy

BERLIN = ZoneInfo("Europe/Berlin")
WINTER = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)

QUEUES = """
[[queues]]
name = "general"
label = "support team"

[[queues]]
name = "internal"
label = "internal help desk"
"""

OFFICE = """
[hours.office]
timezone = "Europe/Berlin"
days = ["mon", "tue", "wed", "thu", "fri"]
blocks = ["09:00-17:00"]
"""


def policy_file(tmp_path: Path, tables: str = "", top: str = "", queues: str = QUEUES) -> Path:
    """A small policy file: `top` holds top-level keys, `tables` the sections after the queues."""
    path = tmp_path / "policy.toml"
    path.write_text(
        f'default_queue = "general"\ninternal_queue = "internal"\n{top}\n{queues}\n{tables}', "utf-8"
    )
    return path


def load_error(tmp_path: Path, tables: str = "", top: str = "", queues: str = QUEUES) -> list[str]:
    """The lines of the PolicyError a file gives, without the first (which names the file)."""
    with pytest.raises(PolicyError) as caught:
        load_policy(policy_file(tmp_path, tables, top, queues))
    first, *lines = str(caught.value).splitlines()
    assert first == f"policy file {tmp_path / 'policy.toml'}:"
    return [line.strip() for line in lines]


# --- the packaged default -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default() -> Policy:
    return load_policy()


def test_the_default_policy_gives_each_queue_its_hours(default: Policy) -> None:
    """general names office, internal names it, billing and complaints name none and get default_hours."""
    assert {q.name: default.hours_for(q.name).name for q in default.queues} == {
        "general": "office",
        "billing": "office",
        "complaints": "office",
        "internal": "it",
    }


def test_the_default_office_and_it_hours(default: Policy) -> None:
    office, it = default.hours_for("general"), default.hours_for("internal")
    assert office.zone == BERLIN
    assert office.describe(WINTER) == "Mon-Fri 9:00-17:00 CET"
    assert it.describe(WINTER) == "Mon-Fri 8:00-12:00, 13:00-18:00 CET"
    assert date(2026, 12, 24) in office.holidays
    assert date(2027, 1, 1) in it.holidays


def test_the_default_office_is_closed_on_christmas_eve(default: Policy) -> None:
    """Thursday 24 December 2026 is a holiday: Wednesday 16:30 CET + 1h runs 30m on Wednesday, then the
    24th, 25th, 26th (Sat) and 27th (Sun) are closed, so Monday 28 December 09:30 CET."""
    office = default.hours_for("billing")
    opened = datetime(2026, 12, 23, 16, 30, tzinfo=BERLIN)
    assert office.add(opened, timedelta(hours=1)) == datetime(2026, 12, 28, 9, 30, tzinfo=BERLIN)


def test_an_unknown_queue_gets_the_default_hours(default: Policy) -> None:
    assert default.hours_for("no-such-queue").name == "office"


def test_the_default_leads(default: Policy) -> None:
    assert default.lead_of("general") == "ana"
    assert default.lead_of("complaints") == "ana"
    assert default.lead_of("billing") is None  # the finance team has no lead
    assert default.lead_of("internal") is None
    assert default.lead_of("no-such-queue") is None


def test_the_default_standards(default: Policy) -> None:
    standards = default.standards
    assert standards.warn_at == 0.8
    urgent = standards.targets(TicketKind.EXTERNAL, Priority.URGENT)
    assert (urgent.first_response, urgent.next_reply, urgent.update_interval, urgent.resolution) == (
        timedelta(minutes=30),
        timedelta(hours=1),
        timedelta(hours=2),
        timedelta(hours=8),
    )
    assert standards.targets(TicketKind.INTERNAL, Priority.NORMAL).first_response == timedelta(hours=8)
    assert standards.targets(TicketKind.EXTERNAL, Priority.NORMAL).first_response == timedelta(hours=4)
    assert standards.targets(TicketKind.INTERNAL, Priority.LOW).resolution == timedelta(hours=80)


def test_the_default_waiting_promises_and_checkins(default: Policy) -> None:
    assert (default.waiting.checkin_after, default.waiting.last_reminder_after) == (
        timedelta(days=1),
        timedelta(days=3),
    )
    assert default.waiting.auto_resolve_after == timedelta(days=5)
    assert default.promises.remind_before == timedelta(minutes=30)
    assert default.promises.late_update_in == timedelta(hours=2)
    assert default.checkins.weekly_report_after == timedelta(days=7)
    assert default.checkins.digest_at == "09:00"
    assert default.checkins.digest_days == ["mon", "tue", "wed", "thu", "fri"]


# --- which hours a queue gets --------------------------------------------------------------------------


def test_a_policy_without_hours_is_open_around_the_clock(tmp_path: Path) -> None:
    policy = load_policy(policy_file(tmp_path))
    hours = policy.hours_for("general")
    assert hours.always
    assert hours.is_open(datetime(2026, 1, 10, 3, 0, tzinfo=UTC))  # a Saturday night


def test_a_single_set_of_hours_serves_every_queue(tmp_path: Path) -> None:
    policy = load_policy(policy_file(tmp_path, OFFICE))
    assert policy.hours_for("general").name == "office"
    assert policy.hours_for("internal").name == "office"


def test_queues_get_their_own_hours_or_the_default(tmp_path: Path) -> None:
    queues = QUEUES.replace('label = "internal help desk"', 'label = "internal help desk"\nhours = "it"')
    tables = OFFICE + '\n[hours.it]\ntimezone = "America/New_York"\nweek = { mon = ["08:00-12:00"] }\n'
    policy = load_policy(policy_file(tmp_path, tables, top='default_hours = "office"', queues=queues))
    assert policy.hours_for("general").name == "office"
    assert policy.hours_for("internal").name == "it"
    assert policy.hours_for("internal").zone == ZoneInfo("America/New_York")


def test_days_share_blocks_and_week_gives_a_day_its_own(tmp_path: Path) -> None:
    tables = """
[hours.office]
timezone = "Europe/Berlin"
days = ["Mon", "tue", "wed", "thu", "fri"]
blocks = ["09:00-17:00"]
week = { fri = ["09:00-15:00"], sat = ["10:00-14:00"] }
holidays = [2026-12-24]
"""
    hours = load_policy(policy_file(tmp_path, tables)).hours_for("general")
    assert hours.describe(WINTER) == "Mon-Thu 9:00-17:00; Fri 9:00-15:00; Sat 10:00-14:00 CET"
    assert hours.holidays == frozenset({date(2026, 12, 24)})


def test_standards_read_durations_and_replace_a_kinds_table(tmp_path: Path) -> None:
    tables = """
[standards]
warn_at = 0.5

[standards.internal]
urgent = { first_response = "15m", next_reply = "1h30m", update_interval = "2h", resolution = "1d" }
high = { first_response = "1h", next_reply = "2h", update_interval = "4h", resolution = "2d" }
normal = { first_response = "4h", next_reply = "8h", update_interval = "8h", resolution = "1w" }
low = { first_response = "8h", next_reply = "16h", update_interval = "16h", resolution = "2w" }
"""
    standards = load_policy(policy_file(tmp_path, tables)).standards
    assert standards.warn_at == 0.5
    urgent = standards.targets(TicketKind.INTERNAL, Priority.URGENT)
    assert (urgent.first_response, urgent.next_reply) == (timedelta(minutes=15), timedelta(minutes=90))
    assert standards.targets(TicketKind.INTERNAL, Priority.LOW).resolution == timedelta(weeks=2)
    # external keeps the built-in targets
    assert standards.targets(TicketKind.EXTERNAL, Priority.URGENT).first_response == timedelta(minutes=30)


# --- hours that cannot work ----------------------------------------------------------------------------


def office_with(line: str) -> str:
    """The office hours with one line swapped or added."""
    key = line.split("=")[0].strip()
    kept = [kept for kept in OFFICE.strip().splitlines() if not kept.startswith(key + " ")]
    return "\n".join([*kept, line]) + "\n"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (
            'blocks = ["9-17"]',
            "hours.office: '9-17' is not a block of hours; write it like 09:00-17:00 or 22:00-06:00",
        ),
        ('blocks = ["09:00-25:00"]', "hours.office: '09:00-25:00' has a time that does not exist"),
        ('blocks = ["25:00-26:00"]', "hours.office: '25:00-26:00' has a time that does not exist"),
        ('blocks = ["09:00-09:00"]', "hours.office: '09:00-09:00' is empty; use 00:00-24:00 for a whole day"),
        (
            'blocks = ["09:00-12:00", "11:00-17:00"]',
            "hours.office: mon: 09:00-12:00 and 11:00-17:00 overlap",
        ),
        ("days = []", "hours.office: no day has any hours; give some blocks, or always = true"),
        ("blocks = []", 'hours.office: days are listed without blocks; add blocks = ["09:00-17:00"]'),
        (
            'days = ["mon", "funday"]',
            "hours.office.days.1: 'funday' is not a day; use mon, tue, wed, thu, fri, sat, sun",
        ),
        (
            'week = { Caturday = ["09:00-17:00"] }',
            "hours.office.week.Caturday: 'Caturday' is not a day; use mon, tue, wed, thu, fri, sat, sun",
        ),
        (
            'timezone = "Mars/Olympus"',
            "hours.office: timezone: 'Mars/Olympus' is not an IANA timezone like Europe/Berlin",
        ),
        ('timezone = ""', "hours.office: timezone: '' is not an IANA timezone like Europe/Berlin"),
        ('opening = "09:00"', "hours.office.opening: Extra inputs are not permitted"),
    ],
    ids=[
        "bad block text",
        "25:00 end",
        "25:00 start",
        "empty block",
        "overlapping blocks",
        "empty week",
        "days without blocks",
        "unknown day in days",
        "unknown day in week",
        "unknown timezone",
        "empty timezone",
        "unknown key",
    ],
)
def test_hours_that_cannot_work_name_the_key(tmp_path: Path, line: str, error: str) -> None:
    assert load_error(tmp_path, office_with(line)) == [error]


def test_a_queue_naming_unknown_hours(tmp_path: Path) -> None:
    queues = QUEUES.replace('label = "support team"', 'label = "support team"\nhours = "ofice"')
    assert load_error(tmp_path, OFFICE, queues=queues) == [
        "queues[0].hours: 'ofice' is not one of the hours (office)"
    ]


def test_default_hours_naming_unknown_hours(tmp_path: Path) -> None:
    assert load_error(tmp_path, OFFICE, top='default_hours = "weekend"') == [
        "default_hours: 'weekend' is not one of the hours (office)"
    ]


def test_several_hours_without_default_hours_need_every_queue_to_name_its_own(tmp_path: Path) -> None:
    tables = OFFICE + "\n[hours.always]\nalways = true\n"
    assert load_error(tmp_path, tables) == [
        "queues general, internal name no hours; set their hours or default_hours"
    ]
    queues = QUEUES.replace('label = "support team"', 'label = "support team"\nhours = "office"')
    assert load_error(tmp_path, tables, queues=queues) == [
        "queues internal name no hours; set their hours or default_hours"
    ]


def test_an_empty_hours_table_is_refused_or_open_around_the_clock(tmp_path: Path) -> None:
    """`[hours]` with nothing under it: either load_policy says so, or queues still get some hours."""
    try:
        policy = load_policy(policy_file(tmp_path, "[hours]\n"))
    except PolicyError:
        return
    assert policy.hours_for("general").always


# --- standards, waiting and check-ins that cannot work -------------------------------------------------


def test_missing_standards_priorities_are_named(tmp_path: Path) -> None:
    tables = """
[standards.external]
urgent = { first_response = "30m", next_reply = "1h", update_interval = "2h", resolution = "8h" }
high = { first_response = "1h", next_reply = "2h", update_interval = "4h", resolution = "16h" }
"""
    assert load_error(tmp_path, tables) == ["standards: external: no targets for priority low, normal"]


def test_an_unknown_priority_in_the_standards_is_named(tmp_path: Path) -> None:
    tables = """
[standards.internal]
critical = { first_response = "30m", next_reply = "1h", update_interval = "2h", resolution = "8h" }
"""
    (error,) = load_error(tmp_path, tables)
    assert error.startswith(
        "standards.internal.critical: Input should be 'low', 'normal', 'high' or 'urgent'"
    )


def test_a_missing_target_is_named(tmp_path: Path) -> None:
    tables = """
[standards.external]
urgent = { first_response = "30m", next_reply = "1h", update_interval = "2h" }
"""
    assert load_error(tmp_path, tables) == ["standards.external.urgent.resolution: Field required"]


def test_a_zero_target_is_refused(tmp_path: Path) -> None:
    tables = """
[standards.external]
urgent = { first_response = "0m", next_reply = "1h", update_interval = "2h", resolution = "8h" }
"""
    assert load_error(tmp_path, tables) == [
        "standards.external.urgent: first_response: must be longer than zero"
    ]


def test_a_target_that_is_not_a_duration_is_named(tmp_path: Path) -> None:
    tables = """
[standards.external]
urgent = { first_response = "half an hour", next_reply = "1h", update_interval = "2h", resolution = "8h" }
"""
    (error,) = load_error(tmp_path, tables)
    assert error.startswith("standards.external.urgent.first_response: 'half an hour' is not a duration")


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("1.5", "standards.warn_at: Input should be less than 1"),
        ("1", "standards.warn_at: Input should be less than 1"),
        ("0", "standards.warn_at: Input should be greater than 0"),
        ("-0.2", "standards.warn_at: Input should be greater than 0"),
    ],
)
def test_warn_at_must_lie_strictly_between_zero_and_one(tmp_path: Path, value: str, error: str) -> None:
    assert load_error(tmp_path, f"[standards]\nwarn_at = {value}\n") == [error]


@pytest.mark.parametrize(
    "waiting",
    [
        'checkin_after = "3d"',  # equal to the last reminder
        'checkin_after = "4d"',  # after the last reminder
        'last_reminder_after = "6d"',  # after the auto-resolve
        'auto_resolve_after = "2d"',  # before the last reminder
        'checkin_after = "5d"\nlast_reminder_after = "3d"\nauto_resolve_after = "1d"',  # reversed
    ],
)
def test_waiting_durations_must_be_in_order(tmp_path: Path, waiting: str) -> None:
    assert load_error(tmp_path, f"[waiting]\n{waiting}\n") == [
        "waiting: checkin_after < last_reminder_after < auto_resolve_after must hold"
    ]


def test_waiting_durations_in_order_load(tmp_path: Path) -> None:
    tables = '[waiting]\ncheckin_after = "4h"\nlast_reminder_after = "2d"\nauto_resolve_after = "1w"\n'
    waiting = load_policy(policy_file(tmp_path, tables)).waiting
    assert (waiting.checkin_after, waiting.auto_resolve_after) == (timedelta(hours=4), timedelta(weeks=1))


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('digest_at = "9:00"', "checkins.digest_at: String should match pattern"),
        ('digest_at = "24:00"', "checkins.digest_at: String should match pattern"),
        ('digest_days = ["weekdays"]', "checkins.digest_days.0: 'weekdays' is not a day"),
        ('weekly_report_after = "weekly"', "checkins.weekly_report_after: 'weekly' is not a duration"),
    ],
)
def test_bad_checkins_are_named(tmp_path: Path, line: str, error: str) -> None:
    (found,) = load_error(tmp_path, f"[checkins]\n{line}\n")
    assert found.startswith(error)


def test_a_bad_promise_duration_is_named(tmp_path: Path) -> None:
    (error,) = load_error(tmp_path, '[promises]\nremind_before = "soon"\n')
    assert error.startswith("promises.remind_before: 'soon' is not a duration")


def test_leads_come_from_the_team_that_owns_the_queue(tmp_path: Path) -> None:
    tables = """
[[teams]]
name = "support"
queues = ["general"]
lead = "ana"

[[teams]]
name = "it"
queues = ["internal"]
"""
    policy = load_policy(policy_file(tmp_path, tables))
    assert policy.lead_of("general") == "ana"
    assert policy.lead_of("internal") is None
