"""Slack's request signatures, on everything the adapter's HTTP endpoint takes.

The adapter serves one signed route, `POST /slack/events`, which carries the Events API (JSON: messages,
edits, deletions, the App Home, URL verification), slash commands (a form: `/ticket`, `/request`) and
interactivity (a form whose `payload` is JSON: buttons on cards, surveys and the App Home, the request
shortcut, the request form's submission); with OAuth configured it serves the same route next to the
install pages. Every request there must carry Slack's v0 signature: HMAC-SHA256 of
`v0:<X-Slack-Request-Timestamp>:<body>` keyed with the signing secret, the timestamp within five minutes
of now (either way).

Hypothesis draws bodies of each kind, in Slack's shapes, and a forgery of each: unsigned (no headers,
only one of the two), the body changed after signing, the signature changed (a digit, its case, its
version, another secret, cut short), the timestamp changed (within the window, so only the signature
can tell), or a valid signature on a timestamp more than five minutes old or ahead. Each forgery must get
401, record nothing (tickets, entries, timeline, cards, agents) and make no call to the Web API (the
fake's record); then the same body, signed as Slack signs it, must get 200, so the forgery is what was
refused.

test_slack.py already sends a zeroed signature, no signature, and a timestamp six minutes old or ahead,
for one message event and one slash command; this file covers the rest. What the endpoint answers to
malformed requests, before it ever checks their signature, is at the end.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode
from uuid import uuid4

import pytest
import test_slack
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from slack_fake import APP_ID, CLIENT_ID, CLIENT_SECRET, OAUTH_CODE, TEAM_ID
from sqlalchemy.ext.asyncio import AsyncEngine
from test_slack import (
    AGENTS,
    ANA,
    BEN,
    CARL,
    DANA,
    SECRET,
    SUPPORT,
    Slack,
    StartSlack,
    button_click,
    envelope,
    message,
    shortcut,
    signature_headers,
    view_submission,
)

from adapters.slack import blocks
from bot.domain import EntryKind
from bot.policy import load_policy

# test_slack.py's fixtures: the fake Web API, the environment, and the adapter on SQLite (`slack`).
fake = test_slack.fake
slack_env = test_slack.slack_env
start_slack = test_slack.start_slack
slack = test_slack.slack

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
WINDOW = 5 * 60
"""How far a request's timestamp may be from now, either way."""
MARGIN = 10
"""Seconds kept clear of the window's edge, for the time a request takes."""
USERS = (DANA, ANA, BEN, CARL, "UEVE")
CHANNELS = (SUPPORT, "DDANA", AGENTS, "CRANDOM")

FORGERIES = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
"""One adapter serves every example (starting one is too slow to do per example); each example checks
what it changed itself."""


@dataclass(frozen=True)
class Request:
    """A request body as Slack sends it to the endpoint."""

    what: str
    body: str
    content_type: str

    @property
    def is_json(self) -> bool:
        return self.content_type == JSON


@dataclass(frozen=True)
class Forgery:
    how: str
    body: str
    headers: dict[str, str]


# --- bodies, in Slack's shapes --------------------------------------------------------------------

words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
"""What people type, any script, emoji and control characters included."""
users = st.sampled_from(USERS)
stamps = st.integers(1_700_000_000, 1_800_000_000).map(lambda n: f"{n}.{n % 999_983:06d}")


def _without_payload(request: Request) -> bool:
    """Bolt reads any form body with the word `payload` in it as interactivity (the adapter works around
    it: see the end of this file)."""
    return request.is_json or request.body.startswith("payload=") or "payload" not in request.body


@st.composite
def events(draw: st.DrawFn) -> Request:
    """Events API bodies: messages where the desk listens and where it does not, edits, deletions, the
    App Home, and the URL verification challenge."""
    kind = draw(st.sampled_from(["message", "reply", "dm", "note", "edit", "delete", "home", "challenge"]))
    user, text, ts = draw(users), draw(words), draw(stamps)
    if kind == "challenge":
        body = {"token": "legacy-verification-token", "challenge": draw(words), "type": "url_verification"}
        return Request(kind, json.dumps(body), JSON)
    if kind == "home":
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user,
            "channel": f"D{user}",
            "tab": draw(st.sampled_from(["home", "messages"])),
            "event_ts": ts,
        }
    elif kind in ("edit", "delete"):
        channel = draw(st.sampled_from(CHANNELS))
        previous = {"type": "message", "user": user, "text": draw(words), "ts": ts}
        event = {
            "type": "message",
            "hidden": True,
            "channel": channel,
            "channel_type": "channel",
            "ts": draw(stamps),
            "previous_message": previous,
        }
        if kind == "edit":
            event |= {"subtype": "message_changed", "message": {**previous, "text": text}}
        else:
            event |= {"subtype": "message_deleted", "deleted_ts": ts}
    elif kind == "dm":
        event = message(f"D{user}", user, text, ts, channel_type="im")
    elif kind == "note":
        event = message(AGENTS, user, text, ts, thread_ts=draw(stamps))
    else:
        thread = draw(stamps) if kind == "reply" else None
        event = message(draw(st.sampled_from(CHANNELS)), user, text, ts, thread_ts=thread)
    return Request(kind, json.dumps(envelope(event, event_id=f"Ev{uuid4().hex[:10]}")), JSON)


