"""Scheduler: ten thousand check-ins due in the same minute, from due to recorded send, beside Slack's limit.

Ten thousand tickets waiting on their customers (bench/_checkin_seed.py writes them straight into the
tables, spread over DMs, shared channels and busy support channels) have their check-ins fall due evenly
over one minute. The firing goes the production way: `DueWorkScheduler` wakes `Desk.run_due_work` every
`--sweep-seconds` (RELAYDESK_SWEEP_SECONDS' default is 60), which claims and fires the due rows and keeps
each message in the outbox; the scheduler hands them to the real Slack adapter, which posts them to a fake
Slack Web API (in a process of its own) that limits chat.postMessage per channel as Slack does (a token
bucket: `--rate` per second, bursts of `--burst`, HTTP 429 with Retry-After beyond), and settles them.

For each check-in: due → claimed by a sweep (fired_at), due → Slack took the post, and due → the outbox
row settled (recorded as sent): p50, p99 and max. The raw limit in the same run is Slack's own: when each
message would be taken if every channel were fed optimally, from its due time (nothing could do better)
and from the moment our sweep claimed it (what delivery alone could do after our sweep).

    python -m bench.scheduler --checkins 10000 --backend both
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.slack.adapter import SlackAdapter
from adapters.slack.config import SlackSettings
from bench._checkin_seed import (
    Mix,
    Place,
    distribution,
    places,
    seed_checkins,
    seed_tickets,
    spread_over,
    support_channels,
)
from bench._checkin_seed import fired as fired_states
from bench._limited_slack import SlackProcess, best_sends
from bench.common import backends, percentile, run, scratch_database
from bot.checkins import WAITING_CHECKIN
from bot.clock import SystemClock
from bot.desk import Desk
from bot.domain import CheckinState, DeliveryState
from bot.messages import Outgoing
from bot.policy import load_policy
from bot.scheduling import DueWorkScheduler
from storage.engine import create_engine, session_factory
from storage.migrate import upgrade
from storage.models import CheckinRow, DeliveryRow
from storage.uow import SqlUnitOfWork
from tests.slack_fake import BOT_TOKEN

AGENTS_CHANNEL = "CAGENTS"
POLL = 0.25


class TimedDesk(Desk):
    """The desk, with the time each sweep's `run_due_work` took and what it said."""

    sweeps: list[tuple[float, float, int]]

    async def run_due_work(self, platforms: Collection[str] | None = None) -> list[Outgoing]:
        wall, started = time.time(), time.perf_counter()
        said = await super().run_due_work(platforms)
        self.sweeps.append((wall, time.perf_counter() - started, len(said)))
        return said


