"""The Discord adapter over the wire: gateway dispatches in Discord's own shapes go through discord.py's
own parsing (`ConnectionState.parsers`, as its gateway does) to the real adapter (a real Desk on a real
SQLite database), and everything it sends goes to a local fake of Discord's REST API (`discord_fake.py`)
that records each request. Nothing of ours is mocked, no websocket is opened and nothing reaches the
internet: discord.py's `Route.BASE` points at 127.0.0.1.

The fake also sends what Discord would announce over the gateway after a REST call (THREAD_CREATE for a
new thread, MESSAGE_CREATE for the bot's own posts), so discord.py's caches fill as in production.
GUILD_CREATE carries only the bot's member (no members intent); authors' roles come with each message
or interaction, and DM authors are looked up with GET /guilds/{guild}/members/{user}.

discord.py runs every handler in a task, so the tests poll the fake (bounded) for the requests they
expect. To check that something did *not* happen, they first wait until discord.py's event, command,
view and modal tasks have all finished (`Discord.settle`), then look. That interactions are deferred
before any database work is shown by holding SQLite's write lock while the interaction arrives.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import discord
import pytest
from dbcheck import DatabaseChecks
from discord_fake import (
    APP_ID,
    BOT_USER_ID,
    EPHEMERAL,
    GUILD_ID,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    TOKEN,
    Call,
    FakeDiscord,
    UserOption,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.discord.adapter import BOT_PERMISSIONS, DiscordAdapter, intents, invite_url
from adapters.discord.config import DiscordSettings
from bot.clock import FakeClock
from bot.desk import Desk
from bot.domain import DeliveryState, EntryKind, Priority, Status, TicketKind
from bot.grammar import VERBS
from bot.policy import load_policy
from storage.engine import session_factory
from storage.models import AgentRow, AnchorRow, DeliveryRow, EntryRow, TicketRow, TimelineRow
from storage.uow import SqlUnitOfWork

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
CONTENT_LIMIT = 2000

SUPPORT = 1_187_500_000_000_000_101
AGENTS = 1_187_500_000_000_000_102
GENERAL = 1_187_500_000_000_000_103
AGENT_ROLE = 1_187_500_000_000_000_201
CUSTOMERS_ROLE = 1_187_500_000_000_000_202
DANA = 1_187_500_000_000_000_301
ANA = 1_187_500_000_000_000_302
BEN = 1_187_500_000_000_000_303
CARL = 1_187_500_000_000_000_304
OTHER_BOT = 1_187_500_000_000_000_305
FIRST = "Hi, my order A-1234 never arrived and I need it for Friday."

# What would ping a crowd in a Discord message: @everyone, @here or a role mention (defused ones carry a
# word joiner after the @).
LIVE_MASS_MENTION = re.compile(r"@(?:everyone|here)|<@&\d+>")

# discord.py's tasks that run our handlers: events, app commands, dynamic items and views, modals.
HANDLER_TASKS = (
    "discord.py: ",
    "CommandTree-invoker",
    "discord-ui-dynamic-item-",
    "discord-ui-view-dispatch-",
    "discord-ui-modal-dispatch-",
)


# --- the harness ----------------------------------------------------------------------------------


@dataclass
class Opened:
    """A ticket opened by a customer's message in the support channel."""

    number: int
    message: dict[str, Any]  # the customer's MESSAGE_CREATE
    thread_id: int  # the ticket's private thread in the support channel
    greeting: Call
    card: Call
    card_id: int  # the card's message id, as Discord answered: also its thread's id, the staff thread


@dataclass
class Discord(DatabaseChecks):
    """The adapter as Discord sees it (a gateway to feed, REST calls to answer), plus the database."""

    fake: FakeDiscord
    adapter: DiscordAdapter
    engine: AsyncEngine
    caplog: pytest.LogCaptureFixture
    errors_expected: bool = False
    closed: bool = False

    @property
    def client(self) -> discord.Client:
        return self.adapter.client

    # the gateway

    def feed(self, event: str, payload: dict[str, Any]) -> None:
        """One gateway dispatch, parsed by discord.py as its websocket would (`parsers[t](d)`)."""
        self.client._connection.parsers[event](payload)

    async def connect(self) -> None:
        """Log in over REST (runs setup_hook), then READY and GUILD_CREATE as the gateway sends them."""
        await self.client.login(TOKEN)
        self.fake.on_dispatch = self.feed
        # Client(guild_ready_timeout=...) is how long READY waits for more GUILD_CREATEs; one will do.
        self.client._connection.guild_ready_timeout = 0.05
        self.feed("READY", self.fake.ready())
        self.feed("GUILD_CREATE", self.fake.guild_create())
        await asyncio.wait_for(self.client.wait_until_ready(), 10)

    def say(self, channel_id: int, user_id: int, text: str, **extra: Any) -> dict[str, Any]:
        payload = self.fake.message_create(channel_id, user_id, text, **extra)
        self.feed("MESSAGE_CREATE", payload)
        return payload

    def interact(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.feed("INTERACTION_CREATE", payload)
        return payload

    def command(
        self, user_id: int, channel_id: int, name: str, sub: str | None = None, **options: Any
    ) -> Any:
        return self.interact(self.fake.command(user_id, channel_id, name, sub, **options))

    def click(self, user_id: int, message_id: int, custom_id: str) -> dict[str, Any]:
        return self.interact(self.fake.component(user_id, message_id, custom_id))

    # waiting

    async def settle(self) -> None:
        """Wait until discord.py's tasks running our handlers have all finished."""

        def busy() -> list[asyncio.Task[Any]]:
            return [
                task
                for task in asyncio.all_tasks()
                if not task.done() and task.get_name().startswith(HANDLER_TASKS)
            ]

        await self.fake.wait_for(lambda: not busy(), "the adapter's handlers to finish")

    async def eventually(self, check: Callable[[], Awaitable[Any]], what: str, within: float = 10.0) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            result = await check()
            if result:
                return result
            if loop.time() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what}; Discord received:\n{self.fake.transcript()}"
                )
            await asyncio.sleep(0.02)

    async def wait_posts(self, what: str, channel_id: int, count: int = 1) -> list[Call]:
        return await self.fake.wait_for(
            lambda: (found := self.fake.posts(channel_id)) and len(found) >= count and found, what
        )

    async def wait_followups(self, payload: dict[str, Any], what: str, count: int = 1) -> list[Call]:
        return await self.fake.wait_for(
            lambda: (found := self.fake.followups(payload)) and len(found) >= count and found, what
        )

    async def wait_callback(self, payload: dict[str, Any], what: str = "the interaction's response") -> Call:
        return (await self.fake.wait_for(lambda: self.fake.callbacks(payload), what))[0]

    # scenarios

    async def open_ticket(self, user: int = DANA, text: str = FIRST) -> Opened:
        """A customer's message in the support channel; waits for thread, greeting, card and anchor."""
        before = len(self.fake.threads_started(SUPPORT))
        message = self.say(SUPPORT, user, text)
        started = await self.fake.wait_for(
            lambda: len(found := self.fake.threads_started(SUPPORT)) > before and found, "the ticket's thread"
        )
        thread_id = int(started[before].answer["id"])
        [greeting] = await self.wait_posts("the greeting in the ticket's thread", thread_id)
        number = int(re.search(r"ticket #(\d+)", greeting.content).group(1))  # type: ignore[union-attr]
        [card] = await self.fake.wait_for(
            lambda: [c for c in self.fake.posts(AGENTS) if _card_number(c) == number],
            f"the card of #{number}",
        )
        anchors = select(AnchorRow.message_id).where(AnchorRow.ticket_number == number)
        card_id = (await self.eventually(lambda: self.scalars(anchors), f"the card of #{number} attached"))[0]
        assert card_id == card.answer["id"], "the staff thread is the card's id, as Discord answered"
        return Opened(number, message, thread_id, greeting, card, int(card_id))

    def assert_no_errors_logged(self) -> None:
        errors = [r for r in self.caplog.records if r.levelno >= logging.ERROR]
        assert not errors, "errors were logged:\n" + "\n".join(r.getMessage() for r in errors)
        assert not self.fake.dispatch_errors, self.fake.dispatch_errors

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.settle()
        finally:
            if self.fake.on_dispatch == self.feed:
                self.fake.on_dispatch = None
            await self.adapter.stop()


