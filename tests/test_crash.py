"""Crash: a process taking load is killed at random moments and restarted; nothing acknowledged is lost.

The real `relaydesk run` serves Slack's HTTP mode as a subprocess on a database of its own (a SQLite file;
a fresh PostgreSQL schema when TEST_DATABASE_URL is set), against the fake Web API (`slack_fake.py`).
A policy written for the run (the packaged default, with hours `always`, a first-response target of
seconds and a warning at half of it, and a delivery lease of seconds) makes SLA check-ins fall due while
the load runs, and RELAYDESK_SWEEP_SECONDS=1 sweeps for them (and for unsettled deliveries) each second.

From this process, workers post signed Events API requests at a steady rate: new customers' top-level
messages in the support channel (each opens a ticket) and replies in those tickets' threads. A request
answered 200 is acknowledged; any other outcome (the connection died with the process, an error status,
a timeout) is sent again after the next start with `X-Slack-Retry-Num`, as Slack retries. Meanwhile
`KILLS` times, after a seeded random delay, the process is killed with SIGKILL and started again on the
same database and port. Then the load stops, every event not yet acknowledged is retried until it is,
and the last process runs until every first-response check-in fired and the outbox is empty; it is then
stopped with SIGTERM.

The run happens once per backend (a module-scoped fixture); the tests check its outcome:

- every acknowledged event's message is in `entries` exactly once, on the right ticket, and every event
  is acknowledged in the end (Slack's retries);
- each restart comes up, nothing logs an error, and the last process stops cleanly on SIGTERM;
- nothing is lost: every ticket's greeting and card, every reply's relay, and every fired check-in's
  messages reached the fake at least once; both first-response check-ins of every ticket fired, and the
  outbox holds nothing unsent;
- nothing is said twice: to customers (greetings), and, kept apart, on the agents' side (check-in
  messages, cards, relays). Delivery is at least once by design (a process killed after Slack took a
  message but before the settlement committed sends it again once the lease runs out; resends look for
  an earlier try in Slack first), so the figures split the extra copies by whether a kill came between
  a copy and the one before it.

One summary line per run is printed (`pytest -s`); `run.json` in the run's directory has every post with
its time, and the kills. RELAYDESK_TEST_SCALE multiplies the kills; RELAYDESK_CRASH_SEED changes the seed;
RELAYDESK_CRASH_LOG_LEVEL sets the service's log level (its logs are kept beside run.json).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from itertools import pairwise
from pathlib import Path
from statistics import median
from typing import Any, TypeVar

import aiohttp
import asyncpg
import pytest
from slack_fake import FakeSlack
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from test_slack import AGENTS, ANA, BEN, SUPPORT, envelope, message, signature_headers

from bot.domain import CheckinState, DeliveryState, EntryKind, Metric
from bot.policy import load_policy
from bot.standards import BREACH, WARNING
from bot.voice import METRIC_WORDS
from storage.engine import async_url
from storage.models import CheckinRow, DeliveryRow, EntryRow, TicketRow

pytestmark = pytest.mark.long

T = TypeVar("T")

RELAYDESK = str(Path(sys.executable).parent / "relaydesk")
TOKEN = "xoxb-crash-test-token"
SIGNING_SECRET = "crash-test-signing-secret"
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")

SCALE = int(os.environ.get("RELAYDESK_TEST_SCALE", "1"))
SEED = int(os.environ.get("RELAYDESK_CRASH_SEED", "20260302"))
KILLS = 10 * SCALE
KILL_AFTER = (0.5, 2.5)
"""Seconds of load between one start (healthy) and the next SIGKILL, drawn uniformly with the seed."""
RATE = 30.0
"""Events per second sent, by all workers together."""
WORKERS = 6
REPLY_SHARE = 0.35
"""Of the events, this share are replies in an acknowledged ticket's thread (at most REPLIES_PER_TICKET)."""
REPLIES_PER_TICKET = 3
FIRST_RESPONSE = 6
"""Seconds: the first-response target of every ticket; the warning comes at half of it."""
LEASE = 3
"""Seconds: the outbox's lease (a delivery not settled by then is sent again by a sweep)."""
SWEEP_SECONDS = 1
DOWN_PAUSE = 0.5
"""Seconds a worker waits after a request that was not acknowledged."""
REQUEST_TIMEOUT = 10.0
START_WITHIN = 30.0
DRAIN_WITHIN = FIRST_RESPONSE + 4 * LEASE + 45.0
STOP_WITHIN = 20.0
RETRY_ROUNDS = 5
"""Rounds of retries of unacknowledged events after the load stopped (the last process is not killed)."""

