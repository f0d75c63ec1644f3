"""Admission of Slack's message events in HTTP mode, so a flood cannot starve everything else.

A message event is stored before Slack hears the acknowledgement, which costs a database write and the
desk's work. Taken all at once, a burst larger than the bot can store makes every request slow: events,
slash commands and buttons alike wait behind hundreds of half-done events, and Slack, which waits 3 s,
gives up on them all. So events are worked a few at a time, in order of arrival, and once the oldest
waiting event has waited longer than a second the bot answers new ones 503 at once: Slack sends those
again later (it retries a failed event up to three times over a few minutes), and whatever is not a
message event is acknowledged as quickly as when the bot is idle.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

EVENT_WORKERS = 4
"""Message events stored at a time. More adds no throughput (SQLite writes one at a time, PostgreSQL
work is mostly this process's CPU) and lengthens every other request's wait for the event loop."""
MAX_EVENT_WAIT = 1.0
"""Seconds the oldest waiting event may have waited before new ones are refused for now."""

log = logging.getLogger(__name__)


class Admission:
    """A fair queue of message events in front of the desk, refusing arrivals while it is behind."""

    def __init__(
        self,
        workers: int = EVENT_WORKERS,
        max_wait: float = MAX_EVENT_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slots = asyncio.Semaphore(workers)
        self._max_wait = max_wait
        self._clock = clock
        self._waiting: OrderedDict[int, float] = OrderedDict()
        self._numbers = itertools.count()
        self.refused = 0
        """Events refused since start."""
        self._refusing = False

    def admit(self) -> bool:
        """Whether to take an arriving event: not while the oldest waiting one has waited past the
        limit. The log says when refusing starts and stops, not once per event."""
        behind = bool(self._waiting) and self._clock() - next(iter(self._waiting.values())) > self._max_wait
        if behind != self._refusing:
            self._refusing = behind
            if behind:
                log.warning("Slack: more events than the bot can store; answering 503 so Slack resends")
            else:
                log.warning("Slack: caught up; %d events were refused so far", self.refused)
        self.refused += behind
        return not behind

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for a worker's slot, in order of arrival, and hold it while the event is stored."""
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