def _card_number(call: Call) -> int | None:
    for embed in call.json.get("embeds") or []:
        match = re.match(r"#(\d+) ", str(embed.get("title", "")))
        if match:
            return int(match.group(1))
    return None


def _buttons(call: Call) -> dict[str, dict[str, Any]]:
    return {
        c["label"]: c
        for row in call.json.get("components") or []
        for c in row.get("components", [])
        if c.get("type") == 2
    }


def _everything_said(calls: list[Call]) -> str:
    parts = []
    for call in calls:
        body = call.json.get("data", call.json) if call.path.endswith("/callback") else call.json
        parts.append(str(body.get("content") or ""))
        for embed in body.get("embeds") or []:
            parts += [str(embed.get("title") or ""), str(embed.get("description") or "")]
    return "\n".join(parts)


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """Discord with one guild: #support, #agents and #general; Ana and Ben hold the agent role, Dana
    and Carl do not; another bot is there too."""
    fake = FakeDiscord()
    fake.add_role(AGENT_ROLE, "Support agents", 2)
    fake.add_role(CUSTOMERS_ROLE, "Customers", 1)
    fake.add_text_channel(SUPPORT, "support")
    fake.add_text_channel(AGENTS, "agents")
    fake.add_text_channel(GENERAL, "general")
    fake.add_user(DANA, "dana.w", "Dana Whitaker")
    fake.add_user(ANA, "ana.lima", "Ana")
    fake.add_user(BEN, "ben_o", "Ben")
    fake.add_user(CARL, "carl", "Carl Jensen")
    fake.add_user(OTHER_BOT, "deploybot", "Deploy Bot", bot=True)
    fake.add_member(DANA, [CUSTOMERS_ROLE])
    fake.add_member(ANA, [AGENT_ROLE])
    fake.add_member(BEN, [AGENT_ROLE], nick="Ben")
    fake.add_member(CARL)
    fake.add_member(OTHER_BOT)
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def discord_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing from the outer environment or a stray .env reaches the settings."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("DISCORD_"):
            monkeypatch.delenv(key)


def settings(**overrides: Any) -> DiscordSettings:
    values: dict[str, Any] = {
        "DISCORD_TOKEN": TOKEN,
        "DISCORD_SUPPORT_CHANNELS": f"{SUPPORT}",
        "DISCORD_AGENT_CHANNEL": str(AGENTS),
        "DISCORD_AGENT_ROLE": str(AGENT_ROLE),
        "DISCORD_GUILD_ID": str(GUILD_ID),
    }
    values.update(overrides)
    return DiscordSettings(**values)


StartDiscord = Callable[..., Awaitable[Discord]]


