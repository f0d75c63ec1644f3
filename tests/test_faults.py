"""Platform faults over the real wire: what Slack's and Discord's APIs do under load or when they refuse,
and what the outbox (`bot/outbox.py`) makes of it.

The adapters run as `test_slack.py` and `test_discord.py` build them (a real Desk on SQLite whose clock
is a `FakeClock`), against the local fakes of the platforms' HTTP APIs, which here can also fail a call:
`fail_next` answers with an HTTP status or a refusal; the subclasses below add what the fakes cannot do
by themselves: drop the connection without an answer (a reset), and hold the answer until the client
gives up (a timeout), either before Slack took the message or after.

Transient faults are retried by the platform clients themselves (slack_sdk's retry handlers: 429 after
Retry-After, 500/503 and dropped connections with backoff; discord.py: 429 after retry_after, 500/502
with backoff): the message arrives exactly once and its outbox row ends `sent`. A fault that outlasts
the client's retries leaves the row pending, due after the policy's `[delivery] retry_after` backoff; the
sweep (`Desk.run_due_work`, delivered through the adapter as the scheduler does) sends it then. A final
refusal (no such channel, no permission), or a message out of tries, is marked undeliverable on its
ticket and the agents are told in the ticket's staff thread.

Each test counts what the fake received for the message at hand (every attempt, and the ones taken),
and reads the deliveries table and the timeline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast
from urllib.parse import parse_qsl

import aiohttp
import discord
import pytest
import test_discord
import test_slack
from aiohttp import web
from discord_fake import Call as DiscordCall
from discord_fake import FakeDiscord
from slack_fake import Call as SlackCall
from slack_fake import FakeSlack
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_discord import AGENTS as DC_AGENTS
from test_discord import ANA as DC_ANA
from test_discord import Discord, Opened
from test_slack import AGENTS, ANA, BEN, CARL, DANA, FIRST, SUPPORT, Slack, message, new_ts

from adapters.discord.adapter import DiscordAdapter
from bot.clock import FakeClock, as_utc
from bot.desk import Desk
from bot.domain import DeliveryState
from bot.messages import Outgoing
from bot.policy import load_policy
from storage.engine import session_factory
from storage.models import DeliveryRow, TimelineRow
from storage.uow import SqlUnitOfWork

POLICY = load_policy().delivery
FIRST_BACKOFF = POLICY.retry_after[0]
TRIES = 1 + len(POLICY.retry_after)
"""A message is sent once, then once after each backoff."""
SLACK_CLIENT_TRIES = 4
"""The Slack adapter's client tries a 5xx or a dropped connection once, then three times more."""
LONG_WAIT = 30.0
"""Seconds the adapter's background work may take when a client backs off several times (a bound)."""
GREETING = "Hi Dana"
REPLY = "A replacement ships today."
UNDELIVERABLE = "Couldn't deliver our message"

# test_slack's harness, with this module's faulty fake (pytest finds fixtures by these names); Discord's is
# rebuilt below, since both harnesses call their fake `fake`
slack_env = test_slack.slack_env
start_slack = test_slack.start_slack
slack = test_slack.slack
discord_env = test_discord.discord_env


# --- what the fakes cannot do by themselves ---------------------------------------------------------


@dataclass
class _Fault:
    kind: str  # "reset", "no answer" (Slack never took it) or "late answer" (Slack took it)
    remaining: int
    match: dict[str, Any]