@st.composite
def commands(draw: st.DrawFn) -> Request:
    """Slash commands as Slack posts them: /ticket with any text, /request with or without text."""
    command = draw(st.sampled_from(["/ticket", "/request"]))
    verb = draw(st.sampled_from(["", "claim #1 ", "reply #2 ", "note ", "queue", "help", "mine", "show #1"]))
    channel = draw(st.sampled_from(CHANNELS))
    fields = {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "team_domain": "relaydesk-test",
        "channel_id": channel,
        "channel_name": "agents" if channel == AGENTS else "general",
        "user_id": draw(users),
        "user_name": "someone",
        "command": command,
        "text": verb + draw(words),
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": "http://127.0.0.1:9/respond/never",  # replaced with the fake's (see `_live`)
        "trigger_id": "trigger-" + uuid4().hex,
    }
    return Request(command, urlencode(fields), FORM)


@st.composite
def interactions(draw: st.DrawFn) -> Request:
    """Interactivity: Claim and Resolve on a card or in the App Home, a survey's rating, the request
    shortcut, and the request form submitted."""
    kind = draw(st.sampled_from(["claim", "resolve", "rating", "shortcut", "form"]))
    user = draw(users)
    if kind in ("claim", "resolve"):
        action = blocks.CLAIM_ACTION if kind == "claim" else blocks.RESOLVE_ACTION
        on_card = draw(st.booleans())
        value = str(draw(st.integers(1, 10**6)))
        payload = button_click(
            user,
            action,
            value,
            "http://127.0.0.1:9/respond/never" if on_card else None,
            "1.1" if on_card else None,
        )
    elif kind == "rating":
        rating = draw(st.integers(1, 5))
        value = draw(st.one_of(st.just(f"{draw(st.integers(1, 10**6))}:{rating}"), words))
        payload = button_click(user, f"{blocks.SURVEY_ACTION_PREFIX}{rating}", value, None, None)
    elif kind == "shortcut":
        payload = shortcut(user)
    else:
        view = blocks.request_modal(load_policy().requests.categories)
        categories = [
            o["value"] for b in view["blocks"] if b["block_id"] == "category" for o in b["element"]["options"]
        ]
        payload = view_submission(
            user,
            view,
            draw(st.sampled_from([None, *categories])),
            draw(st.sampled_from([None, "low", "normal", "high", "urgent"])),
            draw(st.one_of(st.none(), words)),
        )
    return Request(kind, urlencode({"payload": json.dumps(payload)}), FORM)


anything = st.one_of(events(), commands(), interactions()).filter(_without_payload)


# --- forgeries -------------------------------------------------------------------------------------


def sign(body: str, stamp: int | str, secret: str = SECRET) -> str:
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


