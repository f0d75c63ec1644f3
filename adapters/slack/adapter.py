"""Slack ⇄ core. Every listener acknowledges first, then hands the event to the desk and renders what it
says. No ticket rule lives here: which thread is which ticket, who may do what and what to say are the
core's; this module only knows Slack's wire formats and Web API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.app.async_server import AsyncSlackAppServer
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.slack import blocks
from adapters.slack.admission import Admission
from adapters.slack.config import SlackSettings
from bot.commands import Actor, Claim, IncomingMessage, Request, Resolve
from bot.desk import Desk
from bot.domain import Priority, Role
from bot.messages import (
    Attachment,
    Conversation,
    CustomerMessage,
    MessageRef,
    Outgoing,
    Person,
    StaffKind,
    StaffMessage,
    SurveyPrompt,
    ToAgent,
    ToAgents,
    Undelivered,
    is_private_answer,
)

PLATFORM = "slack"
log = logging.getLogger(__name__)

BOT_SCOPES = [
    "app_mentions:read",
    "channels:history",
    "channels:read",
    "chat:write",
    "commands",
    "files:write",
    "groups:history",
    "groups:read",
    "im:history",
    "im:read",
    "im:write",
    "users:read",
    "users:read.email",
]
ACCEPTED_SUBTYPES = {None, "file_share", "thread_broadcast", "me_message"}
"""What people write; every other subtype (joins, topics, huddles, reminders, bots) is not a message."""
MEMBERS_TTL = 300.0
RESPONSES_PER_URL = 5
"""Slack takes at most five messages per response_url."""
MOVED_TO_DM = "That's a long answer, so I've sent it to you in a direct message."
FILES_IN_DM = "I've sent {files} to you in a direct message."
FILES_FAILED = "Sorry, I couldn't send you {files}. Please try again in a moment."
Respond = Callable[..., Awaitable[Any]]


FINAL_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "user_not_found",
        "user_disabled",
        "cannot_dm_bot",
        "messages_tab_disabled",
        "restricted_action",
        "account_inactive",
    }
)
"""Web API errors that no retry will mend: the message is marked undeliverable at once. (A token or
scope problem is not among them: it is retried, so what waits goes out once someone fixes the app.)"""


EVENTS_PATH = "/slack/events"
DELIVERY_EVENT = "relaydesk_delivery"
"""The metadata event type of our posts: its payload names the outbox delivery."""
LOOKBACK = 200
LOOKBACK_PAGES = 5
"""Pages of messages read back (newest first) when checking whether a resent message reached Slack."""
STOP_GRACE = 10.0
"""Seconds a stopping adapter gives deliveries under way."""
DELIVERY_WORKERS = 4
"""Deliveries after acknowledgements posting at a time; the rest wait their turn, so a burst of events
does not become hundreds of Web API calls competing with the next requests for the event loop."""
LISTEN_BACKLOG = 1024
"""Connections the kernel queues while the bot is busy (aiohttp's default, 128, dropped thousands in a
burst of 500 events/s: each dropped connection costs its sender a 1-3 s retransmit)."""


def retry_handlers() -> list[Any]:
    """429s wait out Retry-After; 5xx and dropped connections are retried with backoff."""
    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=5),
        AsyncServerErrorRetryHandler(max_retry_count=3),
        AsyncConnectionErrorRetryHandler(max_retry_count=3),
    ]


class SlackAdapter:
    """The desk in Slack: support channels and DMs for customers, an agents' channel for staff."""

    platform = PLATFORM

    def __init__(self, settings: SlackSettings, desk: Desk, engine: AsyncEngine | None = None) -> None:
        assert settings.agent_channel is not None, "SlackSettings validates this"
        self._settings = settings
        self._agent_channel: str = settings.agent_channel
        self._desk = desk
        token = settings.bot_token.get_secret_value() if settings.bot_token else None
        self.client = AsyncWebClient(token=token, base_url=settings.api_url, retry_handlers=retry_handlers())
        # Bolt copies each request's context for lazy listeners, its client included, and an HTTP session
        # cannot be copied: Bolt's client has none of its own, and calls go out on ours (`_shared`).
        bolt_client = AsyncWebClient(token=token, base_url=settings.api_url, retry_handlers=retry_handlers())
        secret = settings.signing_secret.get_secret_value() if settings.signing_secret else ""
        self.installations: AsyncSQLAlchemyInstallationStore | None = None
        if settings.oauth:
            assert engine is not None and settings.client_id and settings.client_secret
            self.installations = AsyncSQLAlchemyInstallationStore(settings.client_id, engine=engine)
            self._states = AsyncSQLAlchemyOAuthStateStore(expiration_seconds=600, engine=engine)
            oauth = AsyncOAuthSettings(
                client_id=settings.client_id,
                client_secret=settings.client_secret.get_secret_value(),
                scopes=BOT_SCOPES,
                installation_store=self.installations,
                state_store=self._states,
            )
            self.app = AsyncApp(
                signing_secret=secret,
                oauth_settings=oauth,
                client=bolt_client,
                request_verification_enabled=False,  # _on_http checks every request first
                process_before_response=True,
            )
        else:
            self.app = AsyncApp(
                signing_secret=secret,
                client=bolt_client,
                request_verification_enabled=False,  # _on_http checks every request first
                process_before_response=True,
            )
        self._verifier = SignatureVerifier(secret) if secret else None  # Socket Mode signs nothing
        self._people: dict[str, tuple[str, str | None, str | None]] = {}
        """users.info, once per user: (display name, verified email or None)."""
        self._members: tuple[float, frozenset[str]] | None = None
        self._card_locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._admission = Admission()
        self._watching: asyncio.Task[None] | None = None
        self._delivering = asyncio.Semaphore(DELIVERY_WORKERS)
        self._runner: web.AppRunner | None = None
        self._socket: Any = None
        self.port: int | None = None
        self._register()

    # --- lifecycle ------------------------------------------------------------------------------

    def web_app(self) -> web.Application:
        """The HTTP endpoints: POST /slack/events (events, commands, interactivity), OAuth when
        configured (Bolt's own handlers), and GET /healthz."""
        routes = [web.post(EVENTS_PATH, self._on_http), web.get("/healthz", _healthz)]
        flow = self.app.oauth_flow
        if flow is not None:
            server = AsyncSlackAppServer(port=self._settings.http_port, path=EVENTS_PATH, app=self.app)
            routes += [
                web.get(flow.install_path, server.handle_get_requests),
                web.get(flow.redirect_uri_path, server.handle_get_requests),
            ]
        web_app = web.Application()
        web_app.add_routes(routes)
        return web_app

    async def _on_http(self, request: web.Request) -> web.StreamResponse:
        """Slack's POSTs. The signature is checked on the raw body before anything parses it, so a
        forged, stale or malformed request gets 401 every time (never a parse error); then Bolt
        dispatches it."""
        raw = await request.read()
        try:
            body = raw.decode("utf-8")
            valid = self._verifier is not None and self._verifier.is_valid(
                body=body,
                timestamp=request.headers.get("X-Slack-Request-Timestamp", ""),
                signature=request.headers.get("X-Slack-Signature", ""),
            )
        except (UnicodeDecodeError, ValueError, TypeError):
            valid = False
        if not valid:
            if _is_ssl_check(raw, request.content_type):  # Slack's certificate check comes unsigned
                return web.Response(status=200, text="")
            return web.json_response({"error": "invalid request"}, status=401)
        if _is_message_event(_json(body, request.content_type)):
            with self._admission.arrival() as admitted:
                if not admitted:
                    return web.json_response({"error": "busy; please send again later"}, status=503)
                return await self._dispatch(body, request)
        return await self._dispatch(body, request)

    async def _dispatch(self, body: str, request: web.Request) -> web.StreamResponse:
        """A verified request, handed to Bolt."""
        try:
            bolt_request = AsyncBoltRequest(
                body=_form_safe(body, request.content_type),
                query=request.query_string,
                headers={name: request.headers.getall(name) for name in request.headers},
            )
        except ValueError:  # signed by Slack, yet not what it says it is
            log.warning("Slack: a signed request whose body cannot be read")
            return web.json_response({"error": "unreadable body"}, status=400)
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))

    async def start(self) -> None:
        # One HTTP session for every Web API call (slack_sdk otherwise opens a session and a connection
        # per call, which cost more CPU than the call). A shared session times calls out by its own
        # limit, so it takes the client's.
        self.client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.client.timeout))
        try:
            await self._start()
        except BaseException:
            await self.stop()  # nothing half-started is left behind: the session, the lag probe
            raise

    async def _start(self) -> None:
        if self.installations is not None:
            await self.installations.create_tables()
            await self._states.create_tables()
        if self._settings.agents and self._settings.bot_token:
            await self._desk.register_agents(
                [await self._person(self.client, u) for u in self._settings.agents]
            )
        if self._settings.socket_mode:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            assert self._settings.app_token is not None
            self._socket = AsyncSocketModeHandler(self.app, self._settings.app_token.get_secret_value())
            await self._socket.connect_async()
            log.info("Slack: connected in Socket Mode")
            return
        self._runner = web.AppRunner(self.web_app())
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self._settings.http_host, self._settings.http_port, backlog=LISTEN_BACKLOG
        )
        await site.start()
        self._watching = asyncio.create_task(self._admission.watch())
        self.port = self._runner.addresses[0][1]
        log.info("Slack: listening on %s:%s", self._settings.http_host, self.port)

    async def stop(self) -> None:
        if self._tasks:  # deliveries under way finish; what does not, the outbox sends later
            await asyncio.wait(set(self._tasks), timeout=STOP_GRACE)
        if self._socket is not None:
            await self._socket.close_async()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.wait({self._watching})
            self._watching = None
        # A call after this (a late listener) opens a session of its own rather than meet a closed one.
        session, self.client.session = self.client.session, None
        if session is not None:
            await session.close()

    # --- listeners ------------------------------------------------------------------------------

    def _register(self) -> None:
        """Messages are recorded before Slack hears the acknowledgement, so an acknowledged message is
        never lost, and what the desk says goes out after it. Everything else is acknowledged at once
        and worked in a lazy listener (the app runs with process_before_response)."""
        app = self.app
        app.event("message")(self._on_message)
        app.event("app_home_opened")(ack=_acknowledged, lazy=[self._on_home])
        app.command("/ticket")(ack=_acknowledge, lazy=[self._on_ticket_command])
        app.command("/request")(ack=_acknowledge, lazy=[self._on_request_command])
        app.shortcut(blocks.REQUEST_SHORTCUT)(ack=_acknowledge, lazy=[self._on_request_shortcut])
        app.view(blocks.REQUEST_CALLBACK)(ack=_check_request_form, lazy=[self._on_request_form])
        app.action(blocks.CLAIM_ACTION)(ack=_acknowledge, lazy=[self._on_button])
        app.action(blocks.RESOLVE_ACTION)(ack=_acknowledge, lazy=[self._on_button])
        app.action(blocks.SURVEY_ACTION)(ack=_acknowledge, lazy=[self._on_rating])

    async def _stored(self, call: Callable[..., Awaitable[list[Outgoing]]], *args: Any) -> list[Outgoing]:
        """A message event's desk call, in its turn (`Admission`): the lookups before it (users.info)
        wait on Slack, not on the bot, so they do not hold a turn."""
        async with self._admission.turn():
            return await call(*args)

    def _later(self, work: Awaitable[None]) -> None:
        """Deliver after the acknowledgement: a task the adapter keeps until it ends (and awaits on stop)."""

        async def run() -> None:
            try:
                async with self._delivering:
                    await work
            except Exception:
                log.exception("Slack: delivery after an acknowledgement failed")

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_message(self, event: dict[str, Any], client: AsyncWebClient, context: Any) -> None:
        """Messages in support channels, DMs and the agents' channel (its threads hold notes)."""
        subtype = event.get("subtype")
        team = workspace_key(context)
        if subtype == "message_changed":
            await self._on_edit(event, client)
            return
        if subtype == "message_deleted":
            previous = event.get("previous_message") or {}
            key = _message_key(event["channel"], previous.get("ts") or event.get("deleted_ts", ""))
            self._later(self.deliver(await self._stored(self._desk.message_deleted, PLATFORM, key), client))
            return
        user = event.get("user")
        if (
            subtype not in ACCEPTED_SUBTYPES
            or event.get("bot_id")
            or not user
            or user == context.get("bot_user_id")
        ):
            return
        channel, ts, text = event["channel"], event["ts"], _unescape(event.get("text") or "")
        text = text or _files_note(event)
        key = _message_key(channel, ts)
        if channel == self._agent_channel:
            if event.get("thread_ts"):
                actor = await self._actor(client, user)
                thread = Conversation(PLATFORM, channel, event["thread_ts"], team)
                self._later(
                    self.deliver(
                        await self._stored(self._desk.note_from_staff_thread, actor, thread, text, key),
                        client,
                    )
                )
            return
        if event.get("channel_type") == "im":
            conversation = Conversation(PLATFORM, channel, None, team)
        elif channel in self._settings.support_channels:
            conversation = Conversation(PLATFORM, channel, event.get("thread_ts") or ts, team)
        else:
            return  # a channel the desk does not serve: no lookups, no work
        actor = await self._actor(client, user)
        message = IncomingMessage(actor, text, conversation, key)
        self._later(self.deliver(await self._stored(self._desk.receive, message), client))

    async def _on_edit(self, event: dict[str, Any], client: AsyncWebClient) -> None:
        edited = event.get("message") or {}
        if edited.get("bot_id") or edited.get("subtype") == "bot_message":
            return
        key = _message_key(event["channel"], edited.get("ts", ""))
        said = await self._stored(
            self._desk.message_edited, PLATFORM, key, _unescape(edited.get("text") or "")
        )
        self._later(self.deliver(said, client))

    async def _on_ticket_command(
        self, command: dict[str, Any], client: AsyncWebClient, respond: Respond, context: Any
    ) -> None:
        actor = await self._actor(client, command["user_id"])
        where = Conversation(PLATFORM, command["channel_id"], None, workspace_key(context))
        said = await self._desk.command(actor, f"/ticket {_unescape(command.get('text') or '')}", where)
        await self.deliver(said, client, respond=respond, actor=actor)

    async def _on_request_command(
        self, command: dict[str, Any], client: AsyncWebClient, respond: Respond, context: Any
    ) -> None:
        text = _unescape(command.get("text") or "").strip()
        if not text:
            await client.views_open(
                trigger_id=command["trigger_id"],
                view=blocks.request_modal(self._desk.policy.requests.categories),
            )
            return
        await self._raise_request(client, command["user_id"], workspace_key(context), Request(text), respond)

    async def _on_request_shortcut(self, shortcut: dict[str, Any], client: AsyncWebClient) -> None:
        await client.views_open(
            trigger_id=shortcut["trigger_id"],
            view=blocks.request_modal(self._desk.policy.requests.categories),
        )

    async def _on_request_form(
        self, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient, context: Any
    ) -> None:
        values = view["state"]["values"]
        description = (values["description"]["value"].get("value") or "").strip()
        if not description:
            return  # the acknowledgement asked for one
        category = (values["category"]["value"].get("selected_option") or {}).get("value")
        urgency = (values["urgency"]["value"].get("selected_option") or {}).get("value") or "normal"
        request = Request(description, category=category, priority=Priority(urgency))
        await self._raise_request(client, body["user"]["id"], workspace_key(context), request, respond=None)

    async def _raise_request(
        self, client: AsyncWebClient, user: str, team: str | None, request: Request, respond: Respond | None
    ) -> None:
        """Requests are answered in the colleague's DM with the bot: internal matters stay private."""
        actor = await self._actor(client, user)
        opened = await client.conversations_open(users=user)
        where = Conversation(PLATFORM, opened["channel"]["id"], None, team)
        await self.deliver(
            await self._desk.execute(actor, request, where), client, respond=respond, actor=actor
        )

    async def _on_button(
        self, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, respond: Respond
    ) -> None:
        actor = await self._actor(client, body["user"]["id"])
        number = int(action["value"])
        command = Claim(number) if action["action_id"] == blocks.CLAIM_ACTION else Resolve(number)
        answer = respond if body.get("response_url") else None  # the App Home has none: answer by DM
        await self.deliver(await self._desk.execute(actor, command), client, respond=answer, actor=actor)

    async def _on_rating(
        self, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, respond: Respond
    ) -> None:
        """A rating button on a survey. The desk decides whether it counts (only the ticket's customer,
        only while the survey is open); a refusal is answered privately to whoever clicked. A rating
        taken replaces the buttons with the choice, so nobody wonders whether it was."""
        choice = blocks.survey_choice(action.get("value"))
        if choice is None:
            log.warning("Slack: a survey button with an unexpected value: %r", action.get("value"))
            return
        number, rating = choice
        actor = await self._actor(client, body["user"]["id"])
        said = await self._desk.rate(actor, number, rating)
        if not any(is_private_answer(m, actor.person) for m in said):
            await self._safely(self._show_rating(client, body, rating))
        answer = respond if body.get("response_url") else None
        await self.deliver(said, client, respond=answer, actor=actor)

    async def _show_rating(self, client: AsyncWebClient, body: dict[str, Any], rating: int) -> None:
        """The survey message, rated: its words stay, the buttons give way to the rating chosen."""
        container, shown = body.get("container") or {}, body.get("message") or {}
        channel, ts = container.get("channel_id"), container.get("message_ts")
        if container.get("type") != "message" or not channel or not ts:
            return
        text, rated = blocks.survey_rated(shown.get("blocks") or [], shown.get("text") or "", rating)
        await client.chat_update(channel=channel, ts=ts, text=text, blocks=rated)

    async def _on_home(self, event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab") not in (None, "home"):
            return
        actor = await self._actor(client, event["user"])
        view = blocks.home_view(await self._desk.overview(actor))
        await client.views_publish(user_id=event["user"], view=view)

    # --- people ---------------------------------------------------------------------------------

    async def _actor(self, client: AsyncWebClient, user: str) -> Actor:
        client = self._shared(client)
        person = await self._person(client, user)
        role = Role.AGENT if await self._is_agent(client, user) else Role.CUSTOMER
        return Actor(person, role)

    async def _person(self, client: AsyncWebClient, user: str) -> Person:
        """Who a user is, as users.info says: their name, their timezone, and their email
        (users:read.email), which Slack has confirmed and the core may use to recognise the same customer
        elsewhere."""
        if user not in self._people:
            name: str | None = None
            email: str | None = None
            zone: str | None = None
            try:
                profile = (await client.users_info(user=user))["user"]
                details = profile.get("profile") or {}
                name = details.get("display_name") or details.get("real_name") or profile.get("name")
                email = _verified_email(profile)
                zone = profile.get("tz") or None
            except SlackApiError as error:
                log.warning("Slack: users.info failed for %s: %s", user, _code(error))
            self._people[user] = (name or user, email, zone)
        name, email, zone = self._people[user]
        return Person(PLATFORM, user, name, email=email, timezone=zone)

    async def _is_agent(self, client: AsyncWebClient, user: str) -> bool:
        """SLACK_AGENTS when set; otherwise whoever is a member of the agents' channel."""
        if self._settings.agents:
            return user in self._settings.agents
        if self._members is None or time.monotonic() - self._members[0] > MEMBERS_TTL:
            members: frozenset[str] = frozenset()
            home = await self._client_for(self._settings.agent_team) if self.installations else client
            try:
                async for page in await home.conversations_members(channel=self._agent_channel, limit=1000):
                    members |= frozenset(page.get("members", []))
            except SlackApiError as error:
                log.warning("Slack: cannot list the agents' channel: %s", _code(error))
                return False
            self._members = (time.monotonic(), members)
        return user in self._members[1]

    # --- delivery -------------------------------------------------------------------------------

    async def deliver(
        self,
        messages: list[Outgoing],
        client: AsyncWebClient | None = None,
        respond: Respond | None = None,
        actor: Actor | None = None,
    ) -> None:
        """Post what the desk said. Answers meant only for the person who acted go back ephemerally
        through the interaction's response_url, which takes five messages at most: longer answers go
        to the person's DM with the bot, with a pointer left where they asked. Files cannot be
        ephemeral: an ephemeral answer's files go to the person's DM, and a line says so."""
        private = [m for m in messages if actor is not None and is_private_answer(m, actor.person)]
        pieces = sum(len(blocks.chunks(m.text)) + bool(_attachments(m)) for m in private)
        ephemeral = respond is not None and 0 < pieces <= RESPONSES_PER_URL
        if respond is not None and pieces > RESPONSES_PER_URL:
            await self._safely(respond(text=MOVED_TO_DM, response_type="ephemeral"))
        sent: list[Outgoing] = []
        failed: list[Undelivered] = []
        for message in messages:
            if ephemeral and message in private:
                assert respond is not None
                for piece in blocks.chunks(message.text):
                    await self._safely(respond(text=piece, response_type="ephemeral", replace_original=False))
                files = _attachments(message)
                if files:
                    assert actor is not None
                    home = await self._client_of(message, client)
                    uploaded = await self._upload(home, files, user=actor.person.user_id)
                    pointer = (FILES_IN_DM if uploaded else FILES_FAILED).format(files=blocks.names(files))
                    await self._safely(
                        respond(text=pointer, response_type="ephemeral", replace_original=False)
                    )
                continue
            try:
                await self._post(message, await self._client_of(message, client))
            except SlackApiError as error:
                code = _code(error)
                log.error("Slack: could not deliver a message: %s", code)
                failed.append(Undelivered(message, code, final=code in FINAL_ERRORS))
            except Exception as error:
                log.exception("Slack: could not deliver a message")
                failed.append(Undelivered(message, type(error).__name__))
            else:
                sent.append(message)
        notices = await self._desk.settle(sent, failed)
        if notices:
            await self.deliver(notices, client)

    async def _safely(self, call: Awaitable[Any]) -> None:
        """One failed message (after the retries) is logged and never stops the ones after it."""
        try:
            await call
        except SlackApiError as error:
            log.error("Slack: could not deliver a message: %s", _code(error))
        except Exception:
            log.exception("Slack: could not deliver a message")

    async def _post(self, message: Outgoing, client: AsyncWebClient) -> None:
        """Post a message where it belongs. A resend first asks Slack which of its pieces an earlier try
        posted (by their metadata), and posts only the others."""
        audience = message.audience
        if isinstance(message, CustomerMessage):
            where = message.audience.conversation
            user = message.audience.person.user_id
            channel = where.channel_id if where else user
            in_thread = where.thread_id if where else None
            landed: dict[int, str] = {}
            if message.resent:  # a DM is looked up by its channel, not the user id it was posted to
                landed = await self._landed(
                    client, where.channel_id if where else await self._dm(client, user), in_thread, message
                )
            if message.survey is not None:
                await self._post_survey(client, channel, in_thread, message, message.survey, landed)
                return
            await self._post_text(client, channel, message.text, in_thread, message, landed)
            return
        assert isinstance(message, StaffMessage)
        if isinstance(audience, ToAgent):
            user = audience.person.user_id
            landed = (
                await self._landed(client, await self._dm(client, user), None, message)
                if message.resent
                else {}
            )
            if await self._post_text(client, user, message.text, None, message, landed):
                await self._post_files(client, message.attachments, user, None, user=user)
            return
        assert isinstance(audience, ToAgents)
        channel = self._agent_channel
        if message.kind is StaffKind.CARD and message.card is not None:
            async with self._card_lock(message.card.number):
                landed = await self._landed(client, channel, None, message)
                card_ts = landed.get(0)
                if card_ts is None:
                    posted = await client.chat_postMessage(
                        channel=channel,
                        text=message.text,
                        blocks=blocks.card_blocks(message.card, message.text),
                        metadata=_mark(message, 0),
                    )
                    card_ts = str(posted["ts"])
                await self._desk.attach_card(message.card.number, PLATFORM, MessageRef(channel, card_ts))
            if not landed:
                await self._post_files(client, message.attachments, channel, card_ts)
            return
        thread = audience.staff_thread
        if thread is None and audience.ticket_number is not None:
            async with self._card_lock(audience.ticket_number):  # a card being posted right now
                thread = await self._desk.card_of(audience.ticket_number, PLATFORM)
        thread_ts = None
        if thread is not None:
            channel, thread_ts = thread.channel_id, thread.message_id
        landed = await self._landed(client, channel, thread_ts, message)
        if await self._post_text(client, channel, message.text, thread_ts, message, landed):
            await self._post_files(client, message.attachments, channel, thread_ts)

    def _card_lock(self, ticket_number: int) -> asyncio.Lock:
        return self._card_locks.setdefault(ticket_number, asyncio.Lock())

    async def _dm(self, client: AsyncWebClient, user: str) -> str:
        """The id of a user's DM with the bot (where a post to their user id lands)."""
        opened = await client.conversations_open(users=user)
        return str(opened["channel"]["id"])

    async def _post_text(
        self,
        client: AsyncWebClient,
        channel: str,
        text: str,
        thread: str | None,
        message: Outgoing | None = None,
        landed: dict[int, str] | None = None,
    ) -> bool:
        """Post a text in the pieces Slack takes, but those an earlier try posted; whether any was left."""
        pieces = [(n, piece) for n, piece in enumerate(blocks.chunks(text)) if n not in (landed or {})]
        for number, piece in pieces:
            metadata = _mark(message, number) if message is not None else None
            await client.chat_postMessage(channel=channel, text=piece, thread_ts=thread, metadata=metadata)
        return bool(pieces)

    async def _post_survey(
        self,
        client: AsyncWebClient,
        channel: str,
        thread: str | None,
        message: Outgoing,
        survey: SurveyPrompt,
        landed: dict[int, str],
    ) -> None:
        """A survey: its text (the notification and fallback), with rating buttons on its last piece."""
        pieces = blocks.chunks(message.text) or [""]
        for number, piece in enumerate(pieces):
            if number in landed:
                continue
            buttons = blocks.survey_blocks(piece, survey) if number == len(pieces) - 1 else None
            await client.chat_postMessage(
                channel=channel, text=piece, thread_ts=thread, blocks=buttons, metadata=_mark(message, number)
            )

    async def _landed(
        self, client: AsyncWebClient, channel: str, thread: str | None, message: Outgoing
    ) -> dict[int, str]:
        """For a resend: the pieces of this delivery an earlier try posted before its process died (our
        posts carry the delivery's number and the piece's in their metadata), by piece, with their ts,
        so nothing is posted twice. A message for a ticket's staff thread is looked for at the channel's
        top level too (its card may not have existed at the first try). When Slack cannot tell us,
        nothing: it is posted, since a message twice beats a message lost."""
        if not message.resent or message.delivery is None:
            return {}
        found: dict[int, str] = {}
        try:
            for place in [thread, None] if thread is not None else [None]:
                found |= await self._marked(client, channel, place, message.delivery)
        except SlackApiError as error:
            log.warning("Slack: cannot check for an earlier try of a message: %s", _code(error))
        return found

    async def _marked(
        self, client: AsyncWebClient, channel: str, thread: str | None, delivery: int
    ) -> dict[int, str]:
        """Our posts of `delivery` in a channel (newest first) or a thread, paging back LOOKBACK_PAGES."""
        found: dict[int, str] = {}
        cursor: str | None = None
        for _ in range(LOOKBACK_PAGES):
            if thread is not None:
                page = await client.conversations_replies(
                    channel=channel, ts=thread, include_all_metadata=True, limit=LOOKBACK, cursor=cursor
                )
            else:
                page = await client.conversations_history(
                    channel=channel, include_all_metadata=True, limit=LOOKBACK, cursor=cursor
                )
            for posted in page.get("messages") or []:
                mark = _delivery_of(posted)
                if mark is not None and mark[0] == delivery and posted.get("ts"):
                    found[mark[1]] = str(posted["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not page.get("has_more") or not cursor:
                break
        return found

    async def _post_files(
        self,
        client: AsyncWebClient,
        files: tuple[Attachment, ...],
        channel: str,
        thread: str | None,
        user: str | None = None,
    ) -> None:
        """Share a message's files where its text went (a user's DM when `user` is given); when that
        fails, a line there says so, so nobody waits for a file that will not come."""
        if not files:
            return
        if not await self._upload(client, files, channel=None if user else channel, thread=thread, user=user):
            await self._post_text(client, channel, FILES_FAILED.format(files=blocks.names(files)), thread)

    async def _upload(
        self,
        client: AsyncWebClient,
        files: tuple[Attachment, ...],
        channel: str | None = None,
        thread: str | None = None,
        user: str | None = None,
    ) -> bool:
        """Upload files (files.getUploadURLExternal, a POST of each file's bytes to its upload URL,
        files.completeUploadExternal) into a channel, or into `user`'s DM with the bot: Slack shares
        files in conversations, so the DM is opened for its id. False (and logged) when it failed."""
        try:
            if channel is None:
                opened = await client.conversations_open(users=user)
                channel = opened["channel"]["id"]
            await client.files_upload_v2(
                channel=channel,
                thread_ts=thread,
                file_uploads=[
                    {"content": f.content, "filename": f.filename, "title": f.filename} for f in files
                ],
            )
        except SlackApiError as error:
            log.error("Slack: could not upload %s: %s", blocks.names(files), _code(error))
            return False
        except Exception:
            log.exception("Slack: could not upload %s", blocks.names(files))
            return False
        return True

    async def _client_of(self, message: Outgoing, client: AsyncWebClient | None) -> AsyncWebClient:
        """Staff messages go out with the agents' workspace token; customer messages with their own
        workspace's (the request's client, when we are answering one)."""
        if isinstance(message, StaffMessage) and self.installations is not None:
            return await self._client_for(self._settings.agent_team)
        return self._shared(client) if client else await self._client_for(_workspace(message))

    def _shared(self, client: AsyncWebClient) -> AsyncWebClient:
        """A listener's client (Bolt makes one per request) on the adapter's one HTTP session."""
        if client.session is not None or self.client.session is None:
            return client
        if client.token == self.client.token:
            return self.client
        return self._client_with(client.token)

    def _client_with(self, token: str | None) -> AsyncWebClient:
        """A Web API client for a token, on the adapter's one HTTP session (once started)."""
        return AsyncWebClient(
            token=token,
            base_url=self._settings.api_url,
            retry_handlers=retry_handlers(),
            session=self.client.session,
        )

    async def _client_for(self, workspace: str | None) -> AsyncWebClient:
        """The bot token of the message's workspace: the one token, or the installation's (OAuth)."""
        if self.installations is None or workspace is None:
            return self.client
        enterprise, _, team = workspace.rpartition("/")
        bot = await self.installations.async_find_bot(
            enterprise_id=enterprise or None, team_id=team or None, is_enterprise_install=not team
        )
        if bot is None:
            log.warning("Slack: no installation for workspace %s", workspace)
            return self.client
        return self._client_with(bot.bot_token)


async def _acknowledge(ack: Any) -> None:
    await ack()


async def _acknowledged() -> None:
    """Events are acknowledged by Bolt itself."""


async def _check_request_form(ack: Any, view: dict[str, Any]) -> None:
    """A request form without a description is answered in the acknowledgement, as Slack shows it."""
    description = (view["state"]["values"]["description"]["value"].get("value") or "").strip()
    if not description:
        await ack(response_action="errors", errors={"description": "Please tell us what you need."})
        return
    await ack()


def workspace_key(context: Any) -> str | None:
    """Where a request came from, as the core stores it: `team`, or `enterprise/team` on Enterprise
    Grid (`enterprise/` for an org-wide install), so scheduled work can find the installation's token."""
    enterprise, team = context.get("enterprise_id"), context.get("team_id")
    if context.get("is_enterprise_install"):
        team = None
    if enterprise:
        return f"{enterprise}/{team or ''}"
    return team


def _workspace(message: Outgoing) -> str | None:
    audience = message.audience
    if isinstance(message, CustomerMessage):
        return message.audience.conversation.workspace_id if message.audience.conversation else None
    return getattr(audience, "workspace_id", None)


def _code(error: SlackApiError) -> str:
    """Slack's error code; a proxy's plain-text 5xx (after the client's retries) has none: its status."""
    data = error.response.data
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return f"http_{error.response.status_code}"


def _json(body: str, content_type: str) -> Any:
    """An Events API body, parsed (before Bolt does) to tell message events early; None otherwise."""
    if content_type != "application/json":
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _is_message_event(body: Any) -> bool:
    """An Events API message event: stored before it is acknowledged, so admitted in turn."""
    if not isinstance(body, dict) or body.get("type") != "event_callback":
        return False
    event = body.get("event")
    return isinstance(event, dict) and event.get("type") == "message"


def _is_ssl_check(raw: bytes, content_type: str) -> bool:
    """Slack's `ssl_check=1` POST, which only wants a 200 (and does nothing, whatever else it says)."""
    if content_type != "application/x-www-form-urlencoded":
        return False
    fields = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return ("ssl_check", "1") in fields


def _form_safe(body: str, content_type: str) -> str:
    """A form body as Bolt reads it right. Bolt takes any form body containing the word "payload" for
    an interactivity payload (`/ticket note #1 the payload was rejected` would arrive empty), so in a
    form without a `payload` field the word is percent-encoded: the fields decode to the same text."""
    if content_type != "application/x-www-form-urlencoded" or "payload" not in body:
        return body
    if any(key == "payload" for key, _ in parse_qsl(body, keep_blank_values=True)):
        return body
    return body.replace("payload", "%70ayload")


def _mark(message: Outgoing, piece: int) -> dict[str, Any] | None:
    """Slack message metadata naming the outbox delivery a post belongs to, and which piece it is."""
    if message.delivery is None:
        return None
    return {"event_type": DELIVERY_EVENT, "event_payload": {"delivery": message.delivery, "piece": piece}}


def _delivery_of(posted: dict[str, Any]) -> tuple[int, int] | None:
    """The (delivery, piece) a post of ours carries in its metadata, if any."""
    metadata = posted.get("metadata") or {}
    if metadata.get("event_type") != DELIVERY_EVENT:
        return None
    payload = metadata.get("event_payload") or {}
    delivery, piece = payload.get("delivery"), payload.get("piece", 0)
    return (delivery, piece) if isinstance(delivery, int) and isinstance(piece, int) else None


def _attachments(message: Outgoing) -> tuple[Attachment, ...]:
    return message.attachments if isinstance(message, StaffMessage) else ()


def _verified_email(user: dict[str, Any]) -> str | None:
    """The profile's email (present with users:read.email): Slack confirms an account's email before
    it can sign in, so it is verified, unless Slack says otherwise. Bots have none that count."""
    email = ((user.get("profile") or {}).get("email") or "").strip()
    if not email or "@" not in email or user.get("is_bot") or user.get("is_email_confirmed") is False:
        return None
    return email


def _message_key(channel: str, ts: str) -> str:
    """A Slack message is identified by its channel and timestamp."""
    return f"{channel}:{ts}"


def _unescape(text: str) -> str:
    """Slack escapes &, < and > in message and command text; what people typed is stored as typed.
    Mentions and links (`<@U123>`, `<https://...>`) arrive unescaped and stay as they are."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _files_note(event: dict[str, Any]) -> str:
    names = [f.get("name") or f.get("title") or "a file" for f in event.get("files") or []]
    return f"(shared {', '.join(names)})" if names else ""


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})