@dataclass
class FaultySlack(FakeSlack):
    """The Slack fake, which can also drop a call's connection without an answer, or hold its answer
    until the client gives up. Every such attempt is recorded in `calls` with status 0."""

    faults: dict[str, list[_Fault]] = field(default_factory=dict)

    def reset_next(self, method: str, times: int = 1, **match: Any) -> None:
        """The next `times` calls of `method` lose their connection before any answer (nothing done)."""
        self.faults.setdefault(method, []).append(_Fault("reset", times, match))

    def hold_next(self, method: str, *, taken: bool, times: int = 1, **match: Any) -> None:
        """The next `times` calls get no answer until the client gives up; with `taken`, Slack did the
        work first (the message is posted: only the answer is lost), else it never did."""
        self.faults.setdefault(method, []).append(
            _Fault("late answer" if taken else "no answer", times, match)
        )

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if not any(f.remaining > 0 for f in self.faults.get(method, ())):
            return await super()._api(request)
        had_body = request.method == "POST" and request.can_read_body
        params, encoding = await _slack_params(request)
        read = cast(web.Request, _ReadAgain(request, had_body))  # for FakeSlack, which reads it again
        fault = self._take_fault(method, params)
        if fault is None:
            return await super()._api(read)
        headers = dict(request.headers)
        answer: web.StreamResponse = web.Response(status=204)
        if fault.kind == "late answer":
            answer = await super()._api(read)  # recorded as Slack answered it
        else:
            failed = SlackCall(
                method, params, headers, request.method, encoding, 0, False, {"fault": fault.kind}
            )
            self.calls.append(failed)
        if fault.kind == "reset":
            assert request.transport is not None
            request.transport.abort()
            return answer
        await _until_gone(request)
        return answer

    def _take_fault(self, method: str, params: dict[str, Any]) -> _Fault | None:
        for fault in self.faults.get(method) or []:
            if fault.remaining > 0 and all(params.get(k) == v for k, v in fault.match.items()):
                fault.remaining -= 1
                return fault
        return None


class _ReadAgain:
    """A request whose body was read already: aiohttp keeps the bytes, so `read()` gives them again,
    but `can_read_body` says False once they were read; this says what it said before."""

    def __init__(self, request: web.Request, can_read_body: bool) -> None:
        self._request = request
        self.can_read_body = can_read_body

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


async def _slack_params(request: web.Request) -> tuple[dict[str, Any], str]:
    """A Web API call's parameters, however they were encoded (as FakeSlack reads them)."""
    params: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return params, "query"
    raw = await request.read()
    if request.content_type == "application/json":
        params.update(json.loads(raw or b"{}"))
        return params, "json"
    params.update(parse_qsl(raw.decode(), keep_blank_values=True))
    return params, "form"


async def _until_gone(request: web.Request, within: float = 60.0) -> None:
    """Wait (bounded) until the client closed the connection: it gave up waiting for the answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        transport = request.transport
        if transport is None or transport.is_closing() or loop.time() > deadline:
            return
        await asyncio.sleep(0.02)


@dataclass
class _DiscordReset:
    method: str
    path: str
    remaining: int
    taken: bool


@dataclass
class FaultyDiscord(FakeDiscord):
    """The Discord fake, which can also drop a request's connection without an answer (a reset), and
    which honours `enforce_nonce` on new messages as Discord documents it: a message whose nonce the
    same author used before is not created again; the earlier message is returned instead."""

    resets: list[_DiscordReset] = field(default_factory=list)
    by_nonce: dict[str, dict[str, Any]] = field(default_factory=dict)

    def reset_next(self, method: str, path: str, times: int = 1, *, taken: bool = False) -> None:
        """The next `times` requests whose path fully matches `path` lose their connection, unanswered;
        with `taken`, Discord did the work first (recorded as answered), and only the answer is lost."""
        self.resets.append(_DiscordReset(method, path, times, taken))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        for reset in self.resets:
            if reset.remaining > 0 and reset.method == request.method and re.fullmatch(reset.path, path):
                reset.remaining -= 1
                if reset.taken:
                    await super()._handle(request)
                else:
                    raw = await request.read() if request.content_type == "application/json" else b""
                    body = json.loads(raw) if raw else None
                    index = next(self._index)
                    self.calls.append(
                        DiscordCall(request.method, path, dict(request.query), body, {}, 0, None, index)
                    )
                assert request.transport is not None
                request.transport.abort()
                return web.Response(status=204)
        return await super()._handle(request)

    def _post_message(self, body: Any, query: Any, channel: str) -> tuple[int, Any]:
        nonce = str((body or {}).get("nonce") or "")
        enforced = bool(nonce) and bool((body or {}).get("enforce_nonce"))
        if enforced and nonce in self.by_nonce:
            return 200, self.by_nonce[nonce]
        status, created = super()._post_message(body, query, channel)
        if enforced:
            self.by_nonce[nonce] = created
        return status, created

    def created_in(self, channel_id: int, words: str) -> list[dict[str, Any]]:
        """The messages that exist in a channel (or thread) and say `words`."""
        return [
            m
            for m in self.messages.values()
            if m.get("channel_id") == str(channel_id) and words in str(m.get("content"))
        ]


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FaultySlack]:
    """test_slack's workspace, on the faulty fake."""
    workspace = FaultySlack()
    workspace.add_user(DANA, display_name="", real_name="Dana Whitaker", name="dana")
    workspace.add_user(ANA, display_name="Ana", real_name="Ana Lima")
    workspace.add_user(BEN, display_name="Ben", real_name="Ben Okafor", tz="America/New_York")
    workspace.add_user(CARL, display_name="Carl", real_name="Carl Jensen")
    workspace.add_user("UEVE", display_name="Eve", real_name="Eve Moreau")
    await workspace.start()
    try:
        yield workspace
    finally:
        await workspace.stop()