REPLY_WORD = re.compile(r"\bR\d{5}x\b")
METRIC_OF_WORDS = {words: str(metric) for metric, words in METRIC_WORDS.items()}
GREETING = re.compile(r"^Hi .*\bticket #\d+ for you\b")
CARD = re.compile(r"^New ticket #(\d+) ·")
HEADS_UP = re.compile(r"^Heads-up: #(\d+)(?: \(unclaimed\))? needs its (.+?) by ")
BREACHED = re.compile(r"^Breach: #(\d+) missed its (.+?) target ")
DIGEST_TEXT = re.compile(r"^Daily digest for (\S+),")
DIGEST_KIND = "digest"


# --- the policy -----------------------------------------------------------------------------------


def crash_policy() -> dict[str, Any]:
    """The packaged default policy with seconds-long targets and lease, open around the clock."""
    text = resources.files("bot").joinpath("default_policy.toml").read_text("utf-8")
    policy = tomllib.loads(text)
    policy["hours"]["always"] = {"timezone": "UTC", "always": True}
    policy["default_hours"] = "always"
    for queue in policy["queues"]:
        queue["hours"] = "always"
    owner = next((t for t in policy.get("teams", []) if policy["default_queue"] in t.get("queues", [])), None)
    if owner is None:
        owner = {"name": "crash", "queues": [policy["default_queue"]]}
        policy.setdefault("teams", []).append(owner)
    owner["lead"] = ANA  # by user id: breaches go to the agents' channel and to Ana's DM
    targets = {
        "first_response": f"{FIRST_RESPONSE}s",
        "next_reply": f"{FIRST_RESPONSE}s",
        "update_interval": "1h",
        "resolution": "2h",
    }
    priorities = ("low", "normal", "high", "urgent")
    policy["standards"] = {
        "warn_at": 0.5,
        "external": {p: dict(targets) for p in priorities},
        "internal": {p: dict(targets) for p in priorities},
    }
    policy["delivery"] = {"lease": f"{LEASE}s", "retry_after": ["1s", "2s"], "keep_sent": "7d"}
    return policy


def to_toml(table: dict[str, Any], prefix: str = "") -> str:
    """Enough TOML for a policy: scalars, dates, arrays of scalars, tables and arrays of tables."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in table.items():
        name = prefix + _toml_key(key)
        if isinstance(value, dict):
            tables.append((name, value))
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            arrays.append((name, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for name, items in arrays:
        for item in items:
            out += f"\n[[{name}]]\n" + to_toml(item, name + ".")
    for name, sub in tables:
        out += f"\n[{name}]\n" + to_toml(sub, name + ".")
    return out


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


# --- the load ---------------------------------------------------------------------------------------


class TimedFake(FakeSlack):
    """The fake Web API, noting when each call was answered (time.monotonic)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.answered_at: dict[int, float] = {}

    def _answer(self, *args: Any, **kwargs: Any) -> Any:
        response = super()._answer(*args, **kwargs)
        self.answered_at[id(self.calls[-1])] = time.monotonic()
        return response


