"""Database faults: a PostgreSQL connection lost under the desk, and a SQLite file locked by someone else.

A real `Desk` on a real, migrated database (conftest's `pg_url` and `sqlite_url`), driven through its
public services as the adapters drive it. Faults come from outside the desk, as in production: a second
(admin) connection terminates the desk's PostgreSQL backends (`pg_terminate_backend`, what a server
restart, a failover or an idle-connection killer does to a pool), between operations and in the middle of
a unit of work, at a chosen statement (a SQLAlchemy event on the engine, which lets the statement go on
to a dead connection). On SQLite another connection holds the write lock (`BEGIN IMMEDIATE`, as another
process writing would) for less, or for longer, than the engine's busy timeout.

What must hold: the next operations succeed (the bot reconnects and carries on), a call that returned
was stored (nothing acknowledged is lost) and stored once, and a fault the desk cannot outlast reaches
the adapter as a clear error (`bot.ports.Unavailable`), never a raw driver error. The database is checked
through an engine of its own without a pool, so checking never heals the desk's pool for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import test_slack
from fakes import agent, customer, dm
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_only
from test_slack import ANA as SLACK_ANA
from test_slack import DANA as SLACK_DANA
from test_slack import FIRST, SUPPORT, Slack, envelope, message, new_ts

from adapters.slack.admission import EVENT_WORKERS, MAX_EVENT_WAIT, MAX_LAG
from bot.clock import FakeClock
from bot.commands import Claim, IncomingMessage
from bot.desk import Desk
from bot.domain import DeliveryState, EntryKind
from bot.messages import Outgoing
from bot.policy import load_policy
from bot.ports import Unavailable
from storage.engine import create_engine, session_factory
from storage.migrate import upgrade
from storage.models import DeliveryRow, EntryRow, TicketRow
from storage.uow import SqlUnitOfWork

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
DANA = customer("Dana Whitaker", user_id="UDANA")
BEN = agent("Ben Okafor", user_id="UBEN")
WHERE = dm(DANA)
CALL_LIMIT = 60.0
"""Seconds any one desk call may take here before the test gives up on it (a bound, not an assertion)."""

# test_slack's harness, for the end-to-end case (pytest finds fixtures by these names)
fake = test_slack.fake
slack_env = test_slack.slack_env
start_slack = test_slack.start_slack
slack = test_slack.slack

TERMINATE = """
    SELECT count(*) FROM (
        SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
    ) AS terminated
