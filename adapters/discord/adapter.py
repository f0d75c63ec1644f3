"""Discord ⇄ core. Interactions are deferred at once and answered after the desk has worked; every
message goes out with no pings allowed. No ticket rule lives here: this module knows Discord's objects,
limits and error codes, and the core decides everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any, Literal

import discord
from discord import app_commands

from adapters.discord.config import DiscordSettings
from adapters.text import split_text
from bot.commands import (
    PROFILE_FIELDS,
    Actor,
    AgentMention,
    Block,
    Claim,
    Command,
    CustomerRef,
    GiveIncentive,
    Help,
    Hold,
    IncomingMessage,
    Kept,
    Link,
    ListQueue,
    MakePromise,
    Mine,
    Note,
    Pending,
    Profile,
    QueueName,
    Release,
    Reopen,
    Reply,
    Request,
    Resolve,
    SetPriority,
    Show,
    ShowCustomer,
    ShowStats,
    Snippet,
    TicketCommand,
    Transcript,
    Transfer,
    Unblock,
)
from bot.config import ConfigError
from bot.desk import Desk
from bot.domain import Priority, Role
from bot.grammar import VERBS, ParseError, block_length, parse
from bot.messages import (
    Attachment,
    Conversation,
    CustomerMessage,
    Handover,
    MessageRef,
    Outgoing,
    Person,
    StaffKind,
    StaffMessage,
    SurveyPrompt,
    TicketCard,
    ToAgent,
    ToAgents,
    Undelivered,
    is_private_answer,
)
from bot.text import clean, defuse_mentions

PLATFORM = "discord"
MESSAGE_LIMIT = 2000
EMBED_DESCRIPTION_LIMIT = 4096
FILES_PER_MESSAGE = 10
FILE_SIZE_LIMIT = discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES
"""10 MiB: what Discord takes per upload where nothing tells us more (an interaction says its own
`attachment_size_limit`, a boosted server allows more)."""
TOO_LARGE = "`{name}` is too large to send here ({size}; Discord takes up to {limit})."
NO_PINGS = discord.AllowedMentions.none()
CANNOT_DM = 50007
THREAD_EXISTS = 160004
"""Discord's code for a message that already has a thread (a card whose resend Discord deduplicated)."""
SURVEY_BUTTONS_MAX = 25
"""Five action rows of five buttons: all a Discord message holds."""
PRIORITY_COLOURS = {"low": 0x95A5A6, "normal": 0x3498DB, "high": 0xE67E22, "urgent": 0xE74C3C}
log = logging.getLogger(__name__)

# Exactly what the bot needs: read, write and thread in its channels, embed cards.
BOT_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_private_threads=True,
    create_public_threads=True,
    manage_threads=True,
    embed_links=True,
    read_message_history=True,
)


def intents() -> discord.Intents:
    """Only what the desk uses; message content (privileged) to read customers in support channels."""
    chosen = discord.Intents.none()
    chosen.guilds = True
    chosen.guild_messages = True
    chosen.dm_messages = True
    chosen.message_content = True
    return chosen


def invite_url(settings: DiscordSettings) -> str:
    app_id = settings.app_id()
    if app_id is None:
        raise ConfigError("DISCORD_APPLICATION_ID: set it (or DISCORD_TOKEN) to print an invite URL")
    return discord.utils.oauth_url(
        app_id, permissions=BOT_PERMISSIONS, scopes=("bot", "applications.commands")
    )


class TicketButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"relaydesk:(?P<action>claim|resolve):(?P<ticket>[0-9]{1,9})",
):
    """Claim and Resolve on a ticket's card; the ticket number lives in the custom_id, so the buttons
    keep working after a restart."""

    def __init__(self, action: str, ticket: int) -> None:
        style = discord.ButtonStyle.primary if action == "claim" else discord.ButtonStyle.secondary
        super().__init__(
            discord.ui.Button(
                label=action.capitalize(), style=style, custom_id=f"relaydesk:{action}:{ticket}"
            )
        )
        self.action = action
        self.ticket = ticket

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any
    ) -> TicketButton:
        return cls(match["action"], int(match["ticket"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _adapter(interaction).on_button(interaction, self.action, self.ticket)


class RatingButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"relaydesk:rate:(?P<ticket>[0-9]{1,9}):(?P<rating>[0-9]{1,2})",
):
    """One rating on a survey; the ticket and the rating live in the custom_id, so a survey answered
    days later, after any number of restarts, still counts."""

    def __init__(self, ticket: int, rating: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=str(rating),
                style=discord.ButtonStyle.secondary,
                custom_id=f"relaydesk:rate:{ticket}:{rating}",
            )
        )
        self.ticket = ticket
        self.rating = rating

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any
    ) -> RatingButton:
        return cls(int(match["ticket"]), int(match["rating"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _adapter(interaction).on_rating(interaction, self.ticket, self.rating)


def survey_view(survey: SurveyPrompt) -> discord.ui.View:
    """A button for each rating from 1 to the survey's scale, five to a row (Discord's limits: five
    rows of five)."""
    view = discord.ui.View(timeout=None)
    for rating in range(1, max(1, min(survey.scale, SURVEY_BUTTONS_MAX)) + 1):
        view.add_item(RatingButton(survey.ticket_number, rating))
    return view


def rated_line(rating: int, scale: int) -> str:
    """`Your rating: ★★★★☆ 4/5`."""
    stars = "★" * rating + "☆" * (scale - rating) if 0 < rating <= scale <= 10 else ""
    return f"Your rating: {stars} {rating}/{scale}".replace("  ", " ")


class RequestForm(discord.ui.Modal, title="Raise a request"):
    category: discord.ui.TextInput = discord.ui.TextInput(label="What is it about?", max_length=100)
    urgency: discord.ui.TextInput = discord.ui.TextInput(
        label="How urgent? low, normal, high or urgent", default="normal", max_length=10
    )
    description: discord.ui.TextInput = discord.ui.TextInput(
        label="What do you need?", style=discord.TextStyle.paragraph, max_length=3000
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await _adapter(interaction).on_request_form(interaction, self)


class RelaydeskClient(discord.Client):
    """discord.py's client with the desk's command tree; events are handed to the adapter."""

    def __init__(self, adapter: DiscordAdapter) -> None:
        super().__init__(intents=intents(), allowed_mentions=NO_PINGS)
        self.adapter = adapter
        self.tree = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(TicketButton, RatingButton)
        self.adapter.register_commands(self.tree)
        if self.adapter.sync_commands:
            guild_id = self.adapter.settings.guild_id
            guild = discord.Object(id=guild_id) if guild_id else None
            if guild is not None:
                self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.on_message(message)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        await self.adapter.on_edit(payload)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.adapter.on_delete(payload)


def _adapter(interaction: discord.Interaction) -> DiscordAdapter:
    client = interaction.client
    assert isinstance(client, RelaydeskClient)
    return client.adapter


class DiscordAdapter:
    """The desk in Discord: support channels (a private thread per ticket) and DMs for customers, an
    agents' channel with a card and a staff thread per ticket."""

    platform = PLATFORM

    def __init__(self, settings: DiscordSettings, desk: Desk, sync_commands: bool = True) -> None:
        assert settings.agent_channel is not None, "DiscordSettings validates this"
        self.settings = settings
        self.agent_channel: int = settings.agent_channel
        self.sync_commands = sync_commands
        self._desk = desk
        self.client = RelaydeskClient(self)
        self._card_locks: dict[int, asyncio.Lock] = {}
        self._in_flight: set[str] = set()
        self._moved_from_dm: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Log in and connect in the background (discord.py reconnects and resumes by itself)."""
        assert self.settings.token is not None
        await self.client.login(self.settings.token.get_secret_value())
        self._task = asyncio.create_task(self.client.connect(reconnect=True), name="discord-gateway")

    async def stop(self) -> None:
        await self.client.close()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    # --- gateway events -------------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        key = str(message.id)
        text = message.content or _attachments_note(message)
        if not text.strip():
            return  # a sticker, or no Message Content intent: nothing a ticket could hold
        if key in self._in_flight:
            return  # the same message, replayed while we still work on it
        self._in_flight.add(key)
        try:
            if not await self._desk.has_message(PLATFORM, key):  # a gateway resume replays events
                await self._handle_message(message, key, text)
        finally:
            self._in_flight.discard(key)

    async def _handle_message(self, message: discord.Message, key: str, text: str) -> None:
        actor = await self._actor(message.author)
        channel = message.channel
        if isinstance(channel, discord.Thread) and channel.parent_id == self.agent_channel:
            staff_thread = Conversation(PLATFORM, str(self.agent_channel), str(channel.id), _guild(message))
            await self.deliver(await self._desk.note_from_staff_thread(actor, staff_thread, text, key))
            return
        conversation = await self._conversation_for(message, actor)
        if conversation is None:
            return
        await self.deliver(await self._desk.receive(IncomingMessage(actor, text, conversation, key)))

    async def _conversation_for(self, message: discord.Message, actor: Actor) -> Conversation | None:
        """A DM; a ticket's private thread; or a new message in a support channel, which gets its own
        private thread with the customer in it."""
        channel = message.channel
        if message.guild is None:
            return Conversation(PLATFORM, str(channel.id), None, None)
        guild = str(message.guild.id)
        if isinstance(channel, discord.Thread) and channel.parent_id in self.settings.support_channels:
            return Conversation(PLATFORM, str(channel.id), str(channel.id), guild)
        if channel.id not in self.settings.support_channels or actor.is_agent:
            return None
        assert isinstance(channel, discord.TextChannel)
        try:
            thread = await channel.create_thread(
                name=f"{message.author.display_name}: {message.content or 'new ticket'}"[:100],
                type=discord.ChannelType.private_thread,
                invitable=False,
            )
            await thread.add_user(message.author)
        except discord.HTTPException as error:
            # Never answer in the public channel, where every customer would read it: use a DM.
            log.warning(
                "Discord: cannot open a private thread in %s (%s); answering by DM", channel.id, error
            )
            dm = await message.author.create_dm()
            return Conversation(PLATFORM, str(dm.id), None, None)
        return Conversation(PLATFORM, str(thread.id), str(thread.id), guild)

    async def on_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        author = payload.data.get("author") or {}
        if author.get("bot") or "content" not in payload.data:
            return
        said = await self._desk.message_edited(PLATFORM, str(payload.message_id), payload.data["content"])
        await self.deliver(said)

    async def on_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.deliver(await self._desk.message_deleted(PLATFORM, str(payload.message_id)))

    # --- interactions ---------------------------------------------------------------------------

    def register_commands(self, tree: app_commands.CommandTree) -> None:
        tree.add_command(_ticket_group(self))
        tree.add_command(
            app_commands.Command(
                name="request", description="Raise an internal request", callback=self._request_command
            )
        )

    async def run_command(
        self, interaction: discord.Interaction, command: Command, newcomer: discord.Member | None = None
    ) -> None:
        """A /ticket subcommand: its options are already the command the grammar would have parsed,
        so text stays text (a reply starting with "#2" is not about ticket #2). Deferred at once,
        answered privately after. `newcomer`: an agent named in the command, made known to the desk."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with _answered_even_on_error(interaction):
            if newcomer is not None and await self._is_agent(newcomer):
                await self._desk.register_agents([Person(PLATFORM, str(newcomer.id), newcomer.display_name)])
            actor = await self._actor(interaction.user)
            said = await self._desk.execute(actor, command, self._context(interaction))
            await self.deliver(said, interaction, actor)

    async def on_button(self, interaction: discord.Interaction, action: str, ticket: int) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with _answered_even_on_error(interaction):
            actor = await self._actor(interaction.user)
            command = Claim(ticket) if action == "claim" else Resolve(ticket)
            await self.deliver(await self._desk.execute(actor, command), interaction, actor)

    async def on_rating(self, interaction: discord.Interaction, ticket: int, rating: int) -> None:
        """A rating button on a survey: acknowledged at once as an update of the survey message, then
        taken by the desk (only the ticket's customer, only while the survey is open). A refusal is a
        private answer to whoever clicked; a rating taken replaces the buttons with the choice."""
        await interaction.response.defer()  # a component's defer: the message is updated later
        async with _answered_even_on_error(interaction):
            actor = await self._actor(interaction.user)
            said = await self._desk.rate(actor, ticket, rating)
            if not any(is_private_answer(m, actor.person) for m in said):
                await self._show_rating(interaction, rating)
            await self.deliver(said, interaction, actor, done=None)

    async def _show_rating(self, interaction: discord.Interaction, rating: int) -> None:
        shown = interaction.message
        if shown is None:
            return
        scale = sum(1 for row in shown.components for _ in getattr(row, "children", ())) or 5
        line = rated_line(rating, scale)
        content = f"{shown.content[: MESSAGE_LIMIT - len(line) - 2]}\n\n{line}"
        try:
            await interaction.edit_original_response(content=content, view=None)
        except discord.HTTPException as error:
            log.warning("Discord: could not show the rating on the survey: %s", error)

    async def _request_command(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(RequestForm())

    async def on_request_form(self, interaction: discord.Interaction, form: RequestForm) -> None:
        try:
            priority = Priority(form.urgency.value.strip().lower() or "normal")
        except ValueError:
            await interaction.response.send_message(
                "Please give the urgency as low, normal, high or urgent.", ephemeral=True
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = await self._actor(interaction.user)
        dm = await interaction.user.create_dm()
        request = Request(form.description.value, form.category.value.strip() or None, priority)
        said = await self._desk.execute(actor, request, Conversation(PLATFORM, str(dm.id), None, None))
        numbers = {m.audience.ticket_number for m in said if isinstance(m, CustomerMessage)}

        def thanks() -> str:
            if numbers & self._moved_from_dm:
                return "Thanks, your request is in. I couldn't DM you, so I've written in a private thread."
            return "Thanks, your request is in: I've written to you in a DM."

        await self.deliver(said, interaction, actor, done=thanks)

    async def ticket_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        actor = await self._actor(interaction.user)
        overview = await self._desk.overview(actor)
        if overview is None:
            return []
        lines = [*overview.mine, *overview.unclaimed]
        wanted = current.lstrip("#")
        return [
            app_commands.Choice(
                name=f"#{line.number} · {line.customer_name}: {line.subject}"[:100], value=line.number
            )
            for line in lines
            if not wanted or str(line.number).startswith(wanted)
        ][:25]

    async def queue_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        names = [q.name for q in self._desk.policy.queues]
        return [app_commands.Choice(name=n, value=n) for n in names if n.startswith(current.lower())][:25]

    async def snippet_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Snippets whose name contains what was typed; none for people who are not agents."""
        names = await self._desk.snippet_names(await self._actor(interaction.user))
        wanted = current.strip().lower()
        return [app_commands.Choice(name=n, value=n) for n in names if wanted in n][:25]

    # --- people ---------------------------------------------------------------------------------

    async def _actor(self, user: discord.User | discord.Member) -> Actor:
        person = Person(PLATFORM, str(user.id), user.display_name)
        return Actor(person, Role.AGENT if await self._is_agent(user) else Role.CUSTOMER)

    async def _is_agent(self, user: discord.User | discord.Member) -> bool:
        """Holders of DISCORD_AGENT_ROLE (its id or its name); in DMs, looked up in DISCORD_GUILD_ID."""
        member = user if isinstance(user, discord.Member) else await self._member(user.id)
        if member is None:
            return False
        if self.settings.guild_id and member.guild.id != self.settings.guild_id:
            return False  # a role of the same name in someone else's server makes nobody an agent
        role = self.settings.agent_role or ""
        return any(str(r.id) == role or r.name == role for r in member.roles)

    async def _member(self, user_id: int) -> discord.Member | None:
        guild = self.client.get_guild(self.settings.guild_id) if self.settings.guild_id else None
        if guild is None:
            return None
        try:
            return guild.get_member(user_id) or await guild.fetch_member(user_id)
        except discord.HTTPException:
            return None

    def _context(self, interaction: discord.Interaction) -> Conversation | None:
        """Where a command was typed: a ticket's thread lets the #id be left out."""
        channel = interaction.channel
        guild = str(interaction.guild_id) if interaction.guild_id else None
        if isinstance(channel, discord.Thread):
            if channel.parent_id == self.agent_channel:
                return Conversation(PLATFORM, str(self.agent_channel), str(channel.id), guild)
            return Conversation(PLATFORM, str(channel.id), str(channel.id), guild)
        if channel is None:
            return None
        return Conversation(PLATFORM, str(channel.id), None, guild)

    # --- delivery -------------------------------------------------------------------------------

    async def deliver(
        self,
        messages: list[Outgoing],
        interaction: discord.Interaction | None = None,
        actor: Actor | None = None,
        done: str | Callable[[], str] | None = "Done.",
    ) -> None:
        """Send what the desk said; answers meant only for the person who acted are ephemeral, and a
        deferred interaction always gets one (`done` when nothing else was private; None when the
        interaction needs none, like a button that updates its own message). Cards go first, so their
        staff threads exist for the rest."""
        answered = False
        sent: list[Outgoing] = []
        failed: list[Undelivered] = []
        for message in sorted(
            messages, key=lambda m: not (isinstance(m, StaffMessage) and m.kind is StaffKind.CARD)
        ):
            try:
                if interaction is not None and actor is not None and is_private_answer(message, actor.person):
                    send = partial(interaction.followup.send, ephemeral=True, allowed_mentions=NO_PINGS)
                    files = message.attachments if isinstance(message, StaffMessage) else ()
                    answered = (
                        await _send_parts(send, message.text, files, interaction.filesize_limit) or answered
                    )
                else:
                    await self._post(message)
                    sent.append(message)
            except (discord.Forbidden, discord.NotFound) as error:
                log.error("Discord: could not deliver a message: %s", error)
                failed.append(
                    Undelivered(message, f"{error.status} {error.text or type(error).__name__}", True)
                )
            except discord.HTTPException as error:
                log.error("Discord: could not deliver a message: %s", error)
                failed.append(Undelivered(message, f"{error.status} {error.text or type(error).__name__}"))
            except Exception as error:
                log.exception("Discord: could not deliver a message")
                failed.append(Undelivered(message, type(error).__name__))
        notices = await self._desk.settle(sent, failed)
        if notices:
            await self.deliver(notices)
        if interaction is not None and not answered and done is not None:
            try:
                await interaction.followup.send(done if isinstance(done, str) else done(), ephemeral=True)
            except discord.HTTPException as error:
                log.error("Discord: could not answer an interaction: %s", error)

    async def _post(self, message: Outgoing) -> None:
        audience = message.audience
        if isinstance(message, CustomerMessage):
            await self._to_customer(message)
            return
        assert isinstance(message, StaffMessage)
        if isinstance(audience, ToAgent):
            user = await self.client.fetch_user(int(audience.person.user_id))
            await self._send(await user.create_dm(), message.text, message.attachments, nonce=_nonce(message))
            return
        assert isinstance(audience, ToAgents)
        if message.kind is StaffKind.CARD and message.card is not None:
            await self._post_card(message.card, message.text, message.attachments, _nonce(message))
            return
        thread = audience.staff_thread
        if thread is None and audience.ticket_number is not None:
            async with self._card_lock(audience.ticket_number):
                thread = await self._desk.card_of(audience.ticket_number, PLATFORM)
        target = int(thread.message_id) if thread else self.agent_channel
        await self._send(
            await self._channel(target), message.text, message.attachments, nonce=_nonce(message)
        )
        if message.handover is not None:
            try:  # the packet is posted: failing to add the owner to the thread must not resend it
                await self._bring_in(message.handover)
            except discord.HTTPException as error:
                log.warning("Discord: could not add the ticket's new owner to its thread: %s", error)

    async def _bring_in(self, handover: Handover) -> None:
        """The ticket's new owner joins the customer's private thread (DM tickets have none)."""
        where = handover.conversation
        if where.platform != PLATFORM or handover.agent.platform != PLATFORM or where.thread_id is None:
            return
        thread = await self._channel(int(where.thread_id))
        if isinstance(thread, discord.Thread):
            await thread.add_user(discord.Object(id=int(handover.agent.user_id)))

    async def _post_card(
        self, card: TicketCard, text: str, files: tuple[Attachment, ...] = (), nonce: str | None = None
    ) -> None:
        """The card, with its buttons and its thread (the staff thread). With a nonce, a resend gets the
        card Discord already has back, and its thread, rather than a second card."""
        async with self._card_lock(card.number):
            channel = await self._channel(self.agent_channel)
            embed = discord.Embed(
                title=f"#{card.number} · {card.subject}"[:256],
                description=text[:EMBED_DESCRIPTION_LIMIT],
                colour=PRIORITY_COLOURS.get(card.priority, 0x3498DB),
            )
            view = discord.ui.View(timeout=None)
            view.add_item(TicketButton("claim", card.number))
            view.add_item(TicketButton("resolve", card.number))
            extra: dict[str, Any] = {"nonce": f"{nonce}.0"} if nonce else {}
            posted = await channel.send(embed=embed, view=view, allowed_mentions=NO_PINGS, **extra)
            try:
                thread = await posted.create_thread(name=f"#{card.number} {card.customer_name}"[:100])
            except discord.HTTPException as error:
                if error.code != THREAD_EXISTS:
                    raise
                thread = await self._channel(posted.id)  # a thread started from a message shares its id
            await self._desk.attach_card(card.number, PLATFORM, MessageRef(str(channel.id), str(posted.id)))
        if files:
            await self._send(thread, "", files)

    async def _to_customer(self, message: CustomerMessage) -> None:
        where = message.audience.conversation
        person = message.audience.person
        view = survey_view(message.survey) if message.survey is not None else None
        try:
            nonce = _nonce(message)
            if where is None:
                user = await self.client.fetch_user(int(person.user_id))
                await self._send(await user.create_dm(), message.text, view=view, nonce=nonce)
            else:
                channel = await self._channel(int(where.channel_id))
                await self._send(channel, message.text, view=view, nonce=nonce)
        except discord.Forbidden as error:
            if error.code != CANNOT_DM or message.audience.ticket_number is None:
                raise
            await self._dm_failed(message)

    async def _dm_failed(self, message: CustomerMessage) -> None:
        """The customer takes no DMs from us: reach them in a private thread of a support channel, and
        tell the agents in the ticket's staff thread."""
        number = message.audience.ticket_number
        assert number is not None
        person = message.audience.person
        where = "nowhere I can reach them"
        if self.settings.support_channels:
            channel = await self._channel(self.settings.support_channels[0])
            assert isinstance(channel, discord.TextChannel)
            thread = await channel.create_thread(
                name=f"Ticket #{number}", type=discord.ChannelType.private_thread, invitable=False
            )
            await thread.add_user(discord.Object(id=int(person.user_id)))
            guild = str(thread.guild.id) if thread.guild else None
            await self._desk.relocate(number, Conversation(PLATFORM, str(thread.id), str(thread.id), guild))
            self._moved_from_dm.add(number)
            view = survey_view(message.survey) if message.survey is not None else None
            await self._send(thread, message.text, view=view)
            where = f"a private thread instead: <#{thread.id}>"
        card = await self._desk.card_of(number, PLATFORM)
        target = await self._channel(int(card.message_id) if card else self.agent_channel)
        await self._send(
            target,
            f"#{number}: {person.display_name} doesn't accept DMs from this server, so I posted to {where}.",
        )

    async def _send(
        self,
        channel: Any,
        text: str,
        files: tuple[Attachment, ...] = (),
        view: discord.ui.View | None = None,
        nonce: str | None = None,
    ) -> None:
        guild = getattr(channel, "guild", None)
        limit = guild.filesize_limit if isinstance(guild, discord.Guild) else FILE_SIZE_LIMIT
        await _send_parts(partial(channel.send, allowed_mentions=NO_PINGS), text, files, limit, view, nonce)

    async def _channel(self, channel_id: int) -> Any:
        return self.client.get_channel(channel_id) or await self.client.fetch_channel(channel_id)

    def _card_lock(self, ticket_number: int) -> asyncio.Lock:
        return self._card_locks.setdefault(ticket_number, asyncio.Lock())


def _nonce(message: Outgoing) -> str | None:
    """The outbox delivery a post belongs to, as Discord's nonce (at most 25 characters)."""
    return f"rd{message.delivery}" if message.delivery is not None else None


async def _send_parts(
    send: Callable[..., Awaitable[Any]],
    text: str,
    files: tuple[Attachment, ...],
    limit: int,
    view: discord.ui.View | None = None,
    nonce: str | None = None,
) -> bool:
    """Text in pieces Discord takes, the files on the last piece (or after it, ten to a message and
    together within the size limit); a file too large for any message is named in the text instead.
    A view (buttons) goes on the last piece of text. False when there was nothing to send. With a
    `nonce` each piece carries its own, which Discord enforces: a resend within minutes is not doubled."""
    batches, too_large = _file_batches(files, limit)
    notes = [
        TOO_LARGE.format(name=_shown(f.filename), size=_size(size), limit=_size(limit))
        for f, size in too_large
    ]
    text = "\n".join(part for part in (text, *notes) if part)
    pieces = [piece for piece in split_text(text, MESSAGE_LIMIT) if piece]
    sends = itertools.count()

    def once() -> dict[str, Any]:
        return {"nonce": f"{nonce}.{next(sends)}"} if nonce else {}

    for index, piece in enumerate(pieces):
        last: dict[str, Any] = {"view": view} if view is not None and index == len(pieces) - 1 else {}
        if index == len(pieces) - 1 and batches:
            await send(piece, files=_discord_files(batches.pop(0)), **last, **once())
        else:
            await send(piece, **last, **once())
    for batch in batches:
        await send(files=_discord_files(batch), **once())
    return bool(pieces or batches)


def _file_batches(
    files: tuple[Attachment, ...], limit: int
) -> tuple[list[list[Attachment]], list[tuple[Attachment, int]]]:
    """Files grouped into messages of at most ten whose sizes add up to at most `limit` (safe whether
    Discord counts the limit per file or per request), and those larger than `limit` with their size."""
    batches: list[list[Attachment]] = []
    too_large: list[tuple[Attachment, int]] = []
    current: list[Attachment] = []
    total = 0
    for file in files:
        size = len(file.data)
        if size > limit:
            too_large.append((file, size))
            continue
        if current and (len(current) == FILES_PER_MESSAGE or total + size > limit):
            batches.append(current)
            current, total = [], 0
        current.append(file)
        total += size
    if current:
        batches.append(current)
    return batches, too_large


def _discord_files(files: list[Attachment]) -> list[discord.File]:
    """Fresh File objects for one send: discord.py closes them once the message is sent."""
    return [discord.File(io.BytesIO(f.data), filename=f.filename or "attachment") for f in files]


def _shown(filename: str) -> str:
    return defuse_mentions(clean(filename)).replace("`", "'")


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def _ticket_group(adapter: DiscordAdapter) -> app_commands.Group:
    """`/ticket <verb>`: Discord's options map onto the core's commands, so Discord means what Slack
    and the console mean."""
    group = app_commands.Group(name="ticket", description="Work support tickets")
    tickets = adapter.ticket_choices
    only_ticket: tuple[tuple[str, type[TicketCommand]], ...] = (
        ("claim", Claim),
        ("release", Release),
        ("pending", Pending),
        ("reopen", Reopen),
        ("show", Show),
        ("transcript", Transcript),
    )
    with_text: tuple[tuple[str, type[TicketCommand], bool], ...] = (
        ("reply", Reply, True),
        ("note", Note, True),
        ("hold", Hold, True),
        ("resolve", Resolve, False),
    )
    for verb, cls in only_ticket:
        group.add_command(_only_ticket_command(adapter, verb, cls, tickets))
    for verb, cls, required in with_text:
        group.add_command(_text_command(adapter, verb, cls, required, tickets))

    @group.command(name="transfer", description=VERBS["transfer"].purpose.capitalize())
    @app_commands.autocomplete(ticket=tickets)
    @app_commands.autocomplete(queue=adapter.queue_choices)
    async def transfer(
        interaction: discord.Interaction,
        ticket: int | None = None,
        agent: discord.Member | None = None,
        queue: str | None = None,
        reason: str | None = None,
    ) -> None:
        target: AgentMention | QueueName
        if agent is not None:
            target = AgentMention(str(agent.id))
        elif queue:
            target = QueueName(queue.strip().lower())
        else:
            await interaction.response.send_message(
                "Who should take it over? Choose an agent or a queue.", ephemeral=True
            )
            return
        await adapter.run_command(interaction, Transfer(ticket, target, reason or ""), newcomer=agent)

    @group.command(name="priority", description=VERBS["priority"].purpose.capitalize())
    @app_commands.autocomplete(ticket=tickets)
    async def priority(
        interaction: discord.Interaction,
        level: Literal["low", "normal", "high", "urgent"],
        ticket: int | None = None,
    ) -> None:
        await adapter.run_command(interaction, SetPriority(ticket, Priority(level)))

    @group.command(name="queue", description=VERBS["queue"].purpose.capitalize())
    @app_commands.autocomplete(name=adapter.queue_choices)
    async def queue(interaction: discord.Interaction, name: str | None = None) -> None:
        await adapter.run_command(interaction, ListQueue(name.strip().lower() if name else None))

    @group.command(name="snippet", description="Send the customer a saved reply (a snippet)")
    @app_commands.autocomplete(ticket=tickets)
    @app_commands.autocomplete(name=adapter.snippet_choices)
    async def snippet(interaction: discord.Interaction, name: str, ticket: int | None = None) -> None:
        await adapter.run_command(interaction, Snippet(ticket, name.strip().lower()))

    @group.command(name="customer", description=VERBS["customer"].purpose.capitalize())
    @app_commands.describe(
        user="The customer, on Discord",
        ticket="Or the customer of this ticket",
        other_id="Or someone on another platform as platform:user_id (slack:U123), or a name",
    )
    @app_commands.autocomplete(ticket=tickets)
    async def customer(
        interaction: discord.Interaction,
        user: discord.User | None = None,
        ticket: int | None = None,
        other_id: str | None = None,
    ) -> None:
        ref = await _one_customer(interaction, user, ticket, other_id)
        if ref is not None:
            await adapter.run_command(interaction, ShowCustomer(ref))

    @group.command(
        name="profile",
        description="See the customer's profile, add a note for their future tickets or set a field",
    )
    @app_commands.describe(
        field="A note for their future tickets, or the field to set; leave it out to see the profile",
        value="The note, or the field's new value (empty clears the field)",
    )
    @app_commands.choices(field=[app_commands.Choice(name=f, value=f) for f in ("note", *PROFILE_FIELDS)])
    @app_commands.autocomplete(ticket=tickets)
    async def profile(
        interaction: discord.Interaction,
        ticket: int | None = None,
        field: app_commands.Choice[str] | None = None,
        value: str | None = None,
    ) -> None:
        if field is None and value:
            await _refuse(interaction, "Which field should that value go in? Choose a field, or note.")
            return
        chosen = field.value if field is not None else None
        await adapter.run_command(interaction, Profile(ticket, chosen, value or ""))

    @group.command(name="incentive", description=VERBS["incentive"].purpose.capitalize())
    @app_commands.describe(what="What the customer was given (a replacement, a discount)")
    @app_commands.autocomplete(ticket=tickets)
    async def incentive(interaction: discord.Interaction, what: str, ticket: int | None = None) -> None:
        await adapter.run_command(interaction, GiveIncentive(ticket, what))

    @group.command(name="link", description=VERBS["link"].purpose.capitalize())
    @app_commands.describe(
        first="One account of the customer",
        second="Their other account, on Discord",
        other_id="Or their other account elsewhere as platform:user_id (slack:U123), or a #ticket",
    )
    async def link(
        interaction: discord.Interaction,
        first: discord.User,
        second: discord.User | None = None,
        other_id: str | None = None,
    ) -> None:
        other = await _one_customer(interaction, second, None, other_id, "Which other account is theirs?")
        if other is not None:
            await adapter.run_command(interaction, Link(CustomerRef(key=str(first.id)), other))

    @group.command(name="block", description=VERBS["block"].purpose.capitalize())
    @app_commands.describe(
        user="Whom to block, on Discord",
        ticket="Or the customer of this ticket",
        other_id="Or someone on another platform as platform:user_id (slack:U123), or a name",
        duration="How long: 2h, 3d (a day unless you say), or forever (a team lead)",
    )
    @app_commands.autocomplete(ticket=tickets)
    async def block(
        interaction: discord.Interaction,
        user: discord.User | None = None,
        ticket: int | None = None,
        other_id: str | None = None,
        duration: str | None = None,
    ) -> None:
        try:
            length, forever = block_length(duration or "")
        except ParseError as error:
            await _refuse(interaction, str(error))
            return
        ref = await _one_customer(interaction, user, ticket, other_id)
        if ref is not None:
            await adapter.run_command(interaction, Block(ref, length, forever))

    @group.command(name="unblock", description=VERBS["unblock"].purpose.capitalize())
    @app_commands.describe(
        user="Whom to unblock, on Discord",
        ticket="Or the customer of this ticket",
        other_id="Or someone on another platform as platform:user_id (slack:U123), or a name",
    )
    @app_commands.autocomplete(ticket=tickets)
    async def unblock(
        interaction: discord.Interaction,
        user: discord.User | None = None,
        ticket: int | None = None,
        other_id: str | None = None,
    ) -> None:
        ref = await _one_customer(interaction, user, ticket, other_id)
        if ref is not None:
            await adapter.run_command(interaction, Unblock(ref))

    @group.command(name="promise", description=VERBS["promise"].purpose.capitalize())
    @app_commands.describe(
        when="By when: 2h, 16:00, tomorrow 10:00, fri",
        what="What will happen by then, as the customer should read it",
    )
    @app_commands.autocomplete(ticket=tickets)
    async def promise(
        interaction: discord.Interaction, when: str, what: str, ticket: int | None = None
    ) -> None:
        await adapter.run_command(interaction, MakePromise(ticket, when.strip(), what.strip()))

    @group.command(name="kept", description=VERBS["kept"].purpose.capitalize())
    @app_commands.describe(number="Which promise; leave it out when the ticket has only one open")
    @app_commands.autocomplete(ticket=tickets)
    async def kept(
        interaction: discord.Interaction,
        ticket: int | None = None,
        number: app_commands.Range[int, 1] | None = None,
    ) -> None:
        await adapter.run_command(interaction, Kept(ticket, number))

    @group.command(name="stats", description=VERBS["stats"].purpose.capitalize())
    @app_commands.describe(
        period="How far back: 7d (the default), 30d, 24h, today",
        queue="One queue only",
        agent="One agent only",
    )
    @app_commands.autocomplete(queue=adapter.queue_choices)
    async def stats(
        interaction: discord.Interaction,
        period: str | None = None,
        queue: str | None = None,
        agent: discord.Member | None = None,
    ) -> None:
        words = [w.strip() for w in (period, queue) if w and w.strip()]
        if agent is not None:
            words.append(f"<@{agent.id}>")
        try:
            command = parse("/ticket stats " + " ".join(words))
            if period and period.strip():
                alone = parse(f"/ticket stats {period.strip()}")
                if isinstance(alone, ShowStats) and alone.queue is not None:  # a word that is no period
                    raise ParseError(f"'{period.strip()[:30]}' is not a period.", VERBS["stats"].usage)
        except ParseError as error:
            await interaction.response.send_message(str(error), ephemeral=True)
            return
        await adapter.run_command(interaction, command, newcomer=agent)

    @group.command(name="mine", description=VERBS["mine"].purpose.capitalize())
    async def mine(interaction: discord.Interaction) -> None:
        await adapter.run_command(interaction, Mine())

    @group.command(name="help", description="How the ticket commands work")
    async def help_(interaction: discord.Interaction, verb: str | None = None) -> None:
        await adapter.run_command(interaction, Help(verb.strip().lower() if verb else None))

    return group


async def _one_customer(
    interaction: discord.Interaction,
    user: discord.User | discord.Member | None,
    ticket: int | None,
    other_id: str | None,
    question: str = "Which customer? Choose a user or a ticket, or give other_id.",
) -> CustomerRef | None:
    """The one customer a command's options name: a Discord user, the customer of a ticket, or typed
    as the grammar reads it (`slack:U123`, `#12`, a name). Anything else is answered privately here,
    before any work, and gives None."""
    given = [option for option in (user, ticket, (other_id or "").strip() or None) if option is not None]
    if len(given) != 1:
        await _refuse(interaction, question if not given else "Please name just one customer there.")
        return None
    if user is not None:
        return CustomerRef(key=str(user.id))
    if ticket is not None:
        return CustomerRef(ticket=ticket)
    try:
        command = parse(f"/ticket customer {other_id}")
    except ParseError as error:
        await _refuse(
            interaction, f"{error.message} Give platform:user_id (like slack:U123), #ticket or a name."
        )
        return None
    assert isinstance(command, ShowCustomer)
    return command.customer


async def _refuse(interaction: discord.Interaction, text: str) -> None:
    await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)


def _only_ticket_command(
    adapter: DiscordAdapter, verb: str, cls: type[TicketCommand], tickets: Any
) -> app_commands.Command[Any, Any, None]:
    async def callback(interaction: discord.Interaction, ticket: int | None = None) -> None:
        await adapter.run_command(interaction, cls(ticket))  # type: ignore[arg-type]

    command: app_commands.Command[Any, Any, None] = app_commands.Command(
        name=verb, description=VERBS[verb].purpose.capitalize(), callback=callback
    )
    command.autocomplete("ticket")(tickets)
    return command


def _text_command(
    adapter: DiscordAdapter, verb: str, cls: type[TicketCommand], required: bool, tickets: Any
) -> app_commands.Command[Any, Any, None]:
    if required:

        async def callback(interaction: discord.Interaction, text: str, ticket: int | None = None) -> None:
            await adapter.run_command(interaction, cls(ticket, text))  # type: ignore[call-arg,arg-type]

    else:

        async def callback(  # type: ignore[misc]
            interaction: discord.Interaction, ticket: int | None = None, text: str | None = None
        ) -> None:
            await adapter.run_command(interaction, cls(ticket, text or ""))  # type: ignore[call-arg,arg-type]

    command: app_commands.Command[Any, Any, None] = app_commands.Command(
        name=verb, description=VERBS[verb].purpose.capitalize(), callback=callback
    )
    command.autocomplete("ticket")(tickets)
    return command


@contextlib.asynccontextmanager
async def _answered_even_on_error(interaction: discord.Interaction) -> AsyncIterator[None]:
    """A deferred interaction whose work failed still gets a polite answer, not 15 minutes of
    "thinking"; the failure is logged with its traceback."""
    try:
        yield
    except Exception:
        log.exception("Discord: an interaction failed")
        with contextlib.suppress(discord.HTTPException):
            await interaction.followup.send(
                "Sorry, something went wrong on our side. Nothing was changed; please try again.",
                ephemeral=True,
            )


def _guild(message: discord.Message) -> str | None:
    return str(message.guild.id) if message.guild else None


def _attachments_note(message: discord.Message) -> str:
    names = [a.filename for a in message.attachments]
    return f"(shared {', '.join(names)})" if names else ""
