"""Time as a port: the core asks a Clock, so tests and the console can move time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The wall clock, for production."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class OffsetClock:
    """The wall clock shifted by an offset that can be moved: time still flows, but it can jump.

    The console uses it so `/advance 2h` and `/at <time>` work while an interactive session goes on.
    """

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self._offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        self._offset += delta

    def set(self, moment: datetime) -> None:
        self._offset = as_utc(moment) - datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to, for deterministic tests."""

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, moment: datetime) -> None:
        self._now = as_utc(moment)


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; naive datetimes (as SQLite returns them) are taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