"""
"""Every other backend of this database, each terminated and waited for (up to 5 s; PostgreSQL 14+)."""


# --- the bench ----------------------------------------------------------------------------------------


@dataclass
class Bench:
    """A desk on an engine, the clock it reads, and a pool-less engine to look at what it stored."""

    engine: AsyncEngine
    checks: AsyncEngine
    clock: FakeClock = field(default_factory=lambda: FakeClock(T0))
    desk: Desk = field(init=False)

    def __post_init__(self) -> None:
        sessions = session_factory(self.engine)
        self.desk = Desk(lambda: SqlUnitOfWork(sessions), self.clock, load_policy())

    async def write(self, text: str, message_id: str | None = None) -> list[Outgoing]:
        """Dana writes in her DM (her message's platform id is `message_id`, else the text)."""
        call = self.desk.receive(IncomingMessage(DANA, text, WHERE, message_id or text))
        return await asyncio.wait_for(call, CALL_LIMIT)

    async def said(self) -> list[str]:
        """The customer's messages the database holds, sorted (a duplicate would show)."""
        async with AsyncSession(self.checks) as session:
            rows = await session.scalars(select(EntryRow.body).where(EntryRow.kind == EntryKind.CUSTOMER))
            return sorted(rows.all())

    async def count(self, model: Any, *where: Any) -> int:
        async with AsyncSession(self.checks) as session:
            return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    async def ticket(self, number: int) -> TicketRow:
        async with AsyncSession(self.checks) as session:
            row = await session.scalar(select(TicketRow).where(TicketRow.number == number))
            assert row is not None, f"no ticket #{number}"
            return row


def _unpooled(engine: AsyncEngine) -> AsyncEngine:
    return create_async_engine(engine.url, poolclass=NullPool)


# --- PostgreSQL -----------------------------------------------------------------------------------------


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Admin:
    """A second connection to the desk's database, which terminates the desk's backends."""

    connection: asyncpg.Connection
    terminated: int = 0

    async def terminate(self) -> int:
        """Terminate every other backend of this database; how many there were."""
        killed = int(await self.connection.fetchval(TERMINATE) or 0)
        self.terminated += killed
        return killed


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[tuple[Bench, Admin]]:
    engine = create_engine(pg_url)
    checks = _unpooled(engine)
    admin = Admin(await asyncpg.connect(_asyncpg_dsn(pg_url)))
    try:
        await upgrade(engine)
        yield Bench(engine, checks), admin
    finally:
        await admin.connection.close()
        await engine.dispose()
        await checks.dispose()


@contextlib.contextmanager
def terminated_at(
    engine: AsyncEngine, admin: Admin, statement: str, *, times: int = 1
) -> Iterator[list[str]]:
    """While the block runs, the next `times` statements of the desk that start with `statement` (or
    its COMMIT, for "COMMIT") go to a connection whose backend was just terminated: the admin kills
    every backend (bounded: pg_terminate_backend waits for each) before the statement is sent. Yields
    the statements that were hit."""
    hit: list[str] = []

    def kill(sql: str) -> None:
        if len(hit) < times and sql.lstrip().upper().startswith(statement.upper()):
            hit.append(sql.strip().split("\n")[0][:80])
            await_only(admin.terminate())  # we are inside the desk's greenlet: await on its loop

    def before_execute(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        kill(sql)

    def before_commit(conn: Any) -> None:
        kill("COMMIT")

    sync = engine.sync_engine
    event.listen(sync, "before_cursor_execute", before_execute)
    event.listen(sync, "commit", before_commit)
    try:
        yield hit
    finally:
        event.remove(sync, "before_cursor_execute", before_execute)
        event.remove(sync, "commit", before_commit)


async def test_pg_the_desk_carries_on_after_its_connections_are_terminated_between_operations(
    pg: tuple[Bench, Admin],
) -> None:
    """After each operation the server drops every connection the desk holds (a restart, a failover):
    the next operation of every kind succeeds, and everything acknowledged is there."""
    bench, admin = pg
    opened = await bench.write("My order A-1234 never arrived.")
    assert any(m.delivery is not None for m in opened)
    assert await admin.terminate() >= 1, "the desk's pool held a connection to drop"

    relayed = await bench.write("It was meant to come on Friday.")
    assert await admin.terminate() >= 1

    claimed = await asyncio.wait_for(bench.desk.execute(BEN, Claim(1)), CALL_LIMIT)
    assert claimed, "the claim was answered"
    assert await admin.terminate() >= 1

    said = opened + relayed + claimed
    notices = await asyncio.wait_for(bench.desk.settle(said), CALL_LIMIT)
    assert notices == []
    assert await admin.terminate() >= 1

    assert await asyncio.wait_for(
        bench.desk.has_message("slack", "It was meant to come on Friday."), CALL_LIMIT
    )
    assert await admin.terminate() >= 1

    bench.clock.advance(timedelta(hours=1))
    swept = await asyncio.wait_for(bench.desk.run_due_work(), CALL_LIMIT)
    assert not {m.delivery for m in swept} & {m.delivery for m in said}, "settled, so not sent again"
    assert await admin.terminate() >= 1
    await asyncio.wait_for(bench.desk.settle(swept), CALL_LIMIT)

    assert await bench.said() == ["It was meant to come on Friday.", "My order A-1234 never arrived."]
    assert (await bench.ticket(1)).assignee_id is not None, "the claim was kept"
    settled = [m.delivery for m in said if m.delivery is not None]
    sent = DeliveryRow.state == DeliveryState.SENT
    assert await bench.count(DeliveryRow, DeliveryRow.id.in_(settled), sent) == len(settled)
    assert await bench.count(DeliveryRow, DeliveryRow.state == DeliveryState.PENDING) == 0


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT",  # the unit of work's first statement: nothing done yet
        "INSERT INTO entries",  # half-way: the ticket row written, the message not yet
        "INSERT INTO deliveries",  # the outbox, the last statement before COMMIT
    ],
)
async def test_pg_a_connection_lost_inside_a_unit_of_work_is_run_again_on_a_new_one(
    pg: tuple[Bench, Admin], statement: str
) -> None:
    """The connection dies while a message is being recorded, before the COMMIT was sent: nothing of
    it was written, so the desk runs the unit of work again on a new connection, and the caller gets
    its answer as if nothing happened. Recorded once; the outbox holds its messages once."""
    bench, admin = pg
    await bench.write("My order A-1234 never arrived.")
    with terminated_at(bench.engine, admin, statement) as hit:
        out = await bench.write("It was meant to come on Friday.")
    assert hit, f"no {statement} was hit: the fault never happened"
    assert admin.terminated >= 1

    assert await bench.said() == ["It was meant to come on Friday.", "My order A-1234 never arrived."]
    kept = [m.delivery for m in out if m.delivery is not None]
    assert kept, "the relay to the agents is in the outbox"
    assert await bench.count(DeliveryRow, DeliveryRow.id.in_(kept)) == len(kept)
    assert await bench.count(DeliveryRow) == len(kept) + 2, "greeting and card, then the relay: no more"
    await bench.write("And the tracking page is blank.")  # and it carries on
    assert len(await bench.said()) == 3


