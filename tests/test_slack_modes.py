"""The Slack adapter in its two other ways of running, over the wire as in production.

Socket Mode: the real adapter with `SLACK_APP_TOKEN`, through slack-bolt's AsyncSocketModeHandler and
slack_sdk's aiohttp SocketModeClient, against the fake's `apps.connections.open` and its Socket Mode
WebSocket (`slack_fake.py`): envelopes in Slack's shape go in, acknowledgements and Web API calls come
out. No signing secret and no HTTP port are involved.

`relaydesk run`: the real console script as a subprocess, configured only by its environment, serving
HTTP mode on a port of ours against the fake's Web API, stopped with SIGTERM as a service manager would;
and refusing to start, without a traceback, when the Slack settings are incomplete.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiohttp
import pytest
from slack_fake import APP_TOKEN, BOT_TOKEN, TEAM_ID, Ack, Call, FakeSlack
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from test_slack import (
    AGENTS,
    ANA,
    BEN,
    CARL,
    DANA,
    FIRST,
    SUPPORT,
    T0,
    button_click,
    envelope,
    message,
    new_ts,
    shortcut,
    signature_headers,
    view_submission,
)

from adapters.slack.adapter import SlackAdapter
from adapters.slack.config import SlackSettings
from bot.clock import FakeClock
from bot.desk import Desk
from bot.domain import EntryKind, Status, TicketKind
from bot.policy import load_policy
from storage.engine import session_factory
from storage.models import AgentRow, EntryRow, TicketRow
from storage.uow import SqlUnitOfWork

RELAYDESK = str(Path(sys.executable).parent / "relaydesk")
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
"""slack_sdk sends every request through these when set (it ignores NO_PROXY): tests stay on 127.0.0.1."""
ACK_WITHIN = 3.0
"""Slack's deadline for an acknowledgement."""


# --- shared fixtures ------------------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    slack = FakeSlack()
    slack.add_user(DANA, display_name="", real_name="Dana Whitaker", name="dana")
    slack.add_user(ANA, display_name="Ana", real_name="Ana Lima")
    slack.add_user(BEN, display_name="Ben", real_name="Ben Okafor")
    slack.add_user(CARL, display_name="Carl", real_name="Carl Jensen")
    await slack.start()
    try:
        yield slack
    finally:
        await slack.stop()


# --- Socket Mode harness --------------------------------------------------------------------------


@dataclass
class Socket:
    """The adapter in Socket Mode as Slack sees it: one WebSocket client; plus the fake and the database."""

    fake: FakeSlack
    adapter: SlackAdapter
    engine: AsyncEngine
    delivered: list[str] = field(default_factory=list)
    closed: bool = False

    # sending

    async def deliver(self, kind: str, payload: dict[str, Any], **options: Any) -> str:
        envelope_id = await self.fake.deliver_envelope(kind, payload, **options)
        self.delivered.append(envelope_id)
        return envelope_id

    async def event(self, event: dict[str, Any]) -> tuple[str, Ack]:
        """An Events API event in an `events_api` envelope; waits for its acknowledgement."""
        envelope_id = await self.deliver("events_api", envelope(event))
        return envelope_id, await self.acked(envelope_id)

    async def command(self, command: str, text: str, user: str, channel: str = AGENTS) -> tuple[str, str]:
        """A slash command in a `slash_commands` envelope; returns its envelope_id and response_url key."""
        key = f"sock-{uuid4().hex[:8]}"
        payload = {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "relaydesk-test",
            "channel_id": channel,
            "channel_name": "agents" if channel == AGENTS else "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A1",
            "is_enterprise_install": "false",
            "response_url": self.fake.response_url(key),
            "trigger_id": "trigger-" + uuid4().hex,
        }
        return await self.deliver("slash_commands", payload), key

    # waiting

    async def acked(self, envelope_id: str, count: int = 1) -> Ack:
        """The envelope's acknowledgement (waits for `count` of them); Slack needs it within 3 s."""
        acks = await self.fake.wait_for(
            lambda: (found := self.fake.acks_for(envelope_id)) and len(found) >= count and found,
            f"{count} ack(s) of {envelope_id}",
            within=ACK_WITHIN + 2,
        )
        return acks[-1]

    async def wait_posts(
        self, what: str, channel: str | None = None, count: int = 1, **match: Any
    ) -> list[Call]:
        return await self.fake.wait_for(
            lambda: (found := self.fake.posts(channel, **match)) and len(found) >= count and found, what
        )

    async def settle(self) -> None:
        """Every envelope acknowledged, and no Bolt listener or Socket Mode dispatch still running."""

        def busy() -> list[asyncio.Task[Any]]:
            names = ("run_ack_function_asynchronously", "run_message_listeners")
            return [
                task
                for task in asyncio.all_tasks()
                if not task.done() and any(name in _qualname(task) for name in names)
            ]

        unacked = lambda: [e for e in self.delivered if not self.fake.acks_for(e)]  # noqa: E731
        await self.fake.wait_for(lambda: not unacked() and not busy(), "the adapter's work to finish")

    # the database

    async def count(self, model: Any, *where: Any) -> int:
        async with AsyncSession(self.engine) as session:
            return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    async def ticket(self, number: int) -> TicketRow:
        async with AsyncSession(self.engine) as session:
            row = await session.scalar(select(TicketRow).where(TicketRow.number == number))
        assert row is not None, f"no ticket #{number}"
        return row

    async def assignee(self, number: int) -> str | None:
        """The Slack user id of the agent a ticket is with."""
        async with AsyncSession(self.engine) as session:
            return await session.scalar(
                select(AgentRow.external_id)
                .join(TicketRow, TicketRow.assignee_id == AgentRow.id)
                .where(TicketRow.number == number)
            )

    async def customer_entries(self) -> list[EntryRow]:
        async with AsyncSession(self.engine) as session:
            statement = select(EntryRow).where(EntryRow.kind == EntryKind.CUSTOMER).order_by(EntryRow.id)
            return list((await session.scalars(statement)).all())

    # scenarios

    async def open_ticket(self, user: str = DANA, text: str = FIRST) -> tuple[str, Call]:
        """A customer's top-level message in the support channel; returns its ts and the card."""
        ts = new_ts()
        await self.event(message(SUPPORT, user, text, ts))
        await self.wait_posts("the greeting", SUPPORT, thread_ts=ts)
        [card] = await self.wait_posts("the card", AGENTS, thread_ts=None)
        await self.settle()
        return ts, card

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.settle()
        finally:
            await self.adapter.stop()