@dataclass
class Event:
    """One Slack message event as this test sends it, until Slack would stop retrying."""

    n: int
    user: str
    ts: str
    word: str  # a word only this message contains (Q…x for top-level messages, R…x for replies)
    thread: str | None  # the ticket's thread (its top-level message's ts) for replies
    attempts: int = 0
    acked: bool = False
    in_flight: bool = False
    latencies: list[float] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{SUPPORT}:{self.ts}"

    def body(self) -> str:
        if self.thread is None:
            text = f"Hello, a question about order {self.word}: when will it ship to my address?"
            event = message(SUPPORT, self.user, text, self.ts)
        else:
            text = f"Adding to my question, {self.word}: the parcel number is 1Z999AA10123456784."
            event = message(
                SUPPORT, self.user, text, self.ts, thread_ts=self.thread, parent_user_id=self.user
            )
        return json.dumps(envelope(event, event_id=f"EvCrash{self.n:06d}"))


@dataclass
class Load:
    """Workers sending events at RATE per second to whichever process listens on the port."""

    fake: FakeSlack
    url: str
    http: aiohttp.ClientSession
    rng: random.Random
    events: list[Event] = field(default_factory=list)
    replies: Counter[str] = field(default_factory=Counter)
    retries_sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._stop = asyncio.Event()
        self._next_slot = 0.0

    def new_event(self) -> Event:
        n = len(self.events) + 1
        ts = f"{1_714_000_000 + n}.{n:06d}"
        open_threads = [
            e for e in self.events if e.thread is None and e.acked and self.replies[e.ts] < REPLIES_PER_TICKET
        ]
        if open_threads and self.rng.random() < REPLY_SHARE:
            parent = self.rng.choice(open_threads)
            self.replies[parent.ts] += 1
            event = Event(n, parent.user, ts, f"R{n:05d}x", parent.ts)
        else:
            user = f"UC{n:05d}"
            self.fake.add_user(user, display_name="", real_name=f"Casey{n} Moreno", name=f"casey{n}")
            event = Event(n, user, ts, f"Q{n:05d}x", None)
        self.events.append(event)
        return event

    async def send(self, event: Event) -> bool:
        """One delivery of the event (a retry after the first); True when it was acknowledged."""
        event.in_flight = True
        body = event.body()
        headers = {"Content-Type": "application/json"} | signature_headers(body, secret=SIGNING_SECRET)
        if event.attempts:
            headers |= {"X-Slack-Retry-Num": str(event.attempts), "X-Slack-Retry-Reason": "http_error"}
            self.retries_sent += 1
        event.attempts += 1
        sent = time.monotonic()
        try:
            async with self.http.post(self.url, data=body.encode(), headers=headers) as reply:
                await reply.read()
                outcome = str(reply.status)
        except (aiohttp.ClientError, TimeoutError) as error:
            outcome = type(error).__name__
        finally:
            event.in_flight = False
        self.statuses[outcome] += 1
        if outcome == "200":
            event.latencies.append(time.monotonic() - sent)
        event.acked = event.acked or outcome == "200"
        return outcome == "200"

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        slot = max(loop.time(), self._next_slot)
        self._next_slot = slot + 1 / RATE
        await asyncio.sleep(slot - loop.time())

    async def _worker(self) -> None:
        while not self._stop.is_set():
            await self._pace()
            if self._stop.is_set():
                return
            if not await self.send(self.new_event()):
                await asyncio.sleep(DOWN_PAUSE)  # the process is down: Slack's events keep coming, slower

    def start(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._worker()) for _ in range(WORKERS)]

    async def stop(self, workers: list[asyncio.Task[None]]) -> None:
        self._stop.set()
        await asyncio.gather(*workers)

    def unacked(self) -> list[Event]:
        return [e for e in self.events if not e.acked and not e.in_flight]

    async def retry_unacked(self, up: Callable[[], bool] = lambda: True) -> None:
        """Slack's retries: every event not acknowledged so far, sent again a few at a time, while the
        process that was started for them is `up`."""
        pending = self.unacked()
        gate = asyncio.Semaphore(WORKERS)

        async def retry(event: Event) -> None:
            async with gate:
                if up() and not event.acked and not event.in_flight:
                    await self.send(event)

        await asyncio.gather(*(retry(e) for e in pending))