# --- helpers --------------------------------------------------------------------------------------------


def desk_of(adapter: Any) -> tuple[Desk, FakeClock]:
    """The adapter's desk, and its clock (the harnesses give it a FakeClock, which only moves when told)."""
    desk = adapter._desk
    assert isinstance(desk, Desk)
    clock = desk._clock
    assert isinstance(clock, FakeClock), "the harness's desk should run on a FakeClock"
    return desk, clock


async def sweep(adapter: Any, after: timedelta) -> list[Outgoing]:
    """Time passes; the scheduler's sweep runs and the adapter delivers what it said (as in production)."""
    desk, clock = desk_of(adapter)
    clock.advance(after)
    due = await desk.run_due_work()
    await adapter.deliver(due)
    return due


async def rows(harness: Slack | Discord) -> list[DeliveryRow]:
    return await harness.scalars(select(DeliveryRow).order_by(DeliveryRow.id))


async def row_saying(harness: Slack | Discord, words: str) -> DeliveryRow:
    """The one outbox row of a message to a customer that says `words` (a notice to the agents quotes
    what could not be delivered, so it would say them too)."""
    found = [
        r
        for r in await rows(harness)
        if r.payload.get("_") == "CustomerMessage" and words in str(r.payload.get("text"))
    ]
    assert len(found) == 1, f"{len(found)} outbox rows to a customer say {words!r}"
    return found[0]


async def card_row(harness: Slack | Discord, number: int = 1) -> DeliveryRow:
    """The outbox row of a ticket's card."""
    [card] = [
        r
        for r in await rows(harness)
        if r.payload.get("_") == "StaffMessage" and (r.payload.get("card") or {}).get("number") == number
    ]
    return card


async def pending(harness: Slack | Discord) -> list[DeliveryRow]:
    return [r for r in await rows(harness) if r.state is DeliveryState.PENDING]


async def undeliverable_events(harness: Slack | Discord) -> list[TimelineRow]:
    return await harness.scalars(select(TimelineRow).where(TimelineRow.action == "undeliverable"))


def slack_attempts(fake: FakeSlack, words: str, channel: str = SUPPORT) -> list[SlackCall]:
    """Every chat.postMessage to `channel` that carried `words`, failed or not, in order."""
    return [
        c
        for c in list(fake.calls)
        if c.method == "chat.postMessage" and c.get("channel") == channel and words in str(c.get("text", ""))
    ]


def statuses(calls: list[SlackCall] | list[DiscordCall]) -> list[int | str]:
    """Each attempt's HTTP status, or the error Slack refused it with; 0: the connection dropped or the
    client gave up before any answer."""
    return [c.status if c.status != 200 or c.ok else str(c.answer.get("error")) for c in calls]


async def settle_slack(slack: Slack, within: float = LONG_WAIT) -> None:
    """Slack.settle, with room for a client that backs off several times."""

    def busy() -> bool:
        return any(
            not task.done() and any(name in test_slack._qualname(task) for name in test_slack.BACKGROUND_WORK)
            for task in asyncio.all_tasks()
        )

    await slack.fake.wait_for(lambda: not busy(), "the adapter's background work to finish", within)


