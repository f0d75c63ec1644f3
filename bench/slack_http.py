"""Responsiveness of Slack's HTTP mode under load: how fast slash commands (and events) are acknowledged
while message events pour in, beside the raw limit of HTTP and signature checking alone.

Our path is the real `relaydesk run` in Slack HTTP mode, a process of its own on a fresh database,
talking to the fake Web API (`tests/slack_fake.py`, served from this process on loopback, so nothing
reaches the internet). A second process (`bench.slack_load`) sends signed Events API message events at
`--rate` per second (new customers' messages, each opening a ticket, and replies in acknowledged
tickets' threads) and, alongside, slash commands at `--commands` per second (`/ticket queue`,
`/ticket help`, `/ticket show #N`, `/request ...`). It times each request from its sending to the HTTP
response: the ack, which Slack wants within 3 s and which we aim to give within 50 ms at the 99th
percentile for slash commands. Message events are stored before they are acknowledged (an acknowledged
message is never lost), so their acks include the database write; slash commands are acknowledged at once
and worked afterwards.

The raw limit is the same load, from the same kind of process, against a minimal aiohttp server that
only checks the Slack signature and answers 200: the floor of HTTP and signing cost with no bot.

After the load the bot is stopped with SIGTERM. The notes under the table give each server's CPU time
per request sent (from /proc: what a request costs, beside what it waited), whether every acknowledged
event's message is in the database (looked up by its key: acknowledged means stored), and how much of
the work after the acks reached the fake by then. `--timeline` adds the ack p99 of each second of the
load (a backlog shows as a climb); `--pause` prints the bot's pid and waits before the load, to attach a
profiler (`py-spy record --pid PID`).

    python -m bench.slack_http --rate 500 --seconds 20 --backend both
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import backends, percentile, run, scratch_database
from bench.slack_load import SECRET_VARIABLE, customer
from bot.domain import EntryKind
from storage.engine import async_url
from storage.models import EntryRow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from slack_fake import FakeSlack
from test_slack import AGENTS, ANA, BEN, CARL, SUPPORT

RELAYDESK = str(Path(sys.executable).parent / "relaydesk")
TOKEN = "xoxb-bench-token"
TARGET_P99_MS = 50.0
SLACK_LIMIT_S = 3.0
START_WITHIN = 60.0
STOP_WITHIN = 60.0
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Figures:
    """One stream of one run, as printed."""

    sent: int
    latencies_ms: list[float]
    outcomes: dict[str, int]
    sending: float
    answered: float
    late_ms: float

    @classmethod
    def of(cls, report: dict[str, Any]) -> Figures:
        return cls(
            report["sent"],
            [1000 * t for t in report["latencies"]],
            report["outcomes"],
            report["sending"],
            report["answered"],
            1000 * report["late"],
        )

    @property
    def ok(self) -> int:
        return self.outcomes.get("200", 0)

    @property
    def errors(self) -> int:
        return self.sent - self.ok

    def row(self, backend: str, kind: str) -> str:
        p50, p99 = percentile(self.latencies_ms, 0.5), percentile(self.latencies_ms, 0.99)
        worst = max(self.latencies_ms, default=0.0)
        slow = sum(1 for t in self.latencies_ms if t > 1000 * SLACK_LIMIT_S)
        other = {k: v for k, v in self.outcomes.items() if k != "200"}
        return (
            f"{backend:<11} {kind:<8} {self.sent:>6} {_rate(self.sent, self.sending):>7.1f} {self.ok:>6} "
            f"{_rate(self.ok, self.answered):>7.1f} {self.errors:>6} {slow:>5} {p50:>8.1f} {p99:>8.1f} "
            f"{worst:>8.1f} {self.late_ms:>7.1f}" + (f"  {other}" if other else "")
        )


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


HEADER = (
    f"{'backend':<11} {'kind':<8} {'sent':>6} {'sent/s':>7} {'acked':>6} {'acked/s':>7} {'errors':>6} "
    f"{'>3s':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'late ms':>7}"
)
LEGEND = (
    "sent/s: over the sending; acked/s: answered 200, over the time to the last answer; errors: not answered "
    "200 (a timeout is 10 s); >3s: acked later than Slack waits; p50/p99/max: send to HTTP response, acked "
    "requests only; late: most a request left after its schedule (the load process falling behind)"
)


def free_port() -> int:
    """A port free on loopback now (the process that takes it starts a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """This environment without Relaydesk's or Slack's settings and proxies, plus `extra`."""
    outer = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RELAYDESK_", "SLACK_", "DATABASE_URL")) and k not in PROXY_VARIABLES
    }
    return outer | {"PYTHONPATH": str(ROOT)} | extra


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def serving(argv: list[str], env: dict[str, str], port: int, log: Path) -> AsyncIterator[int]:
    """A server process, once it answers GET /healthz; stopped with SIGTERM (then SIGKILL). Yields its pid."""
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=log.parent, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                if process.returncode is not None:
                    tail = (await asyncio.to_thread(log.read_text, errors="replace"))[-3000:]
                    raise RuntimeError(f"{argv[0]} exited with {process.returncode}:\n{tail}")
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as reply:
                        return reply.status == 200
                except aiohttp.ClientError:
                    return False

            await until(healthy, f"{' '.join(argv[:3])} to answer /healthz", START_WITHIN)
        yield process.pid
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_WITHIN)
            except TimeoutError:
                process.kill()
                await process.wait()


