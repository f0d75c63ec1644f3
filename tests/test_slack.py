"""The Slack adapter over the wire: signed HTTP requests in Slack's own formats go to the real adapter
(slack-bolt's AsyncApp behind aiohttp, a real Desk on a real database), and everything it says goes to a
local fake of Slack's Web API (`slack_fake.py`) that records each call. Nothing of ours is mocked and
nothing reaches the internet.

The adapter acknowledges first and works after, so the tests poll the fake (bounded) for the calls they
expect. To check that something did *not* happen, they first wait until Bolt's background listener tasks
have finished (`Slack.settle`), then look.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import itertools
import json
import logging
import os
import re
import socket
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

import aiohttp
import pytest
from dbcheck import DatabaseChecks
from slack_fake import (
    APP_ID,
    BOT_ID,
    BOT_TOKEN,
    BOT_USER_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    INSTALLED_TOKEN,
    OAUTH_CODE,
    TEAM_ID,
    Call,
    FakeSlack,
)
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

import adapters.slack.adapter as slack_adapter
from adapters.slack.adapter import SlackAdapter
from adapters.slack.config import SlackSettings
from bot.clock import FakeClock
from bot.commands import Actor, IncomingMessage
from bot.desk import Desk
from bot.domain import DeliveryState, EntryKind, Priority, Role, Status, TicketKind
from bot.messages import Conversation, Person
from bot.policy import load_policy
from storage.engine import session_factory
from storage.models import AgentRow, AnchorRow, DeliveryRow, EntryRow, PromiseRow, TicketRow, TimelineRow
from storage.uow import SqlUnitOfWork

SECRET = "some-secret"
SUPPORT = "CSUP"
AGENTS = "CAGENTS"
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
TEXT_LIMIT = 3500
# What would ping a crowd in a Slack message: a complete broadcast or user-group token, or a bare
# @everyone/@here/@channel (defused ones carry a word joiner after the @).
LIVE_MASS_MENTION = re.compile(
    r"<!(?:channel|here|everyone)(?:\|[^>]*)?>|<!subteam\^[^>]*>|@(?:everyone|here|channel)", re.IGNORECASE
)

DANA, ANA, BEN, CARL = "UDANA", "UANA", "UBEN", "UCARL"
FIRST = "Hi, my order A-1234 never arrived and I need it for Friday."


# --- signing, as Slack signs ----------------------------------------------------------------------


def signature_headers(body: str, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 signature: HMAC-SHA256 of `v0:<timestamp>:<body>` keyed with the signing secret."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


# --- payloads in Slack's documented shapes --------------------------------------------------------

_ts_counter = itertools.count(1)
_event_counter = itertools.count(1)


def new_ts() -> str:
    """A message timestamp as Slack writes them (distinct from the ones the fake hands out)."""
    n = next(_ts_counter)
    return f"{1_711_000_000 + n}.{n:06d}"


def message(
    channel: str,
    user: str,
    text: str,
    ts: str | None = None,
    *,
    thread_ts: str | None = None,
    channel_type: str = "channel",
    **extra: Any,
) -> dict[str, Any]:
    ts = ts or new_ts()
    event: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel": channel,
        "channel_type": channel_type,
        "team": TEAM_ID,
        "client_msg_id": str(uuid4()),
        "blocks": [
            {
                "type": "rich_text",
                "block_id": "b1",
                "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
            }
        ],
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
        event["parent_user_id"] = DANA
    event.update(extra)
    return event


def envelope(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """An Events API `event_callback`, as Slack wraps every event."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "context_team_id": TEAM_ID,
        "context_enterprise_id": None,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_event_counter):08d}",
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "authed_users": [BOT_USER_ID],
        "is_ext_shared_channel": False,
        "event_context": "4-eyJldCI6Im1lc3NhZ2UifQ",
    }


def _user(user: str) -> dict[str, Any]:
    return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID}


def _team() -> dict[str, Any]:
    return {"id": TEAM_ID, "domain": "relaydesk-test"}


