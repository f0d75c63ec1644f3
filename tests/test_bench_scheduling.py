"""The scheduling benchmarks at tiny sizes: they complete and print their figure lines (figures are never
asserted on; the one correctness check is that no check-in fired twice), the tickets they seed fire
through the core as tickets put on waiting do, and the sweep's delivery lanes keep each conversation in
order while a slow one holds up no other.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.desk import Desk
from bot.messages import Conversation, CustomerMessage, Outgoing, Person, ToCustomer
from bot.policy import load_policy
from bot.scheduling import DueWorkScheduler, lanes
from storage.engine import create_engine, session_factory
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWork

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # bench/ is run from the checkout, not installed

from bench._checkin_seed import Mix, places, seed_checkins, seed_tickets  # noqa: E402
from bench.common import postgres_server  # noqa: E402

FIGURES = r"\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d\d"


def bench(module: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_scheduler_benchmark_runs_and_prints_its_figures() -> None:
    out = bench(
        "bench.scheduler",
        *("--checkins", "30", "--window", "0.5", "--sweep-seconds", "0.25", "--rate", "20", "--burst", "10"),
        *("--per-connect", "4", "--per-support", "4", "--backend", "sqlite"),
    )
    assert out.startswith("# "), "the machine line comes first"
    for name in (
        "due → claimed by a sweep",
        "due → Slack took it",
        "due → settled \\(recorded sent\\)",
        "limit: Slack fed at due time",
        "limit: Slack fed at claim",
    ):
        assert re.search(f"sqlite +{name}{FIGURES}", out), name
    assert re.search(r"sweep: 30 fired in .* fired/s\); check-ins: 30 done", out), out
    assert re.search(r"slack: [\d,]+ posts taken .* answered 429", out), out
    assert "timeline (s after the first due)" in out
    assert "UNFINISHED" not in out


@pytest.mark.skipif(postgres_server() is None, reason="set TEST_DATABASE_URL (or BENCH_DATABASE_URL)")
def test_the_scaleout_benchmark_runs_and_no_checkin_fires_twice() -> None:
    out = bench("bench.scaleout", "--messages", "30", "--checkins", "40")
    assert re.search(r"^1 +[\d,]+ +[\d,]+ ", out, re.MULTILINE), out
    assert re.search(r"^2 +[\d,]+ +[\d,]+ ", out, re.MULTILINE), out
    assert re.search(r"two/one throughput: \d+\.\d\d", out), out
    double = dict(re.findall(r"double-fired check-ins with (\d) process(?:es)?: (\d+)", out))
    assert double == {"1": "0", "2": "0"}, out
    assert out.count("40 done") == 2, out


async def test_seeded_tickets_fire_their_checkins_through_the_core(tmp_path: Path) -> None:
    """What bench/_checkin_seed.py writes is what the sweep needs: each check-in fires once, to its
    ticket's conversation, with the words the core uses."""
    spread = places(6, Mix(dm_share=0.5, connect_share=0.34, per_connect=2, per_support=1))
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'seed.db'}")
    try:
        await upgrade(engine)
        now = datetime.now(UTC)
        since = now - timedelta(days=1)
        await seed_tickets(engine, spread, since)
        await seed_checkins(engine, [now - timedelta(minutes=1)] * len(spread), since)
        sessions = session_factory(engine)
        desk = Desk(lambda: SqlUnitOfWork(sessions), FakeClock(now), load_policy())
        said = [m for m in await desk.run_due_work() if isinstance(m, CustomerMessage)]
        assert sorted(m.audience.ticket_number or 0 for m in said) == list(range(1, 7))
        for message in said:
            place = spread[(message.audience.ticket_number or 0) - 1]
            assert message.audience.conversation is not None
            assert message.audience.conversation.channel_id == place.channel
            assert message.audience.conversation.thread_id == place.thread
            assert f"just checking in on #{message.audience.ticket_number}" in message.text
        assert not [m for m in await desk.run_due_work() if isinstance(m, CustomerMessage)]
    finally:
        await engine.dispose()


def to(channel: str, n: int) -> CustomerMessage:
    where = Conversation("slack", channel, None, "T1")
    return CustomerMessage(ToCustomer(Person("slack", f"U{n}", "Dana"), n, where), f"message {n}", delivery=n)


def test_lanes_keep_each_conversation_in_order_and_never_split_a_quiet_one() -> None:
    said = [to("CBUSY", n) if n % 3 == 0 else to(f"D{n // 2}", n) for n in range(60)]
    busy, shared = lanes(said)
    assert [said[i].audience.conversation.channel_id for lane in busy for c in lane for i in c] == [
        "CBUSY"
    ] * 20
    assert [i for lane in busy for c in lane for i in c] == sorted(i for i in range(60) if i % 3 == 0)
    assert sorted(i for chunk in shared for i in chunk) == [i for i in range(60) if i % 3]
    chunks_of: dict[str, set[int]] = {}
    for number, chunk in enumerate(shared):
        for i in chunk:
            chunks_of.setdefault(said[i].audience.conversation.channel_id, set()).add(number)
    assert all(len(numbers) == 1 for numbers in chunks_of.values()), "a quiet conversation is never split"
    assert all(chunk == sorted(chunk) for chunk in shared)


class SlowDesk:
    """Just what DueWorkScheduler asks of a desk: one sweep's messages, leases, the policy."""

    def __init__(self, said: list[Outgoing]) -> None:
        self.said = said
        self.policy = load_policy()

    async def run_due_work(self, platforms: object = None) -> list[Outgoing]:
        said, self.said = self.said, []
        return said

    async def hold(self, messages: list[Outgoing]) -> None:
        """Nothing to renew: the sweep is over in a moment."""


async def test_a_conversation_waiting_out_its_rate_limit_holds_up_no_other() -> None:
    said: list[Outgoing] = [to("CBUSY", n) for n in range(8)] + [to(f"D{n}", n) for n in range(8, 40)]
    sent: list[tuple[float, int]] = []

    async def deliver(messages: list[Outgoing]) -> None:
        for message in messages:
            if message.audience.conversation.channel_id == "CBUSY":
                await asyncio.sleep(0.05)  # a 429 and its Retry-After, shortened
            sent.append((time.monotonic(), message.delivery or 0))

    scheduler = DueWorkScheduler(SlowDesk(said), deliver)  # type: ignore[arg-type]
    await scheduler.sweep()
    order = [n for _, n in sent]
    assert sorted(order) == list(range(40))
    assert [n for n in order if n < 8] == list(range(8)), "one conversation's messages stay in order"
    last_dm = max(at for at, n in sent if n >= 8)
    last_busy = max(at for at, n in sent if n < 8)
    assert last_dm < last_busy, "the direct messages did not wait for the busy channel"
