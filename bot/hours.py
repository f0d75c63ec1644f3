"""Business hours: when a queue is open, and arithmetic in open time.

Service targets count business time: a one-hour first response for a ticket opened Friday 16:59 in a
Mon-Fri 9-17 queue falls due Monday 09:59. Hours are blocks of local wall time per weekday (several a
day; a block may run past midnight, like 22:00-06:00), minus holidays (local dates), in an IANA timezone,
so DST changes move the blocks with the clocks. Everything goes in and out as aware UTC datetimes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_BLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_SEARCH_DAYS = 366 * 3
"""How far ahead open time is searched: holidays may close a queue for a while, not for years."""


class HoursError(ValueError):
    """Hours that cannot work: the message says which part and why."""


@dataclass(frozen=True, order=True)
class Block:
    """Open from `start` to `end` minutes after local midnight; `end` past 1440 runs into the next day."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> Block:
        match = _BLOCK.match(text)
        if not match:
            raise HoursError(f"'{text}' is not a block of hours; write it like 09:00-17:00 or 22:00-06:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            raise HoursError(f"'{text}' has a time that does not exist")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end == start:
            raise HoursError(f"'{text}' is empty; use 00:00-24:00 for a whole day")
        if end < start:
            end += 24 * 60  # overnight: ends the next morning
        return cls(start, end)

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end % (24 * 60) if self.end != 24 * 60 else self.end)}"


@dataclass(frozen=True)
class BusinessHours:
    """A queue's opening hours. `week[0]` is Monday's blocks; `always` means open around the clock."""

    name: str
    zone: ZoneInfo
    week: tuple[tuple[Block, ...], ...] = ((),) * 7
    holidays: frozenset[date] = frozenset()
    always: bool = False

    @classmethod
    def build(
        cls,
        name: str,
        timezone: str,
        week: Mapping[str, Sequence[str]],
        holidays: Sequence[date] = (),
        always: bool = False,
    ) -> BusinessHours:
        """From policy-file values: `week` maps day names (`mon`) to blocks (`09:00-17:00`)."""
        zone = ZoneInfo(timezone)
        days: list[tuple[Block, ...]] = [() for _ in DAY_NAMES]
        for day, blocks in week.items():
            if day not in DAY_NAMES:
                raise HoursError(f"'{day}' is not a day; use {', '.join(DAY_NAMES)}")
            parsed = sorted(Block.parse(b) for b in blocks)
            for earlier, later in pairwise(parsed):
                if later.start < earlier.end:
                    raise HoursError(f"{day}: {earlier} and {later} overlap")
            days[DAY_NAMES.index(day)] = tuple(parsed)
        if always:
            days = [(Block(0, 24 * 60),) for _ in DAY_NAMES]  # every day, whole days: holidays still close
        if not any(days):
            raise HoursError("no day has any hours; give some blocks, or always = true")
        for index, day_blocks in enumerate(days):
            following = days[(index + 1) % 7]
            for block in day_blocks:
                spill = block.end - 24 * 60
                clash = next((b for b in following if spill > 0 and b.start < spill), None)
                if clash is not None:
                    nxt = DAY_NAMES[(index + 1) % 7]
                    raise HoursError(f"{DAY_NAMES[index]} {block} overlaps {nxt} {clash}")
        return cls(name, zone, tuple(days), frozenset(holidays), always)

    # --- questions about time -------------------------------------------------------------------

    def open_intervals(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open time from `start` on, as UTC intervals in order (the first may have begun earlier)."""
        local_day = start.astimezone(self.zone).date() - timedelta(days=1)  # overnight blocks from yesterday
        last_close = start - timedelta(days=2)
        for offset in range(_SEARCH_DAYS):
            day = local_day + timedelta(days=offset)
            if day in self.holidays:
                continue
            midnight = datetime.combine(day, time())
            for block in self.week[day.weekday()]:
                opens = _utc(midnight + timedelta(minutes=block.start), self.zone)
                closes = _utc(midnight + timedelta(minutes=block.end), self.zone)
                # A block ending in the hour a DST change skips can reach past the next one's start.
                opens = max(opens, last_close)
                if closes > start and closes > opens:
                    yield opens, closes
                last_close = max(last_close, closes)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of open time after `start` has passed."""
        start = start.astimezone(UTC)
        left = duration
        for opens, closes in self.open_intervals(start):
            opens = max(opens, start)
            if left <= closes - opens:
                return opens + left
            left -= closes - opens
        raise HoursError(f"{self.name}: no open time within {_SEARCH_DAYS} days")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Open time between two moments (zero when `end` is not after `start`)."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        total = timedelta()
        if end <= start:
            return total
        for opens, closes in self.open_intervals(start):
            if opens >= end:
                break
            total += min(closes, end) - max(opens, start)
        return total

    def is_open(self, moment: datetime) -> bool:
        moment = moment.astimezone(UTC)
        opens, _ = next(self.open_intervals(moment))
        return opens <= moment

    def next_open(self, moment: datetime) -> datetime:
        """`moment` itself when open, else when the queue next opens."""
        opens, _ = next(self.open_intervals(moment.astimezone(UTC)))
        return max(opens, moment.astimezone(UTC))

    # --- words ----------------------------------------------------------------------------------

    def describe(self, at: datetime | None = None) -> str:
        """`Mon-Fri 9:00-17:00 CET`: days with the same blocks grouped; the zone's abbreviation at `at`."""
        zone_name = (at or datetime.now(UTC)).astimezone(self.zone).tzname() or self.zone.key
        if self.always:
            return "around the clock, every day"
        groups: list[tuple[list[int], tuple[Block, ...]]] = []
        for index, blocks in enumerate(self.week):
            if not blocks:
                continue
            if groups and groups[-1][1] == blocks and groups[-1][0][-1] == index - 1:
                groups[-1][0].append(index)
            else:
                groups.append(([index], blocks))
        parts = []
        for days, blocks in groups:
            names = [DAY_NAMES[d].capitalize() for d in days]
            span = names[0] if len(names) == 1 else f"{names[0]}-{names[-1]}"
            parts.append(f"{span} {', '.join(_short_block(b) for b in blocks)}")
        return f"{'; '.join(parts)} {zone_name}"


def _utc(local_wall: datetime, zone: ZoneInfo) -> datetime:
    """A local wall time as UTC. A time skipped by a DST change counts from the offset before it."""
    return local_wall.replace(tzinfo=zone).astimezone(UTC)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _short_block(block: Block) -> str:
    def short(minutes: int) -> str:
        return f"{minutes // 60}:{minutes % 60:02d}"

    end = block.end if block.end == 24 * 60 else block.end % (24 * 60)
    return f"{short(block.start)}-{short(end)}"