def button_click(
    user: str, action_id: str, value: str, response_url: str | None, card_ts: str | None
) -> dict[str, Any]:
    """A `block_actions` payload: a button on a message (with a response_url) or in the App Home."""
    action = {
        "action_id": action_id,
        "block_id": f"ticket-{value}",
        "text": {"type": "plain_text", "text": "Claim", "emoji": True},
        "value": value,
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user),
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": "trigger-" + uuid4().hex,
        "team": _team(),
        "enterprise": None,
        "is_enterprise_install": False,
        "state": {"values": {}},
        "actions": [action],
    }
    if card_ts is not None:
        payload |= {
            "container": {
                "type": "message",
                "message_ts": card_ts,
                "channel_id": AGENTS,
                "is_ephemeral": False,
            },
            "channel": {"id": AGENTS, "name": "agents"},
            "message": {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": card_ts, "text": "…"},
        }
    else:
        payload |= {
            "container": {"type": "view", "view_id": "V-HOME"},
            "view": {
                "id": "V-HOME",
                "type": "home",
                "team_id": TEAM_ID,
                "blocks": [],
                "state": {"values": {}},
            },
        }
    if response_url is not None:
        payload["response_url"] = response_url
    return payload


def shortcut(user: str) -> dict[str, Any]:
    return {
        "type": "shortcut",
        "token": "legacy-verification-token",
        "action_ts": f"{time.time():.6f}",
        "team": _team(),
        "user": _user(user),
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": "raise_request",
        "trigger_id": "trigger-" + uuid4().hex,
    }


def view_submission(
    user: str, view: dict[str, Any], category: str | None, urgency: str | None, description: str | None
) -> dict[str, Any]:
    """A modal submitted: `state.values` keyed by the view's own block_id and action_id, as Slack does."""
    chosen = {"category": category, "urgency": urgency, "description": description}
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        element = block["element"]
        answer = chosen[block["block_id"]]
        if element["type"] == "plain_text_input":
            state = {"type": "plain_text_input", "value": answer}
        else:
            options = [o for o in element["options"] if o["value"] == answer]
            assert answer is None or options, f"{answer!r} is not an option of {block['block_id']}"
            state = {"type": "static_select", "selected_option": options[0] if options else None}
        values[block["block_id"]] = {element["action_id"]: state}
    return {
        "type": "view_submission",
        "team": _team(),
        "user": _user(user),
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": "trigger-" + uuid4().hex,
        "view": {
            **view,
            "id": view.get("id", "V1"),
            "team_id": TEAM_ID,
            "private_metadata": "",
            "hash": "1712000000.abcdef",
            "state": {"values": values},
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


# --- the harness ----------------------------------------------------------------------------------


@dataclass
class Opened:
    """A ticket opened by a customer's top-level message in the support channel."""

    number: int
    ts: str  # the customer's message, whose thread is the ticket's
    greeting: Call
    card: Call
    card_ts: str  # the card's ts, as Slack answered chat.postMessage: the ticket's staff thread


@dataclass
class Slack(DatabaseChecks):
    """The adapter as Slack sees it: an HTTP endpoint; plus the fake Web API and the database to look at."""

    fake: FakeSlack
    adapter: SlackAdapter
    engine: AsyncEngine
    http: aiohttp.ClientSession
    caplog: pytest.LogCaptureFixture
    errors_expected: bool = False
    closed: bool = False
    _responses: itertools.count = field(default_factory=lambda: itertools.count(1))
    desk: Desk | None = None
    """The adapter's desk, for what a scheduler would do (run_due_work), and its clock."""
    clock: FakeClock | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.adapter.port}"

    # sending

    async def post(
        self,
        body: str,
        content_type: str,
        *,
        headers: dict[str, str] | None = None,
        signed: bool = True,
        timestamp: int | None = None,
    ) -> tuple[int, str]:
        sent = {"Content-Type": content_type}
        if signed:
            sent |= signature_headers(body, timestamp=timestamp)
        sent |= headers or {}
        async with self.http.post(f"{self.base}/slack/events", data=body.encode(), headers=sent) as reply:
            return reply.status, await reply.text()

    async def send_json(self, body: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        return await self.post(body, "application/json", headers=headers)

    async def event(self, event: dict[str, Any]) -> None:
        status, text = await self.send_json(json.dumps(envelope(event)))
        assert status == 200, text

    async def form(self, fields: dict[str, str]) -> tuple[int, str]:
        return await self.post(urlencode(fields), "application/x-www-form-urlencoded")

    async def interact(self, payload: dict[str, Any]) -> tuple[int, str]:
        return await self.form({"payload": json.dumps(payload)})

    def response_key(self) -> str:
        return f"r{next(self._responses)}"

    async def command(self, command: str, text: str, user: str, channel: str = AGENTS) -> str:
        """A slash command as Slack posts it; returns the key of its response_url."""
        key = self.response_key()
        status, body = await self.form(
            {
                "token": "legacy-verification-token",
                "team_id": TEAM_ID,
                "team_domain": "relaydesk-test",
                "channel_id": channel,
                "channel_name": "agents" if channel == AGENTS else "general",
                "user_id": user,
                "user_name": user.lower(),
                "command": command,
                "text": text,
                "api_app_id": APP_ID,
                "is_enterprise_install": "false",
                "response_url": self.fake.response_url(key),
                "trigger_id": "trigger-" + uuid4().hex,
            }
        )
        assert status == 200, body
        return key

    # waiting

    async def settle(self) -> None:
        """Wait until the work after each ack has finished: Bolt's lazy listeners, which it runs in
        asyncio tasks of `to_runnable_function` (see `test_settle_knows_bolts_listener_tasks`, which
        fails if Bolt renames it), and the deliveries the adapter starts after recording a message."""

        def busy() -> list[asyncio.Task[Any]]:
            return [
                task
                for task in asyncio.all_tasks()
                if not task.done() and any(name in _qualname(task) for name in BACKGROUND_WORK)
            ]

        await self.fake.wait_for(lambda: not busy(), "the adapter's listeners to finish")

    async def eventually(self, check: Callable[[], Awaitable[Any]], what: str, within: float = 10.0) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            result = await check()
            if result:
                return result
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; Slack calls:\n{self.fake.transcript()}")
            await asyncio.sleep(0.02)

    async def wait_posts(
        self, what: str, channel: str | None = None, count: int = 1, **match: Any
    ) -> list[Call]:
        return await self.fake.wait_for(
            lambda: (found := self.fake.posts(channel, **match)) and len(found) >= count and found, what
        )

    # scenarios

    async def open_ticket(self, user: str = DANA, text: str = FIRST) -> Opened:
        """A customer's top-level message in the support channel; waits for greeting, card and anchor."""
        ts = new_ts()
        await self.event(message(SUPPORT, user, text, ts))
        greeting = (await self.wait_posts("the greeting", SUPPORT, thread_ts=ts))[0]
        number = int(re.search(r"#(\d+)", greeting.get("text")).group(1))  # type: ignore[union-attr]
        card = (
            await self.fake.wait_for(
                lambda: [c for c in self.fake.posts(AGENTS) if f"#{number} " in c.get("text", "")],
                f"the card of #{number}",
            )
        )[0]
        anchors = select(AnchorRow.message_id).where(AnchorRow.ticket_number == number)
        card_ts = (await self.eventually(lambda: self.scalars(anchors), f"the card of #{number} attached"))[0]
        assert card_ts == card.answer["ts"], "the staff thread is the card's ts, as Slack answered"
        return Opened(number, ts, greeting, card, card_ts)

    def assert_no_errors_logged(self) -> None:
        errors = [r for r in self.caplog.records if r.levelno >= logging.ERROR]
        assert not errors, "errors were logged:\n" + "\n".join(r.getMessage() for r in errors)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.settle()
        finally:
            await self.adapter.stop()
            await self.http.close()


BACKGROUND_WORK = ("to_runnable_function", "SlackAdapter._later.")
"""Tasks that run after Slack was acknowledged, by their coroutines' qualified names."""


def _qualname(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", "") if inspect.iscoroutine(coro) else ""


def _card_buttons(card: Call) -> list[dict[str, Any]]:
    blocks = card.get("blocks")
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"] if e["type"] == "button"]


def _everything_said(calls: list[Call]) -> str:
    return "\n".join(json.dumps(c.params, ensure_ascii=False) for c in calls)


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    slack = FakeSlack()
    slack.add_user(DANA, display_name="", real_name="Dana Whitaker", name="dana")
    slack.add_user(ANA, display_name="Ana", real_name="Ana Lima")
    slack.add_user(BEN, display_name="Ben", real_name="Ben Okafor", tz="America/New_York")
    slack.add_user(CARL, display_name="Carl", real_name="Carl Jensen")
    slack.add_user("UEVE", display_name="Eve", real_name="Eve Moreau")
    await slack.start()
    try:
        yield slack
    finally:
        await slack.stop()


@pytest.fixture
def slack_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeSlack) -> pytest.MonkeyPatch:
    """Production's environment for HTTP mode, pointed at the fake; nothing from the outer environment."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for key in list(os.environ):
        if key.startswith(("SLACK_", "RELAYDESK_HTTP_")):
            monkeypatch.delenv(key)
    for key, value in {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.api_url,
        "SLACK_SUPPORT_CHANNELS": SUPPORT,
        "SLACK_AGENT_CHANNEL": AGENTS,
        "SLACK_AGENTS": f"{ANA},{BEN}",
        "RELAYDESK_HTTP_HOST": "127.0.0.1",
        "RELAYDESK_HTTP_PORT": "0",
    }.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


StartSlack = Callable[..., Awaitable[Slack]]


@pytest.fixture
async def start_slack(
    slack_env: pytest.MonkeyPatch, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[StartSlack]:
    """Builds the adapter as production does: settings from the environment, a Desk on the database."""
    started: list[Slack] = []
    caplog.set_level(logging.WARNING)

    async def start(engine: AsyncEngine, **env: str | None) -> Slack:
        for key, value in env.items():
            if value is None:
                slack_env.delenv(key, raising=False)
            else:
                slack_env.setenv(key, value)
        settings = SlackSettings()
        sessions = session_factory(engine)
        clock = FakeClock(T0)
        desk = Desk(lambda: SqlUnitOfWork(sessions), clock, load_policy())
        adapter = SlackAdapter(settings, desk, engine)
        await adapter.start()
        assert adapter.port, "the adapter did not report its port"
        http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        slack = Slack(fake, adapter, engine, http, caplog, desk=desk, clock=clock)
        started.append(slack)
        return slack

    yield start
    for slack in started:
        await slack.close()


@pytest.fixture
async def slack(
    start_slack: StartSlack, sqlite_engine: AsyncEngine, request: pytest.FixtureRequest
) -> AsyncIterator[Slack]:
    """The adapter in HTTP mode on SQLite, agents UANA and UBEN, support channel CSUP."""
    harness = await start_slack(sqlite_engine)
    yield harness
    await harness.close()  # before the engine goes
    if not harness.errors_expected and request.node.get_closest_marker("xfail") is None:
        harness.assert_no_errors_logged()


# --- the endpoint ---------------------------------------------------------------------------------


async def test_healthz_answers_200(slack: Slack) -> None:
    async with slack.http.get(f"{slack.base}/healthz") as reply:
        assert reply.status == 200
        assert await reply.json() == {"ok": True}


async def test_url_verification_echoes_the_challenge(slack: Slack) -> None:
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    body = json.dumps(
        {"token": "legacy-verification-token", "challenge": challenge, "type": "url_verification"}
    )
    status, text = await slack.send_json(body)
    assert status == 200
    assert json.loads(text) == {"challenge": challenge}


def test_settle_knows_bolts_listener_tasks() -> None:
    import slack_bolt.lazy_listener.async_internals as lazy

    assert "async def to_runnable_function(" in inspect.getsource(lazy)
    assert "def _later(" in inspect.getsource(SlackAdapter)


def test_the_signer_signs_as_slack_does() -> None:
    body = "token=x&team_id=T1&command=%2Fticket&text=claim+%231"
    stamp = int(time.time())
    headers = signature_headers(body, timestamp=stamp)
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid(body, str(stamp), headers["X-Slack-Signature"])
    assert not SignatureVerifier("another-secret").is_valid(body, str(stamp), headers["X-Slack-Signature"])
    assert not verifier.is_valid(body + "&x=1", str(stamp), headers["X-Slack-Signature"])


@pytest.mark.parametrize(
    ("case", "signed", "headers", "age"),
    [
        ("bad signature", False, {"X-Slack-Signature": "v0=" + "0" * 64}, 0),
        ("missing signature", False, {}, 0),
        ("timestamp older than 5 minutes", True, {}, 6 * 60),
        ("timestamp more than 5 minutes ahead", True, {}, -6 * 60),
    ],
)
async def test_unsigned_or_stale_requests_get_401_and_change_nothing(
    slack: Slack, case: str, signed: bool, headers: dict[str, str], age: int
) -> None:
    before = list(slack.fake.calls)
    body = json.dumps(envelope(message(SUPPORT, DANA, FIRST)))
    sent = dict(headers)
    if not signed and headers:
        sent["X-Slack-Request-Timestamp"] = str(int(time.time()))
    status, _ = await slack.post(
        body, "application/json", headers=sent, signed=signed, timestamp=int(time.time()) - age
    )
    assert status == 401, case
    form = urlencode({"command": "/ticket", "text": "queue", "user_id": ANA, "channel_id": AGENTS})
    status, _ = await slack.post(
        form,
        "application/x-www-form-urlencoded",
        headers=sent,
        signed=signed,
        timestamp=int(time.time()) - age,
    )
    assert status == 401, case
    await slack.settle()
    assert await slack.count(TicketRow) == 0
    assert await slack.count(EntryRow) == 0
    assert slack.fake.calls == before


# --- intake ---------------------------------------------------------------------------------------


async def test_a_customer_message_opens_a_ticket_greeted_in_its_thread_with_a_card_for_agents(
    slack: Slack,
) -> None:
    opened = await slack.open_ticket()

    greeting = opened.greeting
    assert greeting.get("channel") == SUPPORT and greeting.get("thread_ts") == opened.ts
    assert greeting.get("text").startswith("Hi Dana,") and "ticket #1" in greeting.get("text")
    assert "Whitaker" not in greeting.get("text"), "customers are greeted by first name"
    assert greeting.token == BOT_TOKEN

    card = opened.card
    assert card.get("channel") == AGENTS and card.get("thread_ts") is None
    assert "New ticket #1 · Dana Whitaker (new customer)" in card.get("text")
    buttons = {b["text"]["text"]: b for b in _card_buttons(card)}
    assert set(buttons) == {"Claim", "Resolve"}
    assert buttons["Claim"]["action_id"] == "ticket_claim" and buttons["Claim"]["value"] == "1"
    assert buttons["Resolve"]["action_id"] == "ticket_resolve" and buttons["Resolve"]["value"] == "1"

    ticket = await slack.ticket(1)
    assert (ticket.channel_id, ticket.thread_id, ticket.workspace_id) == (SUPPORT, opened.ts, TEAM_ID)
    assert ticket.status is Status.NEW and ticket.kind is TicketKind.EXTERNAL
    [entry] = await slack.entries(1, EntryKind.CUSTOMER)
    assert (entry.body, entry.author_name, entry.external_id) == (
        FIRST,
        "Dana Whitaker",
        f"{SUPPORT}:{opened.ts}",
    )
    assert len([c for c in slack.fake.posts() if c.get("blocks")]) == 1
    assert all(c.token == BOT_TOKEN for c in slack.fake.calls)


async def test_a_reply_in_the_thread_lands_on_the_same_ticket_and_in_the_cards_thread(slack: Slack) -> None:
    opened = await slack.open_ticket()
    await slack.event(message(SUPPORT, DANA, "Also, the tracking page shows an error.", thread_ts=opened.ts))

    [relay] = await slack.wait_posts("the relay", AGENTS, thread_ts=opened.card_ts)
    assert relay.get("text").startswith("#1 · Dana Whitaker")
    assert relay.get("text").endswith(": Also, the tracking page shows an error.")
    await slack.settle()
    assert len(slack.fake.posts(SUPPORT)) == 1, "no second greeting"
    assert await slack.count(TicketRow) == 1
    assert [e.body for e in await slack.entries(1, EntryKind.CUSTOMER)] == [
        FIRST,
        "Also, the tracking page shows an error.",
    ]


async def test_a_direct_message_opens_a_ticket_answered_in_the_dm(slack: Slack) -> None:
    await slack.event(message("DDANA", DANA, "Can you reset my password?", channel_type="im"))

    [greeting] = await slack.wait_posts("the greeting in the DM", "DDANA")
    assert "thread_ts" not in greeting.params
    assert greeting.get("text").startswith("Hi Dana,") and "ticket #1" in greeting.get("text")
    await slack.wait_posts("the card", AGENTS)
    ticket = await slack.ticket(1)
    assert (ticket.channel_id, ticket.thread_id) == ("DDANA", None)

    await slack.event(message("DDANA", DANA, "It's for dana@example.com", channel_type="im"))
    await slack.wait_posts("the relay", AGENTS, count=2)
    await slack.settle()
    assert len(slack.fake.posts("DDANA")) == 1 and await slack.count(TicketRow) == 1


async def test_messages_outside_support_channels_and_dms_are_ignored(slack: Slack) -> None:
    await slack.event(message("CRANDOM", DANA, "lunch anyone?"))
    await slack.event(message(AGENTS, ANA, "morning all"))  # top level in the agents' channel
    await slack.settle()
    assert await slack.count(TicketRow) == 0
    assert not slack.fake.posts()


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(
            {"subtype": "bot_message", "bot_id": "B999", "username": "Zendesk", "user": None},
            id="classic bot_message",
        ),
        pytest.param({"bot_id": "B999", "app_id": "A999", "user": "UOTHERBOT"}, id="app bot with a user"),
        pytest.param({"bot_id": BOT_ID, "app_id": APP_ID, "user": BOT_USER_ID}, id="our own bot"),
        pytest.param({"subtype": "channel_join", "user": "UEVE"}, id="channel_join"),
    ],
)
async def test_bot_and_system_messages_open_no_ticket(slack: Slack, event: dict[str, Any]) -> None:
    payload = message(SUPPORT, "placeholder", "Deploy finished: build 1234 is live @here") | event
    if payload["user"] is None:
        del payload["user"]
    await slack.event(payload)
    await slack.settle()
    assert await slack.count(TicketRow) == 0
    assert await slack.count(EntryRow) == 0
    assert not slack.fake.posts()


async def test_a_redelivered_event_is_recorded_once(slack: Slack) -> None:
    body = json.dumps(envelope(message(SUPPORT, DANA, FIRST)))
    first, retry = await asyncio.gather(
        slack.send_json(body),
        slack.send_json(body, {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}),
    )
    assert first[0] == 200 and retry[0] == 200
    await slack.wait_posts("the greeting", SUPPORT)
    await slack.settle()
    status, _ = await slack.send_json(
        body, {"X-Slack-Retry-Num": "2", "X-Slack-Retry-Reason": "http_timeout"}
    )
    assert status == 200
    await slack.settle()

    assert await slack.count(TicketRow) == 1
    assert await slack.count(EntryRow, EntryRow.kind == EntryKind.CUSTOMER) == 1
    assert await slack.count(EntryRow) == 2  # the message and the greeting
    assert len(slack.fake.posts(SUPPORT)) == 1
    assert len(slack.fake.posts(AGENTS)) == 1


async def test_an_edit_updates_the_record_and_tells_agents(slack: Slack) -> None:
    opened = await slack.open_ticket()
    edited_ts = new_ts()
    await slack.event(
        {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "channel": SUPPORT,
            "channel_type": "channel",
            "ts": edited_ts,
            "event_ts": edited_ts,
            "message": {
                "type": "message",
                "user": DANA,
                "text": "Hi, my order A-1235 never arrived and I need it for Friday.",
                "ts": opened.ts,
                "edited": {"user": DANA, "ts": edited_ts},
                "team": TEAM_ID,
            },
            "previous_message": {"type": "message", "user": DANA, "text": FIRST, "ts": opened.ts},
        }
    )
    [relay] = await slack.wait_posts("the edit, for agents", AGENTS, thread_ts=opened.card_ts)
    assert "#1 · Dana Whitaker edited a message" in relay.get("text")
    assert relay.get("text").endswith("A-1235 never arrived and I need it for Friday.")
    [entry] = await slack.entries(1, EntryKind.CUSTOMER)
    assert entry.body == "Hi, my order A-1235 never arrived and I need it for Friday."
    edits = await slack.scalars(select(TimelineRow).where(TimelineRow.action == "edited"))
    assert len(edits) == 1 and edits[0].detail["original"] == FIRST
    await slack.settle()
    assert len(slack.fake.posts(SUPPORT)) == 1, "nothing goes back to the customer"


async def test_slacks_own_updates_of_a_message_say_nothing(slack: Slack) -> None:
    """A thread parent gets `message_changed` when replies arrive (and when links unfurl): same text."""
    opened = await slack.open_ticket()
    changed_at = new_ts()
    await slack.event(
        {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "channel": SUPPORT,
            "channel_type": "channel",
            "ts": changed_at,
            "event_ts": changed_at,
            "message": {
                "type": "message",
                "user": DANA,
                "text": FIRST,
                "ts": opened.ts,
                "thread_ts": opened.ts,
                "reply_count": 1,
                "reply_users": [BOT_USER_ID],
                "latest_reply": opened.greeting.answer["ts"],
            },
            "previous_message": {"type": "message", "user": DANA, "text": FIRST, "ts": opened.ts},
        }
    )
    await slack.settle()
    assert await slack.count(TimelineRow, TimelineRow.action == "edited") == 0
    assert len(slack.fake.posts()) == 2, "only the greeting and the card"


async def test_a_file_shared_without_text_opens_a_ticket_naming_the_file(slack: Slack) -> None:
    files = [{"id": "F1", "name": "receipt.pdf", "title": "receipt.pdf", "mimetype": "application/pdf"}]
    await slack.event(message(SUPPORT, DANA, "", subtype="file_share", files=files))
    [card] = await slack.wait_posts("the card", AGENTS)
    assert "receipt.pdf" in card.get("text")
    [entry] = await slack.eventually(lambda: slack.entries(1, EntryKind.CUSTOMER), "the entry")
    assert "receipt.pdf" in entry.body


async def test_a_reply_also_sent_to_the_channel_stays_on_the_ticket(slack: Slack) -> None:
    opened = await slack.open_ticket()
    await slack.event(
        message(
            SUPPORT,
            DANA,
            "Any news?",
            thread_ts=opened.ts,
            subtype="thread_broadcast",
            root={"ts": opened.ts},
        )
    )
    await slack.wait_posts("the relay", AGENTS, thread_ts=opened.card_ts)
    await slack.settle()
    assert await slack.count(TicketRow) == 1 and len(slack.fake.posts(SUPPORT)) == 1


async def test_a_customer_unknown_to_users_info_still_gets_a_ticket(slack: Slack) -> None:
    await slack.event(message(SUPPORT, "UGHOST", "Hello? Anyone?"))
    [greeting] = await slack.wait_posts("the greeting", SUPPORT)
    assert "ticket #1" in greeting.get("text"), greeting.get("text")
    assert slack.fake.calls_to("users.info", user="UGHOST") == []  # refused: user_not_found
    assert [c for c in slack.fake.calls if c.method == "users.info" and c.get("user") == "UGHOST"]


async def test_a_deletion_is_noted_for_agents_and_the_record_kept(slack: Slack) -> None:
    opened = await slack.open_ticket()
    deleted_at = new_ts()
    await slack.event(
        {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": SUPPORT,
            "channel_type": "channel",
            "ts": deleted_at,
            "deleted_ts": opened.ts,
            "event_ts": deleted_at,
            "previous_message": {"type": "message", "user": DANA, "text": FIRST, "ts": opened.ts},
        }
    )
    [note] = await slack.wait_posts("the deletion note", AGENTS, thread_ts=opened.card_ts)
    assert "#1 · Dana Whitaker deleted a message" in note.get("text")
    [entry] = await slack.entries(1, EntryKind.CUSTOMER)
    assert entry.body == FIRST
    assert await slack.count(TimelineRow, TimelineRow.action == "deleted") == 1


async def test_a_promise_time_is_read_in_the_agents_own_slack_timezone(slack: Slack) -> None:
    """Ben works from New York (users.info says so): his "16:00" is 16:00 EST, 21:00 UTC; Dana, with no
    timezone of her own, reads it in the queue's (Berlin: 22:00 CET)."""
    opened = await slack.open_ticket()
    key = await slack.command("/ticket", "promise #1 16:00 we'll call you back", BEN)
    await slack.wait_posts("the promise", SUPPORT, count=2, thread_ts=opened.ts)
    await slack.fake.wait_for(lambda: slack.fake.posts(AGENTS, thread_ts=opened.card_ts), "the record")
    await slack.settle()
    [promise] = await slack.scalars(select(PromiseRow))
    assert promise.due_at == datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
    told = slack.fake.posts(SUPPORT, thread_ts=opened.ts)[-1].get("text")
    assert "we'll call you back, by 22:00 CET today" in told
    noted = slack.fake.posts(AGENTS, thread_ts=opened.card_ts)[-1].get("text")
    assert "by 16:00 EST today" in noted
    assert slack.fake.responses_to(key) == [] or all(
        "can't" not in r.text for r in slack.fake.responses_to(key)
    )


async def test_what_slack_escapes_is_recorded_as_the_customer_typed_it(slack: Slack) -> None:
    """Slack sends &, < and > as &amp;, &lt; and &gt;; the record and the agents see the real text."""
    await slack.open_ticket(text="Order A&amp;B-12 says &lt;3 items&gt; but I got 2 &amp;&lt;")
    [entry] = await slack.entries(1, EntryKind.CUSTOMER)
    assert entry.body == "Order A&B-12 says <3 items> but I got 2 &<"
    key = await slack.command("/ticket", "note #1 courier said &lt;tomorrow&gt; &amp; apologised", ANA)
    await slack.fake.wait_for(lambda: slack.fake.responses_to(key) or slack.fake.posts(AGENTS), "the note")
    await slack.settle()
    notes = await slack.entries(1, EntryKind.NOTE)
    assert [n.body for n in notes] == ["courier said <tomorrow> & apologised"]


async def test_mass_mentions_never_reach_the_agents_channel_live(slack: Slack) -> None:
    loud = (
        "<!channel> <!here|here> <!everyone> @everyone @here <!subteam^S0614TZR7|@support> where is my order?"
    )
    opened = await slack.open_ticket(text=loud)
    await slack.event(message(SUPPORT, DANA, "<!channel> still waiting @everyone", thread_ts=opened.ts))
    await slack.wait_posts("the relay", AGENTS, thread_ts=opened.card_ts)
    await slack.event(
        {"type": "app_home_opened", "user": ANA, "channel": "D-UANA", "tab": "home", "event_ts": new_ts()}
    )
    await slack.fake.wait_for(lambda: slack.fake.calls_to("views.publish"), "the home view")
    await slack.settle()

    calls = slack.fake.posts(AGENTS) + slack.fake.calls_to("views.publish")
    live = LIVE_MASS_MENTION.findall(_everything_said(calls))
    assert not live, f"mass mentions reached Slack live: {live}"
    [relay] = slack.fake.posts(AGENTS, thread_ts=opened.card_ts)
    assert "still waiting" in relay.get("text"), "the words themselves still arrive"
    # The record keeps what the customer wrote.
    assert (await slack.entries(1, EntryKind.CUSTOMER))[0].body == loud


# --- agents ---------------------------------------------------------------------------------------


async def test_claim_by_button_tells_the_customer_and_gives_the_agent_the_summary(slack: Slack) -> None:
    opened = await slack.open_ticket()
    key = slack.response_key()
    status, body = await slack.interact(
        button_click(ANA, "ticket_claim", "1", slack.fake.response_url(key), opened.card_ts)
    )
    assert status == 200 and body == ""

    await slack.wait_posts("the customer told", SUPPORT, count=2, thread_ts=opened.ts)
    told = slack.fake.posts(SUPPORT)[-1]
    assert "Ana is now looking after your request #1" in told.get("text")
    [summary] = await slack.fake.wait_for(lambda: slack.fake.responses_to(key), "the summary")
    assert summary.body["response_type"] == "ephemeral" and summary.body["replace_original"] is False
    assert "Who: Dana Whitaker · new customer" in summary.text and "with Ana" in summary.text
    assert "A-1234 never arrived" in summary.text
    await slack.wait_posts("the claim noted on the card", AGENTS, thread_ts=opened.card_ts)
    assert "#1 claimed by Ana" in slack.fake.posts(AGENTS, thread_ts=opened.card_ts)[0].get("text")
    await slack.settle()
    assert "Who: Dana" not in _everything_said(slack.fake.posts()), "the summary is not posted publicly"

    ticket = await slack.ticket(1)
    [ana] = await slack.scalars(select(AgentRow).where(AgentRow.external_id == ANA))
    assert ticket.assignee_id == ana.id and ticket.status is Status.OPEN


async def test_a_second_claim_is_refused_privately(slack: Slack) -> None:
    opened = await slack.open_ticket()
    await slack.interact(
        button_click(ANA, "ticket_claim", "1", slack.fake.response_url("ana"), opened.card_ts)
    )
    await slack.fake.wait_for(lambda: slack.fake.responses_to("ana"), "Ana's summary")
    await slack.settle()
    before = await slack.snapshot()
    posts = len(slack.fake.posts())

    await slack.interact(
        button_click(BEN, "ticket_claim", "1", slack.fake.response_url("ben"), opened.card_ts)
    )
    [refusal] = await slack.fake.wait_for(lambda: slack.fake.responses_to("ben"), "Ben's refusal")
    assert refusal.text.startswith("#1 is already with Ana.")
    await slack.settle()
    assert await slack.snapshot() == before and len(slack.fake.posts()) == posts


async def test_claim_by_slash_command(slack: Slack) -> None:
    opened = await slack.open_ticket()
    key = await slack.command("/ticket", "claim #1", ANA)

    [summary] = await slack.fake.wait_for(lambda: slack.fake.responses_to(key), "the summary")
    assert "#1 · Hi, my order A-1234 never arrived" in summary.text
    await slack.wait_posts("the customer told", SUPPORT, count=2, thread_ts=opened.ts)
    assert "Ana is now looking after your request #1" in slack.fake.posts(SUPPORT)[-1].get("text")
    assert (await slack.ticket(1)).status is Status.OPEN


async def test_ticket_without_an_id_asks_which_ticket(slack: Slack) -> None:
    await slack.open_ticket()
    before = await slack.snapshot()
    posts = len(slack.fake.posts())
    key = await slack.command("/ticket", "claim", ANA)
    [answer] = await slack.fake.wait_for(lambda: slack.fake.responses_to(key), "the help")
    assert answer.text.startswith("Which ticket?") and "/ticket claim #" in answer.text
    assert answer.body["response_type"] == "ephemeral"
    await slack.settle()
    assert await slack.snapshot() == before and len(slack.fake.posts()) == posts


async def test_a_customer_using_ticket_commands_is_refused_politely(slack: Slack) -> None:
    await slack.open_ticket()
    before = await slack.snapshot()
    posts = len(slack.fake.posts())

    key = await slack.command("/ticket", "claim #1", CARL, channel="CGENERAL")
    [answer] = await slack.fake.wait_for(lambda: slack.fake.responses_to(key), "the refusal")
    assert answer.text.startswith("Sorry Carl,")
    assert answer.body["response_type"] == "ephemeral"
    await slack.settle()
    assert await slack.snapshot() == before and len(slack.fake.posts()) == posts
    ticket = await slack.ticket(1)
    assert ticket.assignee_id is None and ticket.status is Status.NEW


async def test_an_agents_words_in_the_cards_thread_are_a_note_that_never_reaches_the_customer(
    slack: Slack,
) -> None:
    opened = await slack.open_ticket()
    secret = "NOTE-SECRET warehouse says the parcel was lost"
    ts = new_ts()
    await slack.event(message(AGENTS, ANA, secret, ts, thread_ts=opened.card_ts))

    notes = select(EntryRow).where(EntryRow.kind == EntryKind.NOTE)
    [note] = await slack.eventually(lambda: slack.scalars(notes), "the note recorded")
    assert (note.ticket_number, note.body, note.author_name) == (1, secret, "Ana")
    assert note.external_id == f"{AGENTS}:{ts}"
    await slack.settle()
    assert "NOTE-SECRET" not in _everything_said(slack.fake.posts()), "not echoed anywhere, least of all CSUP"
    assert "NOTE-SECRET" not in _everything_said(slack.fake.posts(SUPPORT))

    # And it stays out of the customer's way when the ticket is shown to the agent.
    key = await slack.command("/ticket", "show #1", ANA)
    [shown] = await slack.fake.wait_for(lambda: slack.fake.responses_to(key), "/ticket show")
    assert "Ana (note): NOTE-SECRET" in shown.text


async def test_a_customers_words_in_the_cards_thread_are_ignored(slack: Slack) -> None:
    opened = await slack.open_ticket()
    await slack.event(message(AGENTS, CARL, "is this about my laptop?", thread_ts=opened.card_ts))
    await slack.settle()
    assert await slack.count(EntryRow, EntryRow.kind == EntryKind.NOTE) == 0
    assert len(await slack.entries(1)) == 2


async def test_an_agents_answer_in_the_customers_thread_is_a_reply(slack: Slack) -> None:
    opened = await slack.open_ticket()
    await slack.event(message(SUPPORT, ANA, "Sorry Dana, a replacement ships today.", thread_ts=opened.ts))

    replies = select(EntryRow).where(EntryRow.kind == EntryKind.REPLY)
    [reply] = await slack.eventually(lambda: slack.scalars(replies), "the reply recorded")
    assert (reply.body, reply.author_name) == ("Sorry Dana, a replacement ships today.", "Ana")
    await slack.wait_posts("the claim noted", AGENTS, thread_ts=opened.card_ts)
    await slack.settle()
    assert len(slack.fake.posts(SUPPORT)) == 1, "the answer is already in the thread; nothing is re-posted"
    ticket = await slack.ticket(1)
    assert ticket.status is Status.OPEN and ticket.first_agent_reply_at is not None


async def test_resolve_by_button(slack: Slack) -> None:
    opened = await slack.open_ticket()
    await slack.interact(
        button_click(ANA, "ticket_resolve", "1", slack.fake.response_url("x"), opened.card_ts)
    )
    await slack.wait_posts("the customer told", SUPPORT, count=3, thread_ts=opened.ts)
    resolved, survey = slack.fake.posts(SUPPORT)[-2:]
    assert "We've marked #1 as resolved" in resolved.get("text")
    assert "how did we do with #1?" in survey.get("text")
    assert (await slack.ticket(1)).status is Status.RESOLVED


async def test_mentions_slack_escapes_name_the_customer_and_the_agent(slack: Slack) -> None:
    """slack-manifest.yaml has Slack escape `/ticket` (`should_escape: true`), so a mention arrives as
    `<@U123|name>`: `/ticket customer` and `/ticket transfer` both read it from the signed request."""
    opened = await slack.open_ticket()
    posts = len(slack.fake.posts())

    key = await slack.command("/ticket", "customer <@UDANA|dana>", ANA)
    [shown] = await slack.fake.wait_for(lambda: slack.fake.responses_to(key), "Dana's profile")
    assert shown.text.startswith("Who: Dana Whitaker · new customer")
    assert "Tickets (1):" in shown.text and "#1 · new · " in shown.text
    assert shown.body["response_type"] == "ephemeral"
    await slack.settle()
    assert len(slack.fake.posts()) == posts, "the profile goes to Ana alone"

    await slack.command("/ticket", "transfer #1 <@UBEN|ben> knows the courier", ANA)
    [handover] = await slack.wait_posts("Ben's handover", BEN)
    assert handover.get("text").startswith("Ana handed #1 over to you. Reason: knows the courier")
    assert "A-1234 never arrived" in handover.get("text")
    await slack.wait_posts("the customer told", SUPPORT, count=2, thread_ts=opened.ts)
    assert "Ben is now looking after your request #1" in slack.fake.posts(SUPPORT)[-1].get("text")
    [ben] = await slack.scalars(select(AgentRow).where(AgentRow.external_id == BEN))
    assert (await slack.ticket(1)).assignee_id == ben.id


async def test_agent_replies_with_the_slash_command_reach_the_customers_thread(slack: Slack) -> None:
    opened = await slack.open_ticket()
    await slack.command("/ticket", "reply #1 A replacement ships today.", BEN)
    await slack.wait_posts("the reply", SUPPORT, count=2, thread_ts=opened.ts)
    assert slack.fake.posts(SUPPORT)[-1].get("text") == "Ben: A replacement ships today."


# --- long text and Slack's limits ------------------------------------------------------------------


async def test_a_long_customer_message_is_relayed_in_pieces(slack: Slack) -> None:
    opened = await slack.open_ticket()
    long = "\n".join(f"line {i:03d} " + "x" * 190 for i in range(45))  # about 9,000 characters
    assert len(long) > 2 * TEXT_LIMIT
    await slack.event(message(SUPPORT, DANA, long, thread_ts=opened.ts))

    pieces = await slack.wait_posts("the relay, split", AGENTS, count=3, thread_ts=opened.card_ts)
    await slack.settle()
    pieces = slack.fake.posts(AGENTS, thread_ts=opened.card_ts)
    texts = [p.get("text") for p in pieces]
    assert all(len(t) <= TEXT_LIMIT for t in texts) and len(texts) == 3
    header = texts[0][: texts[0].index("line 000")]
    assert header.startswith("#1 · Dana Whitaker")
    assert "\n".join(texts) == header + long, "split on line ends, nothing lost"
    assert (await slack.entries(1, EntryKind.CUSTOMER))[-1].body == long


async def test_one_very_long_line_is_cut_hard(slack: Slack) -> None:
    opened = await slack.open_ticket()
    long = "y" * 8000
    await slack.event(message(SUPPORT, DANA, long, thread_ts=opened.ts))
    await slack.wait_posts("the relay, split", AGENTS, count=3, thread_ts=opened.card_ts)
    await slack.settle()
    texts = [p.get("text") for p in slack.fake.posts(AGENTS, thread_ts=opened.card_ts)]
    assert all(len(t) <= TEXT_LIMIT for t in texts)
    joined = "".join(texts)
    assert joined.startswith("#1 · Dana Whitaker") and joined.endswith(long)


async def _long_ticket(slack: Slack, messages: int) -> Opened:
    opened = await slack.open_ticket(text=f"m00 {'a' * 1480}")
    for i in range(1, messages):
        news = f"{chr(97 + i) * 5} {chr(98 + i) * 6}"  # two new words: each message adds something
        await slack.event(message(SUPPORT, DANA, f"m{i:02d} {news} {'b' * 1460}", thread_ts=opened.ts))
        await slack.settle()  # one at a time, so the record's order is the order they were written
    assert len(await slack.entries(1, EntryKind.CUSTOMER)) == messages
    return opened


async def test_ticket_show_of_a_long_ticket_is_one_condensed_ephemeral(slack: Slack) -> None:
    """Fourteen messages of 1,500 characters: the packet keeps the first and the latest within one
    Slack section, says what it left out, and points to the transcript."""
    await _long_ticket(slack, 14)
    key = await slack.command("/ticket", "show #1", ANA)
    [answer] = await slack.fake.wait_for(lambda: slack.fake.responses_to(key), "the packet")
    await slack.settle()
    assert answer.body["response_type"] == "ephemeral"
    assert len(answer.text) <= 3000
    assert "m00 " in answer.text and "m13 " in answer.text, answer.text.replace("b" * 40, "")
    assert "left out" in answer.text and "/ticket transcript #1" in answer.text
    assert slack.fake.texts("D-UANA") == [], "it fits the ephemeral answer, so nothing goes by DM"


async def test_a_rate_limited_post_is_retried_after_retry_after(slack: Slack) -> None:
    slack.fake.fail_next("chat.postMessage", times=1, status=429, retry_after=1)
    opened = await slack.open_ticket()
    attempts = [c for c in slack.fake.calls if c.method == "chat.postMessage"]
    assert attempts[0].status == 429
    assert attempts[1].status == 200 and attempts[1].params == attempts[0].params
    assert opened.greeting.params == attempts[0].params


async def test_a_reply_while_the_card_is_rate_limited_still_lands_in_the_cards_thread(slack: Slack) -> None:
    slack.fake.fail_next("chat.postMessage", times=1, status=429, retry_after=2, channel=AGENTS)
    ts = new_ts()
    await slack.event(message(SUPPORT, DANA, FIRST, ts))
    await slack.wait_posts("the greeting", SUPPORT, thread_ts=ts)
    await slack.event(message(SUPPORT, DANA, "Also, the tracking page shows an error.", thread_ts=ts))
    await slack.wait_posts("the card and the relay", AGENTS, count=2)
    await slack.settle()
    card, relay = sorted(slack.fake.posts(AGENTS), key=lambda c: "blocks" not in c.params)
    assert "tracking page" in relay.get("text")
    assert relay.get("thread_ts") == card.answer["ts"], "the relay is in the card's thread"


async def test_a_server_error_is_retried(slack: Slack) -> None:
    slack.fake.fail_next("chat.postMessage", times=1, status=500)
    opened = await slack.open_ticket()
    attempts = [c for c in slack.fake.calls if c.method == "chat.postMessage"]
    assert [a.status for a in attempts[:2]] == [500, 200]
    assert opened.greeting.get("thread_ts") == opened.ts


async def test_a_refused_post_is_logged_the_rest_delivered_and_the_agents_told(slack: Slack) -> None:
    """`not_in_channel` will not mend with a retry: the greeting is marked undeliverable on the ticket at
    once, and the card's thread says so, so an agent reaches the customer another way."""
    slack.errors_expected = True
    slack.fake.fail_next("chat.postMessage", times=1, status=200, error="not_in_channel")
    await slack.event(message(SUPPORT, DANA, FIRST))
    card, notice = await slack.wait_posts("the card and the notice", AGENTS, count=2)
    assert "New ticket #1" in card.get("text")
    assert notice.get("thread_ts") == card.answer["ts"] and "Couldn't deliver our message" in notice.get(
        "text"
    )
    assert "not_in_channel" in notice.get("text") and "Hi Dana" in notice.get("text")
    await slack.settle()
    assert not slack.fake.posts(SUPPORT)
    assert any("not_in_channel" in r.getMessage() for r in slack.caplog.records if r.levelno >= logging.ERROR)
    events = await slack.scalars(select(TimelineRow).where(TimelineRow.action == "undeliverable"))
    assert [(e.ticket_number, e.detail["reason"]) for e in events] == [(1, "not_in_channel")]


async def resend_due(slack: Slack) -> None:
    """What the scheduler does after the outbox's lease: sweep, and deliver what comes back."""
    assert slack.desk is not None and slack.clock is not None
    slack.clock.advance(timedelta(minutes=3))
    await slack.adapter.deliver(await slack.desk.run_due_work())


async def test_every_post_names_its_outbox_delivery_in_its_metadata(slack: Slack) -> None:
    opened = await slack.open_ticket()
    await slack.settle()
    for post in (opened.greeting, opened.card):
        metadata = post.get("metadata")
        metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
        if post is opened.card:
            continue  # a card is redrawn from the ticket, not looked up
        assert metadata["event_type"] == "relaydesk_delivery"
        assert isinstance(metadata["event_payload"]["delivery"], int)
    rows = await slack.scalars(select(DeliveryRow.state))
    assert set(rows) == {DeliveryState.SENT}


async def test_a_message_posted_before_the_process_died_is_not_posted_again(slack: Slack) -> None:
    """The process died after Slack took the greeting but before the outbox heard: the sweep after the
    lease finds the greeting in the thread by its metadata, and settles it without a second post."""
    opened = await slack.open_ticket()
    await slack.settle()
    async with slack.engine.begin() as connection:  # the settlement that never happened
        await connection.execute(update(DeliveryRow).values(state=DeliveryState.PENDING, settled_at=None))
    await resend_due(slack)
    assert len(slack.fake.posts(SUPPORT, thread_ts=opened.ts)) == 1, "the greeting once"
    assert len(slack.fake.calls_to("conversations.replies")) >= 1, "Slack was asked first"
    assert set(await slack.scalars(select(DeliveryRow.state))) == {DeliveryState.SENT}


async def test_a_long_message_cut_short_by_a_crash_is_finished_not_repeated(slack: Slack) -> None:
    """A relay in three pieces; the process died after the first reached Slack: the resend posts the
    other two only, each piece marked with its number."""
    opened = await slack.open_ticket()
    await slack.settle()
    long_text = " ".join(f"word{n}" for n in range(1500))  # about 12,000 characters
    await slack.event(message(SUPPORT, DANA, long_text, new_ts(), thread_ts=opened.ts))
    await slack.settle()
    relay = [c for c in slack.fake.posts(AGENTS, thread_ts=opened.card_ts) if "word" in str(c.get("text"))]
    assert len(relay) >= 3
    first, lost = relay[0], relay[1:]
    kept = slack.fake.channel_messages[AGENTS]
    slack.fake.channel_messages[AGENTS] = [m for m in kept if m["ts"] not in {c.answer["ts"] for c in lost}]
    async with slack.engine.begin() as connection:  # died after the first piece: nothing settled
        await connection.execute(update(DeliveryRow).values(state=DeliveryState.PENDING, settled_at=None))
    await resend_due(slack)
    again = [c for c in slack.fake.posts(AGENTS, thread_ts=opened.card_ts) if "word" in str(c.get("text"))]
    assert [c.get("text") for c in again] == [c.get("text") for c in relay + lost]
    assert first.get("text") not in [c.get("text") for c in again[len(relay) :]]


async def test_a_message_never_posted_is_posted_by_the_sweep(slack: Slack) -> None:
    """The process died after recording the message and before posting anything: the sweep posts it."""
    assert slack.desk is not None
    conversation = Conversation("slack", SUPPORT, "1711000999.000100", TEAM_ID)
    actor = Actor(Person("slack", DANA, "Dana Whitaker"), Role.CUSTOMER)
    said = await slack.desk.receive(
        IncomingMessage(actor, FIRST, conversation, f"{SUPPORT}:1711000999.000100")
    )
    assert said and not slack.fake.posts(SUPPORT)
    await resend_due(slack)
    [greeting] = slack.fake.posts(SUPPORT, thread_ts="1711000999.000100")
    assert greeting.get("text").startswith("Hi Dana")
    assert set(await slack.scalars(select(DeliveryRow.state))) == {DeliveryState.SENT}
    await resend_due(slack)
    assert len(slack.fake.posts(SUPPORT, thread_ts="1711000999.000100")) == 1


# --- requests -------------------------------------------------------------------------------------


async def test_request_with_text_opens_an_internal_ticket_answered_in_the_requesters_dm(slack: Slack) -> None:
    await slack.command("/request", "My laptop won't charge", CARL, channel="CGENERAL")

    [greeting] = await slack.wait_posts("the answer in Carl's DM", "D-UCARL")
    assert greeting.get("text").startswith("Hi Carl,") and "ticket #1" in greeting.get("text")
    assert "thread_ts" not in greeting.params
    assert slack.fake.calls_to("conversations.open", users=CARL)
    [card] = await slack.wait_posts("the card", AGENTS)
    assert "New internal request #1 · Carl" in card.get("text")
    await slack.settle()
    assert not slack.fake.posts("CGENERAL")
    ticket = await slack.ticket(1)
    assert (ticket.kind, ticket.queue, ticket.channel_id) == (TicketKind.INTERNAL, "internal", "D-UCARL")


async def test_request_without_text_opens_the_form(slack: Slack) -> None:
    await slack.command("/request", "", CARL, channel="CGENERAL")
    [opened] = await slack.fake.wait_for(lambda: slack.fake.calls_to("views.open"), "the form")
    view = opened.get("view")
    assert opened.get("trigger_id", "").startswith("trigger-")
    assert view["type"] == "modal" and view["callback_id"] == "request_form"
    assert [b["block_id"] for b in view["blocks"]] == ["category", "urgency", "description"]
    await slack.settle()
    assert await slack.count(TicketRow) == 0


async def _open_form_by_shortcut(slack: Slack, user: str = CARL) -> dict[str, Any]:
    status, _ = await slack.interact(shortcut(user))
    assert status == 200
    [opened] = await slack.fake.wait_for(lambda: slack.fake.calls_to("views.open"), "the form")
    view = opened.get("view")
    return json.loads(view) if isinstance(view, str) else view


async def test_the_global_shortcut_opens_the_form(slack: Slack) -> None:
    view = await _open_form_by_shortcut(slack)
    assert view["callback_id"] == "request_form" and view["title"]["text"] == "Raise a request"
    categories = [o["value"] for o in view["blocks"][0]["element"]["options"]]
    assert categories == ["Access and accounts", "Hardware", "Software", "Purchasing", "Other"]


async def test_submitting_the_form_raises_a_request_with_the_chosen_urgency(slack: Slack) -> None:
    view = await _open_form_by_shortcut(slack)
    status, body = await slack.interact(
        view_submission(CARL, view, "Hardware", "urgent", "The office printer is on fire.")
    )
    assert status == 200 and body == ""

    [greeting] = await slack.wait_posts("the answer in Carl's DM", "D-UCARL")
    assert "ticket #1" in greeting.get("text")
    await slack.wait_posts("the card", AGENTS)
    ticket = await slack.ticket(1)
    assert ticket.priority is Priority.URGENT and ticket.kind is TicketKind.INTERNAL
    assert ticket.subject == "Hardware: The office printer is on fire."


@pytest.mark.parametrize("description", ["   ", None])
async def test_an_empty_description_is_sent_back_as_a_form_error(
    slack: Slack, description: str | None
) -> None:
    view = await _open_form_by_shortcut(slack)
    status, body = await slack.interact(view_submission(CARL, view, "Other", "normal", description))
    assert status == 200
    answer = json.loads(body)
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"description"}  # a block_id of the form
    await slack.settle()
    assert await slack.count(TicketRow) == 0
    assert not slack.fake.calls_to("conversations.open")


# --- App Home -------------------------------------------------------------------------------------


async def test_the_app_home_lists_unclaimed_tickets_for_an_agent(slack: Slack) -> None:
    await slack.open_ticket()
    await slack.event(
        {"type": "app_home_opened", "user": ANA, "channel": "D-UANA", "tab": "home", "event_ts": new_ts()}
    )
    [published] = await slack.fake.wait_for(lambda: slack.fake.calls_to("views.publish"), "the home view")
    assert published.get("user_id") == ANA
    view = published.get("view")
    assert view["type"] == "home"
    headers = [b["text"]["text"] for b in view["blocks"] if b["type"] == "header"]
    assert headers == ["Your tickets (0)", "Unclaimed (1)", "Your week", "The team's week"]
    [line] = [b for b in view["blocks"] if b.get("accessory")]
    assert line["text"]["text"].startswith("*#1* · normal · new · general")
    assert "Dana Whitaker: Hi, my order A-1234" in line["text"]["text"]
    assert line["accessory"]["action_id"] == "ticket_claim" and line["accessory"]["value"] == "1"


async def test_the_app_home_shows_the_agents_week_and_the_teams(slack: Slack) -> None:
    """For recognition: Ana sees what she resolved this week, and the team's figures beside hers."""
    opened = await slack.open_ticket()
    await slack.command("/ticket", "reply #1 On it", ANA)
    await slack.command("/ticket", "resolve #1", ANA)
    await slack.wait_posts("the survey", SUPPORT, count=4, thread_ts=opened.ts)
    await slack.event(
        {"type": "app_home_opened", "user": ANA, "channel": "D-UANA", "tab": "home", "event_ts": new_ts()}
    )
    [published] = await slack.fake.wait_for(lambda: slack.fake.calls_to("views.publish"), "the home view")
    texts = [b["text"]["text"] for b in published.get("view")["blocks"] if b["type"] == "section"]
    mine, team = texts[-2], texts[-1]
    assert mine.startswith("Last 7 days · Ana") and "1 opened, 1 resolved" in mine
    assert team.startswith("Last 7 days") and "By agent:" in team and "Ana: 1 resolved" in team


async def test_the_app_home_shows_help_to_anyone_else(slack: Slack) -> None:
    await slack.open_ticket()
    await slack.event(
        {"type": "app_home_opened", "user": CARL, "channel": "D-UCARL", "tab": "home", "event_ts": new_ts()}
    )
    [published] = await slack.fake.wait_for(lambda: slack.fake.calls_to("views.publish"), "the home view")
    view = published.get("view")
    assert published.get("user_id") == CARL
    text = json.dumps(view)
    assert "Need help?" in text and "/request" in text
    assert "#1" not in text and "Dana" not in text


async def test_the_messages_tab_publishes_nothing(slack: Slack) -> None:
    await slack.event(
        {"type": "app_home_opened", "user": ANA, "channel": "D-UANA", "tab": "messages", "event_ts": new_ts()}
    )
    await slack.settle()
    assert not slack.fake.calls_to("views.publish")


async def test_claim_from_the_app_home_gives_the_agent_the_summary(slack: Slack) -> None:
    opened = await slack.open_ticket()
    status, _ = await slack.interact(button_click(ANA, "ticket_claim", "1", None, None))
    assert status == 200
    await slack.wait_posts("the customer told", SUPPORT, count=2, thread_ts=opened.ts)
    await slack.settle()
    to_ana = [
        c
        for c in slack.fake.calls
        if c.ok
        and c.method in ("chat.postMessage", "chat.postEphemeral")
        and (c.get("channel") in (ANA, "D-UANA") or c.get("user") == ANA)
    ]
    assert any("Who: Dana Whitaker" in c.get("text", "") for c in to_ana), "Ana got no summary"


# --- who is an agent -------------------------------------------------------------------------------


async def test_members_of_the_agents_channel_are_agents_when_no_list_is_set(
    start_slack: StartSlack, sqlite_engine: AsyncEngine, fake: FakeSlack
) -> None:
    fake.members = ["UOPS", ANA, "UQA", BEN]
    fake.members_page_size = 2
    slack = await start_slack(sqlite_engine, SLACK_AGENTS="")
    try:
        opened = await slack.open_ticket()
        refused = await slack.command("/ticket", "claim #1", CARL)
        [answer] = await fake.wait_for(lambda: fake.responses_to(refused), "Carl's refusal")
        assert answer.text.startswith("Sorry Carl,")

        key = await slack.command("/ticket", "claim #1", BEN)  # Ben is on the second page
        await fake.wait_for(lambda: fake.responses_to(key), "Ben's summary")
        await slack.wait_posts("the customer told", SUPPORT, count=2, thread_ts=opened.ts)
        assert "Ben is now looking after your request #1" in fake.posts(SUPPORT)[-1].get("text")

        pages = fake.calls_to("conversations.members", channel=AGENTS)
        assert [p.get("cursor") for p in pages[:2]] == [None, "2"]
        await slack.settle()
        slack.assert_no_errors_logged()
    finally:
        await slack.close()


async def test_members_are_agents_on_a_machine_that_booted_a_minute_ago(
    start_slack: StartSlack, sqlite_engine: AsyncEngine, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # time.monotonic() counts from boot on Linux; this is the stdlib clock of a fresh VM or CI runner.
    monkeypatch.setattr(slack_adapter, "time", types.SimpleNamespace(monotonic=lambda: 60.0))
    fake.members = [ANA, BEN]
    slack = await start_slack(sqlite_engine, SLACK_AGENTS="")
    try:
        await slack.open_ticket()
        key = await slack.command("/ticket", "claim #1", ANA)
        [answer] = await fake.wait_for(lambda: fake.responses_to(key), "Ana's answer")
        assert "Who: Dana Whitaker" in answer.text, answer.text
    finally:
        await slack.close()


# --- OAuth (many workspaces) -----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")
async def test_an_oauth_install_stores_the_workspaces_token_and_uses_it(
    start_slack: StartSlack, sqlite_engine: AsyncEngine, fake: FakeSlack
) -> None:
    slack = await start_slack(
        sqlite_engine,
        SLACK_BOT_TOKEN=None,
        SLACK_CLIENT_ID=CLIENT_ID,
        SLACK_CLIENT_SECRET=CLIENT_SECRET,
        SLACK_AGENT_TEAM=TEAM_ID,
    )
    try:
        async with slack.http.get(f"{slack.base}/slack/install") as reply:
            assert reply.status == 200
            page = await reply.text()
            cookie = reply.headers["Set-Cookie"].split(";")[0]
        state = re.search(r"[?&]state=([^&\"']+)", page).group(1)  # type: ignore[union-attr]
        assert f"client_id={CLIENT_ID}" in page
        redirect = f"{slack.base}/slack/oauth_redirect?code={OAUTH_CODE}&state={state}"
        async with slack.http.get(redirect, headers={"Cookie": cookie}) as reply:
            assert reply.status == 200, await reply.text()
        [exchange] = fake.calls_to("oauth.v2.access", code=OAUTH_CODE)
        assert exchange.headers["Authorization"].startswith("Basic ")

        opened = await slack.open_ticket()
        assert opened.greeting.token == INSTALLED_TOKEN
        assert opened.card.token == INSTALLED_TOKEN
        await slack.settle()
        slack.assert_no_errors_logged()
    finally:
        await slack.close()


# --- PostgreSQL -------------------------------------------------------------------------------------


async def test_smoke_on_each_database(start_slack: StartSlack, engine: AsyncEngine) -> None:
    """The same wire round trip on SQLite and, with TEST_DATABASE_URL, on PostgreSQL."""
    slack = await start_slack(engine)
    try:
        opened = await slack.open_ticket()
        await slack.event(
            message(SUPPORT, DANA, "Also, the tracking page shows an error.", thread_ts=opened.ts)
        )
        await slack.wait_posts("the relay", AGENTS, thread_ts=opened.card_ts)
        key = await slack.command("/ticket", "claim #1", ANA)
        await slack.fake.wait_for(lambda: slack.fake.responses_to(key), "the summary")
        await slack.settle()
        ticket = await slack.ticket(1)
        assert ticket.status is Status.OPEN and ticket.thread_id == opened.ts
        assert len(await slack.entries(1, EntryKind.CUSTOMER)) == 2
        slack.assert_no_errors_logged()
    finally:
        await slack.close()


async def test_a_start_that_fails_leaves_no_http_session_behind(
    slack_env: pytest.MonkeyPatch, sqlite_engine: AsyncEngine
) -> None:
    """The port is taken, so the adapter cannot listen: its start fails with the reason, and the HTTP
    session it opened for the Web API is closed again (nothing half-started lingers)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        slack_env.setenv("RELAYDESK_HTTP_PORT", str(taken.getsockname()[1]))
        desk = Desk(lambda: SqlUnitOfWork(session_factory(sqlite_engine)), FakeClock(T0), load_policy())
        adapter = SlackAdapter(SlackSettings(), desk, sqlite_engine)
        with pytest.raises(OSError):
            await adapter.start()
    assert adapter.client.session is None, "the session was closed and let go"