async def open_slack_ticket(slack: Slack) -> tuple[str, SlackCall]:
    """Dana's first message in the support channel; returns its ts and the card, once the adapter's
    work after the acknowledgement is done."""
    ts = new_ts()
    await slack.event(message(SUPPORT, DANA, FIRST, ts))
    await settle_slack(slack)
    cards = [c for c in slack.fake.posts(AGENTS) if "New ticket #1" in c.get("text", "")]
    assert len(cards) == 1, f"one card, at once; Slack received:\n{slack.fake.transcript()}"
    return ts, cards[0]


# --- Slack: retried by the client -----------------------------------------------------------------------


async def test_slack_rate_limits_are_waited_out_and_the_greeting_delivered_once(slack: Slack) -> None:
    slack.fake.fail_next("chat.postMessage", times=2, status=429, retry_after=1, channel=SUPPORT)
    ts, _ = await open_slack_ticket(slack)

    attempts = slack_attempts(slack.fake, GREETING)
    assert statuses(attempts) == [429, 429, 200], slack.fake.transcript()
    assert all(a.params == attempts[0].params for a in attempts), "the same message each time"
    assert attempts[-1].get("thread_ts") == ts
    greeting = await row_saying(slack, GREETING)
    assert (greeting.state, greeting.attempts, greeting.error) == (DeliveryState.SENT, 1, None)
    assert await pending(slack) == []


@pytest.mark.parametrize("status", [500, 503])
async def test_slack_server_errors_are_retried_and_the_greeting_delivered_once(
    slack: Slack, status: int
) -> None:
    slack.fake.fail_next("chat.postMessage", times=2, status=status, channel=SUPPORT)
    await open_slack_ticket(slack)

    assert statuses(slack_attempts(slack.fake, GREETING)) == [status, status, 200], slack.fake.transcript()
    greeting = await row_saying(slack, GREETING)
    assert (greeting.state, greeting.attempts) == (DeliveryState.SENT, 1)
    assert await pending(slack) == []


async def test_slack_a_dropped_connection_is_retried_and_the_greeting_delivered_once(slack: Slack) -> None:
    assert isinstance(slack.fake, FaultySlack)
    slack.fake.reset_next("chat.postMessage", times=2, channel=SUPPORT)
    await open_slack_ticket(slack)

    assert statuses(slack_attempts(slack.fake, GREETING)) == [0, 0, 200], slack.fake.transcript()
    greeting = await row_saying(slack, GREETING)
    assert (greeting.state, greeting.attempts) == (DeliveryState.SENT, 1)
    assert await pending(slack) == []


# --- Slack: outlasting the client, retried by the outbox ------------------------------------------------


async def time_out_calls_after(slack: Slack, seconds: float) -> None:
    """Web API calls give up after `seconds` (production waits 30). The adapter's one HTTP session
    carries the limit, so a session with the shorter one takes its place."""
    client = slack.adapter.client
    assert client.session is not None, "a started adapter shares one session"
    await client.session.close()
    client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds))


async def test_slack_an_answer_that_never_comes_is_sent_again_after_the_backoff_exactly_once(
    slack: Slack,
) -> None:
    """Slack does not answer within the client's timeout (and never took the message): slack_sdk does
    not retry a timeout, so the greeting waits in the outbox for the first backoff, then goes once."""
    slack.errors_expected = True
    assert isinstance(slack.fake, FaultySlack)
    await time_out_calls_after(slack, 1)
    slack.fake.hold_next("chat.postMessage", taken=False, channel=SUPPORT)
    await open_slack_ticket(slack)

    assert statuses(slack_attempts(slack.fake, GREETING)) == [0], slack.fake.transcript()
    greeting = await row_saying(slack, GREETING)
    _, clock = desk_of(slack.adapter)
    assert greeting.state is DeliveryState.PENDING and greeting.attempts == 1
    assert greeting.error and "Timeout" in greeting.error
    assert as_utc(greeting.due_at) == clock.now() + FIRST_BACKOFF, "due again after the first backoff"

    await sweep(slack.adapter, FIRST_BACKOFF / 2)
    assert len(slack_attempts(slack.fake, GREETING)) == 1, "not before its time"
    await sweep(slack.adapter, FIRST_BACKOFF / 2)
    attempts = slack_attempts(slack.fake, GREETING)
    assert statuses(attempts) == [0, 200]
    greeting = await row_saying(slack, GREETING)
    assert (greeting.state, greeting.attempts) == (DeliveryState.SENT, 2)
    await sweep(slack.adapter, timedelta(hours=2))
    assert len(slack.fake.posts(SUPPORT)) == 1, "settled: never sent again"


