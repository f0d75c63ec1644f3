"""Admission of Slack's message events in HTTP mode, so a flood cannot starve everything else.

A message event is stored before Slack hears the acknowledgement, which costs a database write and the
desk's work. Taken all at once, a burst larger than the bot can store makes every request slow: events,
slash commands and buttons alike wait behind hundreds of half-done events, and Slack, which waits 3 s,
gives up on them all. So events are worked a few at a time, in order of arrival, and once too many
are under way, the oldest waiting for the desk has waited a second, or the event loop runs late (the
process has no time to spare), the bot answers new ones 503 at once:
Slack sends those again later (it retries a failed event up to three times over a few minutes), and
whatever is not a message event is acknowledged as quickly as when the bot is idle.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

EVENT_WORKERS = 4
"""Message events handed to the desk at a time. More adds no throughput (SQLite writes one at a time,
PostgreSQL work is mostly this process's CPU) and lengthens every other request's wait for the loop."""
MAX_EVENT_WAIT = 1.0
"""Seconds the oldest event waiting for a desk turn may have waited before new ones are refused."""

MAX_UNDER_WAY = 8
"""Events between arrival and answer at most. Each one under way is work queued on the event loop ahead
of the next request; a few beyond the workers keep them busy while users.info answers."""

MAX_LAG = 0.01
"""Seconds the event loop may run late (every request waits that long for its turn to run) while events
are under way, before new ones are refused: the sign that the process has no time to spare for commands
and buttons. (A late loop with no event under way is some other work, a chart say, and refusing events
would not help.)"""
LAG_PROBE = 0.01
"""Seconds between probes of the event loop's lateness."""
TELL_EVERY = 30.0
"""Seconds between warnings while events are refused (a flood would otherwise flood the log)."""

log = logging.getLogger(__name__)


class Admission:
    """Message events from arrival to answer, a few at a time at the desk; arrivals are refused while
    the oldest event under way has been under way past the limit."""

    def __init__(
        self,
        workers: int = EVENT_WORKERS,
        max_under_way: int = MAX_UNDER_WAY,
        max_wait: float = MAX_EVENT_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slots = asyncio.Semaphore(workers)
        self._max_wait = max_wait
        self._max_under_way = max_under_way
        self.lag = 0.0
        """How late the event loop runs, smoothed over the last few probes (see `watch`)."""
        self._clock = clock
        self._under_way = 0
        self._waiting: OrderedDict[int, float] = OrderedDict()
        """When each event now waiting for a desk turn began waiting, oldest first."""
        self._numbers = itertools.count()
        self.refused = 0
        """Events refused since start."""
        self._told_at = -TELL_EVERY

    @contextmanager
    def arrival(self) -> Iterator[bool]:
        """An arriving event, counted as under way until it is answered; False: refuse it now. Counted
        from arrival, so a pile of events in their lookups before the desk (users.info) counts too; the
        wait is timed at the desk's queue, so one event waiting out Slack's rate limit in its lookup
        does not have every other refused."""
        now = self._clock()
        oldest = next(iter(self._waiting.values()), None)
        under_way = self._under_way
        behind = (
            under_way >= self._max_under_way
            or (under_way > 0 and self.lag > MAX_LAG)
            or (oldest is not None and now - oldest > self._max_wait)
        )
        if behind:
            self.refused += 1
            if now - self._told_at >= TELL_EVERY:
                self._told_at = now
                log.warning("Slack: more events than the bot can store; %d answered 503 so far", self.refused)
            yield False
            return
        self._under_way += 1
        try:
            yield True
        finally:
            self._under_way -= 1

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """A worker's slot at the desk, in order of arrival, held while the event is stored."""
        number = next(self._numbers)
        self._waiting[number] = self._clock()
        try:
            await self._slots.acquire()
        finally:
            del self._waiting[number]
        try:
            yield
        finally:
            self._slots.release()

    async def watch(self) -> None:
        """Probe how late the event loop runs, for as long as the adapter serves HTTP: a loop busy
        with more work than it can keep up with is late to every timer, this one included."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(LAG_PROBE)
            late = max(0.0, loop.time() - asked - LAG_PROBE)
            self.lag = 0.7 * self.lag + 0.3 * late
