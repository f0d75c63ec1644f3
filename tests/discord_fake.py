"""A local fake of Discord for one guild: its REST API as a real aiohttp server on 127.0.0.1 that answers
in Discord's documented shapes and records every request, plus the gateway dispatches Discord would send,
built from the same state. Nothing here knows Relaydesk; it only knows Discord.

REST: point discord.py at `fake.api_base` (`discord.http.Route.BASE`); every request is recorded as a
`Call` (method, path after `/api/v10`, query, JSON body or a multipart's `payload_json`, headers, the
status answered and the answer). A message with files comes as multipart/form-data, `payload_json` and
one part `files[n]` per file; the files are kept in the call (`Call.files`, with their bytes) and appear
in the message's `attachments`, as Discord shows them. Bot routes need `Authorization: Bot <token>`;
interaction callbacks and webhook follow-ups are authorised by the interaction's token in the path, as on
Discord. The fake checks what Discord checks where a mistake would otherwise go unnoticed: message
content of at most 2,000 characters; at most 10 embeds of at most 6,000 characters in all (title 256,
description 4,096); at most 5 rows of 5 components, custom_ids of at most 100 characters; thread names of
1-100 characters; one initial response per interaction (then 40060), follow-ups only once it was
acknowledged (after a component's deferred update, type 6, or update, type 7, PATCH @original edits the
component's own message in place); at most 10 files per message, each named in `payload_json.attachments`
and within `attachment_size_limit` (10 MiB, else 413 with code 40005), as the interaction payloads
announce; a modal of at most 5 components with a title of at most 45 characters; synced slash commands
with valid lower case names, descriptions of 1-100 characters, at most 25 options (required before
optional) and 25 choices each, and at most 4,000 characters of names, descriptions and choices in all.
`fail_next()` answers the next requests to a route with an error: a JSON error body with a code (403 with
code 50007 for a user who takes no DMs, say), or 429 with `retry_after` and the `Via` header discord.py
looks for before it waits and retries.

Gateway: `ready()`, `guild_create()`, `message_create()`, `message_update()`, `message_delete()`,
`command()`, `autocomplete()`, `component()` and `modal_submit()` build dispatch payloads (the `d` of a
gateway event) in Discord's shapes. Consequences of REST calls that Discord announces over the gateway
(THREAD_CREATE for a new thread, MESSAGE_CREATE for the bot's own channel messages) are handed to
`on_dispatch(event_name, payload)`, when set, before the REST answer goes back.

As on Discord without the privileged GUILD_MEMBERS intent, GUILD_CREATE carries only the bot's own member;
messages in a guild carry their author's `member` (roles included), interactions carry `member` (or
`user` in a DM), and anyone else is looked up with GET /guilds/{guild}/members/{user}.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

DISCORD_EPOCH_MS = 1_420_070_400_000
APP_ID = 1_187_423_958_112_345_601
BOT_USER_ID = APP_ID  # a bot user has its application's id
GUILD_ID = 1_187_500_000_000_000_100
TOKEN = f"{base64.b64encode(str(APP_ID).encode()).decode().rstrip('=')}.GhIjKl.fake-bot-token-for-tests"

EPHEMERAL = 1 << 6
LOADING = 1 << 7
CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TOTAL_MAX = 6000
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
ROWS_MAX = 5
ROW_COMPONENTS_MAX = 5
CUSTOM_ID_MAX = 100
BUTTON_LABEL_MAX = 80
THREAD_NAME_MAX = 100
MODAL_TITLE_MAX = 45
MODAL_COMPONENTS_MAX = 5
CHOICES_MAX = 25
CHOICE_NAME_MAX = 100
DESCRIPTION_MAX = 100
OPTIONS_MAX = 25
COMMAND_CHARACTERS_MAX = 4000
FILES_MAX = 10
ATTACHMENT_SIZE_LIMIT = 10_485_760

TEXT, DM, PUBLIC_THREAD, PRIVATE_THREAD = 0, 1, 11, 12
THREAD_TYPES = (PUBLIC_THREAD, PRIVATE_THREAD)
RESPONSE_TYPES = {1, 4, 5, 6, 7, 8, 9}
# Messages a channel type takes from the bot
MESSAGE_RESOURCES = {4, 5, 7}

OPTION_SUBCOMMAND, OPTION_SUBCOMMAND_GROUP = 1, 2
OPTION_STRING, OPTION_INTEGER, OPTION_USER = 3, 4, 6


@dataclass(frozen=True)
class UserOption:
    """A USER option's value in a slash command: Discord sends the id and the user in `resolved`."""

    id: int


@dataclass(frozen=True)
class UploadedFile:
    """One `files[n]` part of a multipart request."""

    field: str  # "files[0]"
    filename: str
    content_type: str
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")


@dataclass(frozen=True)
class Call:
    """One REST request as Discord received it."""

    method: str
    path: str  # after /api/v10, e.g. /channels/123/messages
    query: dict[str, str]
    body: Any  # the JSON body (for multipart: its payload_json), or None
    headers: dict[str, str]
    status: int
    answer: Any = None
    index: int = 0
    files: tuple[UploadedFile, ...] = ()

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def json(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}

    @property
    def content(self) -> str:
        """A message's content (or an interaction callback's message content)."""
        body = self.json
        if "type" in body and "data" in body and self.path.endswith("/callback"):
            return str((body.get("data") or {}).get("content") or "")
        return str(body.get("content") or "")

    @property
    def flags(self) -> int:
        body = self.json
        if self.path.endswith("/callback"):
            return int((body.get("data") or {}).get("flags") or 0)
        return int(body.get("flags") or 0)

    @property
    def channel_id(self) -> int | None:
        match = re.match(r"/channels/(\d+)", self.path)
        return int(match.group(1)) if match else None


@dataclass
class Interaction:
    id: int
    token: str
    type: int
    user_id: int
    channel_id: int
    acknowledged: bool = False
    response_type: int | None = None
    message_id: int | None = None  # a component's message: what @original is after an update (6, 7)


@dataclass
class _Failure:
    method: str
    path: re.Pattern[str]
    status: int
    body: dict[str, Any]
    remaining: int
    retry_after: float | None