async def test_slack_an_answer_lost_after_slack_took_the_message_is_not_posted_twice(slack: Slack) -> None:
    """Slack took the greeting but its answer never came back in time: the adapter cannot know it
    arrived, so the outbox sends it again after the backoff; the resend finds the earlier post (by the
    delivery in its metadata) and settles it instead of posting it twice."""
    slack.errors_expected = True
    assert isinstance(slack.fake, FaultySlack)
    await time_out_calls_after(slack, 1)
    slack.fake.hold_next("chat.postMessage", taken=True, channel=SUPPORT)
    await open_slack_ticket(slack)
    assert (await row_saying(slack, GREETING)).state is DeliveryState.PENDING, "in doubt"
    await sweep(slack.adapter, FIRST_BACKOFF)

    taken = slack.fake.posts(SUPPORT)
    assert len(taken) == 1 and GREETING in taken[0].get("text"), slack.fake.transcript()
    greeting = await row_saying(slack, GREETING)
    assert (greeting.state, greeting.attempts) == (DeliveryState.SENT, 2), "tried again, and settled"
    assert await pending(slack) == []


async def _outlasting_the_client(slack: Slack, failed: int | str) -> None:
    """The greeting failed every one of the client's tries (`failed`: what each got): it is not
    dropped; it is due again after the first backoff, and the sweep then delivers it, once. The card,
    unaffected, went at once."""
    _, card = await open_slack_ticket(slack)

    assert statuses(slack_attempts(slack.fake, GREETING)) == [failed] * SLACK_CLIENT_TRIES
    greeting = await row_saying(slack, GREETING)
    _, clock = desk_of(slack.adapter)
    assert (greeting.state, greeting.attempts) == (DeliveryState.PENDING, 1), slack.fake.transcript()
    assert as_utc(greeting.due_at) == clock.now() + FIRST_BACKOFF, "due again after the first backoff"
    assert greeting.error, "the failure is kept with the row"
    assert (await card_row(slack)).state is DeliveryState.SENT
    assert await undeliverable_events(slack) == []

    await sweep(slack.adapter, FIRST_BACKOFF / 2)
    assert len(slack_attempts(slack.fake, GREETING)) == SLACK_CLIENT_TRIES, "not before its time"
    await sweep(slack.adapter, FIRST_BACKOFF / 2)
    assert statuses(slack_attempts(slack.fake, GREETING)) == [failed] * SLACK_CLIENT_TRIES + [200]
    greeting = await row_saying(slack, GREETING)
    assert (greeting.state, greeting.attempts) == (DeliveryState.SENT, 2)
    assert [c.answer["ts"] for c in slack.fake.posts(AGENTS) if "New ticket #1" in c.get("text", "")] == [
        card.answer["ts"]
    ], "the card went once"
    assert await pending(slack) == []


async def test_slack_dropped_connections_beyond_the_clients_retries_wait_in_the_outbox(slack: Slack) -> None:
    slack.errors_expected = True
    assert isinstance(slack.fake, FaultySlack)
    slack.fake.reset_next("chat.postMessage", times=SLACK_CLIENT_TRIES, channel=SUPPORT)
    await _outlasting_the_client(slack, 0)


async def test_slack_server_errors_beyond_the_clients_retries_wait_in_the_outbox(slack: Slack) -> None:
    slack.errors_expected = True
    slack.fake.fail_next("chat.postMessage", times=SLACK_CLIENT_TRIES, status=503, channel=SUPPORT)
    await _outlasting_the_client(slack, 503)


