"""A terminal version of a support channel.

Input lines are `<name>: <text>`. Names in the agent list are agents; anyone else is a customer writing in
the support channel. Text starting with `/` is a command. `/advance <duration>` and `/at <ISO time>` move
the console's clock and run due work; `/quit` ends.

Every output line starts with its audience: `[to <customer>]`, `[agents]`, `[private <agent>]`, or
`[console]` for the console's own messages. Multi-line messages repeat the prefix on each line.

Files for staff (a ticket's transcript) cannot be shown in a terminal: they are saved in the export folder,
never over an existing file, and a line says where each one went.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from bot.clock import OffsetClock
from bot.commands import Actor, IncomingMessage
from bot.desk import Desk
from bot.domain import Role
from bot.durations import parse_duration
from bot.messages import (
    Attachment,
    Conversation,
    CustomerMessage,
    Outgoing,
    Person,
    StaffMessage,
    ToAgent,
    ToAgents,
)

PLATFORM = "console"
NAME_LIMIT = 64
MAX_ADVANCE = timedelta(days=3650)
FILENAME_LIMIT = 120
"""Characters of a saved file's name, well inside every file system's limit (255 bytes)."""
MAX_COPIES = 10_000
log = logging.getLogger(__name__)
SUPPORT_CHANNEL = Conversation(PLATFORM, "support")
_LINE = re.compile(r"^\s*([^\s:/][^\s:]*)\s*:\s?(.*)$")


class ConsoleDesk:
    """Reads `<name>: <text>` lines, hands them to the desk, and prints what the desk says."""

    def __init__(
        self,
        desk: Desk,
        clock: OffsetClock,
        agents: Iterable[str],
        out: TextIO = sys.stdout,
        export_dir: Path = Path("exports"),
    ) -> None:
        self._desk = desk
        self._clock = clock
        self._agents = {name.lower() for name in agents}
        self._out = out
        self._export_dir = export_dir
        self._lock = asyncio.Lock()

    @property
    def agents(self) -> list[Person]:
        return [_person(name) for name in sorted(self._agents)]

    async def start(self) -> None:
        """Make the console's agents known to the desk, so they can be named in transfers."""
        await self._desk.register_agents(self.agents)

    async def run(self, lines: AsyncIterator[str]) -> None:
        """Handle every line in order until the input ends or someone types /quit."""
        async for line in lines:
            if not await self.handle_line(line):
                return

    async def handle_line(self, line: str) -> bool:
        """Handle one line; False means the console should stop. One bad line never ends the desk."""
        line = line.rstrip("\n")
        if not line.strip():
            return True
        async with self._lock:
            try:
                return await self._handle(line)
            except Exception:
                log.exception("console: a line could not be handled")
                self._say("Sorry, something went wrong with that line. The rest of the desk carries on.")
                return True

    async def _handle(self, line: str) -> bool:
        if line.strip().startswith("/"):
            return await self._console_command(line.strip())
        match = _LINE.match(line)
        if not match:
            self._say(
                'Please start each line with a name, like "dana: my order hasn\'t arrived". '
                f"Agents: {', '.join(sorted(self._agents))}; anyone else is a customer."
            )
            return True
        name, text = match.group(1).lower(), match.group(2)
        if len(name) > NAME_LIMIT:
            self._say(f"Please use a name of at most {NAME_LIMIT} characters.")
            return True
        if text.strip().startswith("/") and _is_console_command(text.strip()):
            return await self._console_command(text.strip())
        await self._from_person(name, text)
        return True

    async def deliver(self, messages: list[Outgoing]) -> None:
        """Print what the desk says (also used by the scheduler's sweeps); files for staff are saved in
        the export folder, with one line each saying where."""
        for message in messages:
            for line in render(message).splitlines() or [""]:
                self._out.write(line + "\n")
            if isinstance(message, StaffMessage):
                for attachment in message.attachments:
                    self._write(_prefix(message), await self._save(attachment))
        self._out.flush()
        await self._desk.settle(messages)

    async def _save(self, attachment: Attachment) -> str:
        """Write one file without ever replacing another; the line to print about it."""
        name = safe_filename(attachment.filename)
        try:
            path = await asyncio.to_thread(_write_new_file, self._export_dir, name, attachment.data)
        except OSError as error:
            log.warning("console: cannot save %s in %s: %s", name, self._export_dir, error)
            return f"could not save {name} to {self._export_dir}: {error.strerror or error}"
        return f"saved {name} to {path}"

    async def _from_person(self, name: str, text: str) -> None:
        is_agent = name in self._agents
        actor = Actor(_person(name), Role.AGENT if is_agent else Role.CUSTOMER)
        if text.strip().startswith("/"):
            await self.deliver(await self._desk.command(actor, text.strip(), SUPPORT_CHANNEL))
        elif is_agent:
            self._write(
                f"[private {name}]",
                "Agents answer with /ticket reply #<id> <text>, or add an internal note with "
                "/ticket note #<id> <text>. /ticket help lists every command.",
            )
        else:
            message = IncomingMessage(actor, text, SUPPORT_CHANNEL, message_id=uuid.uuid4().hex)
            await self.deliver(await self._desk.receive(message))

    async def _console_command(self, text: str) -> bool:
        word, _, argument = text.partition(" ")
        word = word.lower()
        if word == "/quit":
            return False
        if word == "/advance":
            try:
                delta = parse_duration(argument)
                if delta > MAX_ADVANCE:
                    raise ValueError(f"'{argument.strip()}' is more than ten years")
                _in_range(self._clock.now() + delta)
                self._clock.advance(delta)
            except (ValueError, OverflowError) as error:
                self._say(f"{error}. Example: /advance 2h")
                return True
        elif word == "/at":
            try:
                moment = datetime.fromisoformat(argument.strip())
                if moment.tzinfo is None:
                    raise ValueError("it needs a UTC offset")
            except ValueError as error:
                self._say(
                    f"/at needs an ISO 8601 time with its offset ({error}). Example: "
                    "/at 2026-03-27T16:30+01:00"
                )
                return True
            try:
                _in_range(moment)
                self._clock.set(moment)
            except (ValueError, OverflowError):
                self._say("That time is out of range. Example: /at 2026-03-27T16:30+01:00")
                return True
        else:
            self._say(
                f"I don't know {word}. Console commands: /advance <duration>, /at <time>, /quit; "
                'desk commands start with a name, like "ana: /ticket help".'
            )
            return True
        self._say(f"The time is now {self._clock.now():%a %d %b %Y %H:%M} UTC.")
        await self.deliver(await self._desk.run_due_work())
        return True

    def _say(self, text: str) -> None:
        self._write("[console]", text)

    def _write(self, prefix: str, text: str) -> None:
        for line in text.splitlines() or [""]:
            self._out.write(f"{prefix} {line}\n")
        self._out.flush()


