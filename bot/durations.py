"""Durations as people write them: `90m`, `2h`, `1d`, `1h30m`, `2w`."""

from __future__ import annotations

import re
from datetime import timedelta

from bot.text import shorten

_PART = re.compile(r"(\d+)\s*([wdhms])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
ECHO_LIMIT = 40
MAX_DIGITS = 9
"""More digits than this is more than ten years in any unit (and would overflow a timedelta)."""
LONGEST = timedelta(days=3660)
"""No duration a desk needs is longer than ten years; longer ones are typing mistakes."""


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as `90m` or `1h30m`; raises ValueError with a readable reason, which
    quotes a short piece of the text at most (it is echoed to whoever typed it)."""
    compact = text.strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    shown = shorten(text.strip(), ECHO_LIMIT)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"'{shown}' is not a duration; write it like 90m, 2h, 1d or 1h30m")
    total = timedelta()
    for number, unit in parts:
        if len(number.lstrip("0")) > MAX_DIGITS:
            raise ValueError(f"'{shown}' is more than ten years")
        try:
            total += timedelta(**{_UNITS[unit]: int(number)})
        except OverflowError:
            raise ValueError(f"'{shown}' is more than ten years") from None
        if total > LONGEST:
            raise ValueError(f"'{shown}' is more than ten years")
    return total


def format_duration(delta: timedelta) -> str:
    """The inverse of parse_duration, for summaries: `1d2h`, `90m` is shown as `1h30m`."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0m"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            out.append(f"{amount}{unit}")
    return "".join(out)