def headers_for(stamp: int | str, signature: str) -> dict[str, str]:
    return {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": signature}


@st.composite
def changed_bodies(draw: st.DrawFn, request: Request) -> str:
    """The body with something changed that keeps it well formed (what an attacker would send: a
    request the endpoint would otherwise act on)."""
    if request.is_json:
        data = json.loads(request.body)
        how = draw(st.sampled_from(["field", "key", "spacing", "whitespace"]))
        if how == "field":
            target = data.get("event", data)
            name = draw(st.sampled_from(sorted(k for k, v in target.items() if isinstance(v, str))))
            target[name] = draw(words)
        elif how == "key":
            data[draw(st.text("abcdefghij_", min_size=1, max_size=8))] = draw(words)
        elif how == "whitespace":
            return request.body + draw(st.sampled_from([" ", "\n", "\r\n", "\t"]))
        return json.dumps(data, separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (",", ": ")])))
    fields = parse_qsl(request.body, keep_blank_values=True)
    how = draw(st.sampled_from(["value", "extra", "drop", "order", "quoting"]))
    if how == "value":
        index = draw(st.integers(0, len(fields) - 1))
        name, value = fields[index]
        if name == "payload":
            data = json.loads(value)
            data["user"] = {
                **data.get("user", {}),
                "id": draw(users.filter(lambda u: u != data.get("user", {}).get("id"))),
            }
            fields[index] = (name, json.dumps(data))
        else:
            fields[index] = (name, draw(words))
    elif how == "extra":
        fields.append((draw(st.text("abcdefghij_", min_size=1, max_size=8)), draw(words)))
    elif how == "drop" and len(fields) > 1:
        fields.pop(draw(st.integers(0, len(fields) - 1)))
    elif how == "order":
        fields = draw(st.permutations(fields))
    else:
        return urlencode(fields, quote_via=quote)  # %20 where Slack writes +
    return urlencode(fields)


