"""Several adapters in one process: each message goes to the adapter of its platform."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Protocol

from bot.messages import CustomerMessage, Outgoing, ToAgent, ToAgents

log = logging.getLogger(__name__)


class Adapter(Protocol):
    platform: str

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def deliver(self, messages: list[Outgoing]) -> None: ...


def platform_of(message: Outgoing) -> str | None:
    """The platform a message is for; None for the agents' channel in general (every adapter's)."""
    audience = message.audience
    if isinstance(message, CustomerMessage):
        where = message.audience.conversation
        return where.platform if where else message.audience.person.platform
    if isinstance(audience, ToAgent):
        return audience.person.platform
    assert isinstance(audience, ToAgents)
    return audience.platform


class Router:
    def __init__(self, adapters: list[Adapter]) -> None:
        self.adapters = {adapter.platform: adapter for adapter in adapters}

    async def deliver(self, messages: list[Outgoing]) -> None:
        batches: dict[str, list[Outgoing]] = defaultdict(list)
        for message in messages:
            platform = platform_of(message)
            targets = [platform] if platform else list(self.adapters)
            for target in targets:
                if target in self.adapters:
                    batches[target].append(message)
                else:
                    log.warning("no %s adapter is running; a message for it was not delivered", target)
        for platform, batch in batches.items():
            await self.adapters[platform].deliver(batch)
