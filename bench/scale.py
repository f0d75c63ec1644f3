"""Scale: a generated database of a million tickets and ten million messages, and the desk's everyday
questions asked of it through the core, each beside the raw SQL that fetches the same answer.

The database is made with set-based SQL after the migrations (PostgreSQL: INSERT ... SELECT from
generate_series; SQLite: a recursive CTE), in the shape of two years of a busy desk: customers with their
identities, tickets with statuses, priorities, queues and a few dozen agents (most resolved or closed, a
few thousand open, one busy agent), messages averaging ten a ticket with one ticket of 10,000, timeline
events, SLA clocks, promises, surveys rated on recent tickets, and 100,000 pending check-ins.

Then, through the real entry points (`Desk.command` as an adapter calls it):

- `/ticket queue` and `/ticket mine` (for the busiest agent): target 20 ms;
- `/ticket show` of the 10,000-message ticket (the handoff packet): 100 ms; again and the first time in a
  process (what messages say is remembered between packets);
- `/ticket stats 30d` (figures and chart) and `Desk.report` over 30 days (figures only): 500 ms;
- the start-up of a bot process (the desk, its console adapter and the due-work sweep) over the
  database with its 100,000 pending check-ins, until it is ready and until its first sweep is done: 3 s;
- that process's resident memory once idle: 150 MB.

"raw" is the same answer fetched with the driver alone: the SQL statements our path issues (or the one
query a hand-written path would), without building domain objects or text. For the start-up it is a bare
interpreter that connects and counts the pending check-ins; for memory, that same process. Times are the
median and the 95th percentile of repeated runs, after a warm-up run; "met" means the 95th percentile is.
Pending check-ins fall due from a day after generation on; `--keep` reuses a database (and its moment).

    python -m bench.scale --tickets 1000000 --messages 10000000 --backend both
    python -m bench.scale --tickets 20000 --messages 200000 --backend sqlite --keep /tmp/scale.db
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import io
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import Executable, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import backends, median, percentile, postgres_server, run, scratch_database
from bot.clock import FakeClock
from bot.commands import Actor
from bot.desk import Desk
from bot.domain import Role
from bot.messages import Person
from bot.policy import load_policy
from bot.reports import Period
from bot.satisfaction import SURVEY_EXPIRE
from bot.standards import BREACH, WARNING
from storage import report_queries
from storage.engine import create_engine, session_factory
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWork

DAY = 86_400
ROOT = str(Path(__file__).resolve().parents[1])
WORKABLE = "('new', 'open', 'waiting_on_customer', 'on_hold')"
PRIORITY_RANK = (
    "CASE t.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 WHEN 'low' THEN 3 "
    "ELSE 4 END"
)
WORDS = (
    "kettle    toaster   invoice   refund    parcel    courier   login     password  export    report    "
    "printer   laptop    monitor   keyboard  licence   renewal   discount  voucher   address   delivery  "
    "warranty  battery   charger   firmware  update    backup    sync      calendar  mailbox   webhook   "
    "payment   receipt   contract  upgrade   shipment  tracking  customs   return    exchange  scanner   "
)
"""Forty words of ten characters each, picked by position, so generated messages differ in wording."""
TARGETS = {"queue": 20.0, "mine": 20.0, "packet": 100.0, "stats": 500.0, "report": 500.0}
STARTUP_TARGET_S = 3.0
RSS_TARGET_MB = 150.0


@dataclass(frozen=True)
class Shape:
    """What to generate; every count follows from the number of tickets and messages."""

    tickets: int
    messages: int
    checkins: int
    now: int
    """The desk's present, as whole seconds since the epoch: two years of tickets end here."""
    agents: int = 40
    days: int = 730

    @property
    def customers(self) -> int:
        return max(10, self.tickets // 5)

    @property
    def big_ticket(self) -> int:
        """A ticket opened about sixty days ago and still open: the one with 10,000 messages."""
        return max(1, self.tickets - self.tickets * 60 // self.days)

    @property
    def big_messages(self) -> int:
        return min(10_000, max(10, self.messages // 2))

    @property
    def spread(self) -> int:
        """Ordinary tickets have 1 to `spread` messages, (spread + 1) / 2 on average."""
        wanted = (self.messages - self.big_messages) / max(1, self.tickets - 1)
        return max(1, round(2 * wanted - 1))

    @property
    def start(self) -> int:
        return self.now - self.days * DAY


class Sql:
    """The few spellings that differ between PostgreSQL and SQLite, for generated statements."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def series(self, count: int) -> str:
        """Rows n = 1..count (as BIGINT, so arithmetic on them does not overflow)."""
        if self.pg:
            return f"(SELECT CAST(generate_series(1, {count}) AS BIGINT) AS n) AS s"
        recursive = f"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < {count})"
        return f"({recursive} SELECT n FROM r) AS s"

    def ts(self, seconds: str) -> str:
        """Seconds since the epoch as the column stores a moment (SQLAlchemy's text form on SQLite)."""
        if self.pg:
            return f"to_timestamp({seconds})"
        return f"(strftime('%Y-%m-%d %H:%M:%S', {seconds}, 'unixepoch') || '.000000')"

    @property
    def fence(self) -> str:
        """Keeps PostgreSQL from inlining a subquery into the next, which repeats its CASE expressions
        at every use (SQLite evaluates each once already)."""
        return " OFFSET 0" if self.pg else ""

    def json(self, expression: str) -> str:
        return f"CAST({expression} AS json)" if self.pg else expression

    def least(self, a: str, b: str) -> str:
        return f"LEAST({a}, {b})" if self.pg else f"min({a}, {b})"

    def greatest(self, a: str, b: str) -> str:
        return f"GREATEST({a}, {b})" if self.pg else f"max({a}, {b})"


def rnd(expression: str, salt: int, modulo: int) -> str:
    """A pseudo-random integer in [0, modulo) from an integer expression: the same in both databases."""
    return f"((({expression}) * 2654435761 + {salt * 7919}) % 4294967291 % {max(1, modulo)})"


def word(expression: str, salt: int) -> str:
    return f"rtrim(substr('{WORDS}', CAST(1 + 10 * {rnd(expression, salt, 40)} AS INTEGER), 10))"


def status_json(old: str, new: str) -> str:
    return f"""'{{"old": "' || {old} || '", "new": "' || {new} || '"}}'"""


def plan_sql(shape: Shape, sql: Sql) -> str:
    """One row per ticket with everything its rows are made from (times as seconds since the epoch)."""
    n, now = shape.tickets, shape.now
    spacing = max(1, shape.days * DAY // n)
    big = shape.big_ticket
    base = f"""
        SELECT n,
            {shape.start} + (n - 1) * {shape.days * DAY} / {n} + {rnd("n", 1, spacing)} AS created,
            {rnd("n", 2, 100)} AS pp, {rnd("n", 3, 100)} AS pq, {rnd("n", 4, 100)} AS pa,
            {rnd("n", 5, 1000)} AS pm, {rnd("n", 6, 100)} AS pw, {rnd("n", 7, 100)} AS pl,
            1 + {rnd("n", 8, shape.customers)} AS customer_id,
            CASE WHEN n = {big} OR {rnd("n", 12, 100)} < 8 THEN 1 ELSE 1 + {rnd("n", 13, shape.agents)} END
                AS agent,
            3600 + {rnd("n", 11, 5 * DAY)} AS dur0,
            CASE WHEN n = {big} THEN {shape.big_messages} ELSE 1 + {rnd("n", 9, shape.spread)} END
                AS msgs
        FROM {sql.series(n)}{sql.fence}"""
    kinds = f"""
        SELECT a.*,
            CASE WHEN pp < 5 THEN 'urgent' WHEN pp < 20 THEN 'high' WHEN pp < 90 THEN 'normal' ELSE 'low' END
                AS priority,
            CASE WHEN pq < 65 THEN 'general' WHEN pq < 85 THEN 'billing' WHEN pq < 93 THEN 'complaints'
                ELSE 'internal' END AS queue,
            CASE WHEN n = {big} OR pm = 0 OR created + dur0 > {now - 300} THEN 1 ELSE 0 END AS is_open
        FROM ({base}) AS a{sql.fence}"""
    status = f"""
        SELECT b.*,
            CASE WHEN is_open = 1 AND n <> {big} AND pa < 25 AND created > {now - 2 * DAY} THEN 'new'
                WHEN is_open = 1 AND n <> {big} AND pw < 25 THEN 'waiting_on_customer'
                WHEN is_open = 1 AND n <> {big} AND pw < 35 THEN 'on_hold'
                WHEN is_open = 1 THEN 'open'
                WHEN created + dur0 < {now - 7 * DAY} THEN 'closed'
                ELSE 'resolved' END AS status,
            CASE priority WHEN 'urgent' THEN 1800 WHEN 'high' THEN 3600 WHEN 'normal' THEN 14400
                ELSE 28800 END AS fr_target,
            CASE priority WHEN 'urgent' THEN 28800 WHEN 'high' THEN 57600 WHEN 'normal' THEN 144000
                ELSE 288000 END AS res_target,
            CASE WHEN is_open = 1 THEN {now} - created ELSE dur0 END AS dur
        FROM ({kinds}) AS b{sql.fence}"""
    delay = (
        f"CASE WHEN pl < 10 THEN fr_target + {rnd('n', 14, 3600)} ELSE {rnd('n', 14, 14400)} % fr_target END"
    )
    reply = f"created + {sql.least(delay, 'dur / 4')}"
    times = f"""
        SELECT c.*,
            CASE WHEN status = 'new' THEN NULL ELSE {reply} END AS first_reply,
            CASE WHEN status = 'waiting_on_customer' THEN created + dur / 2
                WHEN is_open = 0 AND pw < 25 THEN created + dur / 3 END AS w1,
            CASE WHEN is_open = 0 AND pw >= 8 AND pw < 25 THEN created + 2 * dur / 3 END AS w2,
            CASE WHEN is_open = 0 AND pm BETWEEN 1 AND 50 AND NOT pw < 8 THEN 1 ELSE 0 END AS reopened,
            CASE WHEN is_open = 0 THEN created + dur END AS resolved,
            CASE WHEN status = 'closed' THEN created + dur + 7 * {DAY} END AS closed
        FROM ({status}) AS c{sql.fence}"""
    return f"""
        SELECT d.*,
            CASE WHEN reopened = 1 THEN created + 5 * dur / 6 END AS r1,
            CASE WHEN reopened = 1 THEN created + 11 * dur / 12 END AS ro,
            CASE status WHEN 'closed' THEN closed WHEN 'resolved' THEN resolved
                WHEN 'waiting_on_customer' THEN w1 WHEN 'on_hold' THEN created + dur / 2
                WHEN 'open' THEN first_reply ELSE created END AS changed
        FROM ({times}) AS d"""


def load_statements(shape: Shape, sql: Sql) -> list[tuple[str, str]]:
    """(table, statement) in dependency order; `plan` and `nums` are temporary tables."""
    ts, js = sql.ts, sql.json
    now = shape.now
    name = "'Agent ' || p.agent"
    words = sql.series(max(shape.big_messages, shape.spread))
    joined, every = shape.start - 30 * DAY, shape.days * DAY // shape.customers
    statements = [
        ("plan", f"CREATE TEMP TABLE plan AS {plan_sql(shape, sql)}"),
        ("nums", "CREATE TEMP TABLE nums (k INTEGER PRIMARY KEY)"),
        ("nums", f"INSERT INTO nums (k) SELECT n FROM {words}"),
        (
            "agents",
            f"INSERT INTO agents (id, platform, external_id, display_name) "
            f"SELECT n, 'slack', 'UAGENT' || n, 'Agent ' || n FROM {sql.series(shape.agents)}",
        ),
        (
            "customers",
            f"""INSERT INTO customers (id, display_name, kind, created_at, email, tags)
            SELECT n, 'Customer ' || n, 'external', {ts(f"{joined} + n * {every}")},
                CASE WHEN n % 2 = 0 THEN 'customer' || n || '@example.com' END, {js("'[]'")}
            FROM {sql.series(shape.customers)}""",
        ),
        (
            "identities",
            f"""INSERT INTO identities (customer_id, platform, external_id, display_name)
            SELECT n, 'slack', 'UC' || n, 'Customer ' || n FROM {sql.series(shape.customers)}""",
        ),
        (
            "tickets",
            f"""INSERT INTO tickets (number, kind, queue, priority, status, subject, customer_id,
                customer_user_id, assignee_id, platform, channel_id, thread_id, workspace_id, created_at,
                updated_at, first_agent_reply_at, last_customer_message_at, resolved_at, closed_at,
                status_changed_at, version)
            SELECT p.n, CASE p.queue WHEN 'internal' THEN 'internal' ELSE 'external' END, p.queue, p.priority,
                p.status, 'Order A-' || (10000 + p.n) || ': the ' || {word("p.n", 15)} || ' does not work',
                p.customer_id, 'UC' || p.customer_id, CASE WHEN p.status = 'new' THEN NULL ELSE p.agent END,
                'slack', 'CSUPPORT', p.created || '.' || p.n, 'T1', {ts("p.created")},
                {ts("COALESCE(p.closed, p.resolved, p.created + p.dur)")}, {ts("p.first_reply")},
                {ts("p.created + p.dur / 2")}, {ts("p.resolved")}, {ts("p.closed")}, {ts("p.changed")}, 1
            FROM plan p""",
        ),
        ("entries", entries_sql(shape, sql)),
        ("timeline", timeline_sql(sql)),
        ("sla_clocks", clocks_sql(shape, sql)),
        (
            "promises",
            f"""INSERT INTO promises (ticket_number, number, what, due_at, made_by, made_at, state, kept_at,
                broken_at)
            SELECT n, 1, 'Call back about the ' || wanted, {ts("due")}, made_by, {ts("created + dur / 4")},
                state,
                {ts("CASE WHEN state <> 'kept' THEN NULL WHEN q = 1 THEN due + 3600 ELSE due - 3600 END")},
                {ts("CASE WHEN state = 'kept' AND q = 1 THEN due END")}
            FROM (SELECT p.*, p.created + p.dur / 2 AS due, {rnd("p.n", 40, 10)} AS q, {name} AS made_by,
                    {word("p.n", 41)} AS wanted,
                    CASE WHEN {rnd("p.n", 40, 10)} = 0 THEN 'cancelled'
                        WHEN p.is_open = 1 AND p.created + p.dur / 2 > {now - 60} THEN 'open'
                        ELSE 'kept' END AS state
                FROM plan p WHERE p.pm BETWEEN 200 AND 229) AS x""",
        ),
        ("surveys", surveys_sql(shape, sql)),
        (
            "checkins",
            f"""INSERT INTO checkins (key, kind, due_at, ticket_number, detail, state, version)
            SELECT ticket || ':bench:' || kind || ':' || n, kind,
                {ts(f"{now + DAY} + n * {30 * DAY // max(1, shape.checkins)}")}, ticket, {js("'{}'")},
                'pending', 1
            FROM (SELECT n, {shape.tickets} - n % {min(shape.tickets, 5000)} AS ticket,
                    CASE n % 5 WHEN 0 THEN '{WARNING}' WHEN 1 THEN '{BREACH}' WHEN 2 THEN 'waiting_checkin'
                        WHEN 3 THEN 'close_resolved' ELSE '{SURVEY_EXPIRE}' END AS kind
                FROM {sql.series(shape.checkins)}) AS c""",
        ),
    ]
    return statements


def entries_sql(shape: Shape, sql: Sql) -> str:
    """Messages of every ticket, spread over its life: the customer's, replies, notes, the bot's."""
    ts = sql.ts
    w1, w2 = word("p.n * 53 + k", 17), word("p.n * 59 + k", 18)
    template = rnd("p.n * 37 + k", 16, 6)
    customer = f"""CASE {template}
        WHEN 0 THEN 'My order A-' || (10000 + p.n) || ' still has not arrived, the ' || {w1} || ' parcel.'
        WHEN 1 THEN 'I was charged twice on invoice INV-' || (1000 + p.n % 9000) || ' for the ' || {w1} || '.'
        WHEN 2 THEN 'Any news about the ' || {w1} || '? It is getting urgent (' || k || ').'
        WHEN 3 THEN 'You can reach me at customer' || p.customer_id || '@example.com about the '
            || {w1} || '.'
        WHEN 4 THEN 'The ' || {w1} || ' and the ' || {w2} || ' still fail after the update, attempt '
            || k || '.'
        ELSE 'I paid 89.99 EUR on 2026-02-14 for the ' || {w1} || ', the receipt says the same.' END"""
    body = f"""CASE kind
        WHEN 'customer' THEN {customer}
        WHEN 'reply' THEN 'Sorry about the ' || {w1} || ', I am checking it with the ' || {w2} || ' team now.'
        WHEN 'note' THEN 'Asked the warehouse about the ' || {w1} || '; waiting for their answer.'
        ELSE 'Thanks, we have your message and will reply soon.' END"""
    kind = (
        "CASE WHEN k % 10 IN (1, 3, 6, 8) THEN 'customer' WHEN k % 10 IN (2, 4, 7, 9) THEN 'reply' "
        "WHEN k % 10 = 5 THEN 'note' ELSE 'bot' END"
    )
    return f"""INSERT INTO entries (ticket_number, kind, author_name, body, created_at, platform, external_id,
            mood)
        SELECT p.n, kind,
            CASE kind WHEN 'customer' THEN 'Customer ' || p.customer_id WHEN 'bot' THEN 'Relaydesk'
                ELSE 'Agent ' || p.agent END,
            {body}, {ts("p.created + (k - 1) * p.dur / p.msgs")}, 'slack',
            CASE WHEN kind IN ('customer', 'reply') THEN 'CSUPPORT:' || p.n || '.' || k END,
            CASE WHEN kind = 'customer' THEN ({rnd("p.n * 7 + k", 19, 20)} - 8) / 10.0 END
        FROM plan p JOIN (SELECT k, {kind} AS kind FROM nums) AS m ON m.k <= p.msgs"""


def timeline_sql(sql: Sql) -> str:
    """Status changes, claims, transfers and closes, as the desk logs them."""
    agent = "'Agent ' || agent"

    def status(where: str, at: str, old: str, new: str, actor: str = agent) -> str:
        return (
            f"SELECT n, 'status' AS action, {actor} AS actor, {at} AS at, {status_json(old, new)} AS detail "
            f"FROM plan WHERE {where}"
        )

    parts = [
        status("first_reply IS NOT NULL", "first_reply", "'new'", "'open'"),
        f"""SELECT n, 'claimed', {agent}, first_reply, '{{"agent": "' || {agent} || '"}}'
            FROM plan WHERE first_reply IS NOT NULL""",
        status("w1 IS NOT NULL", "w1", "'open'", "'waiting_on_customer'"),
        status("w2 IS NOT NULL", "w2", "'waiting_on_customer'", "'open'"),
        status("reopened = 1", "r1", "'open'", "'resolved'"),
        status("reopened = 1", "ro", "'resolved'", "'open'"),
        status(
            "resolved IS NOT NULL",
            "resolved",
            "CASE WHEN w1 IS NOT NULL AND w2 IS NULL THEN 'waiting_on_customer' ELSE 'open' END",
            "'resolved'",
        ),
        status("closed IS NOT NULL", "closed", "'resolved'", "'closed'", "'Relaydesk'"),
        status("status = 'on_hold'", "changed", "'open'", "'on_hold'"),
        f"""SELECT n, 'transferred', {agent}, created + dur / 8,
            '{{"from_queue": "general", "to_queue": "' || queue || '", "reason": "needs the specialists"}}'
            FROM plan WHERE pm BETWEEN 100 AND 139""",
    ]
    return f"""INSERT INTO timeline (ticket_number, action, actor_name, at, detail)
        SELECT n, action, actor, {sql.ts("at")}, {sql.json("detail")}
        FROM ({" UNION ALL ".join(parts)}) AS e"""


def clocks_sql(shape: Shape, sql: Sql) -> str:
    """First response, resolution (a second cycle after a reopen), next replies: met, running or paused."""
    ts = sql.ts
    parts = [
        # first response: met at the first reply; new tickets' clocks still run.
        """SELECT n, 'first_response' AS metric, 1 AS cycle, fr_target AS target, created AS started,
               created AS resumed, created + fr_target AS due, first_reply AS met, 0 AS consumed, 0 AS paused
           FROM plan""",
        # resolution, cycle 1: met at the (first) resolution; time waiting on the customer left out.
        """SELECT n, 'resolution', 1, res_target, created,
               CASE WHEN w2 IS NOT NULL THEN w2 ELSE created END, created + 2 * res_target,
               CASE WHEN reopened = 1 THEN r1 ELSE resolved END,
               CASE WHEN w1 IS NOT NULL THEN (w1 - created) / 3 ELSE 0 END,
               CASE WHEN status = 'waiting_on_customer' THEN 1 ELSE 0 END
           FROM plan""",
        """SELECT n, 'resolution', 2, res_target, ro, ro, ro + res_target, resolved, 0, 0
           FROM plan WHERE reopened = 1""",
        """SELECT n, 'next_reply', c.k, 2 * fr_target, created + c.k * dur / 4, created + c.k * dur / 4,
               created + c.k * dur / 4 + 2 * fr_target, created + c.k * dur / 4 + (n * c.k * 7919) % 9000,
               0, 0
           FROM plan JOIN nums AS c ON c.k <= 2
           WHERE msgs >= 4 AND first_reply IS NOT NULL AND is_open = 0""",
    ]
    state = "CASE WHEN met IS NOT NULL THEN 'met' WHEN paused = 1 THEN 'paused' ELSE 'running' END"
    breached = (
        f"CASE WHEN met > due THEN due WHEN met IS NULL AND paused = 0 AND due < {shape.now - 60} "
        "THEN due END"
    )
    # The business time a met clock kept (microseconds): a third of the wall time since it resumed (the
    # desk's hours are about a third of the week), after what it consumed before.
    business = "CASE WHEN met IS NOT NULL THEN (consumed + (met - resumed) / 3) * 1000000 END"
    return f"""INSERT INTO sla_clocks (ticket_number, metric, cycle, target, started_at, resumed_at, due_at,
            state,
            consumed, met_at, breached_at, business)
        SELECT n, metric, cycle, target, {ts("started")}, {ts("resumed")}, {ts("due")}, {state}, consumed,
            {ts("met")}, {ts(breached)}, {business}
        FROM ({" UNION ALL ".join(parts)}) AS c"""


def surveys_sql(shape: Shape, sql: Sql) -> str:
    """Surveys on tickets resolved in the last 120 days: a withdrawn one before each reopen."""
    ts, now = sql.ts, shape.now
    pick = rnd("n", 31, 100)
    rating = (
        f"CASE WHEN {pick} < 10 THEN 1 WHEN {pick} < 18 THEN 2 WHEN {pick} < 30 THEN 3 "
        f"WHEN {pick} < 55 THEN 4 ELSE 5 END"
    )
    parts = [
        f"""SELECT n, customer_id, 1 AS cycle, r1 AS sent, 1 AS withdrawn FROM plan
            WHERE reopened = 1 AND resolved > {now - 120 * DAY}""",
        f"""SELECT n, customer_id, 1 + reopened, resolved + 60, 0 FROM plan
            WHERE resolved IS NOT NULL AND resolved > {now - 120 * DAY}""",
    ]
    rated = f"withdrawn = 0 AND {rnd('n', 30, 100)} < 45 AND sent + 60 + {rnd('n', 32, DAY)} < {now}"
    return f"""INSERT INTO surveys (ticket_number, customer_id, cycle, sent_at, expires_at, state, rating,
            rated_at,
            version)
        SELECT n, customer_id, cycle, {ts("sent")}, {ts(f"sent + 3 * {DAY}")},
            CASE WHEN withdrawn = 1 THEN 'withdrawn' WHEN {rated} THEN 'rated'
                WHEN sent + 3 * {DAY} < {now} THEN 'expired' ELSE 'open' END,
            CASE WHEN {rated} THEN {rating} END,
            {ts(f"CASE WHEN {rated} THEN sent + 60 + {rnd('n', 32, DAY)} END")}, 1
        FROM ({" UNION ALL ".join(parts)}) AS s"""


# --- generating -----------------------------------------------------------------------------------------


async def generate(url: str, shape: Shape) -> dict[str, float]:
    """Migrate, then fill every table with set-based SQL; seconds per step."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    if make_url(url).get_backend_name() == "sqlite":
        database = make_url(url).database
        assert database
        return await asyncio.to_thread(_generate_sqlite, database, shape)
    return await _generate_postgresql(url, shape)


def _generate_sqlite(path: str, shape: Shape) -> dict[str, float]:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("synchronous=OFF", "foreign_keys=OFF", "cache_size=-1000000", "temp_store=MEMORY"):
            connection.execute(f"PRAGMA {pragma}")
        steps: dict[str, float] = {}
        connection.execute("BEGIN")
        for table, statement in load_statements(shape, Sql("sqlite")):
            started = time.perf_counter()
            connection.execute(statement)
            steps[table] = steps.get(table, 0.0) + time.perf_counter() - started
        connection.execute("DROP TABLE plan")
        connection.execute("DROP TABLE nums")
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return steps
    finally:
        connection.close()


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _generate_postgresql(url: str, shape: Shape) -> dict[str, float]:
    connection = await asyncpg.connect(_dsn(url))
    try:
        await connection.execute("SET work_mem = '256MB'; SET maintenance_work_mem = '1GB'")
        await connection.execute("SET synchronous_commit = off")
        # Foreign keys are right by construction; checking 20 M of them row by row costs minutes.
        with contextlib.suppress(asyncpg.PostgresError):
            await connection.execute("SET session_replication_role = replica")
        steps: dict[str, float] = {}
        for table, statement in load_statements(shape, Sql("postgresql")):
            started = time.perf_counter()
            await connection.execute(statement)
            if table in ("plan", "nums"):
                await connection.execute(f"ANALYZE {table}")
            steps[table] = steps.get(table, 0.0) + time.perf_counter() - started
        await connection.execute("RESET session_replication_role")
        for table, column in (("customers", "id"), ("agents", "id"), ("tickets", "number")):
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"(SELECT max({column}) FROM {table}))"
            )
        started = time.perf_counter()
        await connection.execute("VACUUM ANALYZE")  # what autovacuum does to a table this size anyway
        steps["vacuum analyze"] = time.perf_counter() - started
        return steps
    finally:
        await connection.close()


async def counts(engine: AsyncEngine) -> dict[str, int]:
    found = {}
    async with engine.connect() as connection:
        for table in ("customers", "tickets", "entries", "timeline", "sla_clocks", "surveys", "checkins"):
            found[table] = int(await connection.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
    return found


# --- measuring ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the table: what, our times, the raw times (ms, or s and MB where said), the target."""

    what: str
    ours: Sequence[float]
    raw: Sequence[float]
    target: float
    unit: str = "ms"


async def times(job: Callable[[], Awaitable[Any]], runs: int, warm: int = 1) -> list[float]:
    """Milliseconds per run of `job`, after `warm` runs that are not counted."""
    for _ in range(warm):
        await job()
    found = []
    for _ in range(runs):
        started = time.perf_counter()
        await job()
        found.append(1000 * (time.perf_counter() - started))
    return found


def agent(number: int) -> Actor:
    return Actor(Person("slack", f"UAGENT{number}", f"Agent {number}"), Role.AGENT)


def _answer(said: Sequence[Any], what: str) -> None:
    """A command that went wrong would look fast: make sure it answered."""
    if not said or not getattr(said[0], "text", ""):
        raise RuntimeError(f"{what}: no answer")


async def raw_query(engine: AsyncEngine, *statements: str | Executable) -> None:
    """The statements through the driver, every row fetched, nothing built from them (on PostgreSQL
    without JIT compilation, as the report runs them)."""
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(text("SET LOCAL jit = off"))
        for statement in statements:
            if isinstance(statement, str):
                (await connection.exec_driver_sql(statement)).fetchall()
            else:
                (await connection.execute(statement)).fetchall()


async def measure_desk(
    url: str, shape: Shape, runs: int, report_runs: int, emit: Callable[[Row], None]
) -> None:
    """Queue, mine, the packet of the big ticket, stats and the report, through `Desk.command`."""
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        now = datetime.fromtimestamp(shape.now, UTC)

        def new_desk() -> Desk:
            """A desk as a bot process starts one (adapters/bootstrap.py): what start-up made is frozen
            out of the collector's full passes, as there."""
            desk = Desk(lambda: SqlUnitOfWork(sessions), FakeClock(now), load_policy())
            desk.serve(["slack"])
            gc.freeze()
            return desk

        desk = new_desk()
        busy = agent(1)
        big = shape.big_ticket

        async def command(text_: str, on: Desk = desk) -> None:
            _answer(await on.command(busy, text_), text_)

        listing = (
            "SELECT t.number, t.subject, t.status, t.priority, t.queue, t.created_at, t.updated_at, "
            "c.display_name FROM tickets t JOIN customers c ON c.id = t.customer_id WHERE {where} "
            f"AND t.status IN {WORKABLE} ORDER BY {PRIORITY_RANK}, t.number LIMIT 25"
        )
        queue_sql = listing.format(where="t.assignee_id IS NULL")
        mine_sql = listing.format(where="t.assignee_id = 1")
        emit(
            Row(
                "/ticket queue",
                await times(lambda: command("/ticket queue"), runs),
                await times(lambda: raw_query(engine, queue_sql), runs),
                TARGETS["queue"],
            )
        )
        emit(
            Row(
                "/ticket mine (busiest agent)",
                await times(lambda: command("/ticket mine"), runs),
                await times(lambda: raw_query(engine, mine_sql), runs),
                TARGETS["mine"],
            )
        )
        async with engine.connect() as connection:
            customer = await connection.scalar(text(f"SELECT customer_id FROM tickets WHERE number = {big}"))
        packet_sql = (
            f"SELECT * FROM tickets WHERE number = {big}",
            "SELECT kind, author_name, body, created_at, mood FROM entries "
            f"WHERE ticket_number = {big} AND kind != 'bot' ORDER BY id",
            f"SELECT * FROM timeline WHERE ticket_number = {big} ORDER BY id",
            f"SELECT * FROM sla_clocks WHERE ticket_number = {big} ORDER BY id",
            f"SELECT * FROM promises WHERE ticket_number = {big}",
            f"SELECT * FROM tickets WHERE customer_id = {customer} ORDER BY number",
            f"SELECT * FROM customers WHERE id = {customer}",
        )
        emit(
            Row(
                f"/ticket show #{big} ({shape.big_messages:,} messages)",
                await times(lambda: command(f"/ticket show #{big}"), runs),
                await times(lambda: raw_query(engine, *packet_sql), runs),
                TARGETS["packet"],
            )
        )
        # A process that has not made this ticket's packet before (a new desk remembers no facts).
        cold_runs = max(3, runs // 3)
        fresh = [new_desk() for _ in range(cold_runs + 1)]
        emit(
            Row(
                "  the same, first time in a process",
                await times(lambda: command(f"/ticket show #{big}", fresh.pop()), cold_runs),
                await times(lambda: raw_query(engine, *packet_sql), cold_runs),
                TARGETS["packet"],
            )
        )
        end = now + timedelta(seconds=1)
        start = end - timedelta(days=30)
        raw_report = report_statements(start, end, now, engine.dialect.name)
        emit(
            Row(
                "/ticket stats 30d (with chart)",
                await times(lambda: command("/ticket stats 30d"), report_runs),
                await times(lambda: raw_query(engine, *raw_report), report_runs),
                TARGETS["stats"],
            )
        )
        emit(
            Row(
                "Desk.report 30 days (figures)",
                await times(lambda: desk.report(start, end), report_runs),
                await times(lambda: raw_query(engine, *raw_report), report_runs),
                TARGETS["report"],
            )
        )
    finally:
        await engine.dispose()


def report_statements(start: datetime, end: datetime, now: datetime, dialect: str) -> list[Executable]:
    """The SQL a report of the period runs (storage/report_queries.py): the database's share of it."""
    policy = load_policy()
    zone = policy.hours_for(policy.default_queue).zone
    return list(report_queries.statements(Period.of(start, end, now=now, zone=zone), dialect))


# --- a bot process: start-up and idle memory -----------------------------------------------------------

_RAW_CHILD = """
import sys, time
url = sys.argv[1]
if url.startswith("sqlite"):
    import sqlite3
    connection = sqlite3.connect(url.split("///", 1)[1])
    connection.execute("SELECT count(*) FROM checkins WHERE state = 'pending'").fetchone()
    print("READY", flush=True)
    print("SWEPT", flush=True)
    time.sleep(3600)
else:
    import asyncio, asyncpg
    async def main():
        connection = await asyncpg.connect(url.replace("+asyncpg", ""))
        await connection.fetchval("SELECT count(*) FROM checkins WHERE state = 'pending'")
        print("READY", flush=True)
        print("SWEPT", flush=True)
        await asyncio.sleep(3600)
    asyncio.run(main())
"""


async def bot_process(url: str) -> None:
    """A bot as `relaydesk run` starts one (the console standing in for the chat adapters): the desk over
    the database, the adapter started, the due-work scheduler started; READY then, SWEPT once the first
    sweep (the one at start, over every pending check-in) is done. Then it idles until killed."""
    from adapters.bootstrap import build
    from adapters.console.desk import ConsoleDesk
    from bot.clock import OffsetClock, SystemClock
    from bot.config import Settings
    from bot.messages import Outgoing
    from bot.scheduling import DueWorkScheduler

    runtime = await build(Settings(database_url=url), SystemClock())
    swept = asyncio.Event()
    console = ConsoleDesk(runtime.desk, OffsetClock(), ["ana", "ben"], out=_Nowhere())
    await console.start()
    runtime.desk.serve(["console"])

    async def deliver(said: list[Outgoing]) -> None:
        await console.deliver(said)
        swept.set()

    scheduler = DueWorkScheduler(runtime.desk, deliver, timedelta(minutes=1), platforms={"console"})
    scheduler.start()
    print("READY", flush=True)
    await swept.wait()
    print("SWEPT", flush=True)
    await asyncio.Event().wait()


class _Nowhere(io.StringIO):
    """The console's output, dropped: the process stands in for a chat adapter that posts it."""

    def write(self, text: str) -> int:
        return len(text)


async def _start(argv: list[str], idle: float) -> tuple[float, float, float]:
    """Start a process; seconds until READY and until SWEPT, and its resident memory (MB) once idle."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env
    )
    try:
        assert process.stdout is not None
        marks: dict[str, float] = {}
        while len(marks) < 2:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=300)
            if not line:
                raise RuntimeError(f"{argv[:3]} ended before it was ready")
            marks[line.decode().strip()] = time.perf_counter() - started
        await asyncio.sleep(idle)  # nothing arrives meanwhile
        return marks["READY"], marks["SWEPT"], rss_mb(process.pid)
    finally:
        process.kill()
        await process.wait()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure_process(url: str, runs: int, idle: float) -> list[Row]:
    ours = [
        await _start([sys.executable, "-m", "bench.scale", "--bot-process", url], idle) for _ in range(runs)
    ]
    raw = [await _start([sys.executable, "-c", _RAW_CHILD, url], idle) for _ in range(runs)]
    return [
        Row("start-up until ready", [o[0] for o in ours], [r[0] for r in raw], STARTUP_TARGET_S, "s"),
        Row(
            "start-up until first sweep done",
            [o[1] for o in ours],
            [r[1] for r in raw],
            STARTUP_TARGET_S,
            "s",
        ),
        Row("idle RSS of the bot process", [o[2] for o in ours], [r[2] for r in raw], RSS_TARGET_MB, "MB"),
    ]


# --- the run --------------------------------------------------------------------------------------------


HEADER = (
    f"{'backend':<11} {'what':<40} {'ours med':>9} {'ours p95':>9} {'raw med':>8} {'raw p95':>8} "
    f"{'target':>10} met?"
)


def print_row(backend: str, row: Row) -> None:
    """Met means the 95th percentile is within the target."""
    ours_median, ours_p95 = median(row.ours), percentile(row.ours, 0.95)
    digits = 0 if row.unit == "MB" else (2 if row.unit == "s" else 1)
    target = f"<= {row.target:g} {row.unit}"
    print(
        f"{backend:<11} {row.what:<40} {ours_median:>9.{digits}f} {ours_p95:>9.{digits}f} "
        f"{median(row.raw):>8.{digits}f} {percentile(row.raw, 0.95):>8.{digits}f} "
        f"{target:>10} {'yes' if ours_p95 <= row.target else 'NO'}",
        flush=True,
    )


@asynccontextmanager
async def database(backend: str, keep: str | None) -> AsyncIterator[tuple[str, Path | None]]:
    """A scratch database; or, with --keep, one kept for later runs (the SQLite file PATH, or a PostgreSQL
    database named after it), whose shape is written beside PATH once it is filled."""
    if keep is None:
        async with scratch_database(backend, "scale") as url:
            yield url, None
        return
    path = Path(keep)
    sidecar = Path(f"{keep}.{backend}.json")
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{await asyncio.to_thread(path.resolve)}", sidecar
        return
    server = postgres_server()
    assert server is not None
    name = "relaydesk_scale_" + re.sub(r"\W", "_", path.name).lower()
    filled = await asyncio.to_thread(sidecar.exists)
    admin = await asyncpg.connect(_dsn(server))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and not filled:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        if not exists or not filled:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield (
        make_url(server).set(drivername="postgresql+asyncpg", database=name).render_as_string(False),
        sidecar,
    )


async def main(args: argparse.Namespace) -> None:
    now = int(time.time()) // 60 * 60
    wanted = Shape(args.tickets, args.messages, args.checkins, now)
    print(
        f"scale: {wanted.tickets:,} tickets, ~{wanted.messages:,} messages, {wanted.customers:,} customers, "
        f"{wanted.agents} agents, {wanted.checkins:,} pending check-ins; {args.runs} runs a command, "
        f"{args.report_runs} a report or start-up (after one warm-up run)"
    )
    for backend in backends(args.backend):
        async with database(backend, args.keep) as (url, sidecar):
            shape = wanted
            if sidecar is not None and sidecar.exists():
                shape = Shape(**json.loads(sidecar.read_text()))
                engine = create_engine(url)
                started = time.perf_counter()
                try:  # newer migrations (indexes) first, so no start-up below pays for them
                    await upgrade(engine)
                finally:
                    await engine.dispose()
                print(
                    f"{backend:<11} reusing the database kept at {args.keep} ({shape.tickets:,} tickets; "
                    f"migrated in {time.perf_counter() - started:.1f} s)"
                )
            else:
                started = time.perf_counter()
                steps = await generate(url, shape)
                total = time.perf_counter() - started
                slowest = ", ".join(
                    f"{k} {v:.1f}" for k, v in sorted(steps.items(), key=lambda kv: -kv[1])[:4]
                )
                print(f"{backend:<11} generated in {total:.1f} s (slowest: {slowest} s)", flush=True)
                if sidecar is not None:
                    sidecar.write_text(json.dumps(dataclasses.asdict(shape)))
            engine = create_engine(url)
            try:
                found = await counts(engine)
            finally:
                await engine.dispose()
            print(f"{backend:<11} rows: " + ", ".join(f"{k} {v:,}" for k, v in found.items()), flush=True)
            print(HEADER, flush=True)

            def emit(row: Row, backend: str = backend) -> None:
                print_row(backend, row)

            await measure_desk(url, shape, args.runs, args.report_runs, emit)
            for row in await measure_process(url, args.report_runs, args.idle):
                emit(row)


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--checkins", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each command")
    parser.add_argument("--report-runs", type=int, default=5, help="timed runs of reports and start-ups")
    parser.add_argument(
        "--idle", type=float, default=2.0, help="seconds a started bot idles before its RSS is read"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--keep",
        metavar="PATH",
        help="generate once and reuse: the SQLite file (PostgreSQL: a database named after it)",
    )
    parser.add_argument("--bot-process", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bot_process:
        asyncio.run(bot_process(args.bot_process))
        return
    run(main(args))


if __name__ == "__main__":
    cli()