@pytest.fixture
async def start_discord(
    fake: FakeDiscord, discord_env: None, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[StartDiscord]:
    """Builds the adapter as production does (settings, a Desk on the database) and connects it."""
    started: list[Discord] = []
    caplog.set_level(logging.WARNING)

    async def start(engine: AsyncEngine, sync_commands: bool = False, **overrides: Any) -> Discord:
        sessions = session_factory(engine)
        desk = Desk(lambda: SqlUnitOfWork(sessions), FakeClock(T0), load_policy())
        adapter = DiscordAdapter(settings(**overrides), desk, sync_commands=sync_commands)
        harness = Discord(fake, adapter, engine, caplog)
        started.append(harness)
        await harness.connect()
        return harness

    yield start
    for harness in started:
        await harness.close()


@pytest.fixture
async def dc(
    start_discord: StartDiscord, sqlite_engine: AsyncEngine, request: pytest.FixtureRequest
) -> AsyncIterator[Discord]:
    """The adapter, connected, on SQLite."""
    harness = await start_discord(sqlite_engine)
    yield harness
    await harness.close()  # before the engine goes
    if not harness.errors_expected and request.node.get_closest_marker("xfail") is None:
        harness.assert_no_errors_logged()


def test_settle_knows_discord_pys_handler_tasks() -> None:
    """`Discord.settle` finds discord.py's handler tasks by name: fail loudly if discord.py renames them."""
    import inspect

    import discord.app_commands.tree
    import discord.client
    import discord.ui.modal
    import discord.ui.view

    assert "name=f'discord.py: {event_name}'" in inspect.getsource(discord.client)
    assert "name='CommandTree-invoker'" in inspect.getsource(discord.app_commands.tree)
    view = inspect.getsource(discord.ui.view)
    assert "name=f'discord-ui-dynamic-item-" in view and "name=f'discord-ui-view-dispatch-" in view
    assert "name=f'discord-ui-modal-dispatch-" in inspect.getsource(discord.ui.modal)


# --- intake ---------------------------------------------------------------------------------------


async def test_a_customer_message_opens_a_ticket_in_a_private_thread_with_a_card_for_agents(
    dc: Discord,
) -> None:
    opened = await dc.open_ticket()
    fake = dc.fake

    [started] = fake.threads_started(SUPPORT)
    assert started.json["type"] == PRIVATE_THREAD and started.json["invitable"] is False
    assert started.json["name"].startswith("Dana Whitaker: Hi, my order A-1234")
    assert fake.calls_to("PUT", rf"/channels/{opened.thread_id}/thread-members/{DANA}")

    greeting = opened.greeting
    assert greeting.content.startswith("Hi Dana,") and "ticket #1" in greeting.content
    assert "Whitaker" not in greeting.content, "customers are greeted by first name"
    added = fake.calls_to("PUT", rf"/channels/{opened.thread_id}/thread-members/{DANA}")[0]
    assert added.index < greeting.index, "the customer is in the thread before the bot speaks there"

    card = opened.card
    [embed] = card.json["embeds"]
    assert embed["title"].startswith("#1 · Hi, my order A-1234")
    assert "New ticket #1 · Dana Whitaker (new customer)" in embed["description"]
    buttons = _buttons(card)
    assert set(buttons) == {"Claim", "Resolve"}
    assert buttons["Claim"]["custom_id"] == "relaydesk:claim:1"
    assert buttons["Resolve"]["custom_id"] == "relaydesk:resolve:1"
    [from_card] = fake.threads_from_messages(AGENTS)
    assert from_card.path == f"/channels/{AGENTS}/messages/{opened.card_id}/threads"
    assert from_card.answer["type"] == PUBLIC_THREAD and from_card.answer["id"] == str(opened.card_id)
    assert from_card.json["name"] == "#1 Dana Whitaker"

    ticket = await dc.ticket(1)
    thread = str(opened.thread_id)
    assert (ticket.channel_id, ticket.thread_id, ticket.workspace_id) == (thread, thread, str(GUILD_ID))
    assert ticket.status is Status.NEW and ticket.kind is TicketKind.EXTERNAL
    [entry] = await dc.entries(1, EntryKind.CUSTOMER)
    assert (entry.body, entry.author_name, entry.external_id) == (
        FIRST,
        "Dana Whitaker",
        opened.message["id"],
    )
    await dc.settle()
    assert len(fake.posts()) == 2, "the greeting and the card, nothing else"
    assert all(c.headers.get("Authorization") == f"Bot {TOKEN}" for c in fake.calls if "/channels/" in c.path)


async def test_a_later_message_in_the_private_thread_lands_on_the_same_ticket_and_the_cards_thread(
    dc: Discord,
) -> None:
    opened = await dc.open_ticket()
    dc.say(opened.thread_id, DANA, "Also, the tracking page shows an error.")

    [relay] = await dc.wait_posts("the relay in the card's thread", opened.card_id)
    assert relay.content.startswith("#1 · Dana Whitaker")
    assert relay.content.endswith(": Also, the tracking page shows an error.")
    await dc.settle()
    assert len(dc.fake.posts(opened.thread_id)) == 1, "no second greeting"
    assert len(dc.fake.threads_started()) == 1, "no second thread"
    assert await dc.count(TicketRow) == 1
    assert [e.body for e in await dc.entries(1, EntryKind.CUSTOMER)] == [
        FIRST,
        "Also, the tracking page shows an error.",
    ]


async def test_a_direct_message_opens_a_ticket_answered_in_the_dm_and_ticket_reply_reaches_it(
    dc: Discord,
) -> None:
    dm = dc.fake.dm_channel(DANA)
    dc.say(dm, DANA, "Can you reset my password?")

    [greeting] = await dc.wait_posts("the greeting in the DM", dm)
    assert greeting.content.startswith("Hi Dana,") and "ticket #1" in greeting.content
    await dc.wait_posts("the card", AGENTS)
    assert dc.fake.calls_to("GET", rf"/guilds/{GUILD_ID}/members/{DANA}"), "a DM's author is looked up"
    ticket = await dc.ticket(1)
    assert (ticket.channel_id, ticket.thread_id) == (str(dm), None)

    dc.say(dm, DANA, "It's for dana@example.com")
    card_id = await _card_id(dc, 1)
    await dc.wait_posts("the relay", card_id)
    await dc.settle()
    mark = len(dc.fake.calls)
    reply = dc.command(ANA, AGENTS, "ticket", "reply", ticket=1, text="I've sent you a reset link.")
    await dc.wait_posts("the reply in the DM", dm, count=2)
    assert dc.fake.posts(dm)[-1].content == "Ana: I've sent you a reset link."
    _assert_deferred_first(dc.fake, mark, reply)
    await dc.settle()
    assert not dc.fake.threads_started(), "a DM needs no thread"
    assert not dc.fake.calls_to("PUT", r"/channels/\d+/thread-members/\d+"), "nor anyone brought into one"
    assert await dc.count(TicketRow) == 1
    assert [e.kind for e in await dc.entries(1) if e.kind is not EntryKind.BOT] == [
        EntryKind.CUSTOMER,
        EntryKind.CUSTOMER,
        EntryKind.REPLY,
    ]


async def test_a_dm_from_someone_outside_the_guild_opens_a_ticket(dc: Discord) -> None:
    dc.fake.add_user(9_000_000_000_000_000_001, "eve", "Eve Moreau")
    dm = dc.fake.dm_channel(9_000_000_000_000_000_001)
    dc.say(dm, 9_000_000_000_000_000_001, "Hello? Anyone?")
    [greeting] = await dc.wait_posts("the greeting in the DM", dm)
    assert greeting.content.startswith("Hi Eve,") and "ticket #1" in greeting.content
    [lookup] = dc.fake.calls_to("GET", rf"/guilds/{GUILD_ID}/members/9000000000000000001", ok=False)
    assert lookup.status == 404, "not a member, so not an agent"


async def test_messages_outside_support_channels_and_agents_own_words_open_nothing(dc: Discord) -> None:
    dc.say(GENERAL, DANA, "lunch anyone?")
    dc.say(AGENTS, ANA, "morning all")
    dc.say(SUPPORT, ANA, "Reminder: we close early on Friday.")
    await dc.settle()
    assert await dc.count(TicketRow) == 0
    assert not dc.fake.posts() and not dc.fake.threads_started()


@pytest.mark.parametrize(
    ("author", "kind", "text"),
    [
        pytest.param(OTHER_BOT, 0, "Deploy finished: build 1234 is live @here", id="another bot"),
        pytest.param(BOT_USER_ID, 0, "Hi Dana, thanks for getting in touch.", id="our own bot"),
        pytest.param(DANA, 7, "", id="member joined (system)"),
        pytest.param(DANA, 6, "", id="message pinned (system)"),
    ],
)
async def test_bot_and_system_messages_open_nothing(dc: Discord, author: int, kind: int, text: str) -> None:
    dc.say(SUPPORT, author, text, type=kind)
    await dc.settle()
    assert await dc.count(TicketRow) == 0 and await dc.count(EntryRow) == 0
    assert not dc.fake.posts() and not dc.fake.threads_started()


async def test_a_reply_to_a_message_opens_a_ticket_like_any_message(dc: Discord) -> None:
    dc.say(SUPPORT, DANA, FIRST, type=19)
    await dc.wait_posts("the card", AGENTS)
    assert await dc.count(TicketRow) == 1


async def test_posts_carry_their_outbox_delivery_as_an_enforced_nonce(dc: Discord) -> None:
    """Discord drops a message whose nonce it saw from us minutes before (enforce_nonce), so a resend
    of one whose process died before settling it is not posted twice."""
    opened = await dc.open_ticket()
    await dc.settle()
    greeting = opened.greeting.json
    assert greeting["nonce"].startswith("rd") and greeting["nonce"].endswith(".0")
    assert greeting["enforce_nonce"] is True
    rows = await dc.scalars(select(DeliveryRow))
    assert greeting["nonce"] in {f"rd{r.id}.0" for r in rows}
    assert {r.state for r in rows} == {DeliveryState.SENT}


async def test_a_message_replayed_by_a_gateway_resume_is_recorded_once(dc: Discord) -> None:
    opened = await dc.open_ticket()
    await dc.settle()
    dc.feed("MESSAGE_CREATE", opened.message)  # RESUME replays what the gateway thinks we missed
    dc.feed("MESSAGE_CREATE", opened.message)
    await dc.settle()

    assert len(dc.fake.threads_started()) == 1, "one thread"
    assert await dc.count(TicketRow) == 1
    assert await dc.count(EntryRow, EntryRow.kind == EntryKind.CUSTOMER) == 1
    assert len(dc.fake.posts(opened.thread_id)) == 1 and len(dc.fake.posts(AGENTS)) == 1


async def test_a_message_delivered_twice_at_once_creates_one_thread(dc: Discord) -> None:
    payload = dc.fake.message_create(SUPPORT, DANA, FIRST)
    dc.feed("MESSAGE_CREATE", payload)
    dc.feed("MESSAGE_CREATE", payload)
    await dc.wait_posts("the card", AGENTS)
    await dc.settle()

    assert await dc.count(TicketRow) == 1
    assert await dc.count(EntryRow, EntryRow.kind == EntryKind.CUSTOMER) == 1
    assert len(dc.fake.threads_started()) == 1, "the customer is put in one thread, not two"


async def test_an_attachment_without_text_opens_a_ticket_naming_the_file(dc: Discord) -> None:
    dc.say(SUPPORT, DANA, "", attachments=["receipt.pdf"])
    [card] = await dc.wait_posts("the card", AGENTS)
    assert "receipt.pdf" in card.json["embeds"][0]["description"]
    [entry] = await dc.eventually(lambda: dc.entries(1, EntryKind.CUSTOMER), "the entry")
    assert "receipt.pdf" in entry.body


async def test_a_message_without_text_opens_no_empty_thread(dc: Discord) -> None:
    dc.say(SUPPORT, DANA, "")  # a sticker: content "" and no attachments
    await dc.settle()
    assert not dc.fake.threads_started(), "a private thread that nobody will ever answer"


async def test_a_thread_that_cannot_be_created_does_not_lose_the_customers_message(dc: Discord) -> None:
    dc.errors_expected = True
    dc.fake.fail_next("POST", rf"/channels/{SUPPORT}/threads", 403, code=50013, message="Missing Permissions")
    dc.say(SUPPORT, DANA, FIRST)
    await dc.settle()
    said = await dc.scalars(select(EntryRow).where(EntryRow.kind == EntryKind.CUSTOMER))
    assert [e.body for e in said] == [FIRST], "what the customer said is kept"
    assert dc.fake.posts(AGENTS), "the agents get the card"
    assert not dc.fake.posts(SUPPORT), "never answered in the public channel"
    greeting = await dc.wait_posts("the greeting by DM", dc.fake.dm_channel(DANA))
    assert any("Hi Dana" in p.content for p in greeting), "answered by DM instead"


async def test_an_edit_updates_the_record_and_tells_agents(dc: Discord) -> None:
    opened = await dc.open_ticket()
    edited = "Hi, my order A-1235 never arrived and I need it for Friday."
    dc.feed("MESSAGE_UPDATE", dc.fake.message_update(int(opened.message["id"]), edited))

    [relay] = await dc.wait_posts("the edit, for agents", opened.card_id)
    assert "#1 · Dana Whitaker edited a message" in relay.content and relay.content.endswith(edited)
    [entry] = await dc.entries(1, EntryKind.CUSTOMER)
    assert entry.body == edited
    edits = await dc.scalars(select(TimelineRow).where(TimelineRow.action == "edited"))
    assert len(edits) == 1 and edits[0].detail["original"] == FIRST
    await dc.settle()
    assert len(dc.fake.posts(opened.thread_id)) == 1, "nothing goes back to the customer"


async def test_an_update_that_keeps_the_text_says_nothing(dc: Discord) -> None:
    """Discord sends MESSAGE_UPDATE when a link unfurls, too: same content, new embeds."""
    opened = await dc.open_ticket()
    await dc.settle()
    dc.feed("MESSAGE_UPDATE", dc.fake.message_update(int(opened.message["id"]), FIRST))
    await dc.settle()
    assert await dc.count(TimelineRow, TimelineRow.action == "edited") == 0
    assert len(dc.fake.posts()) == 2, "only the greeting and the card"


async def test_a_deletion_is_noted_for_agents_and_the_record_kept(dc: Discord) -> None:
    opened = await dc.open_ticket()
    dc.feed("MESSAGE_DELETE", dc.fake.message_delete(int(opened.message["id"])))

    [note] = await dc.wait_posts("the deletion note", opened.card_id)
    assert "#1 · Dana Whitaker deleted a message" in note.content
    [entry] = await dc.entries(1, EntryKind.CUSTOMER)
    assert entry.body == FIRST
    assert await dc.count(TimelineRow, TimelineRow.action == "deleted") == 1


# --- no pings, and Discord's limits ----------------------------------------------------------------


async def test_nothing_the_bot_sends_can_ping_and_mass_mentions_are_defused(dc: Discord) -> None:
    loud = f"@everyone @here <@&{AGENT_ROLE}> where is my order?"
    opened = await dc.open_ticket(text=loud)
    dc.say(opened.thread_id, DANA, f"still waiting @everyone <@&{CUSTOMERS_ROLE}>")
    await dc.wait_posts("the relay", opened.card_id)
    click = dc.click(ANA, opened.card_id, "relaydesk:claim:1")
    await dc.wait_followups(click, "the summary")
    await dc.wait_posts("the customer told", opened.thread_id, count=2)
    request = dc.command(CARL, GENERAL, "request")
    form = await dc.wait_callback(request, "the form")
    bad = dc.interact(
        dc.fake.modal_submit(CARL, form, {"What is it": "x", "How urgent": "asap", "What do": "y"})
    )
    await dc.wait_callback(bad, "the urgency refusal")
    await dc.settle()

    said = dc.fake.said()
    assert len(said) >= 7, "posts, a follow-up and a callback message were all sent"
    assert any("/webhooks/" in c.path for c in said) and any(c.path.endswith("/callback") for c in said)
    loose = [c for c in said if _allowed_mentions(c) != {"parse": []}]
    assert not loose, "sent without allowed_mentions parse []:\n" + "\n".join(
        f"{c.path} {c.body}" for c in loose
    )
    live = LIVE_MASS_MENTION.findall(_everything_said(said))
    assert not live, f"mass mentions reached Discord live: {live}"
    relay = dc.fake.texts(opened.card_id)[0]
    assert "still waiting" in relay and "@\u2060everyone" in relay, "the words themselves still arrive"
    assert (await dc.entries(1, EntryKind.CUSTOMER))[0].body == loud, "the record keeps what was written"


async def test_a_relay_while_the_card_is_rate_limited_still_lands_in_the_cards_thread(dc: Discord) -> None:
    dc.fake.fail_next("POST", rf"/channels/{AGENTS}/messages", 429, retry_after=0.5)
    message = dc.say(SUPPORT, DANA, FIRST)
    [started] = await dc.fake.wait_for(lambda: dc.fake.threads_started(SUPPORT), "the ticket's thread")
    thread_id = int(started.answer["id"])
    await dc.wait_posts("the greeting", thread_id)
    dc.say(thread_id, DANA, "Also, the tracking page shows an error.")
    card_id = await _card_id(dc, 1)
    [relay] = await dc.wait_posts("the relay in the card's thread", card_id)
    assert "tracking page" in relay.content
    [card] = dc.fake.posts(AGENTS)
    assert card.answer["id"] == str(card_id) and card.index < relay.index
    assert message["id"] == (await dc.entries(1, EntryKind.CUSTOMER))[0].external_id


async def test_a_long_customer_message_is_relayed_in_pieces_of_at_most_2000(dc: Discord) -> None:
    opened = await dc.open_ticket()
    long = "\n".join(f"line {i:02d} " + "x" * 92 for i in range(38))  # 3,876: a Nitro user may send 4,000
    assert CONTENT_LIMIT < len(long) <= 4000
    dc.say(opened.thread_id, DANA, long)

    await dc.wait_posts("the relay, split", opened.card_id, count=2)
    await dc.settle()
    texts = dc.fake.texts(opened.card_id)
    assert len(texts) == 2 and all(len(t) <= CONTENT_LIMIT for t in texts)
    header = texts[0][: texts[0].index("line 00")]
    assert header.startswith("#1 · Dana Whitaker")
    assert "\n".join(texts) == header + long, "split on line ends, nothing lost"
    assert not dc.fake.calls_to("POST", r"/channels/\d+/messages", ok=False), "Discord refused nothing"


async def test_a_long_first_message_fits_the_card_and_the_thread_name(dc: Discord) -> None:
    long = "y" * 3900
    opened = await dc.open_ticket(text=long)
    [embed] = opened.card.json["embeds"]
    assert len(embed["title"]) <= 256 and len(embed["description"]) <= 4096
    assert len(embed["title"]) + len(embed["description"]) <= 6000
    [started] = dc.fake.threads_started(SUPPORT)
    assert 1 <= len(started.json["name"]) <= 100
    assert (await dc.entries(1, EntryKind.CUSTOMER))[0].body == long


async def test_ticket_show_of_a_long_ticket_is_one_condensed_ephemeral(dc: Discord) -> None:
    """Six messages of 1,500 characters: the packet fits one Discord message, keeps the first and the
    latest, and points to the transcript."""
    opened = await dc.open_ticket(text=f"m00 {'a' * 1480}")
    for i in range(1, 6):
        news = f"{chr(97 + i) * 5} {chr(98 + i) * 6}"  # two new words: each message adds something
        dc.say(opened.thread_id, DANA, f"m{i:02d} {news} {'b' * 1460}")
        await dc.wait_posts("the relay", opened.card_id, count=i)
    show = dc.command(ANA, AGENTS, "ticket", "show", ticket=1)
    await dc.wait_followups(show, "the packet")
    await dc.settle()
    [packet] = dc.fake.followups(show)
    assert len(packet.content) <= CONTENT_LIMIT and packet.flags & EPHEMERAL
    assert "m00 " in packet.content and "m05 " in packet.content
    assert "/ticket transcript #1" in packet.content


async def test_a_rate_limited_post_is_retried_after_retry_after(dc: Discord) -> None:
    dc.fake.fail_next("POST", rf"/channels/{AGENTS}/messages", 429, retry_after=0.2)
    opened = await dc.open_ticket()
    attempts = dc.fake.calls_to("POST", rf"/channels/{AGENTS}/messages", ok=None)
    assert [a.status for a in attempts[:2]] == [429, 200]
    assert attempts[0].body == attempts[1].body == opened.card.body


# --- agents ---------------------------------------------------------------------------------------


async def test_claim_by_button_defers_tells_the_customer_and_gives_the_agent_the_summary(dc: Discord) -> None:
    opened = await dc.open_ticket()
    await dc.settle()
    mark = len(dc.fake.calls)
    click = dc.click(ANA, opened.card_id, "relaydesk:claim:1")

    [summary] = await dc.wait_followups(click, "the summary")
    _assert_deferred_first(dc.fake, mark, click)
    assert summary.flags & EPHEMERAL
    assert "Who: Dana Whitaker · new customer" in summary.content and "with Ana" in summary.content
    assert "A-1234 never arrived" in summary.content
    await dc.wait_posts("the customer told", opened.thread_id, count=2)
    assert "Ana is now looking after your request #1" in dc.fake.posts(opened.thread_id)[-1].content
    await dc.wait_posts("the claim noted in the staff thread", opened.card_id)
    assert "#1 claimed by Ana" in dc.fake.texts(opened.card_id)[0]
    await dc.fake.wait_for(
        lambda: dc.fake.calls_to("PUT", rf"/channels/{opened.thread_id}/thread-members/{ANA}"),
        "Ana brought into the customer's private thread",
    )
    await dc.settle()
    assert "Who: Dana" not in _everything_said(dc.fake.posts()), "the summary is not posted publicly"

    ticket = await dc.ticket(1)
    [ana] = await dc.scalars(select(AgentRow).where(AgentRow.external_id == str(ANA)))
    assert ticket.assignee_id == ana.id and ticket.status is Status.OPEN
    assert ana.display_name == "Ana"


async def test_claim_by_slash_command_with_the_ticket_option(dc: Discord) -> None:
    opened = await dc.open_ticket()
    await dc.settle()
    mark = len(dc.fake.calls)
    claim = dc.command(ANA, AGENTS, "ticket", "claim", ticket=1)

    [summary] = await dc.wait_followups(claim, "the summary")
    _assert_deferred_first(dc.fake, mark, claim)
    assert summary.flags & EPHEMERAL and "#1 · Hi, my order A-1234 never arrived" in summary.content
    await dc.wait_posts("the customer told", opened.thread_id, count=2)
    assert "Ana is now looking after your request #1" in dc.fake.posts(opened.thread_id)[-1].content
    assert (await dc.ticket(1)).status is Status.OPEN


@pytest.mark.parametrize(
    "how",
    [
        "claim button",
        "ticket command",
        "request form",
        "transfer to a new agent",
    ],
)
async def test_interactions_are_deferred_before_any_database_work(
    dc: Discord, sqlite_url: str, how: str
) -> None:
    """Discord wants an answer within 3 s: the deferral goes out even while the database is locked."""
    opened = await dc.open_ticket()
    if how == "request form":
        form = await dc.wait_callback(dc.command(CARL, GENERAL, "request"), "the form")
    await dc.settle()
    mark = len(dc.fake.calls)
    with _database_locked(sqlite_url):
        if how == "claim button":
            acted = dc.click(ANA, opened.card_id, "relaydesk:claim:1")
        elif how == "ticket command":
            acted = dc.command(ANA, AGENTS, "ticket", "claim", ticket=1)
        elif how == "transfer to a new agent":
            acted = dc.command(ANA, AGENTS, "ticket", "transfer", ticket=1, agent=UserOption(BEN))
        else:
            values = {"What is it about": "Hardware", "How urgent": "high", "What do you need": "A charger."}
            acted = dc.interact(dc.fake.modal_submit(CARL, form, values))
        await dc.fake.wait_for(lambda: dc.fake.callbacks(acted), "the deferral, with the database locked", 5)
    _assert_deferred_first(dc.fake, mark, acted)
    [answer] = await dc.wait_followups(acted, "the answer, once the database is free")
    assert answer.flags & EPHEMERAL


async def test_claim_inside_the_cards_thread_needs_no_ticket_number(dc: Discord) -> None:
    opened = await dc.open_ticket()
    claim = dc.command(BEN, opened.card_id, "ticket", "claim")

    [summary] = await dc.wait_followups(claim, "the summary")
    assert summary.flags & EPHEMERAL and "with Ben" in summary.content
    await dc.wait_posts("the customer told", opened.thread_id, count=2)
    assert "Ben is now looking after your request #1" in dc.fake.posts(opened.thread_id)[-1].content


async def test_claim_elsewhere_without_a_number_asks_which_ticket(dc: Discord) -> None:
    await dc.open_ticket()
    await dc.settle()
    before, posts = await dc.snapshot(), len(dc.fake.posts())
    claim = dc.command(ANA, AGENTS, "ticket", "claim")
    [answer] = await dc.wait_followups(claim, "the question")
    assert answer.content.startswith("Which ticket?") and answer.flags & EPHEMERAL
    await dc.settle()
    assert await dc.snapshot() == before and len(dc.fake.posts()) == posts


async def test_a_second_claim_is_refused_privately(dc: Discord) -> None:
    opened = await dc.open_ticket()
    first = dc.click(ANA, opened.card_id, "relaydesk:claim:1")
    await dc.wait_followups(first, "Ana's summary")
    await dc.settle()
    before, posts = await dc.snapshot(), len(dc.fake.posts())

    second = dc.click(BEN, opened.card_id, "relaydesk:claim:1")
    [refusal] = await dc.wait_followups(second, "Ben's refusal")
    assert refusal.content.startswith("#1 is already with Ana.") and refusal.flags & EPHEMERAL
    await dc.settle()
    assert await dc.snapshot() == before and len(dc.fake.posts()) == posts


async def test_a_member_without_the_agent_role_is_refused_politely_and_nothing_changes(dc: Discord) -> None:
    opened = await dc.open_ticket()
    await dc.settle()
    before, posts = await dc.snapshot(), len(dc.fake.posts())
    mark = len(dc.fake.calls)

    claim = dc.command(CARL, GENERAL, "ticket", "claim", ticket=1)
    [answer] = await dc.wait_followups(claim, "the refusal")
    _assert_deferred_first(dc.fake, mark, claim)
    assert answer.content.startswith("Sorry Carl,") and answer.flags & EPHEMERAL
    click = dc.click(DANA, opened.card_id, "relaydesk:resolve:1")  # a customer who found the card
    await dc.wait_followups(click, "the refusal")
    await dc.settle()
    assert await dc.snapshot() == before and len(dc.fake.posts()) == posts
    ticket = await dc.ticket(1)
    assert ticket.assignee_id is None and ticket.status is Status.NEW


async def test_resolve_by_button(dc: Discord) -> None:
    opened = await dc.open_ticket()
    dc.click(ANA, opened.card_id, "relaydesk:resolve:1")
    await dc.wait_posts("the customer told", opened.thread_id, count=3)
    resolved, survey = dc.fake.posts(opened.thread_id)[-2:]
    assert "We've marked #1 as resolved" in resolved.content
    assert "how did we do with #1?" in survey.content
    assert (await dc.ticket(1)).status is Status.RESOLVED


async def test_an_agents_words_in_the_cards_thread_are_a_note_never_posted_to_the_customer(
    dc: Discord,
) -> None:
    opened = await dc.open_ticket()
    secret = "NOTE-SECRET warehouse says the parcel was lost"
    said = dc.say(opened.card_id, ANA, secret)

    notes = select(EntryRow).where(EntryRow.kind == EntryKind.NOTE)
    [note] = await dc.eventually(lambda: dc.scalars(notes), "the note recorded")
    assert (note.ticket_number, note.body, note.author_name, note.external_id) == (
        1,
        secret,
        "Ana",
        said["id"],
    )
    await dc.settle()
    assert "NOTE-SECRET" not in _everything_said(dc.fake.said()), "not echoed anywhere"

    show = dc.command(ANA, AGENTS, "ticket", "show", ticket=1)
    shown = await dc.wait_followups(show, "/ticket show")
    assert all(c.flags & EPHEMERAL for c in shown)
    assert "Ana (note): NOTE-SECRET" in "\n".join(c.content for c in shown)
    await dc.settle()
    assert "NOTE-SECRET" not in _everything_said(dc.fake.posts())


async def test_a_customers_words_in_the_cards_thread_are_ignored(dc: Discord) -> None:
    opened = await dc.open_ticket()
    dc.say(opened.card_id, CARL, "is this about my laptop?")
    await dc.settle()
    assert await dc.count(EntryRow, EntryRow.kind == EntryKind.NOTE) == 0
    assert len(await dc.entries(1)) == 2
    assert len(dc.fake.posts()) == 2


async def test_an_agents_answer_in_the_customers_thread_is_a_reply(dc: Discord) -> None:
    opened = await dc.open_ticket()
    dc.say(opened.thread_id, ANA, "Sorry Dana, a replacement ships today.")

    replies = select(EntryRow).where(EntryRow.kind == EntryKind.REPLY)
    [reply] = await dc.eventually(lambda: dc.scalars(replies), "the reply recorded")
    assert (reply.body, reply.author_name) == ("Sorry Dana, a replacement ships today.", "Ana")
    await dc.wait_posts("the claim noted", opened.card_id)
    await dc.settle()
    assert len(dc.fake.posts(opened.thread_id)) == 1, "the answer is already in the thread; nothing re-posted"
    ticket = await dc.ticket(1)
    assert ticket.status is Status.OPEN and ticket.first_agent_reply_at is not None


async def test_ticket_reply_inside_the_customers_thread_needs_no_ticket_number(dc: Discord) -> None:
    opened = await dc.open_ticket()
    await dc.open_ticket(user=CARL, text="My screen is broken")
    dc.command(ANA, opened.thread_id, "ticket", "reply", text="A replacement ships today.")
    await dc.wait_posts("the reply", opened.thread_id, count=2)
    assert dc.fake.posts(opened.thread_id)[-1].content == "Ana: A replacement ships today."
    [reply] = await dc.entries(1, EntryKind.REPLY)
    assert reply.body == "A replacement ships today."
    assert not await dc.entries(2, EntryKind.REPLY)


async def test_ticket_reply_reaches_the_customers_thread(dc: Discord) -> None:
    opened = await dc.open_ticket()
    dc.command(BEN, AGENTS, "ticket", "reply", ticket=1, text="A replacement ships today.")
    await dc.wait_posts("the reply", opened.thread_id, count=2)
    assert dc.fake.posts(opened.thread_id)[-1].content == "Ben: A replacement ships today."
    [reply] = await dc.entries(1, EntryKind.REPLY)
    assert reply.author_name == "Ben"


async def test_transfer_to_an_agent_hands_over_by_dm(dc: Discord) -> None:
    opened = await dc.open_ticket()
    dc.command(ANA, AGENTS, "ticket", "transfer", ticket=1, agent=UserOption(BEN), reason="knows the courier")

    ben = dc.fake.dm_channel(BEN)
    [handover] = await dc.wait_posts("Ben's handover", ben)
    assert handover.content.startswith("Ana handed #1 over to you. Reason: knows the courier")
    assert "A-1234 never arrived" in handover.content
    await dc.wait_posts("the customer told", opened.thread_id, count=2)
    assert "Ben is now looking after your request #1" in dc.fake.posts(opened.thread_id)[-1].content
    await dc.fake.wait_for(
        lambda: dc.fake.calls_to("PUT", rf"/channels/{opened.thread_id}/thread-members/{BEN}"),
        "Ben brought into the customer's private thread",
    )
    [ben_row] = await dc.scalars(select(AgentRow).where(AgentRow.external_id == str(BEN)))
    assert (await dc.ticket(1)).assignee_id == ben_row.id


async def test_autocomplete_offers_an_agent_the_open_tickets_and_a_customer_nothing(dc: Discord) -> None:
    await dc.open_ticket()
    asked = dc.interact(dc.fake.autocomplete(ANA, AGENTS, "ticket", "claim", "ticket", "", focused_type=4))
    answer = await dc.wait_callback(asked, "the choices")
    assert answer.json == {
        "type": 8,
        "data": {"choices": [{"name": f"#1 · Dana Whitaker: {FIRST}", "value": 1}]},
    }
    asked = dc.interact(dc.fake.autocomplete(CARL, GENERAL, "ticket", "claim", "ticket", "1", focused_type=4))
    answer = await dc.wait_callback(asked, "no choices")
    assert answer.json == {"type": 8, "data": {"choices": []}}


async def test_ticket_snippet_sends_the_saved_reply_to_the_customers_thread(dc: Discord) -> None:
    opened = await dc.open_ticket()
    asked = dc.fake.command(ANA, AGENTS, "ticket", "snippet", ticket=1)
    # The option is called `name`, like command()'s own parameter: added to the payload by hand.
    asked["data"]["options"][0]["options"].append({"type": 3, "name": "name", "value": "looking-into-it"})
    dc.interact(asked)
    await dc.wait_posts("the snippet", opened.thread_id, count=2)
    sent = dc.fake.posts(opened.thread_id)[-1].content
    assert sent.startswith("Ana: Thanks for bearing with me, Dana. ") and "on #1 " in sent
    [reply] = await dc.entries(1, EntryKind.REPLY)
    assert reply.body == sent.removeprefix("Ana: ")
    assert (await dc.ticket(1)).status is Status.OPEN, "whoever answers first owns the ticket"
    await dc.wait_followups(asked, "the interaction answered")


async def test_snippet_autocomplete_offers_an_agent_the_names_and_a_customer_nothing(dc: Discord) -> None:
    asked = dc.interact(dc.fake.autocomplete(ANA, AGENTS, "ticket", "snippet", "name", "detail"))
    answer = await dc.wait_callback(asked, "the choices")
    assert answer.json == {
        "type": 8,
        "data": {"choices": [{"name": "more-details", "value": "more-details"}]},
    }
    asked = dc.interact(dc.fake.autocomplete(DANA, GENERAL, "ticket", "snippet", "name", ""))
    answer = await dc.wait_callback(asked, "no choices")
    assert answer.json == {"type": 8, "data": {"choices": []}}


# --- requests -------------------------------------------------------------------------------------


async def test_request_answers_with_a_form_whose_submission_opens_an_internal_ticket_by_dm(
    dc: Discord,
) -> None:
    request = dc.command(CARL, GENERAL, "request")
    form = await dc.wait_callback(request, "the form")
    assert form.json["type"] == 9
    assert form.json["data"]["title"] == "Raise a request"
    await dc.settle()
    assert await dc.count(TicketRow) == 0

    mark = len(dc.fake.calls)
    submit = dc.interact(
        dc.fake.modal_submit(
            CARL,
            form,
            {
                "What is it about": "Hardware",
                "How urgent": "urgent",
                "What do you need": "The office printer is on fire.",
            },
        )
    )
    dm = dc.fake.dm_channel(CARL)
    [greeting] = await dc.wait_posts("the answer in Carl's DM", dm)
    _assert_deferred_first(dc.fake, mark, submit)
    assert greeting.content.startswith("Hi Carl,") and "ticket #1" in greeting.content
    [opened_dm] = dc.fake.calls_to("POST", "/users/@me/channels")
    assert opened_dm.json == {"recipient_id": CARL} or opened_dm.json == {"recipient_id": str(CARL)}
    [card] = await dc.wait_posts("the card", AGENTS)
    assert "New internal request #1 · Carl Jensen" in card.json["embeds"][0]["description"]
    [thanks] = await dc.wait_followups(submit, "the thanks")
    assert thanks.content.startswith("Thanks, your request is in") and thanks.flags & EPHEMERAL
    await dc.settle()
    assert not dc.fake.posts(GENERAL) and not dc.fake.threads_started()
    ticket = await dc.ticket(1)
    assert (ticket.kind, ticket.queue, ticket.priority) == (TicketKind.INTERNAL, "internal", Priority.URGENT)
    assert ticket.subject == "Hardware: The office printer is on fire." and ticket.channel_id == str(dm)


async def test_a_bad_urgency_gets_an_ephemeral_error_and_opens_nothing(dc: Discord) -> None:
    request = dc.command(CARL, GENERAL, "request")
    form = await dc.wait_callback(request, "the form")
    submit = dc.interact(
        dc.fake.modal_submit(
            CARL, form, {"What is it about": "Hardware", "How urgent": "asap", "What do you need": "A mouse."}
        )
    )
    answer = await dc.wait_callback(submit, "the error")
    assert answer.json["type"] == 4 and answer.flags & EPHEMERAL
    assert answer.content == "Please give the urgency as low, normal, high or urgent."
    await dc.settle()
    assert await dc.count(TicketRow) == 0
    assert not dc.fake.calls_to("POST", "/users/@me/channels") and not dc.fake.posts()


# --- DMs that fail --------------------------------------------------------------------------------


def _refuse_dms(fake: FakeDiscord, user: int) -> int:
    dm = fake.dm_channel(user)
    fake.fail_next(
        "POST",
        rf"/channels/{dm}/messages",
        403,
        code=50007,
        message="Cannot send messages to this user",
        times=99,
    )
    return dm


async def _dm_ticket_whose_dms_then_fail(dc: Discord) -> tuple[int, int, int]:
    """Dana's DM ticket #1; then she closes her DMs and Ana replies. Returns (card, fallback thread, dm)."""
    dm = dc.fake.dm_channel(DANA)
    dc.say(dm, DANA, "Can you reset my password?")
    await dc.wait_posts("the greeting in the DM", dm)
    card_id = await _card_id(dc, 1)
    await dc.settle()
    _refuse_dms(dc.fake, DANA)
    dc.command(ANA, AGENTS, "ticket", "reply", ticket=1, text="I've sent you a reset link.")
    [started] = await dc.fake.wait_for(lambda: dc.fake.threads_started(SUPPORT), "the fallback thread")
    return card_id, int(started.answer["id"]), dm


async def test_a_dm_refused_with_50007_falls_back_to_a_private_thread_and_agents_are_told(
    dc: Discord,
) -> None:
    card_id, thread_id, dm = await _dm_ticket_whose_dms_then_fail(dc)

    [posted] = await dc.wait_posts("the reply in the fallback thread", thread_id)
    [started] = dc.fake.threads_started(SUPPORT)
    assert started.json["type"] == PRIVATE_THREAD and started.json["invitable"] is False
    assert dc.fake.calls_to("PUT", rf"/channels/{thread_id}/thread-members/{DANA}"), "before the reply"
    assert posted.content == "Ana: I've sent you a reset link."
    told = await dc.fake.wait_for(
        lambda: [c for c in dc.fake.posts(card_id) if "doesn't accept DMs" in c.content], "the agents told"
    )
    assert f"<#{thread_id}>" in told[0].content and told[0].content.startswith("#1: Dana Whitaker")
    refused = dc.fake.calls_to("POST", rf"/channels/{dm}/messages", ok=False)
    assert refused and refused[0].answer["code"] == 50007


async def test_a_customer_answering_in_the_fallback_thread_stays_on_their_ticket(dc: Discord) -> None:
    _, thread_id, _ = await _dm_ticket_whose_dms_then_fail(dc)
    await dc.wait_posts("the reply in the fallback thread", thread_id)
    await dc.settle()
    dc.say(thread_id, DANA, "Thanks, but the link has expired.")
    await dc.settle()
    assert await dc.count(TicketRow) == 1
    assert [e.body for e in await dc.entries(1, EntryKind.CUSTOMER)][
        -1
    ] == "Thanks, but the link has expired."


async def test_later_messages_to_a_customer_who_refuses_dms_reuse_the_fallback_thread(dc: Discord) -> None:
    _, thread_id, _ = await _dm_ticket_whose_dms_then_fail(dc)
    await dc.wait_posts("the reply in the fallback thread", thread_id)
    await dc.settle()
    dc.command(ANA, AGENTS, "ticket", "reply", ticket=1, text="Here is a new link.")
    await dc.settle()
    assert len(dc.fake.threads_started(SUPPORT)) == 1
    assert dc.fake.texts(thread_id)[-1] == "Ana: Here is a new link."


async def test_a_request_whose_greeting_cannot_be_dmd_tells_agents_in_the_staff_thread(dc: Discord) -> None:
    _refuse_dms(dc.fake, CARL)
    request = dc.command(CARL, GENERAL, "request")
    form = await dc.wait_callback(request, "the form")
    values = {"What is it about": "Hardware", "How urgent": "high", "What do you need": "A new charger."}
    dc.interact(dc.fake.modal_submit(CARL, form, values))

    [started] = await dc.fake.wait_for(lambda: dc.fake.threads_started(SUPPORT), "the fallback thread")
    thread_id = int(started.answer["id"])
    [greeting] = await dc.wait_posts("the greeting in the fallback thread", thread_id)
    assert greeting.content.startswith("Hi Carl,")
    card_id = await _card_id(dc, 1)
    await dc.settle()
    told = [c for c in dc.fake.said() if "doesn't accept DMs" in c.content]
    assert told and all(c.channel_id == card_id for c in told), [c.path for c in told]


async def test_a_customer_who_takes_no_dms_writing_again_by_dm_stays_on_their_ticket(dc: Discord) -> None:
    dm = _refuse_dms(dc.fake, DANA)
    dc.say(dm, DANA, "Can you reset my password?")
    [started] = await dc.fake.wait_for(lambda: dc.fake.threads_started(SUPPORT), "the fallback thread")
    await dc.wait_posts("the greeting in the fallback thread", int(started.answer["id"]))
    await dc.settle()
    dc.say(dm, DANA, "Hello? Did you get my message?")
    await dc.settle()
    assert await dc.count(TicketRow) == 1
    assert len(dc.fake.threads_started(SUPPORT)) == 1


async def test_a_request_whose_dm_is_refused_does_not_claim_it_was_dmd(dc: Discord) -> None:
    _refuse_dms(dc.fake, CARL)
    form = await dc.wait_callback(dc.command(CARL, GENERAL, "request"), "the form")
    values = {"What is it about": "Hardware", "How urgent": "high", "What do you need": "A new charger."}
    submit = dc.interact(dc.fake.modal_submit(CARL, form, values))
    [started] = await dc.fake.wait_for(lambda: dc.fake.threads_started(SUPPORT), "the fallback thread")
    await dc.wait_posts("the greeting in the fallback thread", int(started.answer["id"]))
    await dc.settle()
    answers = [c.content for c in dc.fake.followups(submit)]
    assert answers and not any("in a DM" in a for a in answers), answers


# --- interactions that Discord must see answered ---------------------------------------------------


@pytest.mark.parametrize("how", ["ticket reply", "resolve button"])
async def test_every_deferred_interaction_gets_an_answer(dc: Discord, how: str) -> None:
    opened = await dc.open_ticket()
    if how == "ticket reply":
        acted = dc.command(ANA, AGENTS, "ticket", "reply", ticket=1, text="A replacement ships today.")
    else:
        acted = dc.click(ANA, opened.card_id, "relaydesk:resolve:1")
    await dc.wait_posts("the customer told", opened.thread_id, count=2)
    await dc.settle()
    answered = [c for c in dc.fake.interaction_calls(acted) if not c.path.endswith("/callback")]
    assert answered, "no follow-up and no edit of the deferred response"
    for answer in answered:
        private = answer.method == "PATCH" or answer.flags & EPHEMERAL  # an edit keeps the deferral's flags
        assert private and answer.content.strip(), answer.body
        assert _allowed_mentions(answer) == {"parse": []}, answer.body


async def test_a_ticket_number_at_the_start_of_the_text_stays_text(dc: Discord) -> None:
    first = await dc.open_ticket()
    await dc.open_ticket(user=CARL, text="My screen is broken")
    dc.command(ANA, first.card_id, "ticket", "note", text="#2 is the same courier problem")
    await dc.settle()
    notes = await dc.scalars(select(EntryRow).where(EntryRow.kind == EntryKind.NOTE))
    assert [(n.ticket_number, n.body) for n in notes] == [(1, "#2 is the same courier problem")]


# --- restarts, set-up -----------------------------------------------------------------------------


async def test_buttons_of_a_card_posted_before_a_restart_still_work(
    dc: Discord, start_discord: StartDiscord, sqlite_engine: AsyncEngine
) -> None:
    opened = await dc.open_ticket()
    await dc.close()

    restarted = await start_discord(sqlite_engine)
    assert restarted.adapter is not dc.adapter
    click = restarted.click(ANA, opened.card_id, "relaydesk:claim:1")
    [summary] = await restarted.wait_followups(click, "the summary")
    assert "with Ana" in summary.content and summary.flags & EPHEMERAL
    await restarted.wait_posts("the customer told", opened.thread_id, count=2)
    assert "Ana is now looking after your request #1" in dc.fake.posts(opened.thread_id)[-1].content
    await restarted.wait_posts("the claim noted in the staff thread", opened.card_id)
    assert (await restarted.ticket(1)).status is Status.OPEN
    restarted.assert_no_errors_logged()


async def test_commands_are_synced_to_the_guild_and_answer_there(
    start_discord: StartDiscord, sqlite_engine: AsyncEngine
) -> None:
    dc = await start_discord(sqlite_engine, sync_commands=True)
    [sync] = dc.fake.calls_to("PUT", rf"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
    assert not dc.fake.calls_to("PUT", rf"/applications/{APP_ID}/commands"), "nothing synced globally"
    commands = {c["name"]: c for c in sync.body}
    assert set(commands) == {"ticket", "request"}
    verbs = {o["name"]: o for o in commands["ticket"]["options"]}
    assert set(verbs) == {
        *("claim", "release", "reply", "note", "transfer", "pending", "hold", "resolve", "reopen"),
        *("priority", "show", "snippet", "customer", "profile", "incentive", "link", "transcript"),
        *("block", "unblock"),
        *("promise", "kept", "stats", "queue", "mine", "help"),
    }
    assert set(verbs) == set(VERBS), "every verb of the grammar, as a subcommand"
    assert all(o["type"] == 1 for o in verbs.values()), "subcommands"
    assert all(1 <= len(o["description"]) <= 100 for o in verbs.values()), "Discord's limit"
    [ticket_option] = verbs["claim"]["options"]
    assert (ticket_option["name"], ticket_option["type"], ticket_option["autocomplete"]) == (
        "ticket",
        4,
        True,
    )
    assert not ticket_option.get("required")

    mine = dc.command(ANA, AGENTS, "ticket", "mine")
    [answer] = await dc.wait_followups(mine, "the answer")
    assert answer.content == "You have no tickets in progress." and answer.flags & EPHEMERAL
    await dc.close()
    dc.assert_no_errors_logged()


def test_the_invite_url_asks_for_the_bot_and_commands_scopes_and_exactly_the_needed_permissions(
    discord_env: None,
) -> None:
    url = urlparse(invite_url(settings()))
    query = parse_qs(url.query)
    assert (url.scheme, url.netloc, url.path) == ("https", "discord.com", "/oauth2/authorize")
    assert query["client_id"] == [str(APP_ID)], "the application id, read from the token"
    assert set(query["scope"][0].split()) == {"bot", "applications.commands"}
    permissions = discord.Permissions(int(query["permissions"][0]))
    assert permissions == BOT_PERMISSIONS
    # Read, write, start private threads for customers and public ones on cards, add customers to a
    # private thread that is not invitable (manage_threads), and post embeds: nothing more.
    assert permissions == discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        create_private_threads=True,
        create_public_threads=True,
        manage_threads=True,
        embed_links=True,
        read_message_history=True,
    )
    assert not permissions.administrator and not permissions.mention_everyone


async def test_only_the_needed_intents_are_requested(discord_env: None, sqlite_engine: AsyncEngine) -> None:
    wanted = discord.Intents.none()
    wanted.guilds = wanted.guild_messages = wanted.dm_messages = wanted.message_content = True
    assert intents() == wanted
    sessions = session_factory(sqlite_engine)
    desk = Desk(lambda: SqlUnitOfWork(sessions), FakeClock(T0), load_policy())
    client = DiscordAdapter(settings(), desk, sync_commands=False).client
    assert client.intents == wanted, "what IDENTIFY would ask for"
    assert not client.intents.members and not client.intents.presences, "no privileged intent but content"
    await client.close()


async def test_smoke_on_each_database(start_discord: StartDiscord, engine: AsyncEngine) -> None:
    """The same wire round trip on SQLite and, with TEST_DATABASE_URL, on PostgreSQL."""
    dc = await start_discord(engine)
    try:
        opened = await dc.open_ticket()
        dc.say(opened.thread_id, DANA, "Also, the tracking page shows an error.")
        await dc.wait_posts("the relay", opened.card_id)
        claim = dc.command(ANA, AGENTS, "ticket", "claim", ticket=1)
        await dc.wait_followups(claim, "the summary")
        await dc.settle()
        ticket = await dc.ticket(1)
        assert ticket.status is Status.OPEN and ticket.thread_id == str(opened.thread_id)
        assert len(await dc.entries(1, EntryKind.CUSTOMER)) == 2
        dc.assert_no_errors_logged()
    finally:
        await dc.close()


# --- helpers --------------------------------------------------------------------------------------


@contextmanager
def _database_locked(sqlite_url: str) -> Iterator[None]:
    """Hold SQLite's write lock (as another busy process would) until the block ends."""
    locker = sqlite3.connect(sqlite_url.split(":///", 1)[1], isolation_level=None)
    try:
        locker.execute("BEGIN IMMEDIATE")
        yield
    finally:
        locker.rollback()
        locker.close()


async def _card_id(dc: Discord, number: int) -> int:
    anchors = select(AnchorRow.message_id).where(AnchorRow.ticket_number == number)
    return int((await dc.eventually(lambda: dc.scalars(anchors), f"the card of #{number}"))[0])


def _assert_deferred_first(fake: FakeDiscord, mark: int, payload: dict[str, Any]) -> None:
    """The interaction's first answer is a deferral (type 5, ephemeral), before any other request."""
    after = fake.calls[mark:]
    assert after, "nothing was sent"
    first = after[0]
    assert first.path == f"/interactions/{payload['id']}/{payload['token']}/callback", fake.transcript()
    assert first.json["type"] == 5 and first.flags & EPHEMERAL, first.body


def _allowed_mentions(call: Call) -> Any:
    body = call.json.get("data", {}) if call.path.endswith("/callback") else call.json
    return body.get("allowed_mentions")
