"""Times as agents type them in a promise, and times as customers read them.

`2h`, `90m`, `1d` count from now; `16:00`, `today 16:00`, `tomorrow 10:00`, `fri`, `fri 14:00`,
`2026-12-01 10:00` are wall times in the agent's timezone (a day without a time means the close of
business that day). Customers read times in their own timezone when their profile has one.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.durations import parse_duration
from bot.hours import DAY_NAMES, BusinessHours

_CLOCK = re.compile(r"^([01]?\d|2[0-3])[:.]([0-5]\d)$")
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DAYS = {name: index for index, name in enumerate(DAY_NAMES)} | {
    "monday": 0,
    "tuesday": 1,
    "wednesday": 2,
    "thursday": 3,
    "friday": 4,
    "saturday": 5,
    "sunday": 6,
}
CLOSE_OF_DAY = time(17, 0)
"""A day named without a time, on a day the queue is closed, means this time."""


class WhenError(ValueError):
    """Not a time a promise can be due at; the message shows the forms that work."""


EXAMPLES = "2h, 16:00, tomorrow 10:00, fri or 2026-12-01 10:00"


def split_when(text: str) -> tuple[str, str]:
    """The leading time words of a promise (`tomorrow 10:00 send the label` → `tomorrow 10:00`) and
    the rest; raises WhenError when the text does not start with a time."""
    words = text.split()
    if not words:
        raise WhenError(f"When? Give a time like {EXAMPLES}.")
    first = words[0].lower()
    takes_clock = first in ("today", "tomorrow") or first in _DAYS or _ISO_DAY.match(first)
    if takes_clock and len(words) > 1 and _CLOCK.match(words[1]):
        return " ".join(words[:2]), " ".join(words[2:])
    if takes_clock or _CLOCK.match(first) or _is_duration(first):
        return words[0], " ".join(words[1:])
    raise WhenError(f"'{words[0][:30]}' is not a time I understand. Try {EXAMPLES}.")


def resolve(spec: str, now: datetime, zone: ZoneInfo, hours: BusinessHours | None = None) -> datetime:
    """The UTC moment a time spec means, typed at `now` by someone in `zone`; never in the past."""
    words = spec.lower().split()
    if not words or len(words) > 2:
        raise WhenError(f"'{spec}' is not a time I understand. Try {EXAMPLES}.")
    if len(words) == 1 and _is_duration(words[0]):
        return now.astimezone(UTC) + parse_duration(words[0])
    if len(words) == 2 and not _CLOCK.match(words[1]):
        raise WhenError(f"'{spec}' is not a time I understand. Try {EXAMPLES}.")
    local_now = now.astimezone(zone)
    clock = _CLOCK.match(words[-1]) if words else None
    at = time(int(clock.group(1)), int(clock.group(2))) if clock else None
    head = words[0] if not (clock and len(words) == 1) else "today"
    if head == "today":
        day = local_now.date()
    elif head == "tomorrow":
        day = local_now.date() + timedelta(days=1)
    elif head in _DAYS:
        ahead = (_DAYS[head] - local_now.weekday()) % 7
        day = local_now.date() + timedelta(days=ahead)
    elif _ISO_DAY.match(head):
        try:
            day = date.fromisoformat(head)
        except ValueError:
            raise WhenError(f"'{head}' is not a date.") from None
    else:
        raise WhenError(f"'{spec}' is not a time I understand. Try {EXAMPLES}.")
    moment = _at(day, at or _close_of(day, hours), zone)
    if moment <= now and head in _DAYS and at is not None:
        moment = _at(day + timedelta(days=7), at, zone)  # "fri 10:00" on Friday afternoon: next week
    if moment <= now and clock and len(words) == 1:
        moment = _at(day + timedelta(days=1), at or CLOSE_OF_DAY, zone)  # "09:00" in the evening
    if moment <= now:
        raise WhenError(f"{spec} has already passed; give a time in the future.")
    return moment


def customer_time(moment: datetime, zone: ZoneInfo, now: datetime) -> str:
    """`10:30 today`, `10:30 tomorrow`, `10:30 on Monday 2 March` with the zone's abbreviation."""
    local, today = moment.astimezone(zone), now.astimezone(zone).date()
    clock = f"{local.hour}:{local.minute:02d} {local.tzname()}"
    if local.date() == today:
        return f"{clock} today"
    if local.date() == today + timedelta(days=1):
        return f"{clock} tomorrow"
    return f"{clock} on {local.strftime('%A')} {local.day} {local.strftime('%B')}"


def zone_or(name: str | None, fallback: ZoneInfo) -> ZoneInfo:
    """The timezone of that IANA name, or the fallback for none, an unknown name, or a tzdata folder."""
    if name:
        try:
            return ZoneInfo(name)
        except (KeyError, ValueError, OSError):
            pass
    return fallback


def _close_of(day: date, hours: BusinessHours | None) -> time:
    if hours is None or hours.always or day in hours.holidays:
        return CLOSE_OF_DAY
    blocks = hours.week[day.weekday()]
    if not blocks:
        return CLOSE_OF_DAY
    end = max(b.end for b in blocks)
    return time(23, 59) if end >= 24 * 60 else time(end // 60, end % 60)


def _at(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at).replace(tzinfo=zone).astimezone(UTC)


def _is_duration(word: str) -> bool:
    try:
        return parse_duration(word) > timedelta(0)
    except ValueError:
        return False
