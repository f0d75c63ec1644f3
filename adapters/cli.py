"""The `relaydesk` command: `console`, `run` and `db upgrade`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from adapters.bootstrap import StartupError, build, migrate
from adapters.console.desk import ConsoleDesk, stdin_lines
from adapters.discord.config import DiscordSettings
from adapters.router import Adapter, Router
from adapters.slack.config import SlackSettings
from bot.clock import OffsetClock, SystemClock
from bot.config import ConfigError, Settings, load_settings
from bot.policy import PolicyError
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
        if args.command == "db":
            where = asyncio.run(migrate(settings))
            print(f"Database {where} is up to date.")
            return 0
        return asyncio.run(run_adapters(settings))
    except (ConfigError, PolicyError, StartupError) as error:
        print(f"relaydesk: cannot start: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


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
    scheduler = DueWorkScheduler(runtime.desk, router.deliver)
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
        scheduler.shutdown()
        for adapter in router.adapters.values():
            await adapter.stop()
        await runtime.close()
    return 0


async def run_console(settings: Settings) -> int:
    clock = OffsetClock()
    runtime = await build(settings, clock)
    console = ConsoleDesk(runtime.desk, clock, settings.console_agents)
    scheduler: DueWorkScheduler | None = None
    try:
        await console.start()
        if sys.stdin.isatty():
            print(BANNER.format(agents=", ".join(settings.console_agents)), flush=True)
            scheduler = DueWorkScheduler(runtime.desk, console.deliver)
            scheduler.start()
        await console.run(stdin_lines())
    finally:
        if scheduler is not None:
            scheduler.shutdown()
        await runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