async def load(url: str, args: argparse.Namespace, env: dict[str, str], response_url: str) -> dict[str, Any]:
    """The load process, run to its end; its figures."""
    argv = [
        sys.executable,
        "-m",
        "bench.slack_load",
        f"--url={url}",
        f"--rate={args.rate}",
        f"--commands={args.commands}",
        f"--seconds={args.seconds}",
        f"--reply-share={args.reply_share}",
        f"--response-url={response_url}",
    ]
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the load process exited with {process.returncode}:\n{err.decode()[-3000:]}")
    return dict(json.loads(out))


def timeline(backend: str, report: dict[str, Any]) -> list[str]:
    """Ack p99 (ms) of the requests sent in each second of the load: where the latency came from."""
    lines = []
    for kind in ("commands", "events"):
        by_second: dict[int, list[float]] = {}
        for at, latency in zip(report[kind]["sent_at"], report[kind]["latencies"], strict=True):
            by_second.setdefault(int(at), []).append(1000 * latency)
        p99s = " ".join(f"{percentile(by_second[s], 0.99):.0f}" for s in sorted(by_second))
        lines.append(f"{backend} {kind} p99 ms by second sent: {p99s}")
    return lines


def rows(backend: str, report: dict[str, Any]) -> list[str]:
    return [
        Figures.of(report["commands"]).row(backend, "command"),
        Figures.of(report["events"]).row(backend, "event"),
    ]