# --- the process ------------------------------------------------------------------------------------


def _free_port() -> int:
    """A free port below the ephemeral range: the service is restarted on it while thousands of client
    connections come and go, and an ephemeral port could be taken by one of them in between (on Linux a
    connection to a closed local port can even connect to itself and hold it)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    picker = random.SystemRandom()
    for _ in range(200):
        port = picker.randrange(max(low - 12000, 1024), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")


@dataclass
class Service:
    """`relaydesk run` in Slack HTTP mode, started and killed as a service manager would."""

    workdir: Path
    env: dict[str, str]
    port: int
    http: aiohttp.ClientSession
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)
    kill_times: list[float] = field(default_factory=list)
    start_seconds: list[float] = field(default_factory=list)
    ready_times: list[float] = field(default_factory=list)

    async def start(self) -> None:
        self.starts += 1
        began = time.monotonic()
        log = self.workdir / f"relaydesk-{self.starts:02d}.log"
        self.logs.append(log)
        with log.open("wb") as output:
            self.process = await asyncio.create_subprocess_exec(
                RELAYDESK,
                "run",
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        await _until(self._healthy, f"start #{self.starts} to answer GET /healthz", START_WITHIN)
        self.start_seconds.append(time.monotonic() - began)
        self.ready_times.append(time.monotonic())

    async def _healthy(self) -> bool:
        self._alive()
        try:
            async with self.http.get(f"http://127.0.0.1:{self.port}/healthz") as reply:
                return reply.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    def _alive(self) -> None:
        assert self.process is not None
        if self.process.returncode is not None:
            raise AssertionError(
                f"relaydesk run (start #{self.starts}) died by itself, exit {self.process.returncode}:\n"
                + self.logs[-1].read_text(errors="replace")[-4000:]
            )

    async def kill(self) -> None:
        self._alive()
        assert self.process is not None
        self.process.kill()
        self.kill_times.append(time.monotonic())
        await self.process.wait()

    async def terminate(self) -> int:
        self._alive()
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), STOP_WITHIN)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(
                f"relaydesk run did not stop within {STOP_WITHIN:.0f} s of SIGTERM"
            ) from None

    async def ensure_stopped(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def _until(check: Callable[[], Awaitable[Any]], what: str, within: float, every: float = 0.05) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(every)


def _environment(fake: FakeSlack, port: int, database_url: str, policy: Path) -> dict[str, str]:
    outer = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RELAYDESK_", "SLACK_", "DATABASE_URL")) and k not in PROXY_VARIABLES
    }
    return outer | {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.api_url,
        "SLACK_SUPPORT_CHANNELS": SUPPORT,
        "SLACK_AGENT_CHANNEL": AGENTS,
        "SLACK_AGENTS": f"{ANA},{BEN}",
        "RELAYDESK_HTTP_HOST": "127.0.0.1",
        "RELAYDESK_HTTP_PORT": str(port),
        "RELAYDESK_POLICY": str(policy),
        "RELAYDESK_SWEEP_SECONDS": str(SWEEP_SECONDS),
        "DATABASE_URL": database_url,
        "RELAYDESK_LOG_LEVEL": os.environ.get("RELAYDESK_CRASH_LOG_LEVEL", "WARNING"),
    }


# --- the database, read from outside ----------------------------------------------------------------


def reader(database_url: str) -> AsyncEngine:
    """An engine that only reads, without the project's SQLite hook that takes the write lock at BEGIN:
    the service's writes go on undisturbed."""
    return create_async_engine(async_url(database_url))


