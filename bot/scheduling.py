"""Time-driven work. The database is the source of truth; APScheduler only wakes the sweep.

APScheduler 3.x must not share a job store between schedulers, so each process runs its own in-memory
scheduler whose only job is to call the desk's sweep, which claims due rows in the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Hashable, Sequence
from datetime import UTC, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.desk import Desk
from bot.messages import CustomerMessage, Outgoing, ToAgent, platform_of

log = logging.getLogger(__name__)

DELIVERY_CHUNK = 25
"""Messages handed to an adapter at once, from conversations that get only a few in a sweep."""
BUSY_CHUNK = 5
"""Messages of a busy conversation handed to an adapter at once: the platform paces it (Slack about one
post a second per channel), so they are settled every few seconds rather than after half a minute."""
FEW = 3
"""A conversation with at most this many messages in a sweep gets them within the platforms' bursts, so
such conversations share chunks; one with more is a lane of its own, paced by its platform."""
BUSY_AT_ONCE = 128
"""Busy conversations being delivered at the same time. Each mostly waits out its rate limit, holding
one request at most, so many can; they have a gate of their own, so they never hold up the few."""
SHARED_AT_ONCE = 16
"""Shared chunks (conversations with a few messages) being delivered at the same time."""
RENEWALS_PER_LEASE = 3
"""How often, per lease, what a sweep has not finished delivering has its lease renewed."""
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
        """One sweep at a time in a process (the one at start and the interval's may meet)."""
        if self._lock.locked():
            return
        async with self._lock:
            await self._sweep()

    async def _sweep(self) -> None:
        self._sweeping = asyncio.current_task()
        started = time.monotonic()
        try:
            said = await self._desk.run_due_work(self._platforms)
            if said:
                await self._deliver_all(said, started)
            else:
                await self._deliver([])  # the adapters hear of every sweep
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            log.info("due-work sweep stopped with the process; the outbox sends the rest at the next start")
        except Exception:
            log.exception("due-work sweep failed; it will run again at the next interval")
        finally:
            self._sweeping = None

    async def _deliver_all(self, said: list[Outgoing], started: float) -> None:
        """Conversations are delivered side by side, each in order: one waiting out its platform's rate
        limit (429, Retry-After) holds up no other. Until all is delivered, the lease of what is not is
        renewed now and then, so a long batch is not taken for abandoned and sent again elsewhere."""
        finished: set[int] = set()
        busy, shared = asyncio.Semaphore(BUSY_AT_ONCE), asyncio.Semaphore(SHARED_AT_ONCE)

        async def lane(chunks: list[list[int]], gate: asyncio.Semaphore) -> None:
            for chunk in chunks:
                async with gate:
                    await self._deliver([said[i] for i in chunk])
                finished.update(chunk)

        busy_lanes, shared_chunks = lanes(said)
        work = [lane(chunks, busy) for chunks in busy_lanes] + [lane([c], shared) for c in shared_chunks]
        renewing = asyncio.create_task(self._renew(said, finished, started))
        try:
            outcomes = await asyncio.gather(*work, return_exceptions=True)
        finally:
            renewing.cancel()
            await asyncio.wait({renewing})
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise failures[0]

    async def _renew(self, said: list[Outgoing], finished: set[int], since: float) -> None:
        every = self._desk.policy.delivery.lease.total_seconds() / RENEWALS_PER_LEASE
        while True:
            await asyncio.sleep(max(0.0, since + every - time.monotonic()))
            since = time.monotonic()
            try:
                await self._desk.hold([m for i, m in enumerate(said) if i not in finished])
            except Exception:
                log.exception("renewing the lease of messages being delivered failed")

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


def lanes(said: Sequence[Outgoing]) -> tuple[list[list[list[int]]], list[list[int]]]:
    """What a sweep said (as indices into `said`), in pieces that may be delivered side by side: each
    busy conversation's messages as a lane of chunks of BUSY_CHUNK, to be sent in order, the busiest
    first; and chunks shared by the conversations with only a few messages (none split between two)."""
    by_conversation: dict[Hashable, list[int]] = {}
    for index, message in enumerate(said):
        by_conversation.setdefault(_conversation(message), []).append(index)
    busy = sorted((c for c in by_conversation.values() if len(c) > FEW), key=len, reverse=True)
    busy_lanes = [[c[i : i + BUSY_CHUNK] for i in range(0, len(c), BUSY_CHUNK)] for c in busy]
    shared: list[list[int]] = [[]]
    for conversation in by_conversation.values():
        if len(conversation) > FEW:
            continue
        if len(shared[-1]) + len(conversation) > DELIVERY_CHUNK:
            shared.append([])
        shared[-1] += conversation
    return busy_lanes, [chunk for chunk in shared if chunk]


def _conversation(message: Outgoing) -> Hashable:
    """Where a message goes, as far as the platforms' rate limits go: a channel (all its threads), a
    person's DM, or the agents' channel."""
    platform = platform_of(message)
    if isinstance(message, CustomerMessage):
        where, person = message.audience.conversation, message.audience.person
        return (
            (platform, "channel", where.workspace_id, where.channel_id)
            if where
            else (platform, "dm", person.user_id)
        )
    audience = message.audience
    if isinstance(audience, ToAgent):
        return (platform, "dm", audience.person.user_id)
    return (platform, "agents")
