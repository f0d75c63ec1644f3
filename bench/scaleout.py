"""Scale-out on PostgreSQL: one bot process against two on the same database, and no check-in fired twice.

Intake: customer messages through the core in each process, as an adapter handles them (`Desk.receive`,
then `Desk.settle` of the replies), `--concurrency` in flight per process. The same messages are worked
by one process, then (the database emptied) split between two started together; customers are split
between the processes (each customer's messages stay in order in one). Throughput is all messages over
the wall time from the common start to the last process's end. The raw limit is the same rows with plain
SQLAlchemy Core inserts (captured from the one-process run, as bench/intake.py does) from one and from two
processes, one transaction per message.

Check-ins: `--checkins` tickets waiting on their customers (bench/_checkin_seed.py) have their check-ins
due at once; one process, then (the database emptied) two processes at the same time, sweep them with
`DueWorkScheduler.sweep` (the production sweep: `Desk.run_due_work`, then delivery in chunks, each chunk
settled in the outbox) into a recording fake. Double-fired check-ins are counted three ways: tickets whose
check-in the fake got more than once, tickets with more than one check-in in the outbox, and tickets with
more than one on their record. It must be 0.

The machine line says how many cores there are: PostgreSQL runs on the same ones as the bot processes.

    python -m bench.scaleout --messages 4000 --checkins 3000
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from bench._checkin_seed import Mix, fired, places, seed_checkins, seed_tickets, spread_over
from bench._scaleout_workers import CHECKING_IN, Round, in_processes, ticket_of
from bench.common import postgres_server, run, scratch_database
from bench.intake import Rows
from storage.engine import create_engine
from storage.migrate import upgrade
from storage.models import Base, DeliveryRow, EntryRow


async def intake_rounds(url: str, args: argparse.Namespace) -> dict[str, dict[int, Round]]:
    rounds: dict[str, dict[int, Round]] = {"core": {}, "raw": {}}
    for processes in (1, 2):
        await _empty(url)
        per = [
            (args.messages, args.per_customer, part, processes, args.concurrency, processes == 1)
            for part in range(processes)
        ]
        rounds["core"][processes] = await asyncio.to_thread(in_processes, "intake", url, per)
    groups: list[Rows] = rounds["core"][1].parts[0].extra
    for processes in (1, 2):
        await _empty(url)
        per = [
            ([g for g in groups if ticket_of(g) % processes == part], args.concurrency)
            for part in range(processes)
        ]
        rounds["raw"][processes] = await asyncio.to_thread(in_processes, "raw", url, per)
    return rounds


@dataclass
class Sweeps:
    round: Round
    states: dict[str, int]
    twice: tuple[int, int, int]
    """Tickets whose check-in went out more than once: delivered, kept in the outbox, on the record."""


async def sweep_round(url: str, args: argparse.Namespace, processes: int) -> Sweeps:
    await _empty(url)
    engine = create_engine(url)
    try:
        since = datetime.now(UTC) - timedelta(days=1)
        await seed_tickets(engine, places(args.checkins, Mix()), since)
        due = datetime.now(UTC) - timedelta(seconds=1)
        await seed_checkins(engine, spread_over(due, timedelta(0), args.checkins), since)
        result = await asyncio.to_thread(in_processes, "sweep", url, [None] * processes)
        delivered = Counter(n for p in result.parts for n in p.extra)
        async with engine.connect() as connection:
            kept = (
                await connection.execute(
                    select(DeliveryRow.ticket_number, func.count())
                    .where(DeliveryRow.ticket_number.is_not(None))
                    .group_by(DeliveryRow.ticket_number)
                )
            ).all()
            recorded = (
                await connection.execute(
                    select(EntryRow.ticket_number, func.count())
                    .where(EntryRow.body.contains(CHECKING_IN))
                    .group_by(EntryRow.ticket_number)
                )
            ).all()
        twice = (
            sum(1 for n in delivered.values() if n > 1),
            sum(1 for _, n in kept if n > 1),
            sum(1 for _, n in recorded if n > 1),
        )
        return Sweeps(result, await fired(engine), twice)
    finally:
        await engine.dispose()


async def _migrated(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _empty(url: str) -> None:
    """Every table emptied and its ids restarted: each round starts from the same empty database."""
    engine = create_engine(url)
    try:
        names = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


async def main(args: argparse.Namespace) -> None:
    if postgres_server() is None:
        print("scale-out needs PostgreSQL: set BENCH_DATABASE_URL or TEST_DATABASE_URL")
        return
    print(
        f"scale-out on PostgreSQL: the bot processes and the PostgreSQL server share this machine's cores\n"
        f"intake: {args.messages:,} messages (receive + settle) from {args.messages // args.per_customer:,} "
        f"customers, {args.concurrency} in flight per process, customers split between processes"
    )
    async with scratch_database("postgresql", "scaleout") as url:
        await _migrated(url)
        await report(url, args)


async def report(url: str, args: argparse.Namespace) -> None:
    rounds = await intake_rounds(url, args)
    print(f"{'processes':<10} {'msg/s':>8} {'raw msg/s':>10} {'ratio':>6} {'bot CPU s':>10} {'busy':>5}")
    for processes in (1, 2):
        core, raw = rounds["core"][processes], rounds["raw"][processes]
        print(
            f"{processes:<10} {core.rate:>8,.0f} {raw.rate:>10,.0f} {core.rate / raw.rate:>6.2f} "
            f"{core.cpu:>10.1f} {core.busy:>5.0%}"
        )
    scale = rounds["core"][2].rate / rounds["core"][1].rate
    raw_scale = rounds["raw"][2].rate / rounds["raw"][1].rate
    verdict = "met" if scale >= 1.6 else "not met"
    print(f"two/one throughput: {scale:.2f} (target >= 1.6: {verdict}); raw inserts two/one: {raw_scale:.2f}")
    print(f"check-ins: {args.checkins:,} due at once, swept by one process, then by two at the same time")
    header = f"{'processes':<10} {'fired/s':>8} {'fired by each':>16} {'states':>24}"
    print(f"{header}  double-fired (sent/outbox/record)")
    for processes in (1, 2):
        sweeps = await sweep_round(url, args, processes)
        each = " + ".join(f"{p.items:,}" for p in sweeps.round.parts)
        states = ", ".join(f"{n:,} {state}" for state, n in sorted(sweeps.states.items()))
        twice = "/".join(str(n) for n in sweeps.twice)
        print(f"{processes:<10} {sweeps.round.rate:>8,.0f} {each:>16} {states:>24}  {twice}")
        noun = "processes" if processes > 1 else "process"
        print(f"double-fired check-ins with {processes} {noun}: {sum(sweeps.twice)}")


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--per-customer", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--checkins", type=int, default=3000)
    run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