class _Refused(Exception):
    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"code": code, "message": message}
        if errors:
            self.body["errors"] = errors


@dataclass
class FakeDiscord:
    """Discord's REST API and gateway payloads for one guild (`GUILD_ID`) with the bot `BOT_USER_ID`."""

    token: str = TOKEN
    calls: list[Call] = field(default_factory=list)
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    members: dict[int, dict[str, Any]] = field(default_factory=dict)  # user id → member (no "user")
    roles: dict[int, dict[str, Any]] = field(default_factory=dict)
    channels: dict[int, dict[str, Any]] = field(default_factory=dict)
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    thread_members: dict[int, set[int]] = field(default_factory=dict)
    interactions: dict[int, Interaction] = field(default_factory=dict)
    commands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "global"/guild id → synced
    on_dispatch: Callable[[str, dict[str, Any]], None] | None = None
    dispatched: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    dispatch_errors: list[str] = field(default_factory=list)
    attachment_size_limit: int = ATTACHMENT_SIZE_LIMIT
    url: str = ""

    def __post_init__(self) -> None:
        self._last_snowflake = 0
        self._failures: list[_Failure] = []
        self._runner: web.AppRunner | None = None
        self._command_ids: dict[str, int] = {}
        self._dms: dict[int, int] = {}  # user id → DM channel id
        self._index = itertools.count()
        self._files: tuple[UploadedFile, ...] = ()  # the files of the request being handled
        self.add_user(BOT_USER_ID, "relaydesk", "Relaydesk", bot=True)
        self.members[BOT_USER_ID] = self._member_record([])
        self.roles[GUILD_ID] = _role(GUILD_ID, "@everyone", 0)
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Any], bool]] = [
            (m, re.compile(p), h, auth)
            for m, p, h, auth in [
                ("GET", r"/users/@me", self._get_me, True),
                ("GET", r"/oauth2/applications/@me", self._get_application, True),
                ("GET", r"/users/(?P<user>\d+)", self._get_user, True),
                ("POST", r"/users/@me/channels", self._open_dm, True),
                ("GET", r"/channels/(?P<channel>\d+)", self._get_channel, True),
                ("POST", r"/channels/(?P<channel>\d+)/messages", self._post_message, True),
                ("POST", r"/channels/(?P<channel>\d+)/threads", self._start_thread, True),
                (
                    "POST",
                    r"/channels/(?P<channel>\d+)/messages/(?P<message>\d+)/threads",
                    self._start_thread_from_message,
                    True,
                ),
                ("PUT", r"/channels/(?P<channel>\d+)/thread-members/(?P<user>\d+)", self._add_member, True),
                ("GET", r"/guilds/(?P<guild>\d+)/members/(?P<user>\d+)", self._get_member, True),
                ("POST", r"/interactions/(?P<id>\d+)/(?P<token>[^/]+)/callback", self._callback, False),
                ("POST", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)", self._followup, False),
                (
                    "PATCH",
                    r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/@original",
                    self._edit_original,
                    False,
                ),
                ("PUT", r"/applications/(?P<app>\d+)/commands", self._sync_global, True),
                ("PUT", r"/applications/(?P<app>\d+)/guilds/(?P<guild>\d+)/commands", self._sync_guild, True),
            ]
        ]

    # --- set-up -----------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024**2)
        app.add_routes([web.route("*", "/api/v10/{tail:.*}", self._handle)])
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        """What discord.py's `Route.BASE` should be."""
        return f"{self.url}/api/v10"

    def snowflake(self) -> int:
        """A new id, as Discord makes them: milliseconds since 2015 in the top bits (so discord.py reads
        the right creation time from it, which decides whether an interaction has expired)."""
        now = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last_snowflake = max(now, self._last_snowflake + 1)
        return self._last_snowflake

    def add_user(
        self, user_id: int, username: str, global_name: str | None = None, bot: bool = False
    ) -> None:
        self.users[user_id] = {
            "id": str(user_id),
            "username": username,
            "discriminator": "0",
            "global_name": global_name,
            "avatar": None,
            "bot": bot,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
        }

    def add_member(self, user_id: int, roles: Iterable[int] = (), nick: str | None = None) -> None:
        """Make a known user a member of the guild."""
        self.members[user_id] = self._member_record(roles, nick)

    def add_role(self, role_id: int, name: str, position: int = 1) -> None:
        self.roles[role_id] = _role(role_id, name, position)

    def add_text_channel(self, channel_id: int, name: str) -> None:
        self.channels[channel_id] = {
            "id": str(channel_id),
            "type": TEXT,
            "guild_id": str(GUILD_ID),
            "name": name,
            "position": len(self.channels),
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "default_auto_archive_duration": 1440,
            "flags": 0,
        }

    def dm_channel(self, user_id: int) -> int:
        """The DM channel between the bot and a user (Discord keeps one per pair)."""
        if user_id not in self._dms:
            channel_id = self.snowflake()
            self._dms[user_id] = channel_id
            self.channels[channel_id] = {
                "id": str(channel_id),
                "type": DM,
                "last_message_id": None,
                "flags": 0,
                "recipients": [self.users[user_id]],
            }
        return self._dms[user_id]

    def fail_next(
        self,
        method: str,
        path: str,
        status: int,
        *,
        code: int = 0,
        message: str = "",
        times: int = 1,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next `times` requests whose path fully matches the regular expression `path` with
        `status`: 429 as a rate limit (`retry_after` seconds), anything else as Discord's JSON error."""
        if status == 429:
            body: dict[str, Any] = {
                "message": "You are being rate limited.",
                "retry_after": retry_after if retry_after is not None else 0.1,
                "global": False,
            }
        else:
            body = {"code": code, "message": message or f"{status}: error"}
        self._failures.append(_Failure(method, re.compile(path), status, body, times, retry_after))

    # --- reading what happened --------------------------------------------------------------------

    def calls_to(self, method: str, path: str, *, ok: bool | None = True) -> list[Call]:
        """Requests whose path fully matches the regular expression `path` (successful ones by default)."""
        pattern = re.compile(path)
        return [
            c
            for c in list(self.calls)
            if c.method == method and pattern.fullmatch(c.path) and (ok is None or c.ok == ok)
        ]

    def posts(self, channel_id: int | None = None) -> list[Call]:
        """Messages the bot posted to channels (to `channel_id`, when given)."""
        where = str(channel_id) if channel_id is not None else r"\d+"
        return self.calls_to("POST", rf"/channels/{where}/messages")

    def texts(self, channel_id: int | None = None) -> list[str]:
        return [c.content for c in self.posts(channel_id)]

    def threads_started(self, parent_id: int | None = None) -> list[Call]:
        """Threads started without a message (POST /channels/{parent}/threads)."""
        where = str(parent_id) if parent_id is not None else r"\d+"
        return self.calls_to("POST", rf"/channels/{where}/threads")

    def threads_from_messages(self, channel_id: int | None = None) -> list[Call]:
        where = str(channel_id) if channel_id is not None else r"\d+"
        return self.calls_to("POST", rf"/channels/{where}/messages/\d+/threads")

    def callbacks(self, payload: dict[str, Any] | None = None) -> list[Call]:
        """Initial interaction responses (of the interaction whose gateway payload is given)."""
        if payload is None:
            return self.calls_to("POST", r"/interactions/\d+/[^/]+/callback", ok=None)
        return self.calls_to("POST", rf"/interactions/{payload['id']}/{re.escape(payload['token'])}/callback")

    def followups(self, payload: dict[str, Any] | None = None) -> list[Call]:
        """Follow-up messages (of the interaction whose gateway payload is given)."""
        token = re.escape(payload["token"]) if payload else "[^/]+"
        return self.calls_to("POST", rf"/webhooks/{APP_ID}/{token}")

    def edits(self, payload: dict[str, Any]) -> list[Call]:
        """Edits of the interaction's original response (PATCH @original), of the interaction whose
        gateway payload is given: after a component's update, edits of the component's message."""
        token = re.escape(payload["token"])
        return self.calls_to("PATCH", rf"/webhooks/{APP_ID}/{token}/messages/@original")

    def interaction_calls(self, payload: dict[str, Any]) -> list[Call]:
        """Everything sent in answer to one interaction: its callback, follow-ups and edits."""
        token = re.escape(payload["token"])
        return [c for c in list(self.calls) if re.search(rf"/{token}(/|$)", c.path)]

    def said(self) -> list[Call]:
        """Every message the bot sent anywhere: channel posts, follow-ups, edits and callback messages."""
        return [
            c
            for c in list(self.calls)
            if c.ok
            and (
                (c.method == "POST" and re.fullmatch(r"/channels/\d+/messages", c.path))
                or c.path.startswith(f"/webhooks/{APP_ID}/")
                or (c.path.endswith("/callback") and c.json.get("type") in (4, 7))
            )
        ]

    async def wait_for(
        self, check: Callable[[], Any], what: str = "the expected Discord calls", within: float = 10.0
    ) -> Any:
        """Poll until `check()` is truthy; fail with what was recorded when it never is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            result = check()
            if result:
                return result
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; Discord received:\n{self.transcript()}")
            await asyncio.sleep(0.01)

    def transcript(self) -> str:
        lines = [
            f"  {c.index:3d} {c.status} {c.method} {c.path} {json.dumps(c.body, ensure_ascii=False)[:300]}"
            for c in list(self.calls)
        ]
        return "\n".join(lines) or "  (nothing)"

    # --- gateway payloads -------------------------------------------------------------------------

    def ready(self) -> dict[str, Any]:
        """READY: the bot user, its application and the guild (unavailable until its GUILD_CREATE)."""
        return {
            "v": 10,
            "user": {**self.users[BOT_USER_ID], "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
            "session_id": "fake-session",
            "resume_gateway_url": "wss://gateway.invalid",
            "shard": [0, 1],
            "application": {"id": str(APP_ID), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }

    def guild_create(self) -> dict[str, Any]:
        """GUILD_CREATE: roles, channels, active threads, and (no members intent) the bot's own member."""
        threads = [
            self._thread_payload(c)
            for c in self.channels.values()
            if c["type"] in THREAD_TYPES and not c["thread_metadata"]["archived"]
        ]
        return {
            "id": str(GUILD_ID),
            "name": "Relaydesk Test",
            "icon": None,
            "owner_id": str(next(iter(self.users))),
            "unavailable": False,
            "large": False,
            "member_count": len(self.members),
            "joined_at": _now(),
            "roles": list(self.roles.values()),
            "emojis": [],
            "stickers": [],
            "features": [],
            "channels": [dict(c) for c in self.channels.values() if c["type"] == TEXT],
            "threads": threads,
            "members": [self._member_payload(BOT_USER_ID)],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "verification_level": 1,
            "default_message_notifications": 1,
            "explicit_content_filter": 2,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "system_channel_flags": 0,
        }

    def message_create(
        self,
        channel_id: int,
        user_id: int,
        content: str,
        *,
        type: int = 0,
        attachments: Iterable[str] = (),
    ) -> dict[str, Any]:
        """A person's message (MESSAGE_CREATE), stored so later events and requests can refer to it."""
        message = self._message(channel_id, self.users[user_id], content, type=type)
        message["attachments"] = [
            {
                "id": str(self.snowflake()),
                "filename": name,
                "size": 1024,
                "url": f"https://cdn.discordapp.invalid/{name}",
                "proxy_url": f"https://media.discordapp.invalid/{name}",
            }
            for name in attachments
        ]
        self.messages[int(message["id"])] = message
        return self._gateway_message(message)

    def message_update(self, message_id: int, content: str) -> dict[str, Any]:
        """MESSAGE_UPDATE for an edit: the whole message, as Discord now sends it, with the new text."""
        message = self.messages[message_id]
        message["content"] = content
        message["edited_timestamp"] = _now()
        message["mention_roles"] = _role_mentions(content)
        return self._gateway_message(message)

    def message_delete(self, message_id: int) -> dict[str, Any]:
        message = self.messages.pop(message_id)
        payload = {"id": str(message_id), "channel_id": message["channel_id"]}
        if self._guild_of(int(message["channel_id"])):
            payload["guild_id"] = str(GUILD_ID)
        return payload

    def command(
        self,
        user_id: int,
        channel_id: int,
        name: str,
        subcommand: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """An APPLICATION_COMMAND interaction (type 2): `/name [subcommand] option:value ...`."""
        return self._interaction(2, user_id, channel_id, self._command_data(name, subcommand, options))

    def autocomplete(
        self,
        user_id: int,
        channel_id: int,
        name: str,
        subcommand: str | None,
        focused: str,
        typed: str,
        focused_type: int = OPTION_STRING,
        **options: Any,
    ) -> dict[str, Any]:
        """An APPLICATION_COMMAND_AUTOCOMPLETE interaction (type 4): the focused option (of its declared
        type) holds what the user has typed so far, as a string."""
        data = self._command_data(name, subcommand, options)
        where = data["options"][0]["options"] if subcommand else data["options"]
        where.append({"type": focused_type, "name": focused, "value": typed, "focused": True})
        return self._interaction(4, user_id, channel_id, data)

    def component(self, user_id: int, message_id: int, custom_id: str) -> dict[str, Any]:
        """A MESSAGE_COMPONENT interaction (type 3): a button on a message the bot posted."""
        message = self.messages[message_id]
        found = [c for row in message.get("components", []) for c in row.get("components", [])]
        button = next((c for c in found if c.get("custom_id") == custom_id), None)
        if button is None:
            raise AssertionError(f"message {message_id} has no component {custom_id!r}: {found}")
        data = {"custom_id": custom_id, "component_type": button["type"]}
        channel_id = int(message["channel_id"])
        return self._interaction(3, user_id, channel_id, data, message=message)

    def modal_submit(self, user_id: int, shown: Call, values: dict[str, str]) -> dict[str, Any]:
        """A MODAL_SUBMIT interaction (type 5) for the modal the bot answered with (callback type 9),
        its inputs filled in by label: `values` maps a label (or its start) to what the user typed."""
        assert shown.json.get("type") == 9, f"not a modal: {shown.body}"
        modal = shown.json["data"]
        original = self.interactions[int(shown.path.split("/")[2])]
        unused = dict(values)

        def answer(component: dict[str, Any], label: str) -> dict[str, Any]:
            key = next((k for k in unused if label.startswith(k)), None)
            value = unused.pop(key) if key is not None else component.get("value") or ""
            return {
                "type": component["type"],
                "id": component.get("id", 0),
                "custom_id": component["custom_id"],
                "value": value,
            }

        components: list[dict[str, Any]] = []
        for item in modal["components"]:
            if item["type"] == 1:  # an action row holding a text input with its own label
                inner = item["components"][0]
                components.append({"type": 1, "components": [answer(inner, inner.get("label", ""))]})
            elif item["type"] == 18:  # a label wrapping a text input
                components.append({"type": 18, "component": answer(item["component"], item["label"])})
        assert not unused, f"the modal has no input labelled {sorted(unused)}: {modal}"
        data = {"custom_id": modal["custom_id"], "components": components}
        return self._interaction(5, user_id, original.channel_id, data)

    # --- the server -------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body, files = await _read_body(request)
        self._files = files  # from here to the answer nothing awaits: no other request interleaves
        headers = dict(request.headers)
        for method, pattern, handler, needs_auth in self._routes:
            match = pattern.fullmatch(path)
            if method != request.method or match is None:
                continue
            failure = self._next_failure(request.method, path)
            if failure is not None:
                return self._refuse(request, path, body, headers, failure)
            if needs_auth and headers.get("Authorization") != f"Bot {self.token}":
                return self._record(
                    request, path, body, headers, 401, {"code": 0, "message": "401: Unauthorized"}
                )
            try:
                status, answer = handler(body, request.query, **match.groupdict())
            except _Refused as refused:
                status, answer = refused.status, refused.body
            return self._record(request, path, body, headers, status, answer)
        return self._record(request, path, body, headers, 404, {"code": 0, "message": "404: Not Found"})

    def _record(
        self,
        request: web.Request,
        path: str,
        body: Any,
        headers: dict[str, str],
        status: int,
        answer: Any,
        extra_headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        index = next(self._index)
        call = Call(
            request.method, path, dict(request.query), body, headers, status, answer, index, self._files
        )
        self.calls.append(call)
        if status == 204:
            return web.Response(status=204)
        # Exactly `application/json`, as Discord sends it: discord.py decodes nothing else.
        headers = {"Content-Type": "application/json", **(extra_headers or {})}
        return web.Response(body=json.dumps(answer).encode(), status=status, headers=headers)

    def _refuse(
        self, request: web.Request, path: str, body: Any, headers: dict[str, str], failure: _Failure
    ) -> web.StreamResponse:
        extra: dict[str, str] = {}
        if failure.status == 429:
            # discord.py waits and retries only a 429 that came through Discord's proxy (a `Via` header).
            extra = {
                "Via": "1.1 google",
                "Retry-After": str(max(1, int(failure.body["retry_after"]))),
                "X-RateLimit-Scope": "user",
            }
        return self._record(request, path, body, headers, failure.status, failure.body, extra)

    def _next_failure(self, method: str, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.remaining > 0 and failure.method == method and failure.path.fullmatch(path):
                failure.remaining -= 1
                return failure
        return None

    def _dispatch(self, event: str, payload: dict[str, Any]) -> None:
        self.dispatched.append((event, payload))
        if self.on_dispatch is None:
            return
        try:
            self.on_dispatch(event, payload)
        except Exception as error:  # the client's parsing failed: the test must hear of it
            self.dispatch_errors.append(f"{event}: {error!r}")

    # --- routes -----------------------------------------------------------------------------------

    def _get_me(self, body: Any, query: Any) -> tuple[int, Any]:
        return 200, {**self.users[BOT_USER_ID], "verified": True, "mfa_enabled": False, "locale": "en-US"}

    def _get_application(self, body: Any, query: Any) -> tuple[int, Any]:
        owner = {**self.users[BOT_USER_ID], "id": str(GUILD_ID + 999), "username": "owner", "bot": False}
        return 200, {
            "id": str(APP_ID),
            "name": "Relaydesk",
            "icon": None,
            "description": "A support desk",
            "bot_public": False,
            "bot_require_code_grant": False,
            "owner": owner,
            "team": None,
            "verify_key": "0" * 64,
            "flags": 1 << 19 | 1 << 23,  # GATEWAY_MESSAGE_CONTENT_LIMITED, APPLICATION_COMMAND_BADGE
            "bot": self.users[BOT_USER_ID],
            "interactions_endpoint_url": None,
            "redirect_uris": [],
        }

    def _get_user(self, body: Any, query: Any, user: str) -> tuple[int, Any]:
        found = self.users.get(int(user))
        if found is None:
            raise _Refused(404, 10013, "Unknown User")
        return 200, found

    def _open_dm(self, body: Any, query: Any) -> tuple[int, Any]:
        recipient = int((body or {}).get("recipient_id") or 0)
        if recipient not in self.users:
            raise _Refused(400, 50035, "Invalid Form Body", {"recipient_id": _error("Unknown user")})
        return 200, self.channels[self.dm_channel(recipient)]

    def _get_channel(self, body: Any, query: Any, channel: str) -> tuple[int, Any]:
        return 200, self._channel(int(channel))

    def _post_message(self, body: Any, query: Any, channel: str) -> tuple[int, Any]:
        target = self._channel(int(channel))
        if target["type"] in THREAD_TYPES and target["thread_metadata"]["archived"]:
            raise _Refused(400, 50083, "Thread is archived")
        body = body or {}
        _check_message(body)
        attachments = self._attachments(body)
        message = self._message(
            int(channel),
            self.users[BOT_USER_ID],
            str(body.get("content") or ""),
            embeds=body.get("embeds") or [],
            components=body.get("components") or [],
            flags=int(body.get("flags") or 0),
        )
        message["attachments"] = attachments
        self.messages[int(message["id"])] = message
        target["last_message_id"] = message["id"]
        self._dispatch("MESSAGE_CREATE", self._gateway_message(message))
        return 200, message

    def _start_thread(self, body: Any, query: Any, channel: str) -> tuple[int, Any]:
        parent = self._channel(int(channel))
        if parent["type"] != TEXT:
            raise _Refused(400, 50024, "Cannot execute action on this channel type")
        body = body or {}
        kind = int(body.get("type") or PRIVATE_THREAD)  # Discord's default here is a private thread
        if kind not in THREAD_TYPES:
            raise _Refused(400, 50035, "Invalid Form Body", {"type": _error("Value is not a thread type")})
        thread = self._new_thread(self.snowflake(), parent, kind, body)
        return 201, self._thread_payload(thread)

    def _start_thread_from_message(
        self, body: Any, query: Any, channel: str, message: str
    ) -> tuple[int, Any]:
        parent = self._channel(int(channel))
        starter = self.messages.get(int(message))
        if starter is None or int(starter["channel_id"]) != int(channel):
            raise _Refused(404, 10008, "Unknown Message")
        if int(message) in self.channels:
            raise _Refused(400, 160004, "A thread has already been created for this message")
        thread = self._new_thread(int(message), parent, PUBLIC_THREAD, body or {})
        return 201, self._thread_payload(thread)

    def _add_member(self, body: Any, query: Any, channel: str, user: str) -> tuple[int, Any]:
        thread = self._channel(int(channel))
        if thread["type"] not in THREAD_TYPES:
            raise _Refused(400, 50024, "Cannot execute action on this channel type")
        if int(user) not in self.members:
            raise _Refused(404, 10007, "Unknown Member")
        self.thread_members.setdefault(int(channel), set()).add(int(user))
        thread["member_count"] = len(self.thread_members[int(channel)])
        return 204, None

    def _get_member(self, body: Any, query: Any, guild: str, user: str) -> tuple[int, Any]:
        if int(guild) != GUILD_ID:
            raise _Refused(404, 10004, "Unknown Guild")
        if int(user) not in self.members:
            raise _Refused(404, 10007, "Unknown Member")
        return 200, self._member_payload(int(user))

    def _callback(self, body: Any, query: Any, id: str, token: str) -> tuple[int, Any]:
        interaction = self.interactions.get(int(id))
        if interaction is None or interaction.token != token:
            raise _Refused(404, 10062, "Unknown interaction")
        if interaction.acknowledged:
            raise _Refused(400, 40060, "Interaction has already been acknowledged.")
        body = body or {}
        kind = body.get("type")
        data = body.get("data") or {}
        if kind not in RESPONSE_TYPES:
            raise _Refused(400, 50035, "Invalid Form Body", {"type": _error("Value must be one of …")})
        if kind == 9:
            _check_modal(data)
        elif kind == 8:
            if len(data.get("choices") or []) > CHOICES_MAX:
                raise _Refused(400, 50035, "Invalid Form Body", {"data": _error("Too many choices")})
        elif kind in (4, 7):
            _check_message(data)
            self._attachments(data)
        interaction.acknowledged = True
        interaction.response_type = kind
        answer: dict[str, Any] = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(int(data.get("flags") or 0) & EPHEMERAL),
            }
        }
        if kind in MESSAGE_RESOURCES:
            flags = int(data.get("flags") or 0) | (LOADING if kind == 5 else 0)
            message = self._message(
                interaction.channel_id,
                self.users[BOT_USER_ID],
                str(data.get("content") or ""),
                embeds=data.get("embeds") or [],
                components=data.get("components") or [],
                flags=flags,
                webhook_id=APP_ID,
            )
            answer["interaction"]["response_message_id"] = message["id"]
            answer["resource"] = {"type": kind, "message": message}
        return 200, answer

    def _followup(self, body: Any, query: Any, app: str, token: str) -> tuple[int, Any]:
        interaction = self._by_token(app, token)
        if not interaction.acknowledged:
            raise _Refused(404, 10015, "Unknown Webhook")
        body = body or {}
        _check_message(body)
        attachments = self._attachments(body)
        message = self._message(
            interaction.channel_id,
            self.users[BOT_USER_ID],
            str(body.get("content") or ""),
            embeds=body.get("embeds") or [],
            components=body.get("components") or [],
            flags=int(body.get("flags") or 0),
            webhook_id=APP_ID,
        )
        message["attachments"] = attachments
        if query.get("wait") in ("1", "true", "True"):
            return 200, message
        return 204, None

    def _edit_original(self, body: Any, query: Any, app: str, token: str) -> tuple[int, Any]:
        """PATCH @original: the interaction's response message; after a component's update (callback
        type 6 or 7) that is the message the component is on, which is changed in place (the fields
        given, as Discord does: `components: []` removes the buttons)."""
        interaction = self._by_token(app, token)
        if not interaction.acknowledged:
            raise _Refused(404, 10015, "Unknown Webhook")
        body = body or {}
        _check_message(body, allow_empty=True)
        if interaction.message_id is not None and interaction.response_type in (6, 7):
            stored = self.messages.get(interaction.message_id)
            if stored is None:
                raise _Refused(404, 10008, "Unknown Message")
            if "content" in body:
                stored["content"] = str(body["content"] or "")
            if "embeds" in body:
                stored["embeds"] = [_stored_embed(e) for e in body["embeds"] or []]
            if "components" in body:
                stored["components"] = [_stored_component(c) for c in body["components"] or []]
            stored["edited_timestamp"] = _now()
            return 200, stored
        message = self._message(
            interaction.channel_id,
            self.users[BOT_USER_ID],
            str(body.get("content") or ""),
            embeds=body.get("embeds") or [],
            components=body.get("components") or [],
            webhook_id=APP_ID,
        )
        return 200, message

    def _sync_global(self, body: Any, query: Any, app: str) -> tuple[int, Any]:
        return self._sync("global", app, body)

    def _sync_guild(self, body: Any, query: Any, app: str, guild: str) -> tuple[int, Any]:
        if int(guild) != GUILD_ID:
            raise _Refused(403, 50001, "Missing Access")
        return self._sync(guild, app, body)

    def _sync(self, scope: str, app: str, body: Any) -> tuple[int, Any]:
        if int(app) != APP_ID:
            raise _Refused(403, 50001, "Missing Access")
        commands = []
        for command in body or []:
            name = command["name"]
            _check_command(command)
            stored = {
                **command,
                "id": str(self._command_id(name)),
                "application_id": str(APP_ID),
                "version": str(self.snowflake()),
                "default_member_permissions": command.get("default_member_permissions"),
            }
            if scope != "global":
                stored["guild_id"] = scope
            commands.append(stored)
        self.commands[scope] = commands
        return 200, commands

    # --- Discord's objects ------------------------------------------------------------------------

    def _attachments(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The request's files as the message's attachments, refused as Discord refuses them: more than
        ten, a part `payload_json.attachments` does not describe, or one above the size limit."""
        if not self._files:
            return []
        if len(self._files) > FILES_MAX:
            raise _Refused(
                400, 50035, "Invalid Form Body", {"files": _error("Must be 10 or fewer in length.")}
            )
        described = {str(a.get("id")): a for a in body.get("attachments") or [] if isinstance(a, dict)}
        stored = []
        for upload in self._files:
            match = re.fullmatch(r"files\[(\d+)\]", upload.field)
            if match is None or match.group(1) not in described:
                raise _Refused(
                    400,
                    50035,
                    "Invalid Form Body",
                    {"attachments": _error(f"{upload.field} is not described")},
                )
            if len(upload.content) > self.attachment_size_limit:
                raise _Refused(413, 40005, "Request entity too large")
            filename = str(described[match.group(1)].get("filename") or upload.filename)
            attachment_id = self.snowflake()
            stored.append(
                {
                    "id": str(attachment_id),
                    "filename": filename,
                    "size": len(upload.content),
                    "url": f"https://cdn.discordapp.invalid/attachments/{attachment_id}/{filename}",
                    "proxy_url": f"https://media.discordapp.invalid/attachments/{attachment_id}/{filename}",
                    "content_type": upload.content_type,
                }
            )
        return stored

    def _channel(self, channel_id: int) -> dict[str, Any]:
        found = self.channels.get(channel_id)
        if found is None:
            raise _Refused(404, 10003, "Unknown Channel")
        return found

    def _guild_of(self, channel_id: int) -> bool:
        return "guild_id" in self.channels.get(channel_id, {})

    def _by_token(self, app: str, token: str) -> Interaction:
        if int(app) != APP_ID:
            raise _Refused(404, 10015, "Unknown Webhook")
        found = next((i for i in self.interactions.values() if i.token == token), None)
        if found is None:
            raise _Refused(401, 50027, "Invalid Webhook Token")
        return found

    def _new_thread(
        self, thread_id: int, parent: dict[str, Any], kind: int, body: dict[str, Any]
    ) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= THREAD_NAME_MAX:
            raise _Refused(
                400, 50035, "Invalid Form Body", {"name": _error("Must be between 1 and 100 in length.")}
            )
        now = _now()
        thread = {
            "id": str(thread_id),
            "type": kind,
            "guild_id": str(GUILD_ID),
            "parent_id": parent["id"],
            "owner_id": str(BOT_USER_ID),
            "name": name,
            "last_message_id": None,
            "rate_limit_per_user": int(body.get("rate_limit_per_user") or 0),
            "flags": 0,
            "message_count": 0,
            "total_message_sent": 0,
            "member_count": 1,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": int(body.get("auto_archive_duration") or 1440),
                "archive_timestamp": now,
                "locked": False,
                "create_timestamp": now,
            },
        }
        if kind == PRIVATE_THREAD:
            thread["thread_metadata"]["invitable"] = bool(body.get("invitable", True))
        self.channels[thread_id] = thread
        self.thread_members[thread_id] = {BOT_USER_ID}
        self._dispatch("THREAD_CREATE", {**self._thread_payload(thread), "newly_created": True})
        return thread

    def _thread_payload(self, thread: dict[str, Any]) -> dict[str, Any]:
        payload = dict(thread)
        if BOT_USER_ID in self.thread_members.get(int(thread["id"]), set()):
            payload["member"] = {
                "id": thread["id"],
                "user_id": str(BOT_USER_ID),
                "join_timestamp": thread["thread_metadata"]["create_timestamp"],
                "flags": 0,
            }
        return payload

    def _message(
        self,
        channel_id: int,
        author: dict[str, Any],
        content: str,
        *,
        embeds: list[dict[str, Any]] | None = None,
        components: list[dict[str, Any]] | None = None,
        flags: int = 0,
        type: int = 0,
        webhook_id: int | None = None,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": str(self.snowflake()),
            "channel_id": str(channel_id),
            "author": author,
            "content": content,
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": _role_mentions(content),
            "attachments": [],
            "embeds": [_stored_embed(e) for e in embeds or []],
            "components": [_stored_component(c) for c in components or []],
            "pinned": False,
            "type": type,
            "flags": flags,
        }
        if webhook_id is not None:
            message["webhook_id"] = str(webhook_id)
            message["application_id"] = str(APP_ID)
        return message

    def _gateway_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """A message as MESSAGE_CREATE/UPDATE carries it: in a guild, with guild_id and the member."""
        payload = dict(message)
        if self._guild_of(int(message["channel_id"])):
            payload["guild_id"] = str(GUILD_ID)
            author = int(message["author"]["id"])
            if author in self.members and "webhook_id" not in message:
                payload["member"] = self._member_record_for_message(author)
        return payload

    def _member_record(self, roles: Iterable[int], nick: str | None = None) -> dict[str, Any]:
        return {
            "nick": nick,
            "roles": [str(r) for r in roles],
            "joined_at": _now(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "avatar": None,
            "communication_disabled_until": None,
        }

    def _member_record_for_message(self, user_id: int) -> dict[str, Any]:
        return dict(self.members[user_id])

    def _member_payload(self, user_id: int) -> dict[str, Any]:
        return {**self.members[user_id], "user": self.users[user_id]}

    def _command_id(self, name: str) -> int:
        if name not in self._command_ids:
            self._command_ids[name] = self.snowflake()
        return self._command_ids[name]

    def _command_data(self, name: str, subcommand: str | None, options: dict[str, Any]) -> dict[str, Any]:
        resolved: dict[str, dict[str, Any]] = {}
        values: list[dict[str, Any]] = []
        for key, value in options.items():
            if value is None:
                continue
            if isinstance(value, UserOption):
                values.append({"type": OPTION_USER, "name": key, "value": str(value.id)})
                resolved.setdefault("users", {})[str(value.id)] = self.users[value.id]
                if value.id in self.members:
                    member = {k: v for k, v in self.members[value.id].items() if k != "deaf" and k != "mute"}
                    resolved.setdefault("members", {})[str(value.id)] = {**member, "permissions": "0"}
            elif isinstance(value, bool):
                values.append({"type": 5, "name": key, "value": value})
            elif isinstance(value, int):
                values.append({"type": OPTION_INTEGER, "name": key, "value": value})
            else:
                values.append({"type": OPTION_STRING, "name": key, "value": str(value)})
        data: dict[str, Any] = {"id": str(self._command_id(name)), "name": name, "type": 1}
        data["options"] = [{"type": 1, "name": subcommand, "options": values}] if subcommand else values
        if resolved:
            data["resolved"] = resolved
        return data

    def _interaction(
        self,
        kind: int,
        user_id: int,
        channel_id: int,
        data: dict[str, Any],
        message: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        interaction_id = self.snowflake()
        token = f"aW50ZXJhY3Rpb246{interaction_id}:fake-token"
        channel = dict(self._channel(channel_id))
        message_id = int(message["id"]) if message is not None else None
        self.interactions[interaction_id] = Interaction(
            interaction_id, token, kind, user_id, channel_id, message_id=message_id
        )
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(APP_ID),
            "type": kind,
            "data": data,
            "token": token,
            "version": 1,
            "channel_id": str(channel_id),
            "channel": channel,
            "locale": "en-GB",
            "entitlements": [],
            "attachment_size_limit": self.attachment_size_limit,
            "app_permissions": "2251799813685247",
        }
        if message is not None:
            payload["message"] = message
        if "guild_id" in channel:
            if kind in (2, 4):
                data["guild_id"] = str(GUILD_ID)  # commands are synced to the guild
            payload |= {
                "guild_id": str(GUILD_ID),
                "guild": {"id": str(GUILD_ID), "locale": "en-US", "features": []},
                "guild_locale": "en-US",
                "member": {**self._member_payload(user_id), "permissions": "2248473465835073"},
                "context": 0,
                "authorizing_integration_owners": {"0": str(GUILD_ID)},
            }
        else:
            payload |= {
                "user": self.users[user_id],
                "context": 1,
                "authorizing_integration_owners": {"0": str(GUILD_ID)},
            }
        return payload


# --- helpers ----------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _role(role_id: int, name: str, position: int) -> dict[str, Any]:
    return {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": "1071698660929",
        "managed": False,
        "mentionable": True,
        "flags": 0,
    }


def _role_mentions(content: str) -> list[str]:
    return re.findall(r"<@&(\d+)>", content)


def _error(message: str) -> dict[str, Any]:
    return {"_errors": [{"code": "BASE_TYPE_INVALID", "message": message}]}


def _stored_embed(embed: dict[str, Any]) -> dict[str, Any]:
    return {"type": "rich", **embed}


def _stored_component(row: dict[str, Any]) -> dict[str, Any]:
    stored = {**row, "id": row.get("id", 0)}
    if "components" in row:
        stored["components"] = [{**c, "id": c.get("id", 0)} for c in row["components"]]
    return stored


async def _read_body(request: web.Request) -> tuple[Any, tuple[UploadedFile, ...]]:
    """The JSON body (a multipart's `payload_json`), and the files of a multipart request."""
    if not request.can_read_body:
        return None, ()
    if request.content_type == "application/json":
        raw = await request.read()
        return (json.loads(raw) if raw else None), ()
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        raw = form.get("payload_json")
        files = tuple(
            UploadedFile(name, value.filename, value.content_type, value.file.read())
            for name, value in form.items()
            if isinstance(value, web.FileField)
        )
        return (json.loads(str(raw)) if raw is not None else None), files
    return (await request.read()).decode(errors="replace") or None, ()


def _check_message(body: dict[str, Any], allow_empty: bool = False) -> None:
    """What Discord refuses in a message: too long, too many or too big embeds, bad components."""
    content = body.get("content")
    embeds = body.get("embeds") or []
    components = body.get("components") or []
    if content is not None and len(str(content)) > CONTENT_MAX:
        raise _Refused(
            400, 50035, "Invalid Form Body", {"content": _error(f"Must be {CONTENT_MAX} or fewer in length.")}
        )
    if not allow_empty and not content and not embeds and not components and not body.get("attachments"):
        raise _Refused(400, 50006, "Cannot send an empty message")
    if len(embeds) > EMBEDS_MAX:
        raise _Refused(400, 50035, "Invalid Form Body", {"embeds": _error("Must be 10 or fewer in length.")})
    total = 0
    for embed in embeds:
        title, description = str(embed.get("title") or ""), str(embed.get("description") or "")
        if len(title) > EMBED_TITLE_MAX or len(description) > EMBED_DESCRIPTION_MAX:
            raise _Refused(400, 50035, "Invalid Form Body", {"embeds": _error("Embed field too long")})
        total += len(title) + len(description)
        total += sum(
            len(str(f.get("name", ""))) + len(str(f.get("value", ""))) for f in embed.get("fields", [])
        )
        total += len(str((embed.get("footer") or {}).get("text", "")))
        total += len(str((embed.get("author") or {}).get("name", "")))
    if total > EMBED_TOTAL_MAX:
        raise _Refused(
            400, 50035, "Invalid Form Body", {"embeds": _error("Embed size exceeds maximum size of 6000")}
        )
    if len(components) > ROWS_MAX:
        raise _Refused(
            400, 50035, "Invalid Form Body", {"components": _error("Must be 5 or fewer in length.")}
        )
    for row in components:
        inner = row.get("components") or []
        if row.get("type") != 1 or not 1 <= len(inner) <= ROW_COMPONENTS_MAX:
            raise _Refused(400, 50035, "Invalid Form Body", {"components": _error("Invalid action row")})
        for component in inner:
            if len(str(component.get("custom_id", ""))) > CUSTOM_ID_MAX:
                raise _Refused(400, 50035, "Invalid Form Body", {"custom_id": _error("Too long")})
            if len(str(component.get("label", ""))) > BUTTON_LABEL_MAX:
                raise _Refused(400, 50035, "Invalid Form Body", {"label": _error("Too long")})
            if component.get("type") == 2 and component.get("style") != 5 and not component.get("custom_id"):
                raise _Refused(400, 50035, "Invalid Form Body", {"custom_id": _error("Required")})


def _check_command(command: dict[str, Any]) -> None:
    """What Discord refuses in a slash command (CHAT_INPUT): a bad name, a description of other than
    1-100 characters (the command's and every option's), more than 25 options or choices, a required
    option after an optional one, a subcommand among plain options, or more than 4,000 characters of
    names, descriptions and choice names and values in all."""
    if command.get("type", 1) != 1:
        return
    _check_option(command, "")
    total = _command_characters(command)
    if total > COMMAND_CHARACTERS_MAX:
        raise _Refused(
            400, 50035, "Invalid Form Body", {"_errors": _error(f"Command is {total} characters, max 4000")}
        )


def _check_option(option: dict[str, Any], where: str) -> None:
    name, description = str(option.get("name", "")), str(option.get("description", ""))
    where = f"{where}.{name}" if where else name
    if not re.fullmatch(r"[-_'\w]{1,32}", name) or name != name.lower():
        raise _Refused(400, 50035, "Invalid Form Body", {where: _error("Invalid name")})
    if not 1 <= len(description) <= DESCRIPTION_MAX:
        raise _Refused(400, 50035, "Invalid Form Body", {where: _error("Description must be 1-100 long")})
    choices = option.get("choices") or []
    if len(choices) > CHOICES_MAX or any(
        not 1 <= len(str(c.get("name", ""))) <= CHOICE_NAME_MAX
        or len(str(c.get("value", ""))) > CHOICE_NAME_MAX
        for c in choices
    ):
        raise _Refused(400, 50035, "Invalid Form Body", {where: _error("Invalid choices")})
    options = option.get("options") or []
    if len(options) > OPTIONS_MAX:
        raise _Refused(400, 50035, "Invalid Form Body", {where: _error("Must be 25 or fewer in length.")})
    nested = [o.get("type") in (OPTION_SUBCOMMAND, OPTION_SUBCOMMAND_GROUP) for o in options]
    if any(nested) and not all(nested):
        raise _Refused(400, 50035, "Invalid Form Body", {where: _error("Subcommands mix with options")})
    required = [] if any(nested) else [bool(o.get("required")) for o in options]
    if required != sorted(required, reverse=True):
        raise _Refused(
            400,
            50035,
            "Invalid Form Body",
            {where: _error("Required options must be placed before optional")},
        )
    if len({o.get("name") for o in options}) != len(options):
        raise _Refused(400, 50035, "Invalid Form Body", {where: _error("Option names must be unique")})
    for inner in options:
        _check_option(inner, where)


def _command_characters(option: dict[str, Any]) -> int:
    total = len(str(option.get("name", ""))) + len(str(option.get("description", "")))
    total += sum(
        len(str(c.get("name", ""))) + len(str(c.get("value", ""))) for c in option.get("choices") or []
    )
    return total + sum(_command_characters(o) for o in option.get("options") or [])


def _check_modal(data: dict[str, Any]) -> None:
    title = str(data.get("title") or "")
    components = data.get("components") or []
    if not 1 <= len(title) <= MODAL_TITLE_MAX:
        raise _Refused(400, 50035, "Invalid Form Body", {"title": _error("Must be between 1 and 45")})
    if not data.get("custom_id") or len(str(data["custom_id"])) > CUSTOM_ID_MAX:
        raise _Refused(400, 50035, "Invalid Form Body", {"custom_id": _error("Invalid")})
    if not 1 <= len(components) <= MODAL_COMPONENTS_MAX:
        raise _Refused(400, 50035, "Invalid Form Body", {"components": _error("Must be 1-5 in length")})