async def test_slack_a_message_out_of_tries_is_marked_undeliverable_and_the_agents_told(slack: Slack) -> None:
    """Slack refuses the greeting every time with a transient error (no HTTP retry): it is sent once and
    after each backoff, then marked undeliverable on the ticket, and the card's thread says so."""
    slack.errors_expected = True
    slack.fake.fail_next("chat.postMessage", times=99, status=200, error="fatal_error", channel=SUPPORT)
    _, card = await open_slack_ticket(slack)
    for backoff in POLICY.retry_after:
        assert (await row_saying(slack, GREETING)).state is DeliveryState.PENDING
        await sweep(slack.adapter, backoff)
    await settle_slack(slack)

    assert statuses(slack_attempts(slack.fake, GREETING)) == ["fatal_error"] * TRIES
    greeting = await row_saying(slack, GREETING)
    assert (greeting.state, greeting.attempts, greeting.error) == (DeliveryState.FAILED, TRIES, "fatal_error")
    [marked] = await undeliverable_events(slack)
    assert (marked.ticket_number, marked.detail["reason"]) == (1, "fatal_error")
    [notice] = [c for c in slack.fake.posts(AGENTS) if UNDELIVERABLE in c.get("text", "")]
    assert notice.get("thread_ts") == card.answer["ts"], "in the ticket's staff thread"
    assert f"after {TRIES} tries" in notice.get("text") and GREETING in notice.get("text")
    await sweep(slack.adapter, timedelta(days=1))
    assert len(slack_attempts(slack.fake, GREETING)) == TRIES, "never tried again"


@pytest.mark.parametrize("code", ["channel_not_found", "not_in_channel", "is_archived"])
async def test_slack_a_final_refusal_of_a_reply_marks_it_undeliverable_at_once(
    slack: Slack, code: str
) -> None:
    slack.errors_expected = True
    ts, card = await open_slack_ticket(slack)
    slack.fake.fail_next("chat.postMessage", times=1, status=200, error=code, channel=SUPPORT)
    await slack.command("/ticket", f"reply #1 {REPLY}", ANA)
    [notice] = await slack.fake.wait_for(
        lambda: [c for c in slack.fake.posts(AGENTS) if UNDELIVERABLE in c.get("text", "")], "the notice"
    )
    await settle_slack(slack)

    [attempt] = slack_attempts(slack.fake, REPLY)
    assert statuses([attempt]) == [code] and attempt.get("thread_ts") == ts, "refused once, never retried"
    reply = await row_saying(slack, REPLY)
    assert (reply.state, reply.attempts, reply.error) == (DeliveryState.FAILED, 1, code)
    [marked] = await undeliverable_events(slack)
    assert (marked.ticket_number, marked.detail["reason"]) == (1, code)
    assert notice.get("thread_ts") == card.answer["ts"], "in the ticket's staff thread"
    assert code in notice.get("text") and "after 1 try" in notice.get("text") and REPLY in notice.get("text")
    await sweep(slack.adapter, timedelta(days=1))
    assert len(slack_attempts(slack.fake, REPLY)) == 1
    assert await pending(slack) == []


# --- Discord --------------------------------------------------------------------------------------------


@pytest.fixture
async def discord_fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FaultyDiscord]:
    """test_discord's guild (its `fake` fixture's), on the faulty fake."""
    guild = FaultyDiscord()
    guild.add_role(test_discord.AGENT_ROLE, "Support agents", 2)
    guild.add_role(test_discord.CUSTOMERS_ROLE, "Customers", 1)
    guild.add_text_channel(test_discord.SUPPORT, "support")
    guild.add_text_channel(DC_AGENTS, "agents")
    guild.add_user(test_discord.DANA, "dana.w", "Dana Whitaker")
    guild.add_user(DC_ANA, "ana.lima", "Ana")
    guild.add_member(test_discord.DANA, [test_discord.CUSTOMERS_ROLE])
    guild.add_member(DC_ANA, [test_discord.AGENT_ROLE])
    await guild.start()
    monkeypatch.setattr(discord.http.Route, "BASE", guild.api_base)
    try:
        yield guild
    finally:
        await guild.stop()


@pytest.fixture
async def dc(
    discord_fake: FaultyDiscord,
    discord_env: None,
    sqlite_engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Discord]:
    """test_discord's `dc`: the adapter built as production does, connected, on SQLite."""
    caplog.set_level(logging.WARNING)
    sessions = session_factory(sqlite_engine)
    desk = Desk(lambda: SqlUnitOfWork(sessions), FakeClock(test_discord.T0), load_policy())
    adapter = DiscordAdapter(test_discord.settings(), desk, sync_commands=False)
    harness = Discord(discord_fake, adapter, sqlite_engine, caplog)
    try:
        await harness.connect()
        yield harness
    finally:
        await harness.close()  # before the engine goes
    if not harness.errors_expected and request.node.get_closest_marker("xfail") is None:
        harness.assert_no_errors_logged()