async def test_pg_a_connection_lost_at_commit_loses_nothing_acknowledged(pg: tuple[Bench, Admin]) -> None:
    """The backend dies just before the COMMIT reaches it, so the work was not written. The desk cannot
    know that in general (a COMMIT whose answer is lost may have landed), so it may fail the call; then
    the adapter does not acknowledge, and the platform's redelivery (the same message id) records it.
    Either way the message ends up recorded exactly once, and the desk carries on."""
    bench, admin = pg
    await bench.write("My order A-1234 never arrived.")
    text = "It was meant to come on Friday."
    outcome: list[BaseException | None] = []
    with terminated_at(bench.engine, admin, "COMMIT") as hit:
        try:
            await bench.write(text, "m2")
            outcome.append(None)
        except Exception as error:
            outcome.append(error)
    assert hit == ["COMMIT"], "the fault never happened"
    if outcome[0] is None:
        assert text in await bench.said(), "acknowledged, so recorded"
    await bench.write(text, "m2")  # the platform delivers it again (Slack retries an unacknowledged event)
    assert await bench.said() == [text, "My order A-1234 never arrived."]


async def test_pg_a_commit_lost_with_its_connection_is_resolved_and_the_call_succeeds(
    pg: tuple[Bench, Admin],
) -> None:
    bench, admin = pg
    await bench.write("My order A-1234 never arrived.")
    with terminated_at(bench.engine, admin, "COMMIT") as hit:
        out = await bench.write("It was meant to come on Friday.", "m2")
    assert hit == ["COMMIT"]
    assert out, "answered"
    assert await bench.said() == ["It was meant to come on Friday.", "My order A-1234 never arrived."]
    kept = [m.delivery for m in out if m.delivery is not None]
    assert kept and await bench.count(DeliveryRow, DeliveryRow.id.in_(kept)) == len(kept)