async def unfinished(engine: AsyncEngine) -> tuple[int, int, int]:
    """Deliveries still pending, check-ins due and pending, first-response check-ins not yet fired."""
    now = datetime.now(UTC)
    async with AsyncSession(engine) as session:
        deliveries = await session.scalars(
            select(DeliveryRow.id).where(DeliveryRow.state == DeliveryState.PENDING)
        )
        checkins = list(
            await session.scalars(select(CheckinRow).where(CheckinRow.state == CheckinState.PENDING))
        )
    due = [c for c in checkins if c.due_at <= now]
    first = [c for c in checkins if c.detail.get("metric") == str(Metric.FIRST_RESPONSE)]
    return len(list(deliveries)), len(due), len(first)


# --- the run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    """A chat.postMessage the fake answered, and when (time.monotonic)."""

    channel: str
    thread: str | None
    text: str
    at: float

    def what(self) -> tuple[str, ...]:
        """Which message this is: a greeting (by thread), a card (by ticket), a relay (by the reply's
        word), a check-in's message (who, kind, ticket, metric; or who, digest, queue), or other."""
        other = ("other", self.channel, self.text[:80])
        if self.channel == SUPPORT:
            return ("greeting", self.thread or "") if GREETING.match(self.text) else other
        who = "agents" if self.channel == AGENTS else "lead" if self.channel == ANA else None
        if who is None:
            return other
        if who == "agents" and (m := CARD.match(self.text)):
            return ("card", m.group(1))
        if who == "agents" and (m := REPLY_WORD.search(self.text)):
            return ("relay", m.group(0))
        if m := HEADS_UP.match(self.text):
            return (who, WARNING, m.group(1), METRIC_OF_WORDS.get(m.group(2), m.group(2)))
        if m := BREACHED.match(self.text):
            return (who, BREACH, m.group(1), METRIC_OF_WORDS.get(m.group(2), m.group(2)))
        if m := DIGEST_TEXT.match(self.text):
            return (who, DIGEST_KIND, m.group(1))
        return other


