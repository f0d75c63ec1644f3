"""Several adapters in one process: each message goes to the adapter of its platform."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Protocol

from bot.messages import Outgoing, platform_of

log = logging.getLogger(__name__)


class Adapter(Protocol):
    platform: str

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def deliver(self, messages: list[Outgoing]) -> None: ...


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