def discord_attempts(fake: FakeDiscord, channel_id: int, words: str) -> list[DiscordCall]:
    """Every message POSTed to a channel (or thread) that carried `words`, failed or not, in order."""
    calls = fake.calls_to("POST", rf"/channels/{channel_id}/messages", ok=None)
    return [c for c in calls if words in c.content]


async def open_discord_ticket(dc: Discord) -> Opened:
    opened = await dc.open_ticket()
    await dc.settle()
    return opened


async def discord_reply(dc: Discord) -> None:
    """Ana answers Dana with /ticket reply; returns once every handler finished (bounded)."""
    command = dc.command(DC_ANA, DC_AGENTS, "ticket", "reply", ticket=1, text=REPLY)
    await dc.fake.wait_for(lambda: dc.fake.followups(command), "Ana's answer to her command", LONG_WAIT)
    await dc.fake.wait_for(lambda: not _discord_busy(), "the adapter's handlers to finish", LONG_WAIT)


def _discord_busy() -> bool:
    return any(
        not task.done() and task.get_name().startswith(test_discord.HANDLER_TASKS)
        for task in asyncio.all_tasks()
    )


async def test_discord_a_rate_limit_is_waited_out_and_the_reply_delivered_once(dc: Discord) -> None:
    opened = await open_discord_ticket(dc)
    dc.fake.fail_next("POST", rf"/channels/{opened.thread_id}/messages", 429, retry_after=0.5)
    await discord_reply(dc)

    attempts = discord_attempts(dc.fake, opened.thread_id, REPLY)
    assert statuses(attempts) == [429, 200], dc.fake.transcript()
    assert attempts[0].body == attempts[1].body, "the same message again"
    reply = await row_saying(dc, REPLY)
    assert (reply.state, reply.attempts, reply.error) == (DeliveryState.SENT, 1, None)
    assert await pending(dc) == []


@pytest.mark.parametrize("status", [500, 502])
async def test_discord_server_errors_are_retried_and_the_reply_delivered_once(
    dc: Discord, status: int
) -> None:
    opened = await open_discord_ticket(dc)
    dc.fake.fail_next("POST", rf"/channels/{opened.thread_id}/messages", status, code=0)
    await discord_reply(dc)

    assert statuses(discord_attempts(dc.fake, opened.thread_id, REPLY)) == [status, 200], dc.fake.transcript()
    reply = await row_saying(dc, REPLY)
    assert (reply.state, reply.attempts) == (DeliveryState.SENT, 1)
    assert await pending(dc) == []


@pytest.mark.parametrize(
    ("status", "code", "text"),
    [(403, 50013, "Missing Permissions"), (404, 10003, "Unknown Channel")],
)
async def test_discord_a_final_refusal_marks_the_reply_undeliverable_and_tells_the_agents(
    dc: Discord, status: int, code: int, text: str
) -> None:
    """Forbidden and NotFound will not mend: marked at once on the ticket, told in the card's thread."""
    dc.errors_expected = True
    opened = await open_discord_ticket(dc)
    dc.fake.fail_next("POST", rf"/channels/{opened.thread_id}/messages", status, code=code, message=text)
    await discord_reply(dc)

    assert statuses(discord_attempts(dc.fake, opened.thread_id, REPLY)) == [status], dc.fake.transcript()
    reply = await row_saying(dc, REPLY)
    assert (reply.state, reply.attempts) == (DeliveryState.FAILED, 1)
    assert reply.error and str(status) in reply.error and text in reply.error
    [marked] = await undeliverable_events(dc)
    assert marked.ticket_number == 1 and text in marked.detail["reason"]
    [notice] = [c for c in dc.fake.posts(opened.card_id) if UNDELIVERABLE in c.content]
    assert "after 1 try" in notice.content and REPLY in notice.content
    await sweep(dc.adapter, timedelta(days=1))
    assert len(discord_attempts(dc.fake, opened.thread_id, REPLY)) == 1, "never tried again"
    assert await pending(dc) == []


