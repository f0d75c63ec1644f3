"""Slack's per-channel posting limit, as a fake to deliver into and as the best any sender could do.

`LimitedSlack` is tests/slack_fake.py's FakeSlack with chat.postMessage limited per channel as Slack
limits it ("about one message per second per channel, short bursts allowed"): a token bucket of
`burst` posts refilled at `rate` per second; a post beyond it is answered HTTP 429 with an integer
Retry-After, as Slack answers. Every post it takes is kept with the moment it took it and the outbox
delivery named in the post's metadata.

It runs in a process of its own (`SlackProcess`), so answering the bot's HTTP calls does not take the
bot's event loop, and hands its record over a pipe.

`best_sends` is the raw limit: when each message would be taken if every channel were fed optimally
(first come, first sent, each as soon as its channel's bucket allows), with no cost for anything else.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from tests.slack_fake import FakeSlack, _Failure

POST = "chat.postMessage"


@dataclass
class Bucket:
    """A token bucket: `tokens` as of `at`."""

    tokens: float
    at: float

    def take(self, now: float, rate: float, burst: int) -> float:
        """Take a token at `now`: 0 when one was there, else the seconds until one will be."""
        self.tokens = min(burst, self.tokens + (now - self.at) * rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / rate


@dataclass
class LimitedSlack(FakeSlack):
    """FakeSlack whose chat.postMessage is rate-limited per channel."""

    rate: float = 1.0
    burst: int = 3
    taken: list[tuple[float, str, int | None]] = field(default_factory=list)
    """(wall time, channel, delivery) of each post taken."""
    refused: Counter[str] = field(default_factory=Counter)
    """429s answered, per channel."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._buckets: dict[str, Bucket] = {}

    def _next_failure(self, method: str, params: dict[str, Any]) -> _Failure | None:
        if method == POST and params.get("channel"):
            channel = str(params["channel"])
            now = time.monotonic()
            bucket = self._buckets.setdefault(channel, Bucket(self.burst, now))
            wait = bucket.take(now, self.rate, self.burst)
            if wait > 0:
                self.refused[channel] += 1
                return _Failure(429, 1, max(1, math.ceil(wait)), "ratelimited", {})
        return super()._next_failure(method, params)

    def _chat_postMessage(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        answer = super()._chat_postMessage(params, headers)
        if answer.get("ok"):
            metadata = answer["message"].get("metadata") or {}
            delivery = (metadata.get("event_payload") or {}).get("delivery")
            self.taken.append((time.time(), str(params["channel"]), delivery))
        self.calls.clear()  # a long run would keep every call; the record above is what counts
        return answer

    def record(self) -> dict[str, Any]:
        return {"taken": list(self.taken), "refused": dict(self.refused)}

    def reset(self) -> None:
        self.taken.clear()
        self.refused.clear()
        self._buckets.clear()
        self.channel_messages.clear()


def _serve(conn: Connection, rate: float, burst: int) -> None:
    asyncio.run(_serving(conn, rate, burst))


async def _serving(conn: Connection, rate: float, burst: int) -> None:
    fake = LimitedSlack(rate=rate, burst=burst)
    await fake.start()
    conn.send(fake.api_url)
    try:
        while True:
            command = await asyncio.to_thread(conn.recv)
            if command == "record":
                conn.send(fake.record())
            elif command == "reset":
                fake.reset()
                conn.send("ok")
            else:
                break
    finally:
        await fake.stop()


class SlackProcess:
    """A LimitedSlack in a child process: `api_url` to point the adapter at, `record()` to read back."""

    def __init__(self, rate: float = 1.0, burst: int = 3) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, rate, burst), daemon=True)
        self.api_url = ""

    async def __aenter__(self) -> SlackProcess:
        self._process.start()
        self.api_url = await asyncio.to_thread(self._conn.recv)
        return self

    async def __aexit__(self, *_: object) -> None:
        self._conn.send("stop")
        await asyncio.to_thread(self._process.join, 10)
        if self._process.is_alive():
            self._process.kill()

    async def record(self) -> dict[str, Any]:
        """{"taken": [(wall time, channel, delivery)], "refused": {channel: 429s}}."""
        self._conn.send("record")
        return await asyncio.to_thread(self._conn.recv)

    async def reset(self) -> None:
        self._conn.send("reset")
        await asyncio.to_thread(self._conn.recv)


def best_sends(messages: Iterable[tuple[str, float]], rate: float, burst: int) -> list[float]:
    """The earliest moment each (channel, release time) message can be taken: per channel, first come
    first sent, each as soon as the channel's token bucket (full at the start) has a token. In the order
    given."""
    items = list(messages)
    buckets: dict[str, Bucket] = {}
    sends = [0.0] * len(items)
    for i in sorted(range(len(items)), key=lambda i: items[i][1]):
        channel, release = items[i]
        bucket = buckets.setdefault(channel, Bucket(burst, release))
        at = max(release, bucket.at)
        wait = bucket.take(at, rate, burst)
        if wait > 0:
            at += wait
            bucket.take(at, rate, burst)
        sends[i] = at
    return sends