@dataclass
class Outcome:
    """One backend's run: per check-in latencies (seconds) by measure, and the sweep's figures."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    by_kind: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    fired: int = 0
    states: dict[str, int] = field(default_factory=dict)
    sweep_seconds: float = 0.0
    sweeps: int = 0
    refused: int = 0
    refused_channels: int = 0
    posts: int = 0
    most_posts: int = 0
    failed: int = 0
    posting: tuple[int, float] = (0, 0.0)
    """Posts taken after the last sweep that fired anything returned, and the seconds they took."""
    timeline: list[tuple[float, float]] = field(default_factory=list)
    """Seconds after the first due moment: each sweep that fired something (start, end), then the posts."""
    unfinished: bool = False
    span: float = 0.0


def adapter_settings(api_url: str, spread: list[Place]) -> SlackSettings:
    return SlackSettings(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET="bench-secret",
        SLACK_API_URL=api_url,
        SLACK_SUPPORT_CHANNELS=",".join(support_channels(spread)),
        SLACK_AGENT_CHANNEL=AGENTS_CHANNEL,
        RELAYDESK_HTTP_HOST="127.0.0.1",
        RELAYDESK_HTTP_PORT="0",
    )


async def _settled(engine: AsyncEngine) -> bool:
    """Every waiting check-in fired or dropped, and every delivery sent or given up."""
    async with engine.connect() as connection:
        waiting = await connection.scalar(
            select(CheckinRow.id)
            .where(CheckinRow.kind == WAITING_CHECKIN, CheckinRow.state == CheckinState.PENDING)
            .limit(1)
        )
        unsent = await connection.scalar(
            select(DeliveryRow.id).where(DeliveryRow.state == DeliveryState.PENDING).limit(1)
        )
        return waiting is None and unsent is None


async def measure(backend: str, args: argparse.Namespace, spread: list[Place]) -> Outcome:
    outcome = Outcome()
    async with (
        scratch_database(backend, "scheduler") as url,
        SlackProcess(args.rate, args.burst) as slack,
    ):
        engine = create_engine(url)
        try:
            await upgrade(engine)
            since = datetime.now(UTC) - timedelta(days=1)
            await seed_tickets(engine, spread, since)
            sessions = session_factory(engine)
            desk = TimedDesk(lambda: SqlUnitOfWork(sessions), SystemClock(), load_policy())
            desk.sweeps = []
            desk.serve(["slack"])
            adapter = SlackAdapter(adapter_settings(slack.api_url, spread), desk, engine)
            start = datetime.now(UTC) + timedelta(seconds=0.5 + len(spread) / 5_000)  # time to seed
            await seed_checkins(
                engine, spread_over(start, timedelta(seconds=args.window), len(spread)), since
            )
            await asyncio.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()))
            scheduler = DueWorkScheduler(
                desk, adapter.deliver, timedelta(seconds=args.sweep_seconds), platforms={"slack"}
            )
            scheduler.start()
            deadline = time.monotonic() + args.window + args.timeout
            try:
                await asyncio.sleep(args.window)
                while not await _settled(engine):
                    if time.monotonic() > deadline:
                        outcome.unfinished = True
                        break
                    await asyncio.sleep(POLL)
            finally:
                await scheduler.shutdown()
                await adapter.stop()
            await _collect(engine, spread, await slack.record(), desk, args, outcome)
        finally:
            await engine.dispose()
    return outcome


async def _collect(
    engine: AsyncEngine,
    spread: list[Place],
    record: dict[str, list | dict],
    desk: TimedDesk,
    args: argparse.Namespace,
    outcome: Outcome,
) -> None:
    """Join what the database and the fake recorded into per check-in latencies and the limits."""
    async with engine.connect() as connection:
        checkins = (
            await connection.execute(
                select(CheckinRow.ticket_number, CheckinRow.due_at, CheckinRow.fired_at).where(
                    CheckinRow.kind == WAITING_CHECKIN, CheckinRow.fired_at.is_not(None)
                )
            )
        ).all()
        deliveries = (
            await connection.execute(
                select(DeliveryRow.id, DeliveryRow.ticket_number, DeliveryRow.state, DeliveryRow.settled_at)
            )
        ).all()
    taken: dict[int, float] = {}
    posts: Counter[int] = Counter()
    for at, _channel, delivery in record["taken"]:
        if delivery is not None:
            taken.setdefault(delivery, at)
            posts[delivery] += 1
    settled = {d.ticket_number: d for d in deliveries if d.ticket_number is not None}
    outcome.failed = sum(1 for d in deliveries if d.state is DeliveryState.FAILED)
    names = ("due → claimed by a sweep", "due → Slack took it", "due → settled (recorded sent)")
    limits = ("limit: Slack fed at due time", "limit: Slack fed at claim")
    rows: list[tuple[str, str, float, float, float | None, float | None]] = []
    for number, due, fired_at in checkins:
        place = spread[number - 1]
        delivery = settled.get(number)
        took = taken.get(delivery.id) if delivery is not None else None
        sent = delivery is not None and delivery.state is DeliveryState.SENT and delivery.settled_at
        done = delivery.settled_at.timestamp() if sent else None
        rows.append((place.kind, place.channel, due.timestamp(), fired_at.timestamp(), took, done))
    best_due = best_sends([(r[1], r[2]) for r in rows], args.rate, args.burst)
    best_claim = best_sends([(r[1], r[3]) for r in rows], args.rate, args.burst)
    for row, from_due, from_claim in zip(rows, best_due, best_claim, strict=True):
        kind, _channel, due, claimed, took, done = row
        values = (claimed - due, None if took is None else took - due, None if done is None else done - due)
        values += (from_due - due, from_claim - due)
        for name, value in zip(names + limits, values, strict=True):
            if value is not None:
                outcome.latencies.setdefault(name, []).append(value)
                outcome.by_kind.setdefault(name, {}).setdefault(kind, []).append(value)
    outcome.fired = len(checkins)
    outcome.states = await fired_states(engine)
    outcome.sweep_seconds = sum(seconds for _, seconds, _ in desk.sweeps)
    outcome.sweeps = len(desk.sweeps)
    refused = record["refused"]
    assert isinstance(refused, dict)
    outcome.refused, outcome.refused_channels = sum(refused.values()), len(refused)
    outcome.posts = len(record["taken"])
    outcome.most_posts = max(posts.values(), default=0)
    first_due = min((r[2] for r in rows), default=0.0)
    outcome.timeline = [
        (wall - first_due, wall + seconds - first_due) for wall, seconds, said in desk.sweeps if said
    ]
    took_at = sorted(t for t, _channel, delivery in record["taken"] if delivery is not None)
    if took_at:
        outcome.timeline.append((took_at[0] - first_due, took_at[-1] - first_due))
        swept = max(wall + seconds for wall, seconds, said in desk.sweeps if said)
        after = [t for t in took_at if t >= swept]
        outcome.posting = (len(after), (after[-1] - swept) if after else 0.0)
    ends = [r[5] for r in rows if r[5] is not None]
    outcome.span = (max(ends) - min(r[2] for r in rows)) if ends else 0.0


def _figures(values: Sequence[float]) -> str:
    return f"{percentile(values, 0.5):>8.2f} {percentile(values, 0.99):>8.2f} {max(values, default=0):>8.2f}"


def report(backend: str, outcome: Outcome) -> None:
    for name, values in outcome.latencies.items():
        kinds = outcome.by_kind.get(name, {})
        per_kind = " ".join(f"{kind} {percentile(kinds[kind], 0.99):.1f}" for kind in sorted(kinds))
        print(f"{backend:<11} {name:<31} {_figures(values)}   p99 by kind: {per_kind}")
    rate = outcome.fired / outcome.sweep_seconds if outcome.sweep_seconds else 0.0
    states = ", ".join(f"{n} {state}" for state, n in sorted(outcome.states.items()))
    print(
        f"{backend:<11} sweep: {outcome.fired:,} fired in {outcome.sweep_seconds:.1f} s of run_due_work over "
        f"{outcome.sweeps} sweeps ({rate:,.0f} fired/s); check-ins: {states}"
    )
    print(
        f"{backend:<11} slack: {outcome.posts:,} posts taken (at most {outcome.most_posts} per delivery), "
        f"{outcome.refused:,} answered 429 in {outcome.refused_channels} channels; {outcome.failed} "
        f"deliveries failed; first due → last settled {outcome.span:.1f} s"
        + ("; UNFINISHED (timeout)" if outcome.unfinished else "")
    )
    *fired, posted = outcome.timeline or [(0.0, 0.0)]
    spans = ", ".join(f"{a:.1f}-{b:.1f}" for a, b in fired)
    count, seconds = outcome.posting
    print(
        f"{backend:<11} timeline (s after the first due): run_due_work {spans}; check-in posts "
        f"{posted[0]:.1f}-{posted[1]:.1f}, {count:,} of them after the last sweep returned "
        f"({count / seconds if seconds else 0:,.0f} posts/s)"
    )


async def main(args: argparse.Namespace) -> None:
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # "skipped: a sweep is still running"
    mix = Mix(args.dm_share, args.connect_share, args.per_connect, args.per_support)
    spread = places(args.checkins, mix)
    print(
        f"scheduler: {len(spread):,} waiting check-ins due evenly over {args.window:g} s; a sweep every "
        f"{args.sweep_seconds:g} s; Slack takes {args.rate:g} post/s per channel, bursts of {args.burst} "
        "(else 429 + Retry-After)"
    )
    print(f"{'conversations':<13} {'channels':>8} {'tickets':>8} {'most in one':>11}")
    for kind, channels, tickets, most in distribution(spread):
        print(f"{kind:<13} {channels:>8,} {tickets:>8,} {most:>11,}")
    print(f"{'backend':<11} {'seconds after due':<31} {'p50':>8} {'p99':>8} {'max':>8}")
    for backend in backends(args.backend):
        report(backend, await measure(backend, args, spread))


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkins", type=int, default=10_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--window", type=float, default=60.0, help="seconds over which they fall due")
    parser.add_argument("--sweep-seconds", type=float, default=10.0, help="RELAYDESK_SWEEP_SECONDS")
    parser.add_argument("--rate", type=float, default=1.0, help="Slack posts per second per channel")
    parser.add_argument("--burst", type=int, default=3, help="Slack posts a channel takes at once")
    parser.add_argument("--dm-share", type=float, default=0.6)
    parser.add_argument("--connect-share", type=float, default=0.3)
    parser.add_argument("--per-connect", type=int, default=10)
    parser.add_argument("--per-support", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds after the window to give up")
    run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
