"""Time-driven work. The database is the source of truth; APScheduler only wakes the sweep.

APScheduler 3.x must not share a job store between schedulers, so each process runs its own in-memory
scheduler whose only job is to call the desk's sweep, which claims due rows in the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.desk import Desk
from bot.messages import Outgoing

log = logging.getLogger(__name__)

DELIVERY_CHUNK = 25
"""Messages a sweep hands to the adapters at once, between renewals of the rest's lease."""
SHUTDOWN_GRACE = 2.0
"""Seconds a stopping process gives a sweep under way."""

Deliver = Callable[[list[Outgoing]], Awaitable[None]]


class DueWorkScheduler:
    """Runs the desk's due-work sweep now and then every `interval`, and delivers what it says."""

    def __init__(
        self,
        desk: Desk,
        deliver: Deliver,
        interval: timedelta = timedelta(minutes=1),
        platforms: Collection[str] | None = None,
    ):
        self._desk = desk
        self._platforms = platforms
        self._deliver = deliver
        self._interval = interval
        self._scheduler: AsyncIOScheduler | None = None
        self._sweeping: asyncio.Task[None] | None = None
        self._stopping = False
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """Start inside the running event loop; the first sweep runs at once (work missed while down)."""
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_job(
            self.sweep,
            "interval",
            seconds=self._interval.total_seconds(),
            id="due-work",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.add_job(self.sweep, id="due-work-at-start")
        self._scheduler.start()

    async def sweep(self) -> None:
        """One sweep at a time in a process (the one at start and the interval's may meet): what it
        says goes out a chunk at a time, the rest's lease renewed first, so a long batch (rate limits)
        is not taken for abandoned and sent again by another process."""
        if self._lock.locked():
            return
        async with self._lock:
            await self._sweep()

    async def _sweep(self) -> None:
        self._sweeping = asyncio.current_task()
        try:
            said = await self._desk.run_due_work(self._platforms)
            for start in range(0, max(len(said), 1), DELIVERY_CHUNK):  # the adapters hear of every sweep
                if start:
                    await self._desk.hold(said[start:])
                await self._deliver(said[start : start + DELIVERY_CHUNK])
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            log.info("due-work sweep stopped with the process; the outbox sends the rest at the next start")
        except Exception:
            log.exception("due-work sweep failed; it will run again at the next interval")
        finally:
            self._sweeping = None

    async def shutdown(self) -> None:
        """Stop waking sweeps, and give one under way a moment to finish; then it is cancelled, which
        loses nothing: what it said and had not sent is in the outbox for the next sweep."""
        self._stopping = True
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        running = self._sweeping
        if running is not None:
            await asyncio.wait({running}, timeout=SHUTDOWN_GRACE)
            running.cancel()
            await asyncio.wait({running})