@dataclass
class Outcome:
    backend: str
    events: list[Event]
    retries_sent: int
    statuses: Counter[str]
    kill_times: list[float]
    start_seconds: list[float]
    seconds: float
    drain_seconds: float
    lookups: int
    tickets: dict[int, str | None]  # number -> thread ts
    entries: dict[str, list[int]]  # message key -> tickets it is recorded on
    checkins: list[CheckinRow]
    deliveries: Counter[tuple[str, int]]  # (state, attempts) -> rows
    posts: list[Post]
    exit_code: int
    logged_errors: list[str]

    @property
    def kills(self) -> int:
        return len(self.kill_times)

    def fired(self) -> list[CheckinRow]:
        return [c for c in self.checkins if c.state is CheckinState.DONE]

    def said(self) -> dict[tuple[str, ...], list[float]]:
        """When each message reached the fake (once per copy)."""
        said: dict[tuple[str, ...], list[float]] = defaultdict(list)
        for post in self.posts:
            said[post.what()].append(post.at)
        return dict(said)

    def expected(self) -> tuple[set[tuple[str, ...]], list[str]]:
        """Every message the desk had to say, as `Post.what` names it; and fired check-ins of kinds this
        test does not know the messages of."""
        expected: set[tuple[str, ...]] = set()
        for number, thread in self.tickets.items():
            expected |= {("greeting", thread or ""), ("card", str(number))}
        expected |= {("relay", e.word) for e in self.events if e.thread is not None and e.key in self.entries}
        unknown: list[str] = []
        for checkin in self.fired():
            if checkin.kind in (WARNING, BREACH):
                about = (checkin.kind, str(checkin.ticket_number), str(checkin.detail["metric"]))
                expected.add(("agents", *about))
                if checkin.kind == BREACH:
                    expected.add(("lead", *about))
            elif checkin.kind == DIGEST_KIND:
                expected.add(("agents", DIGEST_KIND, str(checkin.detail["queue"])))
            else:
                unknown.append(f"{checkin.key} ({checkin.kind}: {checkin.outcome})")
        return expected, unknown

    def duplicates(self) -> dict[str, Counter[str]]:
        """Extra copies per kind of message, split by whether a kill came between a copy and the one
        before it (the process that posted it died before settling) or not (the lease ran out while
        the process that posted it was alive)."""
        found: dict[str, Counter[str]] = {"after a kill": Counter(), "no kill between": Counter()}
        for what, times in self.said().items():
            times = sorted(times)
            for before, copy in pairwise(times):
                killed = any(before <= kill <= copy for kill in self.kill_times)
                kind = (
                    what[0]
                    if what[0] in ("greeting", "card", "relay", "other")
                    else f"{what[1]} to {what[0]}"
                )
                found["after a kill" if killed else "no kill between"][kind] += 1
        return found

    def summary(self) -> str:
        acked = [e for e in self.events if e.acked]
        first_try = sum(1 for e in acked if e.attempts == 1)
        latencies = sorted(t for e in self.events for t in e.latencies)
        p50, p95 = (latencies[int(q * (len(latencies) - 1))] for q in (0.5, 0.95)) if latencies else (0, 0)
        duplicates = self.duplicates()
        total = sum(sum(c.values()) for c in duplicates.values())
        split = "; ".join(f"{why}: {dict(c)}" for why, c in duplicates.items() if c)
        resent = sum(n for (_, attempts), n in self.deliveries.items() if attempts > 1)
        return (
            f"\n[crash] {self.backend}: {len(self.events)} events sent ({self.retries_sent} retries), "
            f"{len(acked)} acked ({first_try} at the first try; ack p50 {p50:.2f} s, p95 {p95:.2f} s), "
            f"{self.kills} kills (a start took {median(self.start_seconds):.1f} s), "
            f"{len(self.tickets)} tickets, {len(self.fired())} check-ins fired, "
            f"{sum(self.deliveries.values())} deliveries ({resent} claimed again, up to "
            f"{max((a for _, a in self.deliveries), default=0)} tries), duplicates found: {total}"
            f"{f' ({split})' if split else ''}, request outcomes {dict(self.statuses)}, "
            f"{self.lookups} history look-ups, {self.seconds:.1f} s ({self.drain_seconds:.1f} s draining)"
        )


