"""The worker side of bench/scaleout.py: bot processes started together (forked from a server that
imported this module once, so starting one costs milliseconds), each doing one job on the database and
handing back what it did. Kept apart from the benchmark's main module, which multiprocessing would
otherwise import a second time in every worker."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from bench.intake import Capture, Rows, in_parallel, plan
from bot.clock import SystemClock
from bot.desk import Desk
from bot.messages import CustomerMessage, Outgoing
from bot.policy import load_policy
from bot.scheduling import DueWorkScheduler
from storage.engine import create_engine, session_factory
from storage.models import Base
from storage.uow import SqlUnitOfWork

CHECKING_IN = "just checking in on"


@dataclass
class Part:
    """What one worker process did: when it started and ended (wall clock), how many items, its CPU time,
    and what it brought back (captured rows, or the tickets whose check-in it delivered)."""

    start: float
    end: float
    items: int
    cpu: float
    extra: Any = None


@dataclass
class Round:
    """One run with some processes: items per second over the common wall time, CPU, machine load."""

    parts: list[Part]
    busy: float

    @property
    def seconds(self) -> float:
        return max(p.end for p in self.parts) - min(p.start for p in self.parts)

    @property
    def rate(self) -> float:
        return sum(p.items for p in self.parts) / self.seconds

    @property
    def cpu(self) -> float:
        return sum(p.cpu for p in self.parts)


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _customer(message: Any) -> int:
    return int(message.actor.person.user_id[1:])


async def _warm(engine: Any, connections: int) -> None:
    """Open the pool's connections before the clock starts."""

    async def one() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            await asyncio.sleep(0.05)

    await asyncio.gather(*(one() for _ in range(connections)))


async def _intake(url: str, args: tuple[int, int, int, int, int, bool], barrier: Any) -> Part:
    messages, per_customer, part, parts, concurrency, keep = args
    mine = [m for m in plan(messages, per_customer) if _customer(m) % parts == part]
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        capture = Capture()
        capture.attach(engine)
        desk = Desk(lambda: SqlUnitOfWork(sessions), SystemClock(), load_policy())
        desk.serve(["slack"])
        await _warm(engine, concurrency)
        await asyncio.to_thread(barrier.wait)

        async def one(message: Any) -> None:
            await desk.settle(await desk.receive(message))

        cpu, started = time.process_time(), time.time()
        await in_parallel(mine, one, concurrency)
        ended, cpu = time.time(), time.process_time() - cpu
        if keep:
            await capture.resolve(engine)
        return Part(started, ended, len(mine), cpu, capture.groups if keep else None)
    finally:
        await engine.dispose()


def ticket_of(rows: Rows) -> int:
    for table, key in (("entries", "ticket_number"), ("tickets", "number"), ("deliveries", "ticket_number")):
        for row in rows.get(table, []):
            if row.get(key) is not None:
                return int(row[key])
    return 0


async def _raw(url: str, args: tuple[list[Rows], int], barrier: Any) -> Part:
    """Replay captured rows, one transaction per message, tables in dependency order; a ticket's
    messages in the order they were committed (a reply's rows refer to its ticket's)."""
    groups, concurrency = args
    order = list(Base.metadata.sorted_tables)
    per_ticket: dict[int, list[Rows]] = {}
    for rows in groups:
        per_ticket.setdefault(ticket_of(rows), []).append(rows)
    engine = create_engine(url)
    try:
        await _warm(engine, concurrency)
        await asyncio.to_thread(barrier.wait)

        async def one(ticket: list[Rows]) -> None:
            for rows in ticket:
                async with engine.begin() as connection:
                    for table in order:
                        if table.name in rows:
                            await connection.execute(insert(table), rows[table.name])

        cpu, started = time.process_time(), time.time()
        await in_parallel(list(per_ticket.values()), one, concurrency)
        return Part(started, time.time(), len(groups), time.process_time() - cpu)
    finally:
        await engine.dispose()


async def _sweep(url: str, _: object, barrier: Any) -> Part:
    """Sweep until a sweep finds nothing, delivering into a list that settles what it gets."""
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        desk = Desk(lambda: SqlUnitOfWork(sessions), SystemClock(), load_policy())
        desk.serve(["slack"])
        got: list[Outgoing] = []

        async def deliver(messages: list[Outgoing]) -> None:
            got.extend(messages)
            await desk.settle(messages)

        scheduler = DueWorkScheduler(desk, deliver, platforms={"slack"})
        await _warm(engine, 2)
        await asyncio.to_thread(barrier.wait)
        cpu, started = time.process_time(), time.time()
        while True:
            before = len(got)
            await scheduler.sweep()
            if len(got) == before:
                break
        tickets = [
            m.audience.ticket_number for m in got if isinstance(m, CustomerMessage) and CHECKING_IN in m.text
        ]
        return Part(started, time.time(), len(tickets), time.process_time() - cpu, tickets)
    finally:
        await engine.dispose()


_JOBS = {"intake": _intake, "raw": _raw, "sweep": _sweep}


def _worker(job: str, url: str, args: Any, barrier: Any, results: Any) -> None:
    results.put(asyncio.run(_JOBS[job](url, args, barrier)))


def in_processes(job: str, url: str, per_process: Sequence[Any]) -> Round:
    """Run `job` in one process per item of `per_process`, started together; wait for all."""
    context = multiprocessing.get_context("forkserver")  # a fork of a server that imported this once
    context.set_forkserver_preload([__name__])
    barrier = context.Barrier(len(per_process) + 1)
    results = context.Queue()
    workers = [
        context.Process(target=_worker, args=(job, url, args, barrier, results)) for args in per_process
    ]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=120)
    busy, total = _cpu_ticks()
    parts: list[Part] = []
    while len(parts) < len(workers):
        try:
            parts.append(results.get(timeout=1))
        except queue.Empty:
            if any(w.exitcode not in (None, 0) for w in workers):
                for worker in workers:
                    worker.kill()
                raise RuntimeError(f"a {job} worker failed (its traceback is above)") from None
    after_busy, after_total = _cpu_ticks()
    for worker in workers:
        worker.join()
    return Round(parts, (after_busy - busy) / max(1, after_total - total))