async def test_pg_operations_racing_with_repeated_terminations_lose_and_double_nothing(
    pg: tuple[Bench, Admin],
) -> None:
    """Twenty messages at once while the server drops every connection five times. A call that
    returned was recorded; one that failed is delivered again by its platform (same id). In the end
    each message is recorded exactly once, and only calls that could not be completed failed."""
    bench, admin = pg
    await bench.write("My order A-1234 never arrived.")
    texts = [f"Detail {n:02d} about the order." for n in range(20)]

    async def killer() -> None:
        for _ in range(5):
            await asyncio.sleep(0.02)
            await admin.terminate()

    results = await asyncio.gather(*(bench.write(t) for t in texts), killer(), return_exceptions=True)
    failed = [t for t, r in zip(texts, results, strict=False) if isinstance(r, BaseException)]
    acknowledged = [t for t in texts if t not in failed]
    held = await bench.said()
    assert set(acknowledged) <= set(held), "a call that returned was stored"
    for error in (r for r in results if isinstance(r, BaseException)):
        assert not isinstance(error, AssertionError | TimeoutError), error
    for text in failed:  # redelivered, as Slack retries what it did not hear acknowledged
        await bench.write(text)
    assert await bench.said() == sorted([*texts, "My order A-1234 never arrived."])
    assert admin.terminated >= 1


# --- SQLite -----------------------------------------------------------------------------------------------


@dataclass
class Locker:
    """Another process's connection to the SQLite file, which takes its write lock."""

    path: str
    connection: sqlite3.Connection | None = None
    released: bool = False

    def hold(self) -> None:
        self.connection = sqlite3.connect(self.path, isolation_level=None)
        self.connection.execute("BEGIN IMMEDIATE")  # the write lock, held until release()
        self.released = False

    def release(self) -> None:
        if self.connection is not None:
            self.connection.rollback()
            self.connection.close()
            self.connection = None
        self.released = True


@pytest.fixture
async def lite(sqlite_url: str) -> AsyncIterator[tuple[Bench, Locker]]:
    engine = create_engine(sqlite_url)
    checks = _unpooled(engine)
    locker = Locker(sqlite_url.split(":///", 1)[1])
    try:
        await upgrade(engine)
        yield Bench(engine, checks), locker
    finally:
        locker.release()
        await engine.dispose()
        await checks.dispose()


