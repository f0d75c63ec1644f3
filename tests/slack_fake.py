"""A local fake of Slack's Web API: a real aiohttp server on 127.0.0.1 that answers like Slack and records
every call, so the Slack adapter can be tested over the wire without reaching the internet.

slack_sdk's clients call `<base_url><method>` with a GET query, a form-encoded body or a JSON body, and
send the token as `Authorization: Bearer <token>` (OAuth exchanges use HTTP basic auth). Every one of
those is recorded as a `Call` with the parameters merged, whatever the encoding. Bolt's `respond()` posts
JSON to a message's `response_url`; point those at `fake.response_url(...)` and read `fake.responses`.
As on Slack, one response_url takes at most five messages; later ones are refused (404 `used_url`).

The fake checks what Slack checks where a mistake would otherwise go unnoticed: the token, required
arguments, and the Block Kit limits (50 blocks per message, 100 per view, 3,000 characters per section,
24 per modal title, 25 elements per actions block, action_ids unique within a block, 75 characters per
button label). It can be told to answer the next calls of a method with HTTP 429 (`Retry-After`) or
HTTP 500, as Slack does under load.

Files are uploaded as Slack's Web API takes them since files.upload was retired:
`files.getUploadURLExternal` (filename, length) hands out an upload URL on this server, the client POSTs
the file's bytes there (no token: the URL is the authorisation), and `files.completeUploadExternal`
shares the uploaded files in a conversation (`channel_id`, optionally `thread_ts`). As on Slack, a file
must be uploaded with the length announced before it can be completed, and files are shared in
conversations: a user id is not one (open the DM with `conversations.open` for its `D…` id). Shared files
are kept in `files`, with their bytes.

`users.info` answers with the profile's `email` when a user was added with one, as Slack does for apps
with `users:read.email`.

It also speaks Socket Mode. `apps.connections.open`, called with an app-level token (`xapp-…`), hands out
a single-use `ws://` URL on this server; a client that connects there is greeted with `hello`, as by
Slack. `deliver_envelope()` sends an `events_api`, `slash_commands` or `interactive` envelope to the
connected client and returns its `envelope_id`; every frame the client sends back is recorded in `acks`
(an acknowledgement is JSON with the `envelope_id`, and a `payload` when the app answers with one, such
as a modal's validation errors). `send_disconnect()` asks the client to reconnect, as Slack does before
it recycles a connection.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-test"
APP_TOKEN = "xapp-test"
INSTALLED_TOKEN = "xoxb-installed-t1"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T1"
APP_ID = "A1"
CLIENT_ID = "111.222"
CLIENT_SECRET = "client-secret"
OAUTH_CODE = "oauth-code-1"

TEXT_MAX = 40_000
MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
SECTION_TEXT_MAX = 3_000
HEADER_TEXT_MAX = 150
MODAL_TITLE_MAX = 24
ACTIONS_ELEMENTS_MAX = 25
BUTTON_TEXT_MAX = 75
RESPONSE_URL_USES = 5
UPLOAD_MAX = 1024**3
"""Slack takes files of up to 1 GB."""
APP_LEVEL_METHODS = frozenset({"apps.connections.open"})
"""Methods that take the app-level token (`xapp-…`) and refuse bot tokens, as on Slack."""


@dataclass(frozen=True)
class Call:
    """One Web API call as Slack received it."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    http_method: str
    encoding: str  # "query", "form" or "json"
    status: int  # the HTTP status the fake answered with
    ok: bool  # what the answer's "ok" said (False for errors, 429s and 500s)
    answer: dict[str, Any] = field(default_factory=dict)  # what the fake answered

    @property
    def token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

    def get(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


@dataclass(frozen=True)
class Response:
    """What was posted to a `response_url` (Bolt's `respond()`)."""

    key: str
    body: dict[str, Any]
    status: int = 200

    @property
    def text(self) -> str:
        return str(self.body.get("text", ""))


@dataclass(frozen=True)
class Ack:
    """A frame a Socket Mode client sent back: normally the acknowledgement of one envelope."""

    raw: str
    message: dict[str, Any] | None  # the JSON, or None when the frame was not a JSON object
    calls_before: int  # how many Web API calls had been recorded when it arrived
    connection: int  # which connection (index into `FakeSlack.connections`) it came on
    received_at: float = field(default_factory=time.monotonic)

    @property
    def envelope_id(self) -> str | None:
        return (self.message or {}).get("envelope_id")

    @property
    def payload(self) -> dict[str, Any] | None:
        """What the app answered with the acknowledgement (None: a plain ack)."""
        return (self.message or {}).get("payload")


@dataclass
class SharedFile:
    """A file uploaded through the upload URL and shared by files.completeUploadExternal."""

    id: str
    filename: str
    title: str
    content: bytes
    channel: str | None  # None: uploaded but shared nowhere (private to the uploader)
    thread_ts: str | None
    initial_comment: str | None
    token: str | None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")


@dataclass
class _Upload:
    filename: str
    length: int
    token: str | None
    content: bytes | None = None
    completed: bool = False


@dataclass
class Connection:
    """One Socket Mode WebSocket connection, from the client's connect to its close."""

    ticket: str
    socket: web.WebSocketResponse
    sent: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    close_code: int | None = None


@dataclass
class _Failure:
    status: int
    remaining: int
    retry_after: int | None
    error: str
    match: dict[str, Any]


@dataclass
class FakeSlack:
    """Slack's Web API for one workspace (`T1`) whose bot user is `UBOT`."""

    tokens: set[str] = field(default_factory=lambda: {BOT_TOKEN})
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)
    members_page_size: int = 2
    calls: list[Call] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    url: str = ""
    app_tokens: set[str] = field(default_factory=lambda: {APP_TOKEN})
    acks: list[Ack] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    files: list[SharedFile] = field(default_factory=list)
    uploads_received: int = 0
    channel_messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """What chat.postMessage posted, per channel, for conversations.history and .replies."""

    def __post_init__(self) -> None:
        self._ts = itertools.count(1)
        self._views = itertools.count(1)
        self._failures: dict[str, list[_Failure]] = {}
        self._runner: web.AppRunner | None = None
        self._tickets: set[str] = set()
        self._stopping = False
        self._envelopes = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._uploads: dict[str, _Upload] = {}

    # --- set-up -----------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024**2)
        app.add_routes(
            [
                web.route("*", "/api/{method}", self._api),
                web.post("/upload/{file_id}", self._receive_upload),
                web.post("/respond/{key}", self._respond),
                web.get("/link/", self._link),
            ]
        )
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._stopping = True  # a client still running gets no new connection
        for connection in self.open_connections:
            await connection.socket.close(code=1001, message=b"going away")
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, key: str | int) -> str:
        return f"{self.url}/respond/{key}"

    def add_user(
        self,
        user_id: str,
        display_name: str = "",
        real_name: str = "",
        name: str = "",
        email: str | None = None,
        email_confirmed: bool = True,
        tz: str | None = None,
    ) -> None:
        """A workspace member as `users.info` describes them (with users:read.email, their email)."""
        profile: dict[str, Any] = {"display_name": display_name, "real_name": real_name}
        if email is not None:
            profile["email"] = email
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name or user_id.lower(),
            "real_name": real_name,
            "is_bot": False,
            "is_email_confirmed": email_confirmed,
            "profile": profile,
            **({"tz": tz} if tz else {}),
        }

    def fail_next(
        self,
        method: str,
        times: int = 1,
        status: int = 429,
        retry_after: int | None = 1,
        error: str = "ratelimited",
        **match: Any,
    ) -> None:
        """Answer the next `times` calls of `method` (whose parameters include `match`) with HTTP
        `status` (429 carries Retry-After), or with status 200 and `{"ok": false, "error": error}`, as
        Slack reports a refused call."""
        self._failures.setdefault(method, []).append(_Failure(status, times, retry_after, error, match))

    # --- Socket Mode ------------------------------------------------------------------------------

    @property
    def open_connections(self) -> list[Connection]:
        return [c for c in self.connections if not c.closed]

    async def deliver_envelope(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        envelope_id: str | None = None,
        accepts_response_payload: bool | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> str:
        """Send one envelope (`events_api`, `slash_commands` or `interactive`) over the newest open
        connection, in Slack's shape; returns its envelope_id. Slack says whether it accepts a response
        payload: for slash commands, modal submissions and option requests; events carry their retry
        attempt (0 on first delivery) and reason."""
        if kind not in ("events_api", "slash_commands", "interactive"):
            raise ValueError(f"Slack sends no {kind!r} envelopes")
        if not self.open_connections:
            raise AssertionError(f"no Socket Mode client is connected; recorded:\n{self.transcript()}")
        if accepts_response_payload is None:
            accepts_response_payload = kind == "slash_commands" or (
                kind == "interactive" and payload.get("type") in ("view_submission", "block_suggestion")
            )
        envelope_id = envelope_id or f"env-{next(self._envelopes):04d}-{uuid.uuid4().hex[:12]}"
        message: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": accepts_response_payload,
        }
        if kind == "events_api":
            message["retry_attempt"] = retry_attempt or 0
            message["retry_reason"] = retry_reason or ""
        await self._send(self.open_connections[-1], message)
        return envelope_id

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the connected client to reconnect, as Slack does before it recycles a connection."""
        if not self.open_connections:
            raise AssertionError("no Socket Mode client is connected")
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
        await self._send(self.open_connections[-1], message)

    def acks_for(self, envelope_id: str) -> list[Ack]:
        return [a for a in list(self.acks) if a.envelope_id == envelope_id]

    # --- reading what happened ------------------------------------------------------------------

    def calls_to(self, method: str, **match: Any) -> list[Call]:
        """Successful calls of `method` whose parameters include `match` (None: parameter absent)."""
        found = []
        for call in list(self.calls):
            if call.method != method or not call.ok:
                continue
            if all(call.params.get(k) == v for k, v in match.items()):
                found.append(call)
        return found

    def posts(self, channel: str | None = None, **match: Any) -> list[Call]:
        """Messages posted with chat.postMessage (to `channel`, when given)."""
        if channel is not None:
            match["channel"] = channel
        return self.calls_to("chat.postMessage", **match)

    def texts(self, channel: str | None = None, **match: Any) -> list[str]:
        return [str(c.get("text", "")) for c in self.posts(channel, **match)]

    def files_in(self, channel: str | None = None) -> list[SharedFile]:
        """Files shared (in `channel`, when given), in the order they were completed."""
        return [f for f in list(self.files) if channel is None or f.channel == channel]

    def responses_to(self, key: str | int) -> list[Response]:
        return [r for r in list(self.responses) if r.key == str(key) and r.status == 200]

    async def wait_for(
        self, check: Callable[[], Any], what: str = "the expected Slack calls", within: float = 10.0
    ) -> Any:
        """Poll until `check()` is truthy; fail with what was recorded when it never is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            result = check()
            if result:
                return result
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; recorded:\n{self.transcript()}")
            await asyncio.sleep(0.02)

    def transcript(self) -> str:
        lines = [
            f"  {c.status} {'ok' if c.ok else 'refused'} {c.method} {json.dumps(c.params, default=str)[:300]}"
            for c in list(self.calls)
        ]
        lines += [f"  respond/{r.key} {json.dumps(r.body)[:300]}" for r in list(self.responses)]
        lines += [f"  file {f.id} {f.filename!r} in {f.channel} ({len(f.content)} bytes)" for f in self.files]
        lines += [f"  socket ack {a.raw[:300]}" for a in list(self.acks)]
        return "\n".join(lines) or "  (nothing)"

    # --- the server -----------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        encoding = "query"
        if request.method == "POST" and request.can_read_body:
            raw = await request.read()
            if request.content_type == "application/json":
                params.update(json.loads(raw or b"{}"))
                encoding = "json"
            else:
                params.update(parse_qsl(raw.decode(), keep_blank_values=True))
                encoding = "form"
        headers = {k: v for k, v in request.headers.items()}

        failure = self._next_failure(method, params)
        if failure is not None:
            if failure.status == 200:
                return self._answer(method, params, headers, request, encoding, _error(failure.error))
            refused = {"ok": False, "error": "ratelimited" if failure.status == 429 else "upstream_error"}
            self.calls.append(
                Call(method, params, headers, request.method, encoding, failure.status, False, refused)
            )
            if failure.status == 429:
                extra = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers=extra)
            return web.Response(status=failure.status, text="upstream_error")

        handler = getattr(self, "_" + method.replace(".", "_"), None)
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        if handler is None:
            answer = _error("unknown_method")
        elif method in APP_LEVEL_METHODS:
            answer = self._app_level(handler, token, params, headers)
        elif method != "oauth.v2.access" and not token:
            answer = _error("not_authed")
        elif method != "oauth.v2.access" and token not in self.tokens:
            answer = _error("invalid_auth")
        else:
            answer = handler(params, headers)
        return self._answer(method, params, headers, request, encoding, answer)

    def _answer(
        self,
        method: str,
        params: dict[str, Any],
        headers: dict[str, str],
        request: web.Request,
        encoding: str,
        answer: dict[str, Any],
    ) -> web.Response:
        self.calls.append(
            Call(method, params, headers, request.method, encoding, 200, bool(answer["ok"]), answer)
        )
        return web.json_response(answer)

    def _next_failure(self, method: str, params: dict[str, Any]) -> _Failure | None:
        for failure in self._failures.get(method) or []:
            if failure.remaining > 0 and all(params.get(k) == v for k, v in failure.match.items()):
                failure.remaining -= 1
                return failure
        return None

    def _app_level(
        self,
        handler: Callable[..., dict[str, Any]],
        token: str,
        params: dict[str, Any],
        headers: dict[str, str],
    ) -> dict[str, Any]:
        if not token:
            return _error("not_authed")
        if token in self.tokens:
            return _error("not_allowed_token_type")
        if token not in self.app_tokens:
            return _error("invalid_auth")
        return handler(params, headers)

    async def _link(self, request: web.Request) -> web.StreamResponse:
        """The Socket Mode WebSocket: one connection per ticket from apps.connections.open."""
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets or self._stopping:
            return web.Response(status=401, text="invalid or used ticket")
        self._tickets.discard(ticket)
        socket = web.WebSocketResponse(autoping=True, timeout=2.0)  # waits 2 s at most for a close
        await socket.prepare(request)
        connection = Connection(ticket, socket)
        self.connections.append(connection)
        index = len(self.connections) - 1
        try:
            hello = {
                "type": "hello",
                "num_connections": len(self.open_connections),
                "debug_info": {"host": "applink-fake", "approximate_connection_time": 3600},
                "connection_info": {"app_id": APP_ID},
            }
            await self._send(connection, hello)
            async for frame in socket:
                if frame.type == WSMsgType.TEXT:
                    try:
                        parsed = json.loads(frame.data)
                    except ValueError:
                        parsed = None
                    message = parsed if isinstance(parsed, dict) else None
                    self.acks.append(Ack(frame.data, message, len(self.calls), index))
                elif frame.type == WSMsgType.ERROR:
                    break
        finally:
            connection.closed = True
            connection.close_code = socket.close_code
        return socket

    async def _send(self, connection: Connection, message: dict[str, Any]) -> None:
        connection.sent.append(message)
        await connection.socket.send_str(json.dumps(message))

    async def _receive_upload(self, request: web.Request) -> web.Response:
        """An upload URL from files.getUploadURLExternal: the file's bytes, raw or as a multipart form."""
        upload = self._uploads.get(request.match_info["file_id"])
        if upload is None or upload.completed:
            return web.Response(status=404, text="upload url not found")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            part = next(iter(form.values()), None)
            data = part.file.read() if isinstance(part, web.FileField) else str(part or "").encode()
        else:
            data = await request.read()
        upload.content = data
        self.uploads_received += 1
        return web.Response(text=f"OK - {len(data)}")

    async def _respond(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        body = await request.json()
        if len(self.responses_to(key)) >= RESPONSE_URL_USES:
            self.responses.append(Response(key, body, 404))
            return web.Response(status=404, text="used_url")
        self.responses.append(Response(key, body))
        return web.Response(text="ok")

    # --- methods --------------------------------------------------------------------------------

    def _auth_test(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://relaydesk-test.slack.com/",
            "team": "Relaydesk Test",
            "user": "relaydesk",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_postMessage(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel:
            return _error("channel_not_found")
        blocks = _blocks(params.get("blocks"))
        text = params.get("text") or ""
        if not text and not blocks:
            return _error("no_text")
        if len(text) > TEXT_MAX:
            return _error("msg_too_long")
        problem = _check_blocks(blocks, MESSAGE_BLOCKS_MAX)
        if problem:
            return _error("invalid_blocks", problem)
        ts = self._next_ts()
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "text": text, "ts": ts}
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        metadata = params.get("metadata")
        if metadata:
            message["metadata"] = json.loads(metadata) if isinstance(metadata, str) else metadata
        home = f"D-{channel}" if channel in self.users else channel  # a user id posts to their DM
        self.channel_messages.setdefault(home, []).append(message)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _conversations_history(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """The channel's top-level messages this fake posted, newest first, as Slack orders them.
        Metadata is included only when asked for (`include_all_metadata`)."""
        channel = params.get("channel")
        if not channel:
            return _error("channel_not_found")
        found = [m for m in self.channel_messages.get(channel, []) if "thread_ts" not in m]
        return self._page(found[::-1], params)

    def _conversations_replies(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """A thread's messages this fake posted, oldest first, as Slack orders them."""
        channel, ts = params.get("channel"), params.get("ts")
        if not channel or not ts:
            return _error("thread_not_found")
        found = [m for m in self.channel_messages.get(channel, []) if m.get("thread_ts") == ts]
        return self._page(found, params)

    @staticmethod
    def _page(messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        """One page, as Slack pages: `limit` at a time from `cursor` (here simply an offset)."""
        limit, start = int(params.get("limit") or 100), int(params.get("cursor") or 0)
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        shown = [m if with_metadata else {k: v for k, v in m.items() if k != "metadata"} for m in messages]
        more = start + limit < len(shown)
        return {
            "ok": True,
            "messages": shown[start : start + limit],
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _chat_postEphemeral(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        if not params.get("channel") or not params.get("user"):
            return _error("invalid_arguments")
        return {"ok": True, "message_ts": self._next_ts()}

    def _chat_update(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        if not params.get("channel") or not params.get("ts"):
            return _error("invalid_arguments")
        problem = _check_blocks(_blocks(params.get("blocks")), MESSAGE_BLOCKS_MAX)
        if problem:
            return _error("invalid_blocks", problem)
        return {"ok": True, "channel": params["channel"], "ts": params["ts"], "text": params.get("text")}

    def _files_getUploadURLExternal(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        filename = params.get("filename")
        try:
            length = int(params.get("length", ""))
        except ValueError:
            return _error("invalid_arguments", "length is required and must be an integer")
        if not filename:
            return _error("invalid_arguments", "filename is required")
        if not 0 < length <= UPLOAD_MAX:
            return _error("invalid_arguments", "length must be between 1 and 1 GB")
        file_id = f"F{next(self._file_ids):08d}"
        token = headers.get("Authorization", "").removeprefix("Bearer ") or None
        self._uploads[file_id] = _Upload(str(filename), length, token)
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _files_completeUploadExternal(
        self, params: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        files = params.get("files")
        try:
            items = json.loads(files) if isinstance(files, str) else files
        except ValueError:
            return _error("invalid_arguments", "files must be a JSON array")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            return _error("invalid_arguments", "files must be a non-empty JSON array of objects")
        channel = params.get("channel_id") or None
        if channel is not None and not str(channel).startswith(("C", "D", "G")):
            return _error("channel_not_found", "files are shared in conversations, not with user ids")
        for item in items:
            upload = self._uploads.get(str(item.get("id")))
            if upload is None or upload.completed:
                return _error("file_not_found")
            if upload.content is None:
                return _error("file_not_uploaded")
            if len(upload.content) != upload.length:
                return _error("file_upload_size_mismatch")
        shared = []
        for item in items:
            file_id = str(item["id"])
            upload = self._uploads[file_id]
            upload.completed = True
            assert upload.content is not None
            title = str(item.get("title") or upload.filename)
            self.files.append(
                SharedFile(
                    file_id,
                    upload.filename,
                    title,
                    upload.content,
                    channel,
                    params.get("thread_ts") or None,
                    params.get("initial_comment") or None,
                    upload.token,
                )
            )
            shared.append({"id": file_id, "name": upload.filename, "title": title, "size": upload.length})
        return {"ok": True, "files": shared}

    def _conversations_open(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        users = str(params.get("users") or "")
        if not users or "," in users:
            return _error("invalid_arguments")
        return {"ok": True, "channel": {"id": f"D-{users}"}}

    def _conversations_members(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        if not params.get("channel"):
            return _error("channel_not_found")
        start = int(params.get("cursor") or 0)
        size = min(int(params.get("limit") or 100), self.members_page_size)
        page = self.members[start : start + size]
        following = start + size
        cursor = str(following) if following < len(self.members) else ""
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": cursor}}

    def _users_info(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        user = self.users.get(str(params.get("user")))
        if user is None:
            return _error("user_not_found")
        return {"ok": True, "user": user}

    def _views_open(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        if not params.get("trigger_id"):
            return _error("invalid_arguments")
        return self._view(params, "modal")

    def _views_publish(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        if not params.get("user_id"):
            return _error("invalid_arguments")
        return self._view(params, "home")

    def _view(self, params: dict[str, Any], kind: str) -> dict[str, Any]:
        view = params.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not isinstance(view, dict) or view.get("type") != kind:
            return _error("invalid_arguments", f"a view of type {kind} is required")
        title = (view.get("title") or {}).get("text", "")
        if kind == "modal" and not 0 < len(title) <= MODAL_TITLE_MAX:
            return _error("invalid_arguments", "modal title must be 1-24 characters")
        problem = _check_blocks(view.get("blocks") or [], VIEW_BLOCKS_MAX)
        if problem:
            return _error("invalid_arguments", problem)
        return {"ok": True, "view": {**view, "id": f"V{next(self._views)}", "team_id": TEAM_ID}}

    def _apps_connections_open(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        ws_url = self.url.replace("http://", "ws://", 1)
        return {"ok": True, "url": f"{ws_url}/link/?ticket={ticket}&app_id={APP_ID}"}

    def _oauth_v2_access(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        client_id, client_secret = _basic_auth(headers) or (
            params.get("client_id"),
            params.get("client_secret"),
        )
        if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
            return _error("invalid_client_id")
        if params.get("code") != OAUTH_CODE:
            return _error("invalid_code")
        self.tokens.add(INSTALLED_TOKEN)
        return {
            "ok": True,
            "app_id": APP_ID,
            "authed_user": {"id": "UINSTALLER"},
            "scope": "chat:write,commands,users:read",
            "token_type": "bot",
            "access_token": INSTALLED_TOKEN,
            "bot_user_id": BOT_USER_ID,
            "team": {"id": TEAM_ID, "name": "Relaydesk Test"},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def _next_ts(self) -> str:
        n = next(self._ts)
        return f"{1_712_000_000 + n}.{n:06d}"


def _error(code: str, detail: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"ok": False, "error": code}
    if detail:
        answer["response_metadata"] = {"messages": [f"[ERROR] {detail}"]}
    return answer


def _basic_auth(headers: dict[str, str]) -> tuple[str, str] | None:
    auth = headers.get("Authorization", "")
    if not auth.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
    return user, password


def _blocks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        value = json.loads(value)
    return list(value or [])


def _check_blocks(blocks: Iterable[dict[str, Any]], most: int) -> str | None:
    """What Slack would reject in these blocks, or None."""
    blocks = list(blocks)
    if len(blocks) > most:
        return f"no more than {most} items allowed [json-pointer:/blocks]"
    for i, block in enumerate(blocks):
        kind = block.get("type")
        text = (block.get("text") or {}).get("text", "")
        if kind == "section" and len(text) > SECTION_TEXT_MAX:
            return f"must be less than {SECTION_TEXT_MAX + 1} characters [json-pointer:/blocks/{i}/text/text]"
        if kind == "header" and len(text) > HEADER_TEXT_MAX:
            return f"must be less than {HEADER_TEXT_MAX + 1} characters [json-pointer:/blocks/{i}/text/text]"
        elements = block.get("elements") or []
        action_ids: set[str] = set()  # an action_id is unique within its block
        if kind == "actions" and not 0 < len(elements) <= ACTIONS_ELEMENTS_MAX:
            return f"must have 1-{ACTIONS_ELEMENTS_MAX} elements [json-pointer:/blocks/{i}/elements]"
        for j, element in enumerate(elements):
            if element.get("type") == "button" and len(str(element.get("value", ""))) > 2000:
                return f"button value too long [json-pointer:/blocks/{i}]"
            label = ((element.get("text") or {}) if element.get("type") == "button" else {}).get("text", "")
            if len(str(label)) > BUTTON_TEXT_MAX:
                where = f"/blocks/{i}/elements/{j}/text/text"
                return f"must be less than {BUTTON_TEXT_MAX + 1} characters [json-pointer:{where}]"
            action_id = element.get("action_id")
            if action_id is not None:
                if action_id in action_ids:
                    return f"action_id already exists [json-pointer:/blocks/{i}/elements/{j}/action_id]"
                action_ids.add(action_id)
    return None
