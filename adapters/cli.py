"""The `relaydesk` program: `console`, `run`, `db upgrade`, `policy`, `report`, `customer export|forget`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from adapters.bootstrap import StartupError, build, migrate
from adapters.console.desk import ConsoleDesk, stdin_lines
from adapters.discord.config import DiscordSettings
from adapters.router import Adapter, Router
from adapters.slack.config import SlackSettings
from bot import data_rights, reports, standards
from bot.clock import OffsetClock, SystemClock
from bot.config import ConfigError, Settings, load_settings
from bot.domain import Priority, TicketKind
from bot.durations import format_duration, parse_duration
from bot.policy import Policy, PolicyError, load_policy
from bot.scheduling import DueWorkScheduler

BANNER = """Relaydesk console. Write lines as <name>: <text>.
Agents: {agents}. Anyone else is a customer writing in the support channel.
Try "dana: my order hasn't arrived", then "ana: /ticket claim #1". /advance 2h moves time; /quit ends."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="relaydesk", description="A customer-support desk.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("console", help="run the desk in this terminal (SQLite by default, no tokens)")
    commands.add_parser("run", help="start every configured adapter (the console when none is)")
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply schema migrations")
    customer = commands.add_parser("customer", help="data rights: export or forget a customer")
    customer_commands = customer.add_subparsers(dest="customer_command", required=True)
    ref_help = "the customer's number, or a platform identity as platform:user_id (e.g. slack:U123)"
    export_parser = customer_commands.add_parser(
        "export", help="write everything held about a customer as JSON (stdout unless --out)"
    )
    export_parser.add_argument("customer", metavar="ID", help=ref_help)
    export_parser.add_argument("--out", metavar="FILE", type=Path, help="write the JSON to FILE")
    forget_parser = customer_commands.add_parser(
        "forget", help="erase a customer's personal data and message texts, irreversibly"
    )
    forget_parser.add_argument("customer", metavar="ID", help=ref_help)
    forget_parser.add_argument("--yes", action="store_true", help="really erase (it cannot be undone)")
    policy_parser = commands.add_parser("policy", help="ask the service policy (RELAYDESK_POLICY)")
    policy_commands = policy_parser.add_subparsers(dest="policy_command", required=True)
    policy_commands.add_parser(
        "check", help="validate the policy and summarise every queue's hours and targets"
    )
    due_parser = policy_commands.add_parser("due", help="when each target falls due for a ticket opened --at")
    due_parser.add_argument("--at", required=True, type=_moment, help="ISO 8601 time with offset")
    due_parser.add_argument("--queue", help="a queue name (the default queue when left out)")
    due_parser.add_argument(
        "--kind", choices=[k.value for k in TicketKind], default=TicketKind.EXTERNAL.value
    )
    due_parser.add_argument(
        "--priority", choices=[p.value for p in Priority], help="the kind's default when left out"
    )
    report_parser = commands.add_parser(
        "report", help="the figures for a period, and a PNG chart of its days"
    )
    report_parser.add_argument("--since", default="30d", type=_period, help="how far back: 7d, 30d, 24h")
    report_parser.add_argument("--queue", help="one queue only")
    report_parser.add_argument("--out", type=Path, help="write the chart (PNG) to this file")
    discord_parser = commands.add_parser("discord", help="Discord set-up helpers")
    discord_commands = discord_parser.add_subparsers(dest="discord_command", required=True)
    discord_commands.add_parser("invite-url", help="print the bot's invite URL with exactly its permissions")
    args = parser.parse_args(argv)

    try:
        if args.command == "discord":
            from adapters.discord.adapter import invite_url

            print(invite_url(load_settings(DiscordSettings)))
            return 0
        settings: Settings = load_settings()
        if args.command == "policy":
            return policy_answer(load_policy(settings.policy_path), args)
        if args.command == "db":
            where, measured = asyncio.run(migrate(settings))
            print(f"Database {where} is up to date.")
            if measured:
                print(f"Kept the business time of {measured:,} met clocks for reports.")
            return 0
        if args.command == "customer":
            return asyncio.run(customer_rights(settings, args))
        if args.command == "report":
            return asyncio.run(report(settings, args))
        return asyncio.run(run_adapters(settings))
    except (ConfigError, PolicyError, StartupError) as error:
        print(f"relaydesk: cannot start: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def policy_answer(policy: Policy, args: argparse.Namespace) -> int:
    """`relaydesk policy check|due`: the policy loaded (so it is valid), and answers from it."""
    if args.policy_command == "check":
        print("The policy is valid.")
        print(standards.summary(policy, datetime.now(UTC)))
        return 0
    queue = args.queue or policy.default_queue
    if policy.queue(queue) is None:
        names = ", ".join(q.name for q in policy.queues)
        print(f"relaydesk: there is no queue '{queue}'; queues: {names}", file=sys.stderr)
        return 1
    kind = TicketKind(args.kind)
    priority = Priority(args.priority) if args.priority else policy.default_priority_for(kind)
    for metric, due in standards.due_times(policy, args.at, queue, kind, priority):
        print(f"{metric} {due.isoformat()}")
    return 0


async def report(settings: Settings, args: argparse.Namespace) -> int:
    """`relaydesk report`: the period's figures on standard output, and the chart when --out is given."""
    clock = SystemClock()
    runtime = await build(settings, clock)
    try:
        if args.queue and runtime.policy.queue(args.queue) is None:
            print(f"relaydesk: there is no queue '{args.queue}'", file=sys.stderr)
            return 1
        end = clock.now() + timedelta(seconds=1)  # what happened just now counts
        stats, days = await runtime.desk.report(end - args.since, end, args.queue)
        title = f"Last {format_duration(args.since)}" + (f" · {args.queue}" if args.queue else "")
        print(reports.render_text(stats, title))
        if args.out is not None:
            chart = await asyncio.to_thread(reports.chart_png, days, title)
            try:
                await asyncio.to_thread(args.out.write_bytes, chart)
            except OSError as error:
                print(f"relaydesk: cannot write {args.out}: {error.strerror or error}", file=sys.stderr)
                return 1
            print(f"Wrote the chart to {args.out}.", file=sys.stderr)
        return 0
    finally:
        await runtime.close()


def _period(text: str) -> timedelta:
    try:
        period = parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if period <= timedelta(0):
        raise argparse.ArgumentTypeError("the period must be longer than zero")
    return period


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not an ISO 8601 time, e.g. 2026-03-27T16:59+01:00"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"'{text}' needs a UTC offset, e.g. 2026-03-27T16:59+01:00")
    return moment


async def customer_rights(settings: Settings, args: argparse.Namespace) -> int:
    """`relaydesk customer export|forget <id>`: exit 0 when done, 1 when refused or not found."""
    clock = SystemClock()
    runtime = await build(settings, clock)
    try:
        if args.customer_command == "export":
            return await _export(runtime.uow_factory, args.customer, args.out, clock)
        return await _forget(runtime.uow_factory, args.customer, args.yes, clock)
    except data_rights.UnknownCustomer as error:
        print(f"relaydesk: {error}", file=sys.stderr)
        return 1
    finally:
        await runtime.close()


async def _export(uow_factory: data_rights.UowFactory, ref: str, out: Path | None, clock: SystemClock) -> int:
    data = await data_rights.export(uow_factory, ref, clock, _operator())
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
        return 0
    try:
        await asyncio.to_thread(out.write_text, text, encoding="utf-8")
    except OSError as error:
        print(f"relaydesk: cannot write {out}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(f"Wrote everything held about customer {data['customer']['id']} to {out}.", file=sys.stderr)
    return 0


async def _forget(uow_factory: data_rights.UowFactory, ref: str, yes: bool, clock: SystemClock) -> int:
    if not yes:
        held = await data_rights.survey(uow_factory, ref)
        print(
            f"relaydesk: not forgetting customer {held.customer_id} without --yes. This would erase, "
            f"irreversibly, their name and {_count(held.identities, 'platform identity', 'identities')}, "
            f"and the texts of {_count(held.entries, 'message or note', 'messages and notes')} and "
            f"{_count(held.timeline_events, 'timeline event', 'timeline events')} on "
            f"{_count(held.tickets, 'ticket', 'tickets')}, their profile, "
            f"{_count(held.profile_notes, 'profile note', 'profile notes')} and "
            f"{_count(held.incentives, 'incentive', 'incentives')}; ticket numbers, statuses and times stay. "
            "Nothing was changed. Run it again with --yes to erase.",
            file=sys.stderr,
        )
        return 1
    held = await data_rights.forget(uow_factory, ref, clock, _operator())
    print(
        f"Customer {held.customer_id} is forgotten: {_count(held.identities, 'identity', 'identities')} "
        f"and the texts on {_count(held.tickets, 'ticket', 'tickets')} are erased."
    )
    return 0


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _operator() -> str:
    """Who runs the command, for the audit log: the operating-system user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


async def run_adapters(settings: Settings) -> int:
    """Start every adapter whose credentials are configured, in one event loop; none: the console."""
    slack = load_settings(SlackSettings)
    discord = load_settings(DiscordSettings)
    if not slack.configured and not discord.configured:
        return await run_console(settings)
    runtime = await build(settings, SystemClock())
    adapters: list[Adapter] = []
    if slack.configured:
        from adapters.slack.adapter import SlackAdapter

        adapters.append(SlackAdapter(slack, runtime.desk, runtime.engine))
    if discord.configured:
        from adapters.discord.adapter import DiscordAdapter

        adapters.append(DiscordAdapter(discord, runtime.desk))
    router = Router(adapters)
    runtime.desk.serve(router.adapters)
    every = timedelta(seconds=settings.sweep_seconds)
    scheduler = DueWorkScheduler(runtime.desk, router.deliver, every, platforms=set(router.adapters))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    try:
        for adapter in router.adapters.values():
            await adapter.start()
        scheduler.start()
        print(f"Relaydesk is running: {', '.join(router.adapters)}. Stop with Ctrl-C.", flush=True)
        await stop.wait()
    finally:
        await scheduler.shutdown()
        for adapter in router.adapters.values():
            await adapter.stop()
        await runtime.close()
    return 0


async def run_console(settings: Settings) -> int:
    clock = OffsetClock()
    runtime = await build(settings, clock)
    console = ConsoleDesk(runtime.desk, clock, settings.console_agents, export_dir=settings.export_dir)
    scheduler: DueWorkScheduler | None = None
    try:
        await console.start()
        if sys.stdin.isatty():
            print(BANNER.format(agents=", ".join(settings.console_agents)), flush=True)
            scheduler = DueWorkScheduler(
                runtime.desk,
                console.deliver,
                timedelta(seconds=settings.sweep_seconds),
                platforms={"console"},
            )
            scheduler.start()
        await console.run(stdin_lines())
    finally:
        if scheduler is not None:
            await scheduler.shutdown()
        await runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
