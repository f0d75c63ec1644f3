"""The load of `bench.slack_http`, in a process of its own so that neither the bot under test nor the raw
server shares an event loop (or a GIL) with the load it is measured under.

It sends Slack's signed requests at fixed rates on loopback, open loop (each request leaves on its
schedule whether or not earlier ones were answered): Events API message events (new customers' top-level
messages in the support channel, each opening a ticket, and replies in the threads of acknowledged
ones) and slash commands (`/ticket queue|help|show #N`, `/request ...`). Each request's latency runs from
just before it is sent to its response read (the ack); the figures go to standard output as one JSON
object.

The signing secret comes from SLACK_SIGNING_SECRET in the environment, never from the command line.

    python -m bench.slack_load --url http://127.0.0.1:3000/slack/events --rate 500 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from slack_fake import APP_ID, TEAM_ID
from test_slack import AGENTS, ANA, BEN, CARL, SUPPORT, envelope, message, signature_headers

SECRET_VARIABLE = "SLACK_SIGNING_SECRET"
CUSTOMER_PREFIX = "UC"
"""New customers are UC0000001, UC0000002, …: one per top-level message, numbered by the event."""
COLLEAGUE_CHANNEL = "CGENERAL"
REPLIES_PER_TICKET = 3
REQUEST_TIMEOUT = 10.0
"""Seconds; Slack gives up after 3, but a slower ack is still measured (and counted as over 3 s)."""
COMMANDS: tuple[tuple[str, str, str, str], ...] = (
    ("/ticket", "queue", ANA, AGENTS),
    ("/ticket", "help", BEN, AGENTS),
    ("/ticket", "show #{n}", ANA, AGENTS),
    ("/request", "My laptop won't charge since this morning", CARL, COLLEAGUE_CHANNEL),
)
"""The slash commands sent, in turn: (command, text, user, channel); {n} is an opened ticket's number."""


def customer(n: int) -> str:
    """The user id of the customer whose top-level message is event `n` (the bench adds them to the fake)."""
    return f"{CUSTOMER_PREFIX}{n:07d}"


@dataclass
class Stream:
    """What one kind of request saw: latency of each answered request (seconds), outcomes, lateness."""

    latencies: list[float] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    """When each answered request was sent, in seconds from the start of the load (for a timeline)."""
    outcomes: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    sending: float = 0.0
    """Seconds from the first request sent to the last."""
    answered: float = 0.0
    """Seconds from the first request sent to the last answer (or error)."""
    late: float = 0.0
    """The most a request left after its scheduled time (the load process falling behind)."""

    def report(self) -> dict[str, Any]:
        return {
            "latencies": self.latencies,
            "sent_at": self.sent_at,
            "outcomes": dict(self.outcomes),
            "sent": self.sent,
            "sending": self.sending,
            "answered": self.answered,
            "late": self.late,
        }


