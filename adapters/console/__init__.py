"""The console desk: a support channel in a terminal, for trying Relaydesk and for end-to-end tests."""

from adapters.console.desk import ConsoleDesk

__all__ = ["ConsoleDesk"]