def _qualname(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", "") if inspect.iscoroutine(coro) else ""


def _socket_mode_tasks() -> list[asyncio.Task[Any]]:
    """Pending tasks of slack_sdk's Socket Mode client (its receiver, monitor and message processor)."""
    return [t for t in asyncio.all_tasks() if not t.done() and "SocketModeClient" in _qualname(t)]


async def _close_leaked_socket_clients() -> int:
    """Safety net: close any Socket Mode client the adapter left running (it would reconnect forever
    and keep the event loop from closing); returns how many there were."""
    leaked = [o for o in gc.get_objects() if isinstance(o, SocketModeClient) and not o.closed]
    for client in leaked:
        await client.close()
    return len(leaked)


@pytest.fixture
def socket_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeSlack) -> pytest.MonkeyPatch:
    """Production's environment for Socket Mode: an app token, a bot token, no signing secret, no port."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for key in list(os.environ):
        if key.startswith(("SLACK_", "RELAYDESK_")) or key in PROXY_VARIABLES:
            monkeypatch.delenv(key)
    for key, value in {
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": fake.api_url,
        "SLACK_SUPPORT_CHANNELS": SUPPORT,
        "SLACK_AGENT_CHANNEL": AGENTS,
        "SLACK_AGENTS": f"{ANA},{BEN}",
    }.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


async def start_socket_adapter(fake: FakeSlack, engine: AsyncEngine) -> Socket:
    """Builds and starts the adapter as production does, with settings from the environment."""
    settings = SlackSettings()
    assert settings.socket_mode and settings.signing_secret is None
    sessions = session_factory(engine)
    desk = Desk(lambda: SqlUnitOfWork(sessions), FakeClock(T0), load_policy())
    adapter = SlackAdapter(settings, desk, engine)
    await adapter.start()
    return Socket(fake, adapter, engine)


@pytest.fixture
async def sock(
    socket_env: pytest.MonkeyPatch,
    fake: FakeSlack,
    sqlite_engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Socket]:
    """The adapter in Socket Mode on SQLite, connected to the fake; agents UANA and UBEN."""
    caplog.set_level(logging.WARNING)
    harness = await start_socket_adapter(fake, sqlite_engine)
    try:
        yield harness
    finally:
        try:
            await harness.close()  # before the fake and the engine go
        finally:
            leaked = await _close_leaked_socket_clients()
    assert not leaked, "the adapter's stop() left its Socket Mode client running"
    if request.node.get_closest_marker("xfail") is None:
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, "errors were logged:\n" + "\n".join(r.getMessage() for r in errors)


# --- Socket Mode ----------------------------------------------------------------------------------


async def test_socket_mode_connects_with_the_app_token_and_listens_on_no_port(sock: Socket) -> None:
    fake = sock.fake
    [opened] = fake.calls_to("apps.connections.open")
    assert opened.token == APP_TOKEN and opened.http_method == "POST"
    others = [c for c in fake.calls if c.method != "apps.connections.open"]
    assert others and all(c.token == BOT_TOKEN for c in others), "the app token only opens connections"
    [connection] = fake.open_connections
    assert connection.sent[0]["type"] == "hello"
    assert sock.adapter.port is None, "Socket Mode needs no public address"
    assert {c.get("user") for c in fake.calls_to("users.info")} == {ANA, BEN}, "SLACK_AGENTS registered"


async def test_a_customer_message_is_acked_first_then_greeted_in_its_thread_with_a_card(sock: Socket) -> None:
    ts = new_ts()
    sent = time.monotonic()
    envelope_id = await sock.deliver("events_api", envelope(message(SUPPORT, DANA, FIRST, ts)))
    ack = await sock.acked(envelope_id)
    assert ack.message == {"envelope_id": envelope_id}, "an event is acknowledged with no payload"
    assert ack.received_at - sent < ACK_WITHIN
    before_ack = sock.fake.calls[: ack.calls_before]
    assert not [c for c in before_ack if c.method == "chat.postMessage"], "acknowledged before working"

    [greeting] = await sock.wait_posts("the greeting", SUPPORT, thread_ts=ts)
    assert greeting.get("text").startswith("Hi Dana,") and "ticket #1" in greeting.get("text")
    assert greeting.token == BOT_TOKEN
    [card] = await sock.wait_posts("the card", AGENTS)
    assert "New ticket #1 · Dana Whitaker (new customer)" in card.get("text")
    assert card.get("blocks"), "the card carries its buttons"
    assert card.get("thread_ts") is None

    await sock.settle()
    assert len(sock.fake.acks_for(envelope_id)) == 1
    ticket = await sock.ticket(1)
    assert (ticket.channel_id, ticket.thread_id, ticket.workspace_id) == (SUPPORT, ts, TEAM_ID)
    assert [e.external_id for e in await sock.customer_entries()] == [f"{SUPPORT}:{ts}"]


async def test_ticket_claim_as_a_slash_command_is_acked_and_the_customer_told(sock: Socket) -> None:
    ts, _ = await sock.open_ticket()
    sent = time.monotonic()
    envelope_id, key = await sock.command("/ticket", "claim #1", ANA)
    ack = await sock.acked(envelope_id)
    assert ack.envelope_id == envelope_id and ack.received_at - sent < ACK_WITHIN
    assert ack.payload is None, "the command is answered through its response_url, not in the ack"

    told = await sock.wait_posts("the customer told", SUPPORT, count=2, thread_ts=ts)
    assert "Ana is now looking after your request #1" in told[-1].get("text")
    [summary] = await sock.fake.wait_for(lambda: sock.fake.responses_to(key), "Ana's summary")
    assert "#1 · Hi, my order A-1234 never arrived" in summary.text
    assert summary.body["response_type"] == "ephemeral"
    assert (await sock.ticket(1)).status is Status.OPEN
    assert await sock.assignee(1) == ANA


async def test_a_redelivered_envelope_is_acked_each_time_and_recorded_once(sock: Socket) -> None:
    ts = new_ts()
    payload = envelope(message(SUPPORT, DANA, FIRST, ts))
    envelope_id = await sock.deliver("events_api", payload)
    await sock.deliver(
        "events_api", payload, envelope_id=envelope_id, retry_attempt=1, retry_reason="timeout"
    )  # at once: the two race
    await sock.acked(envelope_id, count=2)
    await sock.wait_posts("the greeting", SUPPORT, thread_ts=ts)
    await sock.settle()
    await sock.deliver(
        "events_api", payload, envelope_id=envelope_id, retry_attempt=2, retry_reason="timeout"
    )
    await sock.acked(envelope_id, count=3)
    await sock.settle()

    sent = [c for conn in sock.fake.connections for c in conn.sent if c.get("envelope_id") == envelope_id]
    assert [c["retry_attempt"] for c in sent] == [0, 1, 2]
    assert await sock.count(TicketRow) == 1
    assert len(await sock.customer_entries()) == 1
    assert len(sock.fake.posts(SUPPORT)) == 1, "one greeting"
    assert len(sock.fake.posts(AGENTS)) == 1, "one card"


async def test_the_claim_button_arrives_as_an_interactive_envelope(sock: Socket) -> None:
    ts, card = await sock.open_ticket()
    click = button_click(ANA, "ticket_claim", "1", sock.fake.response_url("ana"), card.answer["ts"])
    envelope_id = await sock.deliver("interactive", click)
    ack = await sock.acked(envelope_id)
    assert ack.payload is None

    told = await sock.wait_posts("the customer told", SUPPORT, count=2, thread_ts=ts)
    assert "Ana is now looking after your request #1" in told[-1].get("text")
    await sock.fake.wait_for(lambda: sock.fake.responses_to("ana"), "Ana's summary")
    assert await sock.assignee(1) == ANA


async def test_the_request_form_answers_its_validation_errors_in_the_ack(sock: Socket) -> None:
    envelope_id = await sock.deliver("interactive", shortcut(CARL))
    await sock.acked(envelope_id)
    [opened] = await sock.fake.wait_for(lambda: sock.fake.calls_to("views.open"), "the form")
    view = opened.get("view")
    view = json.loads(view) if isinstance(view, str) else view

    empty = await sock.deliver("interactive", view_submission(CARL, view, "Hardware", "urgent", "  "))
    refusal = await sock.acked(empty)
    assert refusal.payload is not None, "a modal's errors go back in the acknowledgement"
    assert refusal.payload["response_action"] == "errors"
    assert set(refusal.payload["errors"]) == {"description"}
    await sock.settle()
    assert await sock.count(TicketRow) == 0

    filled = "The office printer is on fire."
    submitted = await sock.deliver("interactive", view_submission(CARL, view, "Hardware", "urgent", filled))
    assert (await sock.acked(submitted)).payload is None, "a valid form closes"
    [greeting] = await sock.wait_posts("the answer in Carl's DM", "D-UCARL")
    assert "ticket #1" in greeting.get("text")
    await sock.settle()
    assert (await sock.ticket(1)).kind is TicketKind.INTERNAL


async def test_a_disconnect_request_is_followed_by_a_fresh_connection_that_works(sock: Socket) -> None:
    fake = sock.fake
    await fake.send_disconnect("refresh_requested")
    await fake.wait_for(
        lambda: len(fake.connections) == 2 and not fake.connections[1].closed and fake.connections[0].closed,
        "the client to move to a new connection",
    )
    assert len(fake.calls_to("apps.connections.open")) == 2, "a new URL for the new connection"

    ts = new_ts()
    envelope_id, ack = await sock.event(message(SUPPORT, DANA, FIRST, ts))
    assert ack.connection == 1
    await sock.wait_posts("the greeting", SUPPORT, thread_ts=ts)
    await sock.settle()
    assert len(fake.acks_for(envelope_id)) == 1


async def test_stopping_closes_the_connection_and_leaves_nothing_open(
    socket_env: pytest.MonkeyPatch, fake: FakeSlack, sqlite_engine: AsyncEngine
) -> None:
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(str(context.get("message"))))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            harness = await start_socket_adapter(fake, sqlite_engine)
            try:
                await harness.open_ticket()
            finally:
                try:
                    await harness.close()
                finally:
                    leaked = await _close_leaked_socket_clients()
            assert not leaked, "the adapter's stop() left its Socket Mode client running"
            [connection] = fake.connections
            await fake.wait_for(lambda: connection.closed, "the fake to see the socket closed")
            assert connection.close_code == 1000, "closed normally by the client"
            await fake.wait_for(lambda: not _socket_mode_tasks(), "the Socket Mode client's tasks to end")
            del harness
            gc.collect()
            await asyncio.sleep(0)
            gc.collect()
    finally:
        loop.set_exception_handler(previous_handler)
    complaints = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] + reported
    assert not [c for c in complaints if "nclosed" in c or "destroyed" in c], complaints
    assert len(fake.calls_to("apps.connections.open")) == 1, "no reconnection after stopping"


# --- relaydesk run ---------------------------------------------------------------------------------

RUN_TOKEN = "xoxb-4242-run-token-d0n0tl0g"
RUN_SECRET = "run-signing-secret-8c1f2e"


def _clean_env(**settings: str) -> dict[str, str]:
    """The outer environment without any Relaydesk, Slack, database or proxy settings; plus `settings`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RELAYDESK_", "SLACK_", "DATABASE_URL")) and k not in PROXY_VARIABLES
    }
    return env | settings


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _until(check: Callable[[], Awaitable[Any]], what: str, within: float) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def run_fake() -> AsyncIterator[FakeSlack]:
    slack = FakeSlack(tokens={RUN_TOKEN})
    slack.add_user(DANA, display_name="", real_name="Dana Whitaker", name="dana")
    slack.add_user(ANA, display_name="Ana", real_name="Ana Lima")
    slack.add_user(BEN, display_name="Ben", real_name="Ben Okafor")
    await slack.start()
    try:
        yield slack
    finally:
        await slack.stop()