@st.composite
def forgeries(draw: st.DrawFn, request: Request) -> Forgery:
    now = int(time.time())
    body = request.body
    valid = sign(body, now)
    how = draw(st.sampled_from(["unsigned", "body", "signature", "timestamp", "stale"]))
    if how == "unsigned":
        headers = draw(
            st.sampled_from(
                [
                    {},
                    {"X-Slack-Request-Timestamp": str(now)},
                    {"X-Slack-Signature": valid},  # right for `now`, but the timestamp is not said
                    {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": ""},
                ]
            )
        )
        return Forgery(f"unsigned {sorted(headers)}", body, headers)
    if how == "body":
        changed = draw(changed_bodies(request))
        assume(changed != body and _without_payload(Request(request.what, changed, request.content_type)))
        return Forgery("body changed after signing", changed, headers_for(now, valid))
    if how == "signature":
        digest = valid.removeprefix("v0=")
        kind = draw(st.sampled_from(["digit", "case", "version", "secret", "short", "empty", "bare"]))
        if kind == "digit":
            at = draw(st.integers(0, len(digest) - 1))
            other = draw(st.sampled_from("0123456789abcdef").filter(lambda c: c != digest[at]))
            forged = f"v0={digest[:at]}{other}{digest[at + 1 :]}"
        elif kind == "case":
            assume(digest.upper() != digest)
            forged = f"v0={digest.upper()}"
        elif kind == "version":
            forged = f"{draw(st.sampled_from(['v1', 'V0', 'v', 'v00', 'sha256']))}={digest}"
        elif kind == "secret":
            forged = sign(body, now, draw(st.text(min_size=1, max_size=40).filter(lambda s: s != SECRET)))
        elif kind == "short":
            forged = valid[: draw(st.integers(0, len(valid) - 1))]
        elif kind == "empty":
            forged = ""
        else:
            forged = digest  # the digest without its version
        return Forgery(f"signature changed ({kind})", body, headers_for(now, forged))
    if how == "timestamp":
        shift = draw(st.integers(-(WINDOW - MARGIN), WINDOW - MARGIN).filter(lambda s: s != 0))
        return Forgery(f"timestamp changed by {shift} s", body, headers_for(now + shift, valid))
    age = draw(st.integers(WINDOW + MARGIN, 10**9)) * draw(st.sampled_from([1, -1]))
    return Forgery(
        f"signed {age} s {'ago' if age > 0 else 'ahead'}", body, headers_for(now - age, sign(body, now - age))
    )


# --- the checks ------------------------------------------------------------------------------------


def _live(slack: Slack, request: Request) -> Request:
    """The request with its response_url pointing at the fake (so a control's answers land there)."""
    live = slack.fake.response_url(f"sig-{uuid4().hex[:8]}")
    return Request(
        request.what,
        request.body.replace(quote("http://127.0.0.1:9/respond/never", safe=""), quote(live, safe="")),
        request.content_type,
    )


async def refused_and_nothing_done(slack: Slack, request: Request, forgery: Forgery) -> None:
    await slack.settle()
    before, calls = await slack.snapshot(), len(slack.fake.calls)
    status, text = await slack.post(forgery.body, request.content_type, headers=forgery.headers, signed=False)
    assert status == 401, f"{request.what}, {forgery.how}: {status} {text[:200]}"
    await slack.settle()
    assert await slack.snapshot() == before, f"{request.what}, {forgery.how}: something was recorded"
    assert len(slack.fake.calls) == calls, (
        f"{request.what}, {forgery.how}: the Web API was called:\n{slack.fake.transcript()}"
    )


async def accepted_when_signed(slack: Slack, request: Request) -> None:
    """The control: the same body, signed as Slack signs it now."""
    status, text = await slack.post(
        request.body, request.content_type, headers=signature_headers(request.body), signed=False
    )
    assert status == 200, f"{request.what}, signed: {status} {text[:200]}"
    await slack.settle()


async def forged_then_signed(slack: Slack, request: Request, forgery: Forgery) -> None:
    await refused_and_nothing_done(slack, request, forgery)
    await accepted_when_signed(slack, request)


@FORGERIES
@given(data=st.data())
async def test_forged_events_get_401_and_do_nothing(slack: Slack, data: st.DataObject) -> None:
    request = data.draw(events(), "event")
    await forged_then_signed(slack, request, data.draw(forgeries(request), "forgery"))


@FORGERIES
@given(data=st.data())
async def test_forged_slash_commands_get_401_and_do_nothing(slack: Slack, data: st.DataObject) -> None:
    request = _live(slack, data.draw(commands().filter(_without_payload), "command"))
    await forged_then_signed(slack, request, data.draw(forgeries(request), "forgery"))


@FORGERIES
@given(data=st.data())
async def test_forged_interactions_get_401_and_do_nothing(slack: Slack, data: st.DataObject) -> None:
    request = _live(slack, data.draw(interactions(), "interaction"))
    await forged_then_signed(slack, request, data.draw(forgeries(request), "forgery"))


# --- the same route with OAuth, and the rest of the endpoint ---------------------------------------


@pytest.fixture
async def installed(start_slack: StartSlack, sqlite_engine: AsyncEngine) -> Slack:
    """The adapter with OAuth (many workspaces), installed in T1 through its own install pages."""
    slack = await start_slack(
        sqlite_engine,
        SLACK_BOT_TOKEN=None,
        SLACK_CLIENT_ID=CLIENT_ID,
        SLACK_CLIENT_SECRET=CLIENT_SECRET,
        SLACK_AGENT_TEAM=TEAM_ID,
    )
    async with slack.http.get(f"{slack.base}/slack/install") as reply:
        assert reply.status == 200
        page = await reply.text()
        cookie = reply.headers["Set-Cookie"].split(";")[0]
    state = re.search(r"[?&]state=([^&\"']+)", page)
    assert state is not None, page
    redirect = f"{slack.base}/slack/oauth_redirect?code={OAUTH_CODE}&state={state.group(1)}"
    async with slack.http.get(redirect, headers={"Cookie": cookie}) as reply:
        assert reply.status == 200, await reply.text()
    return slack


@settings(FORGERIES, max_examples=30)
@given(data=st.data())
async def test_with_oauth_forged_requests_get_401_and_do_nothing(
    installed: Slack, data: st.DataObject
) -> None:
    """OAuth puts other middleware after the signature check (installations, per-workspace tokens): the
    check still comes first, and a signed request is served with the installation's token."""
    request = _live(installed, data.draw(anything, "request"))
    await forged_then_signed(installed, request, data.draw(forgeries(request), "forgery"))
    installed.assert_no_errors_logged()


@pytest.mark.parametrize(
    "age", [WINDOW - MARGIN, -(WINDOW - MARGIN)], ids=["almost 5 min old", "almost 5 min ahead"]
)
async def test_a_signature_within_five_minutes_either_way_is_accepted(slack: Slack, age: int) -> None:
    """The window is five minutes each way, not less: Slack's clock and ours may differ a little."""
    event = message(SUPPORT, DANA, "Hello, is anyone there?")
    body = json.dumps(envelope(event))
    stamp = int(time.time()) - age
    status, _ = await slack.post(body, JSON, headers=headers_for(stamp, sign(body, stamp)), signed=False)
    assert status == 200
    await slack.wait_posts("the greeting", SUPPORT)


async def test_an_ssl_check_is_the_one_unsigned_request_answered_and_it_does_nothing(slack: Slack) -> None:
    """Slack checks a slash command's certificate with an unsigned `ssl_check=1` POST; Bolt answers it
    200 before the signature check. It must stay an answer and nothing more, whatever else the body says."""
    before, calls = await slack.snapshot(), len(slack.fake.calls)
    command = {
        "ssl_check": "1",
        "token": "legacy-verification-token",
        "command": "/ticket",
        "text": "claim #1",
        "user_id": ANA,
        "channel_id": AGENTS,
        "team_id": TEAM_ID,
        "response_url": slack.fake.response_url("ssl"),
    }
    for body in (urlencode({"ssl_check": "1", "token": "legacy-verification-token"}), urlencode(command)):
        status, text = await slack.post(body, FORM, signed=False)
        assert (status, text) == (200, "")
    await slack.settle()
    assert await slack.snapshot() == before
    assert len(slack.fake.calls) == calls and slack.fake.responses == []


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/slack/events", 405),
        ("PUT", "/slack/events", 405),
        ("PATCH", "/slack/events", 405),
        ("DELETE", "/slack/events", 405),
        ("POST", "/slack/events/", 404),
        ("POST", "/slack/event", 404),
        ("POST", "/slack/commands", 404),
        ("POST", "/slack/install", 404),
        ("GET", "/slack/oauth_redirect?code=x&state=y", 404),
    ],
)
async def test_nothing_else_on_the_endpoint_takes_a_request(
    slack: Slack, method: str, path: str, expected: int
) -> None:
    """One signed route; other methods and paths are refused before any work, signed or not (without
    OAuth there are no install pages)."""
    body = json.dumps(envelope(message(SUPPORT, DANA, "Hello, is anyone there?")))
    before, calls = await slack.snapshot(), len(slack.fake.calls)
    headers = {"Content-Type": JSON, **signature_headers(body)}
    async with slack.http.request(
        method, f"{slack.base}{path}", data=body.encode(), headers=headers
    ) as reply:
        assert reply.status == expected
    await slack.settle()
    assert await slack.snapshot() == before and len(slack.fake.calls) == calls