async def crash_run(backend: str, database_url: str, workdir: Path) -> Outcome:
    policy = workdir / "policy.toml"
    policy.write_text(to_toml(crash_policy()), encoding="utf-8")
    checked = load_policy(policy)  # the service would refuse to start; say why here
    assert checked.hours_for(checked.default_queue).always

    fake = TimedFake(tokens={TOKEN})
    fake.add_user(ANA, display_name="Ana", real_name="Ana Lima")
    fake.add_user(BEN, display_name="Ben", real_name="Ben Okafor")
    await fake.start()
    started = time.monotonic()
    kill_rng = random.Random(SEED)
    port = _free_port()
    env = _environment(fake, port, database_url, policy)
    connector = aiohttp.TCPConnector(force_close=True, limit=4 * WORKERS)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    engine = reader(database_url)
    try:
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
        ) as http:
            service = Service(workdir, env, port, http)
            load = Load(fake, f"http://127.0.0.1:{port}/slack/events", http, random.Random(SEED + 1))
            try:
                await service.start()
                workers = load.start()
                retrying: list[asyncio.Task[None]] = []
                for _ in range(KILLS):
                    await asyncio.sleep(kill_rng.uniform(*KILL_AFTER))
                    await service.kill()
                    await service.start()
                    this_start = service.starts
                    up = lambda start=this_start: service.starts == start  # noqa: E731
                    retrying.append(asyncio.create_task(load.retry_unacked(up)))
                await asyncio.sleep(kill_rng.uniform(*KILL_AFTER))
                await load.stop(workers)
                await asyncio.gather(*retrying)
                for _ in range(RETRY_ROUNDS):
                    if not load.unacked():
                        break
                    await load.retry_unacked()

                async def drained() -> bool:
                    return await unfinished(engine) == (0, 0, 0)

                loaded = time.monotonic()
                with contextlib.suppress(AssertionError):  # the tests say what was left
                    await _until(drained, "the outbox to drain", DRAIN_WITHIN, 0.5)
                drain_seconds = time.monotonic() - loaded
                exit_code = await service.terminate()
            finally:
                await service.ensure_stopped()

        async with AsyncSession(engine) as session:
            tickets = {row.number: row.thread_id for row in await session.scalars(select(TicketRow))}
            entries: dict[str, list[int]] = defaultdict(list)
            customer = select(EntryRow).where(
                EntryRow.kind == EntryKind.CUSTOMER, EntryRow.platform == "slack"
            )
            for row in await session.scalars(customer):
                entries[row.external_id or ""].append(row.ticket_number)
            checkins = list(await session.scalars(select(CheckinRow).order_by(CheckinRow.id)))
            deliveries = Counter(
                (str(row.state), row.attempts) for row in await session.scalars(select(DeliveryRow))
            )
    finally:
        await engine.dispose()
        await fake.stop()

    posts = [
        Post(
            str(c.get("channel")),
            c.get("thread_ts") or None,
            str(c.get("text") or ""),
            fake.answered_at[id(c)],
        )
        for c in fake.posts()
    ]
    record = {
        "kills": [t - started for t in service.kill_times],
        "ready": [t - started for t in service.ready_times],
        "posts": [[p.at - started, p.channel, p.thread, p.text[:120]] for p in posts],
    }
    (workdir / "run.json").write_text(json.dumps(record, indent=0), encoding="utf-8")
    errors = [
        f"{log.name}: {line}"
        for log in service.logs
        for line in log.read_text(errors="replace").splitlines()
        if " ERROR " in line or "Traceback" in line
    ]
    return Outcome(
        backend=backend,
        events=load.events,
        retries_sent=load.retries_sent,
        statuses=load.statuses,
        kill_times=service.kill_times,
        start_seconds=service.start_seconds,
        seconds=time.monotonic() - started,
        drain_seconds=drain_seconds,
        lookups=sum(len(fake.calls_to(m)) for m in ("conversations.history", "conversations.replies")),
        tickets=tickets,
        entries=dict(entries),
        checkins=checkins,
        deliveries=deliveries,
        posts=posts,
        exit_code=exit_code,
        logged_errors=errors,
    )


def _run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run on a fresh event loop in a thread of its own (module-scoped; no pytest-asyncio loop)."""

    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


async def _fresh_schema(server: URL) -> None:
    connection = await asyncpg.connect(
        server.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        await connection.execute("SET lock_timeout = '10s'")
        await connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
        await connection.execute("CREATE SCHEMA public")
    finally:
        await connection.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def crashed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """One crash run per backend, shared by this module's tests."""
    backend = request.param
    workdir = tmp_path_factory.mktemp(f"crash-{backend}")
    if backend == "sqlite":
        database_url = f"sqlite:///{workdir / 'desk.db'}"
    else:
        server: URL = request.getfixturevalue("_postgres_database")  # skips without TEST_DATABASE_URL
        _run_sync(lambda: _fresh_schema(server))
        database_url = server.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    outcome = _run_sync(lambda: crash_run(backend, database_url, workdir))
    print(outcome.summary())
    yield outcome


# --- the tests ---------------------------------------------------------------------------------------