@asynccontextmanager
async def raw_server(secret: str) -> AsyncIterator[int]:
    """The raw limit, served from this process (a process apart from the load's): check the signature
    as the adapter does first, answer 200, nothing else. Yields its port."""
    verifier = SignatureVerifier(secret)

    async def events(request: web.Request) -> web.Response:
        raw = await request.read()
        valid = verifier.is_valid(
            body=raw.decode("utf-8"),
            timestamp=request.headers.get("X-Slack-Request-Timestamp", ""),
            signature=request.headers.get("X-Slack-Signature", ""),
        )
        return web.Response(status=200 if valid else 401, text="")

    app = web.Application()
    app.add_routes([web.post("/slack/events", events)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def raw(args: argparse.Namespace, secret: str) -> tuple[dict[str, Any], list[str]]:
    """The same load against the raw server."""
    env = child_environment({SECRET_VARIABLE: secret})
    async with raw_server(secret) as port:
        before = time.process_time()
        report = await load(f"http://127.0.0.1:{port}/slack/events", args, env, "http://127.0.0.1:9/respond/")
        cpu = time.process_time() - before
    return report, [cpu_note("raw", cpu, report)]


async def ours(
    backend: str, args: argparse.Namespace, secret: str, folder: Path
) -> tuple[dict[str, Any], list[str]]:
    """The same load against `relaydesk run` in Slack HTTP mode; its figures and what else it shows."""
    fake = FakeSlack(tokens={TOKEN})
    fake.add_user(ANA, display_name="Ana", real_name="Ana Lima")
    fake.add_user(BEN, display_name="Ben", real_name="Ben Okafor")
    fake.add_user(CARL, display_name="Carl", real_name="Carl Jensen")
    for n in range(1, round(args.rate * args.seconds) + 1):
        fake.add_user(customer(n), real_name=f"Casey{n} Moreno", name=f"casey{n}")
    await fake.start()
    port = free_port()
    log = folder / f"relaydesk-{backend}.log"
    try:
        async with scratch_database(backend, "slackhttp") as url:
            env = child_environment(
                {
                    "SLACK_BOT_TOKEN": TOKEN,
                    SECRET_VARIABLE: secret,
                    "SLACK_API_URL": fake.api_url,
                    "SLACK_SUPPORT_CHANNELS": SUPPORT,
                    "SLACK_AGENT_CHANNEL": AGENTS,
                    "SLACK_AGENTS": f"{ANA},{BEN}",
                    "RELAYDESK_HTTP_HOST": "127.0.0.1",
                    "RELAYDESK_HTTP_PORT": str(port),
                    "DATABASE_URL": url,
                    "RELAYDESK_LOG_LEVEL": "WARNING",
                }
            )
            async with serving([RELAYDESK, "run"], env, port, log) as pid:
                if args.pause:
                    print(
                        f"# {backend}: relaydesk run is pid {pid}; loading in {args.pause:.0f} s", flush=True
                    )
                    await asyncio.sleep(args.pause)
                calls_before, cpu_before = len(fake.calls), cpu_seconds(pid)
                report = await load(
                    f"http://127.0.0.1:{port}/slack/events",
                    args,
                    child_environment({SECRET_VARIABLE: secret}),
                    fake.response_url(""),
                )
                work = (len(fake.calls) - calls_before, len(fake.responses))
                cpu = cpu_seconds(pid) - cpu_before
            stored = await stored_messages(url)
    finally:
        await fake.stop()
    acked = set(report["acked_keys"])
    missing = len(acked - stored)
    said = (await asyncio.to_thread(log.read_text, errors="replace")).splitlines()
    errors = [line for line in said if " ERROR " in line or "Traceback" in line]
    notes = [
        cpu_note(backend, cpu, report),
        f"{backend}: {len(acked)} events acknowledged, {missing} of them not stored"
        + (" — ACKNOWLEDGED MESSAGES LOST" if missing else "")
        + f"; {len(stored)} customer messages stored in all",
        f"{backend}: by the end of the load {work[0]} Web API calls and {work[1]} response_url answers "
        f"reached the fake; the bot logged {len(errors)} errors"
        + (f" (first: {errors[0][:200]})" if errors else "")
        + f" ({len(said)} log lines)",
    ]
    return report, notes


def cpu_note(name: str, cpu: float, report: dict[str, Any]) -> str:
    sent = report["events"]["sent"] + report["commands"]["sent"]
    return (
        f"{name}: the server used {cpu:.2f} s of CPU in {report['seconds']:.1f} s of load "
        f"({1000 * cpu / max(1, sent):.2f} ms per request sent)"
    )


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far (user + system), from /proc; 0 where there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def stored_messages(url: str) -> set[str]:
    """The keys of the customer messages from Slack in the database (read after the bot stopped)."""
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            query = select(EntryRow.external_id).where(
                EntryRow.platform == "slack", EntryRow.kind == EntryKind.CUSTOMER
            )
            return {key for key in (await connection.execute(query)).scalars() if key}
    finally:
        await engine.dispose()


async def main(args: argparse.Namespace) -> None:
    secret = secrets.token_hex(16)  # generated per run: nothing to leak
    print(
        f"slack_http: {args.rate:g} message events/s ({args.reply_share:.0%} replies) + {args.commands:g} "
        f"slash commands/s for {args.seconds:g} s, from a second process on loopback; "
        f"target: slash command ack p99 <= {TARGET_P99_MS:g} ms (Slack allows {SLACK_LIMIT_S * 1000:,.0f} "
        f"ms); load average at start {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="relaydesk-slackhttp-") as where:
        folder = Path(args.keep) if args.keep else Path(where)
        folder.mkdir(parents=True, exist_ok=True)
        results = [("raw", *await raw(args, secret))]
        for backend in backends(args.backend):
            report, notes = await ours(backend, args, secret, folder)
            results.append((backend, report, notes))
        print(f"# {LEGEND}")
        print(HEADER)
        for backend, report, _ in results:
            for line in rows(backend, report):
                print(line)
        for _, _, notes in results:
            for note in notes:
                print(f"  {note}")
        if args.timeline:
            for backend, report, _ in results:
                for line in timeline(backend, report):
                    print(f"  {line}")
        floor = Figures.of(results[0][1]["commands"])
        for backend, report, _ in results[1:]:
            print(verdict(backend, Figures.of(report["commands"]), floor))


def verdict(backend: str, commands: Figures, floor: Figures) -> str:
    """The target line: a slash command not acknowledged at all misses it, whatever the others did."""
    p99 = percentile(commands.latencies_ms, 0.99)
    met = p99 <= TARGET_P99_MS and commands.errors == 0
    unanswered = f", {commands.errors} not acknowledged" if commands.errors else ""
    return (
        f"target {backend}: slash command ack p99 {p99:.1f} ms{unanswered} "
        f"(raw {percentile(floor.latencies_ms, 0.99):.1f} ms): {'met' if met else 'MISSED'} "
        f"(<= {TARGET_P99_MS:g} ms)"
    )


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=500.0, help="message events per second")
    parser.add_argument("--commands", type=float, default=20.0, help="slash commands per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--reply-share", type=float, default=0.5, help="share of events that are replies")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--timeline", action="store_true", help="also print the ack p99 of each second")
    parser.add_argument("--keep", help="keep the processes' logs in this folder")
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="seconds between the bot's start and the load (to attach a profiler)",
    )
    run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