def render(message: Outgoing) -> str:
    """A desk message as console lines, each starting with its audience."""
    prefix = _prefix(message)
    return "\n".join(f"{prefix} {line}" for line in (message.text.splitlines() or [""]))


def _prefix(message: Outgoing) -> str:
    audience = message.audience
    if isinstance(message, CustomerMessage):
        return f"[to {message.audience.person.user_id}]"
    if isinstance(audience, ToAgents):
        return "[agents]"
    assert isinstance(audience, ToAgent)
    return f"[private {audience.person.user_id}]"


def safe_filename(name: str) -> str:
    """A file name that stays inside the export folder whatever the core (or a customer's words in
    it) says: its last path component only, no leading dots (no hidden files, no `..`), no control
    characters, of a sane length with its extension kept."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '<>:"|?*')
    base = base.strip().lstrip(".").strip()
    if len(base) > FILENAME_LIMIT:
        stem, dot, suffix = base.rpartition(".")
        if dot and 0 < len(suffix) < 16:
            base = f"{stem[: FILENAME_LIMIT - len(suffix) - 1]}.{suffix}"
        else:
            base = base[:FILENAME_LIMIT]
    return base or "attachment"


def _write_new_file(folder: Path, name: str, content: bytes) -> Path:
    """Create `folder/name`, or `name-2`, `name-3`... when taken: exclusive creation, so not even a
    file appearing at the same moment is overwritten."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, suffix = Path(name).stem, Path(name).suffix
    for copy in range(1, MAX_COPIES + 1):
        path = folder / (name if copy == 1 else f"{stem}-{copy}{suffix}")
        try:
            with path.open("xb") as file:
                file.write(content)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{MAX_COPIES} files named like {name} already exist")


async def stdin_lines() -> AsyncIterator[str]:
    """Lines from standard input, interactive or piped, without blocking the event loop. Bytes that
    are not UTF-8 become U+FFFD rather than ending the desk. The reading thread is a daemon, so
    Ctrl-C ends the desk at once instead of waiting for one more line."""
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(errors="replace")
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        try:
            for line in iter(sys.stdin.readline, ""):
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, "")
        except RuntimeError:
            return  # the desk has ended and its loop is closed

    threading.Thread(target=read, name="console-stdin", daemon=True).start()
    while line := await lines.get():
        yield line


def _person(name: str) -> Person:
    display = name if any(ch.isupper() for ch in name) else name.capitalize()
    return Person(PLATFORM, name, display)


def _in_range(moment: datetime) -> None:
    """The console's clock stays where every date sum still works (years 1970 to 9000)."""
    if not 1970 <= moment.year <= 9000:
        raise OverflowError("the console's clock stays between 1970 and 9000")


def _is_console_command(text: str) -> bool:
    return text.split(" ", 1)[0].lower() in ("/advance", "/at", "/quit")