async def _busy_timeout(engine: AsyncEngine) -> float:
    """The busy timeout the engine's connections wait for a lock, in seconds."""
    async with engine.connect() as connection:
        return int((await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()) / 1000


def _shorter_busy_timeout(engine: AsyncEngine, milliseconds: int) -> None:
    """Connections made from now on wait `milliseconds` for a lock: the engine's own setting, replaced
    after it was applied (listeners run in the order they were added), so the tests of waits longer
    than the busy timeout take seconds, not minutes. What the desk does about it is unchanged."""

    def shorter(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={milliseconds}")
        cursor.close()

    event.listen(engine.sync_engine, "connect", shorter)


async def test_sqlite_waits_for_another_process_lock_asleep_so_the_desk_goes_on_answering(
    lite: tuple[Bench, Locker],
) -> None:
    """SQLite runs on the event loop's thread, so a lock must not be waited for inside SQLite for long:
    its busy timeout is short, and the desk's retries wait asleep. While another process holds the lock
    for 1.5 s, the loop keeps running (a ticker every 50 ms ticks most of the time), and the write goes
    through once the lock is released."""
    bench, locker = lite
    await bench.write("My order A-1234 never arrived.")
    assert await _busy_timeout(bench.engine) <= 0.5, "SQLite itself waits only briefly for a lock"
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(asyncio.get_running_loop().time())
            await asyncio.sleep(0.05)

    locker.hold()
    asyncio.get_running_loop().call_later(1.5, locker.release)
    ticking = asyncio.create_task(ticker())
    try:
        await bench.write("It was meant to come on Friday.")
    finally:
        ticking.cancel()
    assert locker.released, "the write went through only once the lock was released: it waited"
    assert len(ticks) >= 12, f"the loop ran while the write waited ({len(ticks)} ticks of 50 ms in 1.5 s)"
    assert await bench.said() == ["It was meant to come on Friday.", "My order A-1234 never arrived."]


async def test_sqlite_a_lock_shorter_than_the_busy_timeout_is_waited_for(lite: tuple[Bench, Locker]) -> None:
    """Another process holds the write lock for a moment: the desk's write waits for it and succeeds."""
    bench, locker = lite
    await bench.write("My order A-1234 never arrived.")
    hold = min(1.0, await _busy_timeout(bench.engine) / 4)
    locker.hold()
    asyncio.get_running_loop().call_later(hold, locker.release)
    await bench.write("It was meant to come on Friday.")
    assert locker.released, "the write went through only once the lock was released: it waited"
    assert await bench.said() == ["It was meant to come on Friday.", "My order A-1234 never arrived."]


async def test_sqlite_a_lock_longer_than_the_busy_timeout_is_retried_until_released(
    lite: tuple[Bench, Locker],
) -> None:
    """The lock outlasts the busy timeout (0.3 s here) several times over: the desk's call does not fail
    with "database is locked"; it tries again, and succeeds once the lock is released."""
    bench, locker = lite
    await bench.write("My order A-1234 never arrived.")
    await bench.engine.dispose()  # new connections, with the shorter wait
    _shorter_busy_timeout(bench.engine, 300)
    assert await _busy_timeout(bench.engine) == 0.3
    locker.hold()
    asyncio.get_running_loop().call_later(2.0, locker.release)
    out = await bench.write("It was meant to come on Friday.")
    assert locker.released
    assert out, "answered"
    assert await bench.said() == ["It was meant to come on Friday.", "My order A-1234 never arrived."]
    assert await bench.count(DeliveryRow) == 2 + len([m for m in out if m.delivery is not None])


async def test_sqlite_a_lock_that_outlasts_every_retry_is_a_clear_error_and_nothing_is_half_written(
    lite: tuple[Bench, Locker],
) -> None:
    """The lock is never released while the desk tries: the call fails with `Unavailable` (the adapter
    knows what that is: do not acknowledge, try later), not a raw "database is locked"; nothing of it
    was written, and once the lock is gone the redelivered message is recorded once."""
    bench, locker = lite
    await bench.write("My order A-1234 never arrived.")
    await bench.engine.dispose()
    _shorter_busy_timeout(bench.engine, 300)
    assert await _busy_timeout(bench.engine) == 0.3
    before = await bench.count(DeliveryRow)
    locker.hold()
    with pytest.raises(Exception) as raised:
        await bench.write("It was meant to come on Friday.", "m2")
    assert not locker.released
    locker.release()
    assert isinstance(raised.value, Unavailable), f"{type(raised.value).__name__}: {raised.value}"
    assert not isinstance(raised.value, DBAPIError)
    assert await bench.said() == ["My order A-1234 never arrived."]
    assert await bench.count(DeliveryRow) == before
    await bench.write("It was meant to come on Friday.", "m2")
    assert await bench.said() == ["It was meant to come on Friday.", "My order A-1234 never arrived."]


async def test_sqlite_a_slack_message_that_cannot_be_recorded_is_not_acknowledged_and_its_retry_is_kept(
    slack: Slack, sqlite_url: str
) -> None:
    """End to end: the file stays locked for longer than the desk retries, so the customer's message
    cannot be recorded; the adapter must not acknowledge it (Slack then retries the event), and the
    retry, once the lock is gone, is recorded and answered once."""
    slack.errors_expected = True  # the listener's failure is logged
    await slack.engine.dispose()
    _shorter_busy_timeout(slack.engine, 300)
    body = json.dumps(envelope(message(SUPPORT, SLACK_DANA, FIRST, new_ts())))
    locker = Locker(sqlite_url.split(":///", 1)[1])
    locker.hold()
    try:
        status, _ = await asyncio.wait_for(slack.send_json(body), CALL_LIMIT)
    finally:
        locker.release()
    assert status != 200, "not acknowledged: Slack will deliver it again"
    assert await slack.count(EntryRow) == 0 and slack.fake.posts(SUPPORT) == []

    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"}
    status, text = await asyncio.wait_for(slack.send_json(body, retry), CALL_LIMIT)
    assert status == 200, text
    await slack.settle()
    assert [e.body for e in await slack.entries(1, EntryKind.CUSTOMER)] == [FIRST]
    assert len(slack.fake.posts(SUPPORT)) == 1, "greeted once"


async def test_sqlite_a_flood_the_bot_cannot_store_yet_is_refused_early_while_commands_are_acknowledged(
    slack: Slack, sqlite_url: str
) -> None:
    """Events are stored before they are acknowledged, and while the file is locked none can be. The
    first few wait their turn; once the oldest has waited past the limit, new ones are answered 503 at
    once (Slack sends them again) instead of joining a queue Slack will not wait for, and a slash
    command is acknowledged meanwhile. Once the lock goes, every waiting event is stored and
    acknowledged, and the refused one, sent again, is stored too: nothing is lost."""
    texts = [f"Question number {i} about my order" for i in range(EVENT_WORKERS + 2)]
    bodies = [json.dumps(envelope(message(SUPPORT, SLACK_DANA, text, new_ts()))) for text in texts]
    locker = Locker(sqlite_url.split(":///", 1)[1])
    locker.hold()
    try:
        waiting = [asyncio.create_task(slack.send_json(body)) for body in bodies[:-1]]
        await asyncio.sleep(MAX_EVENT_WAIT + 0.5)
        status, _ = await asyncio.wait_for(slack.send_json(bodies[-1]), CALL_LIMIT)
        assert status == 503, "refused at once: the queue is already behind"
        await asyncio.wait_for(slack.command("/ticket", "help", SLACK_ANA), CALL_LIMIT)  # answered 200
        assert not any(task.done() for task in waiting), "the events still wait for the lock"
    finally:
        locker.release()
    answered = await asyncio.wait_for(asyncio.gather(*waiting), CALL_LIMIT)
    assert [status for status, _ in answered] == [200] * len(waiting)
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"}
    status, text = await asyncio.wait_for(slack.send_json(bodies[-1], retry), CALL_LIMIT)
    assert status == 200, text
    await slack.settle()
    stored = await slack.count(EntryRow)
    customer_said = [
        e.body for n in range(1, len(texts) + 1) for e in await slack.entries(n, EntryKind.CUSTOMER)
    ]
    assert sorted(customer_said) == sorted(texts) and stored >= len(texts)


async def test_sqlite_an_event_arriving_while_the_loop_runs_late_with_events_under_way_is_refused(
    slack: Slack, sqlite_url: str
) -> None:
    """One event waits at the desk (the file is locked), well within the queue's limits; then something
    holds the event loop for a while, so it runs late. An event arriving then is answered 503 (the
    process has no time to spare); once the loop is on time again, events are taken."""
    texts = ["A question about my parcel", "Another question", "A third, later"]
    bodies = [json.dumps(envelope(message(SUPPORT, SLACK_DANA, text, new_ts()))) for text in texts]
    locker = Locker(sqlite_url.split(":///", 1)[1])
    locker.hold()
    try:
        waiting = asyncio.create_task(slack.send_json(bodies[0]))
        await asyncio.sleep(0.3)  # under way, waiting for the lock
        for _ in range(5):
            time.sleep(MAX_LAG * 3)  # noqa: ASYNC251 - the loop held on purpose: every timer fires late
            await asyncio.sleep(0)
        status, _ = await asyncio.wait_for(slack.send_json(bodies[1]), CALL_LIMIT)
        assert status == 503, "refused: the loop runs late while an event is under way"
    finally:
        locker.release()
    assert (await asyncio.wait_for(waiting, CALL_LIMIT))[0] == 200
    await asyncio.sleep(0.3)  # the loop on time again
    status, text = await asyncio.wait_for(slack.send_json(bodies[2]), CALL_LIMIT)
    assert status == 200, text