def test_every_acknowledged_message_is_recorded_exactly_once_on_its_ticket(crashed: Outcome) -> None:
    acked = [e for e in crashed.events if e.acked]
    assert len(acked) > 100, f"too little load got through: {crashed.summary()}"
    missing = [e.key for e in acked if e.key not in crashed.entries]
    assert not missing, f"{len(missing)} acknowledged messages are not recorded: {missing[:10]}"
    twice = {key: tickets for key, tickets in crashed.entries.items() if len(tickets) != 1}
    assert not twice, f"messages recorded more than once: {sorted(twice.items())[:10]}"
    ticket_of_thread = {thread: number for number, thread in crashed.tickets.items()}
    misplaced = [
        (e.key, crashed.entries[e.key], ticket_of_thread.get(e.thread or e.ts))
        for e in acked
        if crashed.entries[e.key] != [ticket_of_thread.get(e.thread or e.ts)]
    ]
    assert not misplaced, f"messages recorded on the wrong ticket (key, on, thread's): {misplaced[:10]}"
    opened = {e.ts for e in crashed.events if e.thread is None and e.key in crashed.entries}
    threads = sorted(str(t) for t in crashed.tickets.values())
    assert threads == sorted(opened), "one ticket per opening message recorded, and no other"


def test_every_event_slack_retried_is_acknowledged_in_the_end(crashed: Outcome) -> None:
    unacked = [(e.key, e.attempts) for e in crashed.events if not e.acked]
    assert not unacked, f"still refused after {RETRY_ROUNDS} rounds of retries: {unacked[:10]}"
    assert crashed.retries_sent > 0 and crashed.kills == KILLS


def test_the_service_restarts_after_each_kill_and_stops_cleanly(crashed: Outcome) -> None:
    assert crashed.exit_code == 0, "SIGTERM after the run"
    assert not crashed.logged_errors, "errors were logged:\n" + "\n".join(crashed.logged_errors[:30])


def test_nothing_said_is_lost_and_every_checkin_due_fired(crashed: Outcome) -> None:
    pending = {k: n for k, n in crashed.deliveries.items() if k[0] != str(DeliveryState.SENT)}
    assert not pending, (
        f"deliveries not sent {crashed.drain_seconds:.0f} s after the load stopped, "
        f"(state, attempts): rows: {pending}"
    )

    first_response = str(Metric.FIRST_RESPONSE)
    state = {c.key: c.state for c in crashed.checkins}
    unfired = [
        f"{key} ({state.get(key, 'missing')})"
        for number in crashed.tickets
        for kind in ("warning", "breach")
        if state.get(key := f"{number}:{first_response}:1:{kind}") is not CheckinState.DONE
    ]
    assert not unfired, f"{len(unfired)} first-response check-ins did not fire: {unfired[:10]}"

    expected, unknown = crashed.expected()
    assert not unknown, f"check-ins fired whose messages this test does not know: {unknown[:10]}"
    said = crashed.said()
    lost = sorted(what for what in expected if what not in said)
    assert not lost, f"{len(lost)} of {len(expected)} messages never reached Slack: {lost[:10]}"
    strays = sorted(what for what in said if what not in expected)
    assert not strays, f"messages nothing explains (no ticket, no fired check-in): {strays[:10]}"


def test_no_customer_is_told_anything_twice(crashed: Outcome) -> None:
    """Each ticket's thread got its greeting once, and nothing else, whatever the kills interrupted."""
    told = Counter(post.thread for post in crashed.posts if post.channel == SUPPORT)
    twice = sorted((thread, n) for thread, n in told.items() if n > 1)
    assert not twice, (
        f"{len(twice)} of {len(told)} customer threads were posted to more than once (thread, posts): "
        f"{twice[:10]}"
    )


def test_no_checkin_card_or_relay_is_sent_twice(crashed: Outcome) -> None:
    """The agents' side: every fired check-in's messages (the agents' channel, the lead's DM), every card
    and every relay reached Slack exactly once. The message splits the extra copies by whether a kill
    came between a copy and the one before it."""
    expected, _ = crashed.expected()
    said = crashed.said()
    twice = sorted(
        (what, len(said[what])) for what in expected if what[0] != "greeting" and len(said.get(what, [])) > 1
    )
    assert not twice, (
        f"{len(twice)} of {len(expected)} messages sent more than once: "
        + "; ".join(f"{why}: {dict(c)}" for why, c in crashed.duplicates().items() if c)
        + f"; e.g. {twice[:6]}"
    )