@pytest.mark.parametrize(
    "log_level",
    [pytest.param(None, id="default logging"), pytest.param("DEBUG", id="debug logging")],
)
async def test_relaydesk_run_serves_slack_over_http_and_stops_cleanly_on_sigterm(
    tmp_path: Path, run_fake: FakeSlack, log_level: str | None
) -> None:
    """Secrets stay out of the output even when every library logs at DEBUG."""
    port = _free_port()
    env = _clean_env(
        SLACK_BOT_TOKEN=RUN_TOKEN,
        SLACK_SIGNING_SECRET=RUN_SECRET,
        SLACK_API_URL=run_fake.api_url,
        SLACK_SUPPORT_CHANNELS=SUPPORT,
        SLACK_AGENT_CHANNEL=AGENTS,
        SLACK_AGENTS=f"{ANA},{BEN}",
        RELAYDESK_HTTP_HOST="127.0.0.1",
        RELAYDESK_HTTP_PORT=str(port),
        DATABASE_URL="sqlite:///desk.db",
        **({"RELAYDESK_LOG_LEVEL": log_level} if log_level else {}),
    )
    process = await asyncio.create_subprocess_exec(
        RELAYDESK,
        "run",
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    # Read its output as it comes: at DEBUG a full pipe would block the bot mid-write.
    assert process.stdout is not None and process.stderr is not None
    stdout_read = asyncio.create_task(process.stdout.read())
    stderr_read = asyncio.create_task(process.stderr.read())
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:

            async def healthy() -> bool:
                if process.returncode is not None:
                    err = await stderr_read
                    raise AssertionError(f"relaydesk run exited {process.returncode}:\n{err.decode()}")
                try:
                    async with http.get(f"{base}/healthz") as reply:
                        return reply.status == 200
                except (aiohttp.ClientConnectionError, TimeoutError):
                    return False

            await _until(healthy, "GET /healthz to answer 200", within=20)

            ts = new_ts()
            body = json.dumps(envelope(message(SUPPORT, DANA, FIRST, ts)))
            headers = {"Content-Type": "application/json"} | signature_headers(body, secret=RUN_SECRET)
            async with http.post(f"{base}/slack/events", data=body.encode(), headers=headers) as reply:
                assert reply.status == 200, await reply.text()
            [greeting] = await run_fake.wait_for(
                lambda: run_fake.posts(SUPPORT, thread_ts=ts), "the greeting", within=10
            )
            assert greeting.get("text").startswith("Hi Dana,") and greeting.token == RUN_TOKEN
            await run_fake.wait_for(lambda: run_fake.posts(AGENTS), "the card", within=10)

            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=10)
            took = time.monotonic() - started
            out, err = await stdout_read, await stderr_read
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    stdout, stderr = out.decode(), err.decode()
    assert process.returncode == 0, stderr
    assert took < 5, f"took {took:.1f} s to stop after SIGTERM"
    assert "Relaydesk is running: slack" in stdout
    assert "Traceback" not in stderr, stderr
    for secret in (RUN_TOKEN, RUN_SECRET):
        assert secret not in stderr and secret not in stdout
    with sqlite3.connect(tmp_path / "desk.db") as db:
        assert db.execute("select count(*) from tickets").fetchone() == (1,)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        pytest.param({"SLACK_BOT_TOKEN": RUN_TOKEN}, "SLACK_AGENT_CHANNEL", id="no agents' channel"),
        pytest.param(
            {"SLACK_BOT_TOKEN": RUN_TOKEN, "SLACK_AGENT_CHANNEL": AGENTS},
            "SLACK_SIGNING_SECRET",
            id="neither signing secret nor app token",
        ),
    ],
)
def test_relaydesk_run_refuses_incomplete_slack_settings(
    tmp_path: Path, settings: dict[str, str], key: str
) -> None:
    result = subprocess.run(
        [RELAYDESK, "run"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_clean_env(DATABASE_URL="sqlite:///desk.db", **settings),
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert re.search(rf"^relaydesk: cannot start: .*\n\s+{key}: ", result.stderr, re.M), result.stderr
    assert "Traceback" not in result.stderr
    assert RUN_TOKEN not in result.stderr and RUN_TOKEN not in result.stdout
    assert not (tmp_path / "desk.db").exists(), "nothing is started before the settings are checked"