# --- malformed requests: refused before anything parses them -----------------------------------------

MALFORMED_TIMESTAMPS = ["", "abc", "1.5", "1e9", "0x10", "now"]


@pytest.mark.parametrize("stamp", MALFORMED_TIMESTAMPS)
async def test_a_timestamp_that_is_no_number_gets_401(slack: Slack, stamp: str) -> None:
    body = json.dumps(envelope(message(SUPPORT, DANA, "Hello, is anyone there?")))
    now = str(int(time.time()))
    request, forgery = (
        Request("message", body, JSON),
        Forgery(f"timestamp {stamp!r}", body, headers_for(stamp, sign(body, now))),
    )
    await refused_and_nothing_done(slack, request, forgery)
    assert not [r for r in slack.caplog.records if r.levelname == "ERROR"], (
        "an unsigned request logged an error"
    )


MALFORMED_BODIES = [
    pytest.param("{", JSON, id="json cut short"),
    pytest.param('{"type": "event_callback", "event": {', JSON, id="event cut short"),
    pytest.param("[1]", JSON, id="json array"),
    pytest.param("null", JSON, id="json null"),
    pytest.param('"text"', JSON, id="json string"),
    pytest.param("{not json", FORM, id="form starting with a brace"),
    pytest.param("payload=%7B", FORM, id="interactivity payload cut short"),
    pytest.param("payload=1", FORM, id="interactivity payload a number"),
]


@pytest.mark.parametrize(("body", "content_type"), MALFORMED_BODIES)
async def test_a_malformed_unsigned_body_gets_401(slack: Slack, body: str, content_type: str) -> None:
    request = Request("malformed", body, content_type)
    await refused_and_nothing_done(slack, request, Forgery("unsigned", body, {}))
    assert not [r for r in slack.caplog.records if r.levelname == "ERROR"], (
        "an unsigned request logged an error"
    )


@pytest.mark.parametrize(
    ("text", "channel_name"),
    [
        ("note #1 the payload was rejected by the API", "agents"),
        ("note #1 the parcel was rejected", "payload-team"),
    ],
    ids=["in the text", "in the channel name"],
)
async def test_a_signed_slash_command_mentioning_payload_is_handled(
    slack: Slack, text: str, channel_name: str
) -> None:
    opened = await slack.open_ticket()
    key = "payload"
    fields = {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "team_domain": "relaydesk-test",
        "channel_id": AGENTS,
        "channel_name": channel_name,
        "user_id": ANA,
        "user_name": "ana",
        "command": "/ticket",
        "text": text.replace("#1", f"#{opened.number}"),
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": slack.fake.response_url(key),
        "trigger_id": "trigger-" + uuid4().hex,
    }
    status, answer = await slack.form(fields)
    assert status == 200, answer
    await slack.settle()
    notes = await slack.entries(opened.number, EntryKind.NOTE)
    assert len(notes) == 1