@dataclass
class Load:
    """The requests of one run and what became of them."""

    url: str
    secret: str
    response_url: str
    events_http: aiohttp.ClientSession
    commands_http: aiohttp.ClientSession
    rng: random.Random
    reply_share: float
    events: Stream = field(default_factory=Stream)
    commands: Stream = field(default_factory=Stream)
    open_threads: list[tuple[str, str]] = field(default_factory=list)
    """(customer, ts) of acknowledged top-level messages that may still get a reply."""
    replies: Counter[str] = field(default_factory=Counter)
    began: float = field(default_factory=time.perf_counter)
    acked_keys: list[str] = field(default_factory=list)
    """The message key (`channel:ts`, as the adapter stores it) of every acknowledged event."""
    tickets: int = 0
    """Top-level messages acknowledged: roughly the tickets opened, hence numbers for `/ticket show`."""

    def event(self, n: int) -> tuple[str, Callable[[bool], None]]:
        """Event `n`: a reply in an acknowledged ticket's thread (`reply_share` of them), else a new
        customer's top-level message; and what to note once it is answered (True: acknowledged)."""
        ts = f"{1_714_000_000 + n}.{n:06d}"
        if self.open_threads and self.rng.random() < self.reply_share:
            i = self.rng.randrange(len(self.open_threads))
            user, parent = self.open_threads[i]
            self.replies[parent] += 1
            if self.replies[parent] >= REPLIES_PER_TICKET:
                self.open_threads[i] = self.open_threads[-1]
                self.open_threads.pop()
            text = f"Adding to my question ({n}): the parcel number is 1Z999AA10123456784."
            event = message(SUPPORT, user, text, ts, thread_ts=parent, parent_user_id=user)
        else:
            user, parent = customer(n), None
            text = f"Hello, a question about order Q{n:07d}: when will it ship to my address?"
            event = message(SUPPORT, user, text, ts)

        def answered(acked: bool) -> None:
            if not acked:
                return
            self.acked_keys.append(f"{SUPPORT}:{ts}")
            if parent is None:
                self.tickets += 1
                self.open_threads.append((user, ts))

        return json.dumps(envelope(event, event_id=f"EvBench{n:07d}")), answered

    def command(self, n: int) -> str:
        name, text, user, channel = COMMANDS[n % len(COMMANDS)]
        fields = {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "relaydesk-bench",
            "channel_id": channel,
            "channel_name": "agents" if channel == AGENTS else "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": name,
            "text": text.format(n=self.rng.randint(1, max(1, self.tickets))),
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": f"{self.response_url}c{n}",
            "trigger_id": "trigger-" + uuid4().hex,
        }
        return urlencode(fields)

    async def send(self, http: aiohttp.ClientSession, stream: Stream, body: str, content_type: str) -> bool:
        """One signed request; True when it was answered 200."""
        headers = {"Content-Type": content_type} | signature_headers(body, secret=self.secret)
        data = body.encode()
        sent = time.perf_counter()
        try:
            async with http.post(self.url, data=data, headers=headers) as reply:
                await reply.read()
                outcome = str(reply.status)
        except (aiohttp.ClientError, TimeoutError) as error:
            outcome = type(error).__name__
        if outcome == "200":
            stream.latencies.append(time.perf_counter() - sent)
            stream.sent_at.append(sent - self.began)
        stream.outcomes[outcome] += 1
        return outcome == "200"

    async def send_event(self, n: int) -> None:
        body, then = self.event(n)
        then(await self.send(self.events_http, self.events, body, "application/json"))

    async def send_command(self, n: int) -> None:
        await self.send(
            self.commands_http, self.commands, self.command(n), "application/x-www-form-urlencoded"
        )


async def paced(rate: float, seconds: float, stream: Stream, send: Callable[[int], Any]) -> None:
    """Start `send(n)` at n / rate seconds for `seconds`, open loop; wait for the last answers."""
    if rate <= 0:
        return
    loop = asyncio.get_running_loop()
    total = round(rate * seconds)
    tasks: set[asyncio.Task[None]] = set()
    start = loop.time()
    for n in range(1, total + 1):
        due = start + (n - 1) / rate
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        stream.late = max(stream.late, loop.time() - due)
        stream.sent += 1
        task = asyncio.create_task(send(n))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    stream.sending = loop.time() - start
    if tasks:
        await asyncio.wait(set(tasks))
    stream.answered = loop.time() - start


async def load(args: argparse.Namespace) -> dict[str, Any]:
    """Both streams at once against `args.url`; the figures as a JSON-ready dict. Events and commands
    have connection pools of their own, as Slack's deliveries do not queue behind one another in one
    client: a command's latency is the bot's, not a wait for a connection behind a backlog of events."""
    secret = os.environ[SECRET_VARIABLE]
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.connections),
            timeout=timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
        ) as events,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.connections),
            timeout=timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
        ) as commands,
    ):
        run = Load(
            args.url, secret, args.response_url, events, commands, random.Random(args.seed), args.reply_share
        )
        began = time.perf_counter()
        await asyncio.gather(
            paced(args.rate, args.seconds, run.events, run.send_event),
            paced(args.commands, args.seconds, run.commands, run.send_command),
        )
        elapsed = time.perf_counter() - began
    return {
        "seconds": elapsed,
        "events": run.events.report(),
        "commands": run.commands.report(),
        "tickets": run.tickets,
        "acked_keys": run.acked_keys,
    }


def main(argv: list[str] | None = None) -> None:
    """Send the load described by the arguments; print the figures as JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    loader = parser
    loader.add_argument("--url", required=True, help="the endpoint, e.g. http://127.0.0.1:3000/slack/events")
    loader.add_argument("--rate", type=float, default=500.0, help="message events per second")
    loader.add_argument("--commands", type=float, default=20.0, help="slash commands per second")
    loader.add_argument("--seconds", type=float, default=20.0)
    loader.add_argument("--reply-share", type=float, default=0.5, help="share of events that are replies")
    loader.add_argument(
        "--response-url", default="http://127.0.0.1:9/respond/", help="prefix of response_urls"
    )
    loader.add_argument(
        "--connections", type=int, default=0, help="most connections open at once per kind (0: no limit)"
    )
    loader.add_argument("--seed", type=int, default=20260302)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(load(args))))


if __name__ == "__main__":
    main()