async def test_discord_a_persistent_server_error_is_retried_by_the_outbox_after_each_backoff(
    dc: Discord,
) -> None:
    """A 503 (which discord.py does not retry) twice: the reply waits in the outbox for the first
    backoff, fails again, waits for the second, and then arrives, once."""
    dc.errors_expected = True
    opened = await open_discord_ticket(dc)
    dc.fake.fail_next("POST", rf"/channels/{opened.thread_id}/messages", 503, times=2)
    await discord_reply(dc)
    _, clock = desk_of(dc.adapter)

    reply = await row_saying(dc, REPLY)
    assert (reply.state, reply.attempts) == (DeliveryState.PENDING, 1), dc.fake.transcript()
    assert as_utc(reply.due_at) == clock.now() + POLICY.retry_after[0]
    assert reply.error and "503" in reply.error
    await sweep(dc.adapter, POLICY.retry_after[0] / 2)
    assert len(discord_attempts(dc.fake, opened.thread_id, REPLY)) == 1, "not before its time"

    await sweep(dc.adapter, POLICY.retry_after[0] / 2)
    reply = await row_saying(dc, REPLY)
    assert (reply.state, reply.attempts) == (DeliveryState.PENDING, 2)
    assert as_utc(reply.due_at) == clock.now() + POLICY.retry_after[1]

    await sweep(dc.adapter, POLICY.retry_after[1])
    attempts = discord_attempts(dc.fake, opened.thread_id, REPLY)
    assert statuses(attempts) == [503, 503, 200]
    reply = await row_saying(dc, REPLY)
    assert (reply.state, reply.attempts) == (DeliveryState.SENT, 3)
    assert await undeliverable_events(dc) == []
    await sweep(dc.adapter, timedelta(days=1))
    assert len(discord_attempts(dc.fake, opened.thread_id, REPLY)) == 3, "settled: never sent again"


async def test_discord_a_dropped_connection_is_not_lost(dc: Discord) -> None:
    """The connection drops before Discord answers (discord.py retries only the ECONNRESET errno of macOS
    and Windows): the reply waits in the outbox for the first backoff, then arrives once."""
    dc.errors_expected = True
    assert isinstance(dc.fake, FaultyDiscord)
    opened = await open_discord_ticket(dc)
    dc.fake.reset_next("POST", rf"/channels/{opened.thread_id}/messages")
    await discord_reply(dc)

    reply = await row_saying(dc, REPLY)
    assert reply.state is DeliveryState.PENDING, dc.fake.transcript()
    await sweep(dc.adapter, POLICY.retry_after[0])
    assert statuses(discord_attempts(dc.fake, opened.thread_id, REPLY)) == [0, 200]
    reply = await row_saying(dc, REPLY)
    assert (reply.state, reply.attempts) == (DeliveryState.SENT, 2)


async def test_discord_a_reply_taken_but_unanswered_is_resent_with_its_nonce_and_not_doubled(
    dc: Discord,
) -> None:
    """Discord created the reply but the connection dropped before its answer: the outbox resends it
    after the first backoff with the same enforced nonce, so Discord returns the message it has; the
    customer sees it once, and the row is settled."""
    dc.errors_expected = True
    assert isinstance(dc.fake, FaultyDiscord)
    opened = await open_discord_ticket(dc)
    dc.fake.reset_next("POST", rf"/channels/{opened.thread_id}/messages", taken=True)
    await discord_reply(dc)
    assert len(dc.fake.created_in(opened.thread_id, REPLY)) == 1, "Discord has it already"
    assert (await row_saying(dc, REPLY)).state is DeliveryState.PENDING, "in doubt"

    await sweep(dc.adapter, FIRST_BACKOFF)
    attempts = discord_attempts(dc.fake, opened.thread_id, REPLY)
    assert len(attempts) == 2 and attempts[0].json.get("nonce") == attempts[1].json.get("nonce")
    assert attempts[0].json.get("enforce_nonce") is True
    assert len(dc.fake.created_in(opened.thread_id, REPLY)) == 1, "not doubled"
    reply = await row_saying(dc, REPLY)
    assert (reply.state, reply.attempts) == (DeliveryState.SENT, 2)
