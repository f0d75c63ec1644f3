"""The desk: the service layer every adapter calls.

Each call runs in one unit of work and returns what to say, addressed to audiences. Nothing is said unless
the work was committed, and a refused command changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

from bot import outbox, profiles, reports, transcript, voice
from bot import packet as packets
from bot.checkins import SWEEP_BATCH, Checkins, customer_zone
from bot.clock import Clock
from bot.commands import (
    Actor,
    AddSnippet,
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
    ListSnippets,
    MakePromise,
    Mine,
    Note,
    Pending,
    Profile,
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
from bot.domain import (
    BLOCKED_FOR_GOOD,
    STATUS_WORDS,
    Agent,
    Anchor,
    AuditRecord,
    ClockState,
    Customer,
    EntryKind,
    Identity,
    Incentive,
    Metric,
    Priority,
    ProfileNote,
    Promise,
    PromiseState,
    Role,
    Status,
    StoredSnippet,
    Ticket,
    TicketKind,
    TransitionError,
)
from bot.grammar import ParseError, help_text, parse
from bot.messages import (
    Attachment,
    Conversation,
    CustomerMessage,
    Handover,
    InternalText,
    MessageRef,
    Outgoing,
    Overview,
    Person,
    StaffKind,
    StaffMessage,
    TicketLine,
    ToAgent,
    ToAgents,
    ToCustomer,
    Undelivered,
    staff,
)
from bot.mood import Mood, MoodReader, trend
from bot.packet import ProfileView, PromiseView
from bot.policy import Policy, fill_snippet, snippet_name_problem, snippet_text_problem
from bot.ports import Conflict, Unavailable, UnitOfWork
from bot.satisfaction import Satisfaction
from bot.standards import Standards
from bot.text import clean, shorten
from bot.when import WhenError, customer_time, resolve, zone_or
from bot.work import Work as _Work
from bot.work import addressee as _addressee
from bot.work import agents_about as _agents_about
from bot.work import log as _log
from bot.work import person_of as _person_of
from bot.work import record as _record
from bot.work import to_customer as _to_customer

log = logging.getLogger(__name__)
T = TypeVar("T")
LIST_LIMIT = 25
NAME_LIMIT = 80
SWEEP_ROUNDS = 100
PROFILE_CHARS = 4000
PROFILE_NOTE_LIMIT = 1000
INCENTIVE_LIMIT = 400
PROMISE_LIMIT = 300
REPORT_TICKETS = 100_000
WEEK = timedelta(days=7)
JUST_NOW = timedelta(seconds=1)
"""Periods end after this moment, so what happened just now counts (a period's end is exclusive)."""
PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.URGENT: 3}
CONFLICT_RETRIES = 3
UNAVAILABLE_PAUSES = (0.1, 0.5, 1.0, 2.0, 4.0)
"""Seconds between tries while the database is out of reach: about eight in all, then the error stands."""


class Refusal(Exception):
    """A polite no: the command is rolled back and only this text goes back to the person."""


class Desk:
    """Intake, ticket commands and due work, for every adapter alike."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork], clock: Clock, policy: Policy):
        self._uow_factory = uow_factory
        self._clock = clock
        self.policy = policy
        self._facts = policy.facts.finder()
        self.standards = Standards(policy)
        self.satisfaction = Satisfaction(policy)
        self.checkins = Checkins(policy, self.standards, self.satisfaction)
        self._moods = MoodReader.from_policy(policy.complaints)
        self._platforms: frozenset[str] | None = None
        self._handlers: dict[type, Callable[[_Work, Actor, Ticket, Command], Awaitable[None]]] = {
            Claim: self._claim,
            Release: self._release,
            Reply: self._reply,
            Note: self._note,
            Transfer: self._transfer,
            Pending: self._pending,
            Hold: self._hold,
            Resolve: self._resolve,
            Reopen: self._reopen,
            SetPriority: self._priority,
            Show: self._show,
            Snippet: self._snippet,
            Profile: self._profile,
            GiveIncentive: self._incentive,
            Transcript: self._transcript,
            MakePromise: self._promise,
            Kept: self._kept,
        }

    def serve(self, platforms: Collection[str]) -> None:
        """The platforms this process's adapters serve: what goes to every adapter's agents' channel is
        kept once per platform, so each adapter settles its own copy."""
        self._platforms = frozenset(platforms)

    # --- entry points -------------------------------------------------------------------------

    async def receive(self, message: IncomingMessage) -> list[Outgoing]:
        """A customer (or colleague) wrote in a support conversation."""
        message = replace(message, actor=_clean_actor(message.actor))
        return await self._run(lambda work: self._intake(work, message), message.actor.person)

    async def command(
        self, actor: Actor, text: str, conversation: Conversation | None = None
    ) -> list[Outgoing]:
        """A slash command as typed: parsed here so every platform shares one grammar."""
        actor, text = _clean_actor(actor), clean(text)
        try:
            parsed = parse(text)
        except ParseError as error:
            if not actor.is_agent:
                return [_private(actor, voice.not_a_customer_command(actor.person.display_name))]
            return [_private(actor, str(error))]
        return await self.execute(actor, parsed, conversation)

    async def execute(
        self, actor: Actor, command: Command, conversation: Conversation | None = None
    ) -> list[Outgoing]:
        """Run a parsed command for an actor, in the context of a conversation (its thread)."""
        actor = _clean_actor(actor)
        return await self._run(lambda work: self._dispatch(work, actor, command, conversation), actor.person)

    async def rate(self, actor: Actor, ticket_number: int, rating: int) -> list[Outgoing]:
        """A customer pressed a rating button. Only the ticket's own customer may rate it."""
        actor = _clean_actor(actor)

        async def take(work: _Work) -> None:
            ticket = await work.uow.tickets.get(ticket_number)
            customer = await work.uow.customers.by_identity(actor.person.platform, actor.person.user_id)
            name = voice.first_name(customer) if customer else actor.person.display_name
            if (
                ticket is None
                or customer is None
                or ticket.customer_id != customer.id
                or not 1 <= rating <= 5
            ):
                raise Refusal(_private_to_customer(actor, voice.survey_closed(name)))
            why = await self.satisfaction.rate(work, ticket, rating)
            if why is not None:
                text = voice.survey_done(name) if why == "done" else voice.survey_closed(name)
                raise Refusal(_private_to_customer(actor, text))

        return await self._run(take, actor.person)

    async def register_agents(self, people: Sequence[Person]) -> None:
        """Make agents known before they act, so they can be named in a transfer."""

        async def register(work: _Work) -> None:
            for person in people:
                await _agent_record(work, _clean_person(person))

        await self._run(register)

    async def note_from_staff_thread(
        self, actor: Actor, thread: Conversation, text: str, message_id: str | None = None
    ) -> list[Outgoing]:
        """An agent wrote in a ticket's staff thread (its card's thread): that is an internal note.

        Nothing is echoed, since the note already stands in the thread; others' words there are ignored.
        """
        actor = _clean_actor(actor)

        async def note(work: _Work) -> None:
            if not actor.is_agent or thread.thread_id is None or not clean(text).strip():
                return
            anchor = await work.uow.anchors.by_message(thread.platform, thread.channel_id, thread.thread_id)
            if anchor is None:
                return
            if message_id and await work.uow.entries.seen(thread.platform, message_id):
                return
            ticket = await work.uow.tickets.get(anchor.ticket_number)
            assert ticket is not None
            await _agent_record(work, actor.person)
            body = InternalText(clean(text))
            await _record(work, ticket, EntryKind.NOTE, actor.person, body, message_id)

        return await self._run(note, actor.person)

    async def attach_card(self, ticket_number: int, platform: str, card: MessageRef) -> None:
        """Remember the card an adapter posted for a ticket, so its thread becomes the staff thread."""

        async def attach(work: _Work) -> None:
            if await work.uow.anchors.for_ticket(ticket_number, platform) is None:
                await work.uow.anchors.add(Anchor(ticket_number, platform, card.channel_id, card.message_id))

        await self._run(attach)

    async def relocate(self, ticket_number: int, conversation: Conversation) -> None:
        """The customer is reachable somewhere else now (a DM they refuse, replaced by a private
        thread): their messages there belong to the ticket, and what we say goes there."""

        async def move(work: _Work) -> None:
            ticket = await work.uow.tickets.get(ticket_number)
            if ticket is None or ticket.platform != conversation.platform:
                return
            before = (ticket.channel_id, ticket.thread_id)
            ticket.channel_id, ticket.thread_id = conversation.channel_id, conversation.thread_id
            ticket.workspace_id = conversation.workspace_id or ticket.workspace_id
            ticket.updated_at = work.now
            await _log(work, ticket, "moved", "Relaydesk", old=":".join(filter(None, before)))

        await self._run(move)

    async def has_message(self, platform: str, message_id: str) -> bool:
        """Whether a platform message was already recorded: adapters that must act before the desk
        does (opening a thread for a ticket, say) check this first, so a redelivery does nothing."""
        return await self._read(lambda work: work.uow.entries.seen(platform, message_id))

    async def card_of(self, ticket_number: int, platform: str) -> MessageRef | None:
        """The card posted for a ticket on a platform, if any (its thread is the staff thread)."""
        return await self._read(lambda work: _card(work, ticket_number, platform))

    async def message_edited(self, platform: str, message_id: str, text: str) -> list[Outgoing]:
        """A customer edited a message: the record shows the new text; the original stays on the timeline."""

        async def edit(work: _Work) -> None:
            entry = await work.uow.entries.by_message(platform, message_id)
            new = clean(text)
            if entry is None or entry.kind is not EntryKind.CUSTOMER or entry.body == new or not new.strip():
                return
            ticket = await work.uow.tickets.get(entry.ticket_number)
            assert ticket is not None
            customer = await work.uow.customers.get(ticket.customer_id)
            if customer is not None and customer.is_blocked(work.now):
                return  # a blocked person's edits are not taken either
            assert entry.id is not None and isinstance(entry.body, str)
            await work.uow.entries.set_body(entry.id, new)
            await _log(work, ticket, "edited", entry.author_name, entry=entry.id, original=entry.body)
            work.say(
                staff(
                    _agents_about(ticket),
                    voice.edited_header(ticket, entry.author_name),
                    new,
                    kind=StaffKind.RELAY,
                )
            )

        return await self._run(edit)

    async def message_deleted(self, platform: str, message_id: str) -> list[Outgoing]:
        """A customer deleted a message: the deletion is noted; the record keeps what was said."""

        async def note_deletion(work: _Work) -> None:
            entry = await work.uow.entries.by_message(platform, message_id)
            if entry is None or entry.kind is not EntryKind.CUSTOMER:
                return
            ticket = await work.uow.tickets.get(entry.ticket_number)
            assert ticket is not None and ticket.number is not None
            events = await work.uow.timeline.for_ticket(ticket.number)
            if any(e.action == "deleted" and e.detail.get("entry") == str(entry.id) for e in events):
                return
            await _log(work, ticket, "deleted", entry.author_name, entry=entry.id)
            work.say(staff(_agents_about(ticket), voice.deleted_note(ticket, entry.author_name)))

        return await self._run(note_deletion)

    async def overview(self, actor: Actor) -> Overview | None:
        """An agent's tickets in progress and the unclaimed queue; None for anyone else."""
        if not actor.is_agent:
            return None

        async def gather(work: _Work) -> Overview:
            agent = await _agent_record(work, _clean_person(actor.person))
            assert agent.id is not None
            mine = await work.uow.tickets.assigned_to(agent.id, LIST_LIMIT)
            unclaimed = await work.uow.tickets.unassigned(None, LIST_LIMIT)
            names = await self._customer_names(work, mine + unclaimed)
            mine_lines = tuple(_line(t, names, work.now) for t in mine)
            unclaimed_lines = tuple(_line(t, names, work.now) for t in unclaimed)
            week, end = work.now - WEEK, work.now + JUST_NOW
            mine_stats, _ = await self._figures(work, week, end, None, agent.id)
            team_stats, _ = await self._figures(work, week, end, None, None)
            return Overview(
                mine_lines,
                unclaimed_lines,
                my_week=reports.render_text(mine_stats, voice.stats_title(WEEK, None, agent.display_name)),
                team_week=reports.render_text(team_stats, voice.stats_title(WEEK, None, None)),
            )

        return await self._read(gather)

    async def snippet_names(self, actor: Actor) -> list[str]:
        """The snippets an agent can send, by name (for autocomplete); nothing for anyone else."""
        if not actor.is_agent:
            return []
        return await self._read(self._snippet_names)

    async def run_due_work(self, platforms: Collection[str] | None = None) -> list[Outgoing]:
        """Time-driven work: every check-in that fell due (warnings, breaches, promise reminders,
        check-ins with customers, closing quiet tickets, digests), each fired once; and what the outbox
        must send again, for `platforms` (those this process serves; None: all)."""

        handled = [0]

        async def sweep(work: _Work) -> None:
            handled[0] = await self.checkins.sweep(work)

        async def resend(work: _Work) -> None:
            handled[0] = await outbox.due_again(work, self.policy.delivery, platforms)

        said: list[Outgoing] = []
        try:  # resends first: what this sweep is about to say must not count as overdue before it is sent
            said += await self._run(resend)
        except Exception:  # the outbox's trouble must not stop warnings, breaches and check-ins
            log.exception("resending from the outbox failed; it is tried again at the next sweep")
        for _ in range(SWEEP_ROUNDS):  # a batch per transaction, so locks stay short
            said += await self._run(sweep)
            if handled[0] < SWEEP_BATCH:
                break
        return said

    async def hold(self, messages: Sequence[Outgoing]) -> None:
        """These are being sent right now: renew their lease, so no sweep sends them too."""
        ids = [m.delivery for m in messages if m.delivery is not None]
        if ids:
            until = self._clock.now() + self.policy.delivery.lease
            await self._run(lambda work: work.uow.deliveries.hold(ids, until))

    async def settle(self, sent: Sequence[Outgoing], failed: Sequence[Undelivered] = ()) -> list[Outgoing]:
        """An adapter sent what the desk said: cross off what the platform took; what failed after the
        platform client's own retries is tried again later, or, out of tries or when the platform says
        it never will work, marked on its ticket. What to tell the agents about that comes back."""
        if not any(m.delivery is not None for m in sent) and not any(f.message.delivery for f in failed):
            return []

        async def settle(work: _Work) -> None:
            await outbox.settle_sent(work, list(sent))
            for failure in failed:
                await outbox.settle_failed(work, self.policy.delivery, failure)

        return await self._run(settle)

    # --- plumbing -----------------------------------------------------------------------------

    async def _read(self, query: Callable[[_Work], Awaitable[T]]) -> T:
        """Run a question in a unit of work of its own (committed: it may register an agent)."""
        answers: list[T] = []

        async def ask(work: _Work) -> None:
            answers.append(await query(work))

        await self._run(ask)
        return answers[-1]

    async def _run(
        self, job: Callable[[_Work], Awaitable[None]], acting: Person | None = None
    ) -> list[Outgoing]:
        """Run a job in a unit of work; what it says is kept in the outbox with its changes (all but
        private answers to `acting`). A lost race runs it again at once against the winner's result;
        a database out of reach (a dropped connection, a locked file) runs it again after a pause."""
        conflicts = 0
        for pause in (*UNAVAILABLE_PAUSES, None):
            try:
                async with self._uow_factory() as uow:
                    work = _Work(uow, self._clock.now())
                    try:
                        await job(work)
                        work.out = [await _in_staff_thread(work, message) for message in work.out]
                        await outbox.keep(work, self.policy.delivery, acting, self._platforms)
                        await uow.commit()
                    except Refusal as refusal:
                        await uow.rollback()
                        return list(refusal.args)
                    return work.out
            except Conflict:
                conflicts += 1
                if conflicts == CONFLICT_RETRIES:
                    raise
            except Unavailable:
                if pause is None:
                    raise
                log.warning("the database is out of reach; trying again in %.1f s", pause)
                await asyncio.sleep(pause)
        raise AssertionError("unreachable: the last try returns or raises")

    async def _dispatch(
        self, work: _Work, actor: Actor, command: Command, conversation: Conversation | None
    ) -> None:
        if isinstance(command, Request):
            where = _without_thread(conversation) if conversation else _direct(actor)
            raised = IncomingMessage(actor, command.text, where)
            await self._intake(work, raised, request=command)
            return
        if isinstance(command, Help):
            in_thread = conversation is not None and conversation.thread_id is not None
            text = help_text(command.topic, in_thread) if actor.is_agent else voice.customer_help()
            work.say(_private(actor, text))
            return
        if not actor.is_agent:
            raise Refusal(_private(actor, voice.not_a_customer_command(actor.person.display_name)))
        if isinstance(command, ListQueue):
            await self._list_queue(work, actor, command)
            return
        if isinstance(command, Mine):
            await self._mine(work, actor)
            return
        if isinstance(command, ListSnippets):
            await self._list_snippets(work, actor)
            return
        if isinstance(command, AddSnippet):
            await self._add_snippet(work, actor, command)
            return
        if isinstance(command, ShowCustomer):
            customer = await self._find_customer(work, actor, command.customer)
            await self._send_profile(work, actor, customer)
            return
        if isinstance(command, Link):
            await self._link(work, actor, command)
            return
        if isinstance(command, ShowStats):
            await self._stats(work, actor, command)
            return
        if isinstance(command, Block):
            await self._block(work, actor, command)
            return
        if isinstance(command, Unblock):
            await self._unblock(work, actor, command)
            return
        assert isinstance(command, TicketCommand)
        ticket = await self._ticket_for(work, actor, command, conversation)
        await self._handlers[type(command)](work, actor, ticket, command)

    async def _ticket_for(
        self,
        work: _Work,
        actor: Actor,
        command: TicketCommand,
        conversation: Conversation | None,
    ) -> Ticket:
        number = command.ticket
        if number is None and conversation and conversation.thread_id:
            number = await _ticket_in_thread(work, conversation)
        if number is None:
            raise Refusal(_private(actor, voice.which_ticket(command)))
        ticket = await work.uow.tickets.get(number)
        if ticket is None:
            raise Refusal(_private(actor, voice.no_such_ticket(number)))
        return ticket

    # --- intake -------------------------------------------------------------------------------

    async def _intake(self, work: _Work, message: IncomingMessage, *, request: Request | None = None) -> None:
        """Record a customer's message on their ticket, opening one when there is none.

        A `/request` always opens a new internal ticket; a colleague's plain message opens an internal
        ticket too, but otherwise follows the same rules as a customer's.
        """
        text = clean(message.text)
        person = message.actor.person
        conversation = message.conversation
        if not text.strip():
            return
        if message.message_id and await work.uow.entries.seen(person.platform, message.message_id):
            return
        if message.actor.is_agent and request is None:
            # An agent writing in a ticket's customer thread answered in public: record it as a reply.
            # Anywhere else an agent's words are their own (announcements, chat), not a new ticket.
            ticket = None
            if conversation.thread_id:
                ticket = await work.uow.tickets.by_thread(
                    conversation.platform, conversation.channel_id, conversation.thread_id
                )
            if ticket is not None and not ticket.is_closed:
                await self._answered(work, message.actor, ticket, text, message.message_id)
            return
        internal = request is not None or message.actor.role is Role.COLLEAGUE
        kind = TicketKind.INTERNAL if internal else TicketKind.EXTERNAL
        customer = await self._customer_record(work, person, kind)
        if customer.is_blocked(work.now):
            if request is not None or not customer.block_told:  # a flood gets one answer; a command, each
                customer.block_told = True
                until = customer.blocked_until
                assert until is not None
                shown = None if until == BLOCKED_FOR_GOOD else self._customer_time(customer, until, work.now)
                work.say(_private_to_customer(message.actor, voice.you_are_blocked(customer, shown)))
            return
        limits = self.policy.abuse
        flooding = customer.count_message(work.now, limits.burst_window) > limits.burst_limit
        if not flooding:
            await self._take(work, message, customer, text, kind, request)
            return
        if request is not None:
            raise Refusal(_private_to_customer(message.actor, voice.too_many_requests(customer)))
        already_said = len(work.out)
        await self._take(work, message, customer, text, kind, request)
        # Recorded, but quiet: one flood must not become a hundred relays (a new ticket's card stays).
        work.out[already_said:] = [m for m in work.out[already_said:] if not _is_relay(m)]
        if not customer.burst_told:
            customer.burst_told = True
            work.say(_private_to_customer(message.actor, voice.slow_down(customer)))
            ticket = await self._current_ticket(work, customer, conversation, kind)
            about = _agents_about(ticket) if ticket else ToAgents(None, person.platform)
            work.say(staff(about, voice.flooding(customer, limits.burst_limit, limits.burst_window)))

    async def _take(
        self,
        work: _Work,
        message: IncomingMessage,
        customer: Customer,
        text: str,
        kind: TicketKind,
        request: Request | None,
    ) -> None:
        """Intake proper, once the person may write: their ticket found or opened, the message recorded."""
        person, conversation = message.actor.person, message.conversation
        current = None if request else await self._current_ticket(work, customer, conversation, kind)
        mood = self._moods.read(text)  # once per message: every path below records it
        if current is not None and not current.is_closed:
            answered = await self.satisfaction.take_reply(
                work, current, person, customer.id, text, message.message_id, mood.score
            )
            if answered:
                return
        # Someone else may write in a ticket's thread (a colleague of its customer, a bystander in a
        # public channel): what the desk answers there is said to, and in the name of, its customer.
        owner = customer
        if current is not None and current.customer_id != customer.id:
            owner = await self._customer_of(work, current)
        if current and self._is_courtesy_after_resolution(work, current, text):
            await _record(work, current, EntryKind.CUSTOMER, person, text, message.message_id)
            if self.policy.is_thanks(text) and not await _thanked_since_resolution(work, current):
                await _log(work, current, "thanked", customer.display_name)
                speaking = await _addressee(work, current, owner)
                await self._say_to_customer(work, current, owner, voice.welcome(speaking))
            return
        if current is None or current.is_closed:
            await self._open_ticket(work, customer, message, text, mood, kind, current, request)
            return
        await _record(work, current, EntryKind.CUSTOMER, person, text, message.message_id, mood.score)
        old = current.customer_wrote(work.now)
        if old is not None:
            await _log(work, current, "status", customer.display_name, old=old, new=current.status)
            await self.checkins.after_status(work, current, old, current.status)
        await self.standards.on_customer_wrote(work, current)
        work.say(
            staff(
                _agents_about(current),
                voice.relay_header(current, customer, old),
                text,
                kind=StaffKind.RELAY,
            )
        )
        await self._upset(work, current, owner, mood)

    async def _current_ticket(
        self, work: _Work, customer: Customer, conversation: Conversation, kind: TicketKind
    ) -> Ticket | None:
        """The ticket a message belongs to: its thread's, or else the customer's latest of its kind here
        (so a colleague's /request does not swallow their customer conversation, or the reverse)."""
        if conversation.thread_id:
            return await work.uow.tickets.by_thread(
                conversation.platform, conversation.channel_id, conversation.thread_id
            )
        assert customer.id is not None
        latest = await work.uow.tickets.latest_in(
            customer.id, conversation.platform, conversation.channel_id, kind
        )
        return latest or await self._moved_away_from(work, customer, conversation, kind)

    async def _moved_away_from(
        self, work: _Work, customer: Customer, conversation: Conversation, kind: TicketKind
    ) -> Ticket | None:
        """The customer's open ticket that was relocated from this conversation (a DM they refuse):
        their words here still belong to it. Only asked when nothing else lives here."""
        assert customer.id is not None
        for ticket in reversed(await work.uow.tickets.for_customer(customer.id)):
            if ticket.is_closed or ticket.kind is not kind or ticket.platform != conversation.platform:
                continue
            assert ticket.number is not None
            events = await work.uow.timeline.for_ticket(ticket.number)
            if any(e.action == "moved" and e.detail.get("old") == conversation.channel_id for e in events):
                return ticket
        return None

    def _is_courtesy_after_resolution(self, work: _Work, ticket: Ticket, text: str) -> bool:
        if ticket.status not in (Status.RESOLVED, Status.CLOSED) or ticket.resolved_at is None:
            return False
        recent = work.now - ticket.resolved_at <= self.policy.intake.courtesy_window
        return recent and self.policy.is_courtesy(text)

    async def _open_ticket(
        self,
        work: _Work,
        customer: Customer,
        message: IncomingMessage,
        text: str,
        mood: Mood,
        kind: TicketKind,
        previous: Ticket | None,
        request: Request | None = None,
    ) -> None:
        assert customer.id is not None
        person, conversation = message.actor.person, message.conversation
        earlier = await work.uow.tickets.count_for_customer(customer.id)
        same_customer = previous is not None and previous.customer_id == customer.id
        follows = previous.number if previous and previous.is_closed and same_customer else None
        subject = voice.subject(text, self.policy.intake.subject_length)
        if request and request.category:
            subject = voice.subject(f"{request.category}: {subject}", self.policy.intake.subject_length)
        queue = self.policy.default_queue_for(kind)
        priority = (request and request.priority) or self.policy.default_priority_for(kind)
        complaints = self.policy.complaints
        routed = mood.upset and kind is TicketKind.EXTERNAL
        if routed:
            # An upset first message: the ticket starts where it belongs, so the time the customer is
            # told, the clocks and the card all follow the complaint's queue and priority.
            queue = complaints.queue or queue
            if PRIORITY_RANK[priority] < PRIORITY_RANK[complaints.raise_priority_to]:
                priority = complaints.raise_priority_to
        ticket = await work.uow.tickets.add(
            Ticket(
                kind=kind,
                queue=queue,
                priority=priority,
                subject=subject,
                customer_id=customer.id,
                customer_user_id=person.user_id,
                platform=conversation.platform,
                channel_id=conversation.channel_id,
                thread_id=conversation.thread_id,
                workspace_id=conversation.workspace_id,
                created_at=work.now,
                updated_at=work.now,
                last_customer_message_at=work.now,
                previous_number=follows,
            )
        )
        assert ticket.number is not None
        work.opened.add(ticket.number)
        await _record(work, ticket, EntryKind.CUSTOMER, person, text, message.message_id, mood.score)
        await _log(work, ticket, "created", customer.display_name, kind=kind, follows=follows)
        await self.standards.on_opened(work, ticket)
        await self.checkins.plan_weekly(work, ticket, 1, work.now)
        hours = self.standards.hours(ticket)
        reply_by = customer_time(
            self.standards.due(ticket, Metric.FIRST_RESPONSE, work.now),
            customer_zone(customer, hours.zone),
            work.now,
        )
        label = self.policy.queue_label(ticket.queue)
        speaking = await _addressee(work, ticket, customer)
        greeting = voice.greeting(speaking, ticket, earlier, label, reply_by, hours.describe(work.now))
        await self._say_to_customer(work, ticket, customer, greeting)
        work.say(
            staff(
                _agents_about(ticket),
                voice.card_text(ticket, customer, earlier, upset=mood.upset),
                kind=StaffKind.CARD,
                card=voice.card(ticket, customer, earlier),
            )
        )
        if mood.upset:
            await self._flag_new(work, ticket, customer, mood, routed)

    async def _upset(self, work: _Work, ticket: Ticket, customer: Customer, mood: Mood) -> None:
        """An upset customer (a strongly negative message, or an escalation phrase): the ticket is
        flagged once, its priority raised, and it goes to the complaints queue's specialists."""
        if not mood.upset:
            return
        assert ticket.number is not None
        flagged = any(e.action == "upset" for e in await work.uow.timeline.for_ticket(ticket.number))
        phrases = ", ".join(mood.phrases)
        await _log(work, ticket, "upset", customer.display_name, score=f"{mood.score:.2f}", phrases=phrases)
        if flagged or ticket.status in (Status.RESOLVED, Status.CLOSED):
            return
        if ticket.kind is TicketKind.INTERNAL:
            # A colleague's words ("cancel that laptop order") are not a complaint to route: flag only.
            speaking = await _addressee(work, ticket, customer)
            work.say(
                staff(_agents_about(ticket), voice.upset_flag(ticket, speaking, mood.score, phrases, []))
            )
            return
        complaints = self.policy.complaints
        changes: list[str] = []
        if PRIORITY_RANK[ticket.priority] < PRIORITY_RANK[complaints.raise_priority_to]:
            old = ticket.priority
            ticket.priority = complaints.raise_priority_to
            await _log(work, ticket, "priority", "Relaydesk", old=old, new=ticket.priority)
            changes.append(f"priority raised to {ticket.priority}")
        moved = complaints.queue is not None and ticket.queue != complaints.queue
        if moved:
            assert complaints.queue is not None
            before = await work.uow.agents.get(ticket.assignee_id) if ticket.assignee_id else None
            detail = {"from_queue": ticket.queue, "to_queue": complaints.queue}
            ticket.queue = complaints.queue
            ticket.assign(None, work.now)
            from_agent = before.display_name if before else None
            await _log(
                work,
                ticket,
                "transferred",
                "Relaydesk",
                from_agent=from_agent,
                reason="upset customer",
                **detail,
            )
            changes.append(f"moved to {complaints.queue} for a specialist")
        if changes:
            await self.standards.on_retargeted(work, ticket)
        speaking = await _addressee(work, ticket, customer)
        work.say(
            staff(_agents_about(ticket), voice.upset_flag(ticket, speaking, mood.score, phrases, changes))
        )
        if moved:
            heading = voice.upset_heading(ticket)
            await self._send_packet(work, _agents_about(ticket), ticket, customer, heading)
            label = self.policy.queue_label(ticket.queue)
            await self._say_to_customer(work, ticket, customer, voice.now_with_team(speaking, ticket, label))

    async def _flag_new(
        self, work: _Work, ticket: Ticket, customer: Customer, mood: Mood, routed: bool
    ) -> None:
        """A ticket opened upset: it was opened in the complaints queue at its priority; say so."""
        phrases = ", ".join(mood.phrases)
        await _log(work, ticket, "upset", customer.display_name, score=f"{mood.score:.2f}", phrases=phrases)
        changes = []
        if routed and ticket.priority is not self.policy.default_priority_for(ticket.kind):
            changes.append(f"priority set to {ticket.priority}")
        if routed and self.policy.complaints.queue:
            changes.append(f"opened in {ticket.queue} for a specialist")
        speaking = await _addressee(work, ticket, customer)
        work.say(
            staff(_agents_about(ticket), voice.upset_flag(ticket, speaking, mood.score, phrases, changes))
        )

    async def _answering_upset(self, work: _Work, ticket: Ticket) -> bool:
        """Whether the customer was upset since staff last answered them (guidance is due)."""
        assert ticket.number is not None
        upset = [e.at for e in await work.uow.timeline.for_ticket(ticket.number) if e.action == "upset"]
        if not upset:
            return False
        entries = await work.uow.entries.for_ticket(ticket.number)
        replies = [e.created_at for e in entries if e.kind is EntryKind.REPLY]
        return not replies or max(upset) > max(replies)

    async def _customer_record(self, work: _Work, person: Person, kind: TicketKind) -> Customer:
        """The customer behind a platform identity, made on first contact. A verified email the platform
        gives links them with the customer who has the same one elsewhere."""
        email = person.email.strip().lower() if person.email and person.email.strip() else None
        customer = await work.uow.customers.by_identity(person.platform, person.user_id, lock=True)
        if customer is None:
            customer = await work.uow.customers.add(
                Customer(
                    display_name=person.display_name,
                    kind=kind,
                    created_at=work.now,
                    email=email,
                    email_verified=email is not None,
                ),
                Identity(0, person.platform, person.user_id, person.display_name),
            )
        else:
            await self._renamed(work, customer, person)
            if email is None:
                return customer
            # Checked on every message, not only when the email is new to us: two first messages racing
            # in two processes cannot see each other, but the next one links them.
            customer.email, customer.email_verified = email, True
        if email is None:
            return customer
        for other in await work.uow.customers.with_email(email):
            if other.id != customer.id and other.email_verified:
                keep, gone = profiles.older_first(customer, other)
                await self._merge(work, keep, gone, "Relaydesk", how="verified email")
                customer = keep
        return customer

    async def _renamed(self, work: _Work, customer: Customer, person: Person) -> None:
        """People rename themselves: greet the new name. A linked customer keeps the profile's name;
        only the account on that platform takes the new one."""
        assert customer.id is not None
        identity = await work.uow.customers.identity(person.platform, person.user_id)
        if identity is None or identity.display_name == person.display_name:
            return
        assert identity.id is not None
        await work.uow.customers.set_identity(identity.id, identity.external_id, person.display_name)
        if len(await work.uow.customers.identities(customer.id)) == 1:
            customer.display_name = person.display_name

    async def _merge(self, work: _Work, keep: Customer, gone: Customer, actor_name: str, how: str) -> int:
        """Link two profiles of one person: the younger one's identities, tickets, notes and incentives
        move to the older one, which fills its gaps from the younger. Audited; returns tickets moved."""
        assert keep.id is not None and gone.id is not None
        moved = await work.uow.tickets.for_customer(gone.id)
        for ticket in moved:
            ticket.customer_id = keep.id
            await _log(work, ticket, "linked", actor_name, into=keep.id, how=how)
            assert ticket.number is not None
            for survey in await work.uow.surveys.for_ticket(ticket.number):
                survey.customer_id = keep.id
        identities = await work.uow.customers.move_identities(gone.id, keep.id)
        await work.uow.profiles.move(gone.id, keep.id)
        merged = gone.id
        profiles.fold(keep, gone)
        detail = {"merged": merged, "tickets": len(moved), "identities": identities, "how": how}
        await work.uow.audit.add(AuditRecord("link", keep.id, actor_name, work.now, detail))
        return len(moved)

    async def _find_customer(self, work: _Work, actor: Actor, ref: CustomerRef) -> Customer:
        """The customer a command names: by a ticket of theirs, or by an identity (a mention, a name)."""
        if ref.ticket is not None:
            ticket = await work.uow.tickets.get(ref.ticket)
            if ticket is None:
                raise Refusal(_private(actor, voice.no_such_ticket(ref.ticket)))
            return await self._customer_of(work, ticket)
        assert ref.key is not None
        platform = ref.platform or actor.person.platform
        found = await work.uow.customers.find(platform, ref.key)
        if not found:
            raise Refusal(_private(actor, voice.unknown_customer(platform, ref.key)))
        if len(found) > 1:
            raise Refusal(_private(actor, voice.ambiguous_customer(ref.key, len(found))))
        return found[0]

    async def _profile_view(self, work: _Work, customer: Customer, exclude: int | None) -> ProfileView:
        assert customer.id is not None
        tickets = await work.uow.tickets.for_customer(customer.id)
        ratings: dict[int, int] = {}  # each ticket's latest rating: one query, however many tickets
        for survey in await work.uow.surveys.for_tickets([t.number for t in tickets if t.number is not None]):
            if survey.rating:
                ratings[survey.ticket_number] = survey.rating
        return packets.profile_view(
            customer,
            await work.uow.customers.identities(customer.id),
            await work.uow.profiles.notes(customer.id),
            await work.uow.profiles.incentives(customer.id),
            tickets,
            exclude=exclude,
            ratings=ratings,
        )

    async def _open_promises(self, work: _Work, ticket: Ticket) -> tuple[PromiseView, ...]:
        assert ticket.number is not None
        return tuple(
            PromiseView(p.what, p.due_at, overdue=p.due_at <= work.now)
            for p in await work.uow.promises.for_ticket(ticket.number)
            if p.state is PromiseState.OPEN
        )

    async def _clock_lines(self, work: _Work, ticket: Ticket) -> tuple[str, ...]:
        """One line per live SLA clock: due when, or breached."""
        assert ticket.number is not None
        zone = self.standards.hours(ticket).zone
        lines = []
        for clock in await work.uow.clocks.for_ticket(ticket.number):
            if clock.state not in (ClockState.RUNNING, ClockState.PAUSED):
                continue
            due = customer_time(clock.due_at, zone, work.now)
            lines.append(voice.clock_line(clock.metric, clock.state, due, clock.due_at <= work.now))
        return tuple(lines)

    async def _send_profile(self, work: _Work, actor: Actor, customer: Customer) -> None:
        await _agent_record(work, actor.person)
        view = await self._profile_view(work, customer, exclude=None)
        parts = packets.render_profile(view, packets.budget_for(actor.person.platform, PROFILE_CHARS))
        work.say(StaffMessage(ToAgent(actor.person), tuple(parts), StaffKind.INFO))

    async def _link(self, work: _Work, actor: Actor, command: Link) -> None:
        agent = await _agent_record(work, actor.person)
        first = await self._find_customer(work, actor, command.first)
        second = await self._find_customer(work, actor, command.second)
        if first.id == second.id:
            raise Refusal(_private(actor, voice.already_one_customer(first)))
        keep, gone = profiles.older_first(first, second)
        gone_name = gone.display_name
        moved = await self._merge(work, keep, gone, agent.display_name, how="linked by an agent")
        work.say(_private(actor, voice.linked(keep, gone_name, moved)))
        await self._send_profile(work, actor, keep)

    async def _block(self, work: _Work, actor: Actor, command: Block) -> None:
        agent = await _agent_record(work, actor.person)
        customer = await self._find_customer(work, actor, command.customer)
        limits = self.policy.abuse
        duration = command.duration or limits.default_block
        long_block = command.forever or duration > limits.agent_block_limit
        if (long_block or self._leads_block(customer, work.now)) and not self._is_lead(agent):
            raise Refusal(_private(actor, voice.block_needs_lead(limits.agent_block_limit)))
        until = BLOCKED_FOR_GOOD if command.forever else work.now + duration
        customer.blocked_until, customer.block_told = until, False
        assert customer.id is not None
        detail = {"until": "forever" if command.forever else until.isoformat()}
        await work.uow.audit.add(AuditRecord("blocked", customer.id, agent.display_name, work.now, detail))
        work.say(_private(actor, voice.blocked(customer, None if command.forever else until)))

    async def _unblock(self, work: _Work, actor: Actor, command: Unblock) -> None:
        agent = await _agent_record(work, actor.person)
        customer = await self._find_customer(work, actor, command.customer)
        if not customer.is_blocked(work.now):
            raise Refusal(_private(actor, voice.not_blocked(customer)))
        if self._leads_block(customer, work.now) and not self._is_lead(agent):
            raise Refusal(_private(actor, voice.block_needs_lead(self.policy.abuse.agent_block_limit)))
        customer.blocked_until, customer.block_told = None, False
        assert customer.id is not None
        await work.uow.audit.add(AuditRecord("unblocked", customer.id, agent.display_name, work.now))
        work.say(_private(actor, voice.unblocked(customer)))

    def _customer_time(self, customer: Customer, moment: datetime, now: datetime) -> str:
        """A moment as the customer reads it: in their timezone, or the default queue's."""
        fallback = self.policy.hours_for(self.policy.default_queue).zone
        return customer_time(moment, customer_zone(customer, fallback), now)

    def _leads_block(self, customer: Customer, now: datetime) -> bool:
        """A block only a lead could have set (longer than agents may block for): only a lead changes it."""
        until = customer.blocked_until
        return until is not None and until - now > self.policy.abuse.agent_block_limit

    def _is_lead(self, agent: Agent) -> bool:
        """A lead, for permissions, by platform user id only: anyone can take a lead's display name."""
        return agent.external_id in self.policy.leads()

    # --- ticket commands ----------------------------------------------------------------------

    async def _claim(self, work: _Work, actor: Actor, ticket: Ticket, _: Command) -> None:
        agent = await _agent_record(work, actor.person)
        _require_workable(actor, ticket)
        if ticket.assignee_id == agent.id:
            raise Refusal(_private(actor, voice.already_yours(ticket)))
        if ticket.assignee_id is not None:
            holder = await work.uow.agents.get(ticket.assignee_id)
            raise Refusal(_private(actor, voice.claimed_by_other(ticket, holder)))
        await _log(work, ticket, "claimed", agent.display_name, agent=agent.display_name)
        await _assign(work, ticket, agent, agent)
        customer = await _addressee(work, ticket, await self._customer_of(work, ticket))
        await self._say_to_customer(work, ticket, customer, voice.claimed(customer, ticket, agent))
        work.say(_owner_update(ticket, agent, voice.claimed_update(ticket, agent)))
        await self._send_packet(work, ToAgent(actor.person), ticket, customer, heading=None)

    async def _release(self, work: _Work, actor: Actor, ticket: Ticket, _: Command) -> None:
        agent = await _agent_record(work, actor.person)
        if ticket.assignee_id != agent.id:
            holder = await work.uow.agents.get(ticket.assignee_id) if ticket.assignee_id else None
            raise Refusal(_private(actor, voice.cannot_release(ticket, holder)))
        await _assign(work, ticket, None, agent)
        await _log(work, ticket, "released", agent.display_name)
        work.say(staff(_agents_about(ticket), voice.released(ticket, agent)))

    async def _reply(self, work: _Work, actor: Actor, ticket: Ticket, command: Command) -> None:
        assert isinstance(command, Reply)
        if ticket.is_closed:
            raise Refusal(_private(actor, voice.closed(ticket)))
        text = clean(command.text)
        if not text.strip():
            raise Refusal(_private(actor, voice.needs_text("reply")))
        await self._public_reply(work, actor, ticket, text)

    async def _public_reply(self, work: _Work, actor: Actor, ticket: Ticket, text: str) -> None:
        """An agent's answer to the customer, typed or from a snippet: recorded, then sent."""
        agent = await self._answered(work, actor, ticket, text, None)
        customer = await _addressee(work, ticket, await self._customer_of(work, ticket))
        work.say(_to_customer(ticket, customer, voice.agent_reply(agent, text)))

    async def _answered(
        self, work: _Work, actor: Actor, ticket: Ticket, text: str, message_id: str | None
    ) -> Agent:
        """Record an agent's public answer; whoever answers an unclaimed ticket first owns it."""
        agent = await _agent_record(work, actor.person)
        if ticket.assignee_id is None:
            await _log(work, ticket, "claimed", agent.display_name, by_replying=True)
            await _assign(work, ticket, agent, agent)
            work.say(_owner_update(ticket, agent, voice.claimed_update(ticket, agent)))
        if await self._answering_upset(work, ticket):
            work.say(_private(actor, voice.tone_guidance(ticket, self.policy.complaints.tone_guidance)))
        await _record(work, ticket, EntryKind.REPLY, actor.person, text, message_id)
        old = ticket.agent_answered(work.now)
        if old is not None:
            await _log(work, ticket, "status", agent.display_name, old=old, new=ticket.status)
        await self.standards.on_staff_answered(work, ticket)
        return agent

    async def _note(self, work: _Work, actor: Actor, ticket: Ticket, command: Command) -> None:
        assert isinstance(command, Note)
        await _agent_record(work, actor.person)
        if not clean(command.text).strip():
            raise Refusal(_private(actor, voice.needs_text("note")))
        note = InternalText(clean(command.text))
        await _record(work, ticket, EntryKind.NOTE, actor.person, note, None)
        work.say(
            staff(
                _agents_about(ticket),
                voice.note_header(ticket, actor.person),
                note,
                kind=StaffKind.NOTE,
            )
        )

    async def _transfer(self, work: _Work, actor: Actor, ticket: Ticket, command: Command) -> None:
        """Hand a ticket to an agent or a queue; the new owner gets the story, the customer is told."""
        assert isinstance(command, Transfer)
        agent = await _agent_record(work, actor.person)
        _require_workable(actor, ticket)
        before = await work.uow.agents.get(ticket.assignee_id) if ticket.assignee_id else None
        customer = await _addressee(work, ticket, await self._customer_of(work, ticket))
        reason = clean(command.reason)
        receiver: Agent | None = None
        owner: ToAgent | ToAgents
        if isinstance(command.target, AgentMention):
            target = await work.uow.agents.find(actor.person.platform, command.target.key)
            if target is None:
                raise Refusal(_private(actor, voice.unknown_agent(command.target.key)))
            if target.id == ticket.assignee_id:
                raise Refusal(_private(actor, voice.already_with(ticket, target)))
            await _assign(work, ticket, target, agent)
            receiver = target
            detail = {"to_agent": target.display_name}
            owner = ToAgent(_person_of(target), ticket.workspace_id, ticket.number)
            heading = voice.handed_to_you(ticket, agent, reason)
            update = voice.transferred_update(ticket, agent, target.display_name, reason)
            work.say(_owner_update(ticket, target, update))
            customer_text = voice.now_with_agent(customer, ticket, target)
        else:
            queue = command.target.name
            if self.policy.queue(queue) is None:
                names = [q.name for q in self.policy.queues]
                raise Refusal(_private(actor, voice.unknown_queue(queue, names)))
            if queue == ticket.queue and ticket.assignee_id is None:
                raise Refusal(_private(actor, voice.already_in_queue(ticket)))
            detail = {"from_queue": ticket.queue, "to_queue": queue}
            ticket.queue = queue
            await self.standards.on_retargeted(work, ticket)
            await _assign(work, ticket, None, agent)
            owner = _agents_about(ticket)
            heading = voice.handed_to_queue(ticket, agent, reason)
            customer_text = voice.now_with_team(customer, ticket, self.policy.queue_label(queue))
        from_agent = before.display_name if before else None
        await _log(
            work, ticket, "transferred", agent.display_name, from_agent=from_agent, reason=reason, **detail
        )
        if receiver is not None:
            # The receiving agent owns it from now on: their claim is on the timeline too.
            name = receiver.display_name
            await _log(work, ticket, "claimed", name, agent=name, handed_by=agent.display_name)
        await self._send_packet(work, owner, ticket, customer, heading)
        await self._say_to_customer(work, ticket, customer, customer_text)

    async def _pending(self, work: _Work, actor: Actor, ticket: Ticket, _: Command) -> None:
        await self._change_status(work, actor, ticket, Status.WAITING_ON_CUSTOMER, "")

    async def _hold(self, work: _Work, actor: Actor, ticket: Ticket, command: Command) -> None:
        assert isinstance(command, Hold)
        reason = clean(command.reason)
        if not reason.strip():
            raise Refusal(_private(actor, voice.needs_text("hold")))
        await self._change_status(work, actor, ticket, Status.ON_HOLD, reason)

    async def _resolve(self, work: _Work, actor: Actor, ticket: Ticket, command: Command) -> None:
        assert isinstance(command, Resolve)
        await self._change_status(work, actor, ticket, Status.RESOLVED, clean(command.summary))
        customer = await _addressee(work, ticket, await self._customer_of(work, ticket))
        await self._say_to_customer(work, ticket, customer, voice.resolved(customer, ticket))
        await self.satisfaction.offer(work, ticket)

    async def _reopen(self, work: _Work, actor: Actor, ticket: Ticket, _: Command) -> None:
        if ticket.is_closed:
            raise Refusal(_private(actor, voice.closed(ticket)))
        if ticket.status is not Status.RESOLVED:
            raise Refusal(_private(actor, voice.not_resolved(ticket)))
        await self._change_status(work, actor, ticket, Status.OPEN, "")
        customer = await _addressee(work, ticket, await self._customer_of(work, ticket))
        await self._say_to_customer(work, ticket, customer, voice.reopened(customer, ticket))

    async def _change_status(
        self, work: _Work, actor: Actor, ticket: Ticket, new: Status, reason: str
    ) -> None:
        agent = await _agent_record(work, actor.person)
        if ticket.status is new:
            raise Refusal(_private(actor, voice.already_status(ticket)))
        try:
            old = ticket.move_to(new, work.now)
        except TransitionError:
            raise Refusal(_private(actor, voice.cannot_move(ticket, new))) from None
        await _log(work, ticket, "status", agent.display_name, old=old, new=new)
        await self.checkins.after_status(work, ticket, old, new)
        parts: list[str | InternalText] = [voice.status_update(ticket, agent)]
        if reason:
            # A hold reason or resolution summary is staff knowledge: a note, shown wherever notes are.
            note = InternalText(voice.status_note(new, reason))
            await _record(work, ticket, EntryKind.NOTE, actor.person, note, None)
            parts += [": ", InternalText(reason)]
        work.say(staff(_agents_about(ticket), *parts))

    async def _priority(self, work: _Work, actor: Actor, ticket: Ticket, command: Command) -> None:
        assert isinstance(command, SetPriority)
        agent = await _agent_record(work, actor.person)
        _require_workable(actor, ticket)
        if ticket.priority is command.level:
            raise Refusal(_private(actor, voice.already_priority(ticket)))
        old = ticket.priority
        ticket.priority = command.level
        ticket.updated_at = work.now
        await _log(work, ticket, "priority", agent.display_name, old=old, new=command.level)
        await self.standards.on_retargeted(work, ticket)
        work.say(staff(_agents_about(ticket), voice.priority_update(ticket, agent)))

    async def _show(self, work: _Work, actor: Actor, ticket: Ticket, _: Command) -> None:
        customer = await self._customer_of(work, ticket)
        await self._send_packet(work, ToAgent(actor.person), ticket, customer, heading=None)

    async def _profile(self, work: _Work, actor: Actor, ticket: Ticket, command: Command) -> None:
        """Show the ticket's customer's profile, add a note to it, or set one of its fields."""
        assert isinstance(command, Profile)
        customer = await self._customer_of(work, ticket)
        assert customer.id is not None
        if command.field is None:
            await self._send_profile(work, actor, customer)
            return
        agent = await _agent_record(work, actor.person)
        value = clean(command.value).strip()
        if command.field == "note":
            if not value:
                raise Refusal(
                    _private(actor, voice.needs_text("profile note", "/ticket profile #<id> note <text>"))
                )
            if len(value) > PROFILE_NOTE_LIMIT:
                raise Refusal(_private(actor, voice.too_long("A profile note", PROFILE_NOTE_LIMIT)))
            text = InternalText(value)
            await work.uow.profiles.add_note(
                ProfileNote(customer.id, text, agent.display_name, work.now, ticket.number)
            )
            await _log(work, ticket, "profile_note", agent.display_name)
            header = voice.profile_note_header(ticket, customer, agent)
            work.say(staff(_agents_about(ticket), header, text, kind=StaffKind.NOTE))
            return
        try:
            shown = profiles.set_field(customer, command.field, value)
        except profiles.ProfileValueError as error:
            raise Refusal(_private(actor, voice.bad_profile_value(command.field, str(error)))) from None
        await _log(work, ticket, "profile", agent.display_name, field=command.field, value=shown)
        others: list[Customer] = []
        if command.field == "email" and customer.email:
            others = [c for c in await work.uow.customers.with_email(customer.email) if c.id != customer.id]
        work.say(_private(actor, voice.profile_set(customer, command.field, shown, others)))

    async def _incentive(self, work: _Work, actor: Actor, ticket: Ticket, command: Command) -> None:
        """Record a goodwill gesture on the customer's profile, so nobody offers it twice unknowingly."""
        assert isinstance(command, GiveIncentive)
        what = " ".join(clean(command.what).split())
        if not what:
            raise Refusal(_private(actor, voice.needs_text("incentive")))
        if len(what) > INCENTIVE_LIMIT:
            raise Refusal(_private(actor, voice.too_long("An incentive", INCENTIVE_LIMIT)))
        agent = await _agent_record(work, actor.person)
        customer = await self._customer_of(work, ticket)
        assert customer.id is not None
        await work.uow.profiles.add_incentive(
            Incentive(customer.id, ticket.number, what, agent.display_name, work.now)
        )
        await _log(work, ticket, "incentive", agent.display_name, what=what)
        work.say(staff(_agents_about(ticket), voice.incentive_recorded(ticket, customer, agent, what)))

    async def _transcript(self, work: _Work, actor: Actor, ticket: Ticket, _: Command) -> None:
        """The whole ticket as files for the agent who asked; the packet is the short version."""
        assert ticket.number is not None
        agent = await _agent_record(work, actor.person)
        customer = await self._customer_of(work, ticket)
        entries = await work.uow.entries.for_ticket(ticket.number)
        assignee = await work.uow.agents.get(ticket.assignee_id) if ticket.assignee_id else None
        await _log(work, ticket, "transcript", agent.display_name)
        events = await work.uow.timeline.for_ticket(ticket.number)
        owner = assignee.display_name if assignee else None
        assert customer.id is not None
        record = transcript.TicketRecord(
            ticket,
            customer,
            owner,
            entries,
            events,
            await work.uow.profiles.notes(customer.id),
            await work.uow.profiles.incentives(customer.id),
        )
        made = transcript.files(record, work.now)
        text = voice.transcript_ready(ticket, len(entries), len(events))
        work.say(StaffMessage(ToAgent(actor.person), (text,), StaffKind.INFO, attachments=made))

    async def _promise(self, work: _Work, actor: Actor, ticket: Ticket, command: Command) -> None:
        """Tell the customer what will happen by when (the agent's words), and track it."""
        assert isinstance(command, MakePromise) and ticket.number is not None
        _require_workable(actor, ticket)
        what = " ".join(clean(command.what).split())
        if len(what) > PROMISE_LIMIT:
            raise Refusal(_private(actor, voice.too_long("A promise", PROMISE_LIMIT)))
        hours = self.standards.hours(ticket)
        agent_zone = zone_or(actor.person.timezone, hours.zone)
        try:
            due = resolve(command.when, work.now, agent_zone, hours)
        except WhenError as error:
            raise Refusal(_private(actor, voice.bad_when(str(error)))) from None
        customer = await _addressee(work, ticket, await self._customer_of(work, ticket))
        agent = await _agent_record(work, actor.person)
        promises = await work.uow.promises.for_ticket(ticket.number)
        number = 1 + max((p.number for p in promises), default=0)
        await work.uow.promises.add(Promise(ticket.number, number, what, due, agent.display_name, work.now))
        await _log(work, ticket, "promised", agent.display_name, promise=number, due=due.isoformat())
        await self.checkins.plan_promise(work, ticket, number, due)
        when = customer_time(due, customer_zone(customer, hours.zone), work.now)
        text = voice.promise_made(customer, ticket, agent, what, when)
        await self._answered(work, actor, ticket, text, None)
        work.say(_to_customer(ticket, customer, text))
        staff_due = customer_time(due, agent_zone, work.now)
        work.say(staff(_agents_about(ticket), voice.promise_recorded(ticket, number, what, staff_due)))

    async def _kept(self, work: _Work, actor: Actor, ticket: Ticket, command: Command) -> None:
        assert isinstance(command, Kept) and ticket.number is not None
        agent = await _agent_record(work, actor.person)
        open_ones = [
            p for p in await work.uow.promises.for_ticket(ticket.number) if p.state is PromiseState.OPEN
        ]
        if command.number is not None:
            open_ones = [p for p in open_ones if p.number == command.number]
        if not open_ones or (command.number is None and len(open_ones) > 1):
            if open_ones:
                numbers = ", ".join(str(p.number) for p in open_ones)
                raise Refusal(_private(actor, voice.which_promise(ticket, numbers)))
            raise Refusal(_private(actor, voice.no_open_promise(ticket, command.number)))
        promise = open_ones[0]
        promise.state, promise.kept_at = PromiseState.KEPT, work.now
        late = promise.broken_at is not None or work.now > promise.due_at
        if late and promise.broken_at is None:
            promise.broken_at = promise.due_at  # kept, but after the time we gave: broken all the same
        await _log(work, ticket, "promise_kept", agent.display_name, promise=promise.number, late=late)
        work.say(staff(_agents_about(ticket), voice.promise_kept(ticket, promise.number, promise.what, late)))

    async def _snippet(self, work: _Work, actor: Actor, ticket: Ticket, command: Command) -> None:
        """Send a saved reply: exactly an agent's reply, with the snippet's variables filled in."""
        assert isinstance(command, Snippet)
        if ticket.is_closed:
            raise Refusal(_private(actor, voice.closed(ticket)))
        name = command.name.strip().lower()
        text = self.policy.snippets.get(name)
        if text is None:
            stored = await work.uow.snippets.get(name)
            if stored is None:
                names = await self._snippet_names(work)
                raise Refusal(_private(actor, voice.unknown_snippet(command.name, names)))
            text = stored.text
        problem = snippet_text_problem(text)
        if problem:
            raise Refusal(_private(actor, voice.snippet_unusable(name, problem)))
        agent = await _agent_record(work, actor.person)
        customer = await _addressee(work, ticket, await self._customer_of(work, ticket))
        values = {
            "customer_name": voice.first_name(customer),
            "agent_name": agent.display_name,
            "ticket": ticket.ref,
        }
        await self._public_reply(work, actor, ticket, clean(fill_snippet(text, values)))

    async def _list_snippets(self, work: _Work, actor: Actor) -> None:
        listed: list[tuple[str, str]] = []
        for name in await self._snippet_names(work):
            stored = None if name in self.policy.snippets else await work.uow.snippets.get(name)
            listed.append((name, stored.text if stored else self.policy.snippets[name]))
        work.say(_private(actor, voice.snippet_list(listed)))

    async def _add_snippet(self, work: _Work, actor: Actor, command: AddSnippet) -> None:
        """Save a snippet for every agent. Names are unique: the policy file's stay as they are."""
        name, text = clean(command.name).strip().lower(), clean(command.text).strip()
        problem = snippet_name_problem(name)
        if problem:
            raise Refusal(_private(actor, voice.bad_snippet_name(name, problem)))
        problem = snippet_text_problem(text)
        if problem:
            raise Refusal(_private(actor, voice.bad_snippet_text(name, problem)))
        if name in self.policy.snippets:
            raise Refusal(_private(actor, voice.snippet_in_policy(name)))
        existing = await work.uow.snippets.get(name)
        if existing is not None:
            raise Refusal(_private(actor, voice.snippet_taken(name, existing.created_by)))
        agent = await _agent_record(work, actor.person)
        # Two agents saving one name at once: the loser's add raises Conflict, and the run again
        # finds the winner's snippet above.
        await work.uow.snippets.add(StoredSnippet(name, text, agent.display_name, work.now))
        work.say(_private(actor, voice.snippet_saved(name)))

    async def _snippet_names(self, work: _Work) -> list[str]:
        return sorted({*self.policy.snippets, *await work.uow.snippets.names()})

    async def report(
        self, start: datetime, end: datetime, queue: str | None = None, agent_id: int | None = None
    ) -> tuple[reports.Stats, list[reports.DayPoint]]:
        """The figures for a period and its days, for `relaydesk report` and `/ticket stats`."""

        async def gather(work: _Work) -> tuple[reports.Stats, list[reports.DayPoint]]:
            return await self._figures(work, start, end, queue, agent_id)

        return await self._read(gather)

    async def _figures(
        self, work: _Work, start: datetime, end: datetime, queue: str | None, agent_id: int | None
    ) -> tuple[reports.Stats, list[reports.DayPoint]]:
        hours_for = self.policy.hours_for
        zone = hours_for(queue or self.policy.default_queue).zone
        period = reports.Period.of(start, end, now=work.now, queue=queue, agent_id=agent_id, zone=zone)
        tickets = work.uow.tickets
        if isinstance(tickets, reports.TallySource):  # SQL aggregates: a busy month never comes into memory
            tally = await tickets.report_tally(period)
        else:
            tally = reports.tally(await self._report_data(work, start, end), period)
        return reports.figures(tally, hours_for)

    async def _report_data(self, work: _Work, start: datetime, end: datetime) -> reports.ReportData:
        """Everything a report of the period reads, gathered once."""
        uow = work.uow
        tickets = {t.number: t for t in await uow.tickets.touched_between(start, end, REPORT_TICKETS)}
        surveys = await uow.surveys.touched_between(start, end)
        for number in {s.ticket_number for s in surveys} - tickets.keys():
            ticket = await uow.tickets.get(number)
            if ticket is not None:
                tickets[number] = ticket
        numbers = [n for n in tickets if n is not None]
        names: dict[int, str] = {}
        for ticket in tickets.values():
            if ticket.assignee_id is not None and ticket.assignee_id not in names:
                agent = await uow.agents.get(ticket.assignee_id)
                names[ticket.assignee_id] = agent.display_name if agent else "?"
        return reports.ReportData(
            tickets=list(tickets.values()),
            clocks=await uow.clocks.for_tickets(numbers),
            promises=await uow.promises.for_tickets(numbers),
            surveys=surveys,
            events=await uow.timeline.for_tickets(numbers),
            agents=names,
        )

    async def _stats(self, work: _Work, actor: Actor, command: ShowStats) -> None:
        """The figures for the asking agent, with a chart of the days."""
        if command.queue and self.policy.queue(command.queue) is None:
            names = [q.name for q in self.policy.queues]
            raise Refusal(_private(actor, voice.unknown_queue(command.queue, names)))
        agent = None
        if command.agent is not None:
            agent = await work.uow.agents.find(actor.person.platform, command.agent.key)
            if agent is None:
                raise Refusal(_private(actor, voice.unknown_agent(command.agent.key)))
        start = work.now - command.period
        end = work.now + JUST_NOW
        stats, days = await self._figures(work, start, end, command.queue, agent.id if agent else None)
        title = voice.stats_title(command.period, command.queue, agent.display_name if agent else None)
        chart = reports.chart_png(days, title)
        attachment = Attachment("relaydesk-stats.png", chart, "image/png")
        text = reports.render_text(stats, title)
        work.say(StaffMessage(ToAgent(actor.person), (text,), StaffKind.INFO, attachments=(attachment,)))

    async def _list_queue(self, work: _Work, actor: Actor, command: ListQueue) -> None:
        if command.queue and self.policy.queue(command.queue) is None:
            names = [q.name for q in self.policy.queues]
            raise Refusal(_private(actor, voice.unknown_queue(command.queue, names)))
        tickets = await work.uow.tickets.unassigned(command.queue, LIST_LIMIT)
        customers = await self._customer_names(work, tickets)
        work.say(_private(actor, voice.queue_list(tickets, customers, command.queue, work.now, LIST_LIMIT)))

    async def _mine(self, work: _Work, actor: Actor) -> None:
        agent = await _agent_record(work, actor.person)
        assert agent.id is not None
        tickets = await work.uow.tickets.assigned_to(agent.id, LIST_LIMIT)
        names = await self._customer_names(work, tickets)
        work.say(_private(actor, voice.mine_list(tickets, names, work.now, LIST_LIMIT)))

    # --- due work -----------------------------------------------------------------------------

    # --- shared helpers -----------------------------------------------------------------------

    async def _customer_of(self, work: _Work, ticket: Ticket) -> Customer:
        customer = await work.uow.customers.get(ticket.customer_id)
        assert customer is not None, f"ticket {ticket.ref} has no customer"
        return customer

    async def _customer_names(self, work: _Work, tickets: list[Ticket]) -> dict[int, str]:
        names: dict[int, str] = {}
        for ticket in tickets:
            if ticket.customer_id not in names:
                customer = await self._customer_of(work, ticket)
                names[ticket.customer_id] = customer.display_name
        return names

    async def _say_to_customer(self, work: _Work, ticket: Ticket, customer: Customer, text: str) -> None:
        """Tell the customer something and keep it on the record."""
        bot = Person(ticket.platform, "relaydesk", "Relaydesk")
        await _record(work, ticket, EntryKind.BOT, bot, text, None)
        work.say(_to_customer(ticket, customer, text))

    async def _send_packet(
        self,
        work: _Work,
        audience: ToAgent | ToAgents,
        ticket: Ticket,
        customer: Customer,
        heading: str | None,
    ) -> None:
        """The handoff packet, from our records, within the budget of the platform it goes to."""
        with packets.collector_paused():  # the thousands of lines, steps and choices of a long ticket
            assert ticket.number is not None
            entries = await work.uow.entries.lines_for_ticket(ticket.number)
            events = await work.uow.timeline.for_ticket(ticket.number)
            assignee = await work.uow.agents.get(ticket.assignee_id) if ticket.assignee_id else None
            profile = await self._profile_view(work, customer, exclude=ticket.number)
            built = packets.build(
                ticket,
                assignee.display_name if assignee else None,
                profile,
                entries,
                events,
                self._facts,
                self.policy.is_courtesy,
                heading,
            )
            scores = [e.mood for e in entries if e.kind is EntryKind.CUSTOMER and e.mood is not None]
            mood = trend(scores, upset_below=self.policy.complaints.upset_below)
            if mood and any(e.action == "upset" for e in events):
                mood += " · flagged upset"
            built = replace(
                built,
                promises=await self._open_promises(work, ticket),
                sla=await self._clock_lines(work, ticket),
                mood=mood,
            )
            platform = audience.person.platform if isinstance(audience, ToAgent) else audience.platform
            parts = packets.render(built, packets.budget_for(platform, self.policy.handoff.packet_chars))
            work.say(StaffMessage(audience, tuple(parts), StaffKind.INFO))


async def _agent_record(work: _Work, person: Person) -> Agent:
    agent = await work.uow.agents.by_identity(person.platform, person.user_id)
    if agent is None:
        agent = await work.uow.agents.add(Agent(person.platform, person.user_id, person.display_name))
    elif agent.display_name != person.display_name:
        agent.display_name = person.display_name
    return agent


async def _assign(work: _Work, ticket: Ticket, owner: Agent | None, actor: Agent) -> None:
    """Change the owner; a new ticket opening as a result goes on the timeline too."""
    old = ticket.assign(owner.id if owner else None, work.now)
    if old is not None:
        await _log(work, ticket, "status", actor.display_name, old=old, new=ticket.status)


async def _ticket_in_thread(work: _Work, where: Conversation) -> int | None:
    """The ticket a thread is about: a customer's ticket thread, or a ticket card's staff thread."""
    assert where.thread_id is not None
    ticket = await work.uow.tickets.by_thread(where.platform, where.channel_id, where.thread_id)
    if ticket is not None:
        return ticket.number
    anchor = await work.uow.anchors.by_message(where.platform, where.channel_id, where.thread_id)
    return anchor.ticket_number if anchor else None


async def _thanked_since_resolution(work: _Work, ticket: Ticket) -> bool:
    """Thanks are answered once per resolution, however many times they come."""
    assert ticket.number is not None
    events = await work.uow.timeline.for_ticket(ticket.number)
    return any(e.action == "thanked" and ticket.resolved_at and e.at >= ticket.resolved_at for e in events)


def _require_workable(actor: Actor, ticket: Ticket) -> None:
    if ticket.is_closed:
        raise Refusal(_private(actor, voice.closed(ticket)))
    if ticket.status is Status.RESOLVED:
        raise Refusal(_private(actor, voice.reopen_first(ticket)))


def _owner_update(ticket: Ticket, owner: Agent, text: str) -> StaffMessage:
    """Tell the agents who owns the ticket now, with what adapters need to bring the owner in."""
    assert ticket.number is not None
    where = Conversation(ticket.platform, ticket.channel_id, ticket.thread_id, ticket.workspace_id)
    handover = Handover(ticket.number, _person_of(owner), where)
    return StaffMessage(_agents_about(ticket), (text,), StaffKind.UPDATE, handover=handover)


def _clean_person(person: Person) -> Person:
    """Names and ids come from platforms; store them without control characters, as any text, and
    keep names to a length every screen (and column) holds."""
    name = clean(person.display_name).strip() or clean(person.user_id).strip() or "there"
    email = clean(person.email).strip() if person.email else None
    return Person(
        person.platform, clean(person.user_id), shorten(name, NAME_LIMIT), email or None, person.timezone
    )


def _clean_actor(actor: Actor) -> Actor:
    return Actor(_clean_person(actor.person), actor.role)


def _private(actor: Actor, text: str) -> Outgoing:
    """An answer only the actor sees: staff text for agents, plain text for everyone else."""
    if actor.is_agent:
        return StaffMessage(ToAgent(actor.person), (text,), StaffKind.INFO)
    return CustomerMessage(ToCustomer(actor.person), text)


def _without_thread(conversation: Conversation) -> Conversation:
    """A request typed inside a ticket's thread starts its own conversation in that channel."""
    return replace(conversation, thread_id=None)


async def _in_staff_thread(work: _Work, message: Outgoing) -> Outgoing:
    """Address a ticket's staff messages to its card's thread on that platform, where there is one."""
    audience = message.audience
    if not isinstance(audience, ToAgents) or audience.ticket_number is None or audience.platform is None:
        return message
    if audience.staff_thread is not None:
        return message
    thread = await _card(work, audience.ticket_number, audience.platform)
    if thread is None:
        return message
    assert isinstance(message, StaffMessage)
    return replace(message, audience=replace(audience, staff_thread=thread))


async def _card(work: _Work, ticket_number: int, platform: str) -> MessageRef | None:
    """A ticket's card on a platform, looked up once per unit of work."""
    key = (ticket_number, platform)
    if key not in work.cards:
        anchor = await work.uow.anchors.for_ticket(ticket_number, platform)
        work.cards[key] = MessageRef(anchor.channel_id, anchor.message_id) if anchor else None
    return work.cards[key]


def _line(ticket: Ticket, names: dict[int, str], now: datetime) -> TicketLine:
    assert ticket.number is not None
    return TicketLine(
        number=ticket.number,
        subject=ticket.subject,
        customer_name=names.get(ticket.customer_id, "?"),
        priority=str(ticket.priority),
        status=STATUS_WORDS[ticket.status],
        queue=ticket.queue,
        age=voice.age(now - ticket.created_at),
    )


def _is_relay(message: Outgoing) -> bool:
    return isinstance(message, StaffMessage) and message.kind is StaffKind.RELAY


def _private_to_customer(actor: Actor, text: str) -> Outgoing:
    """An answer for the person who pressed a button, whatever their role."""
    return CustomerMessage(ToCustomer(actor.person), text)


def _direct(actor: Actor) -> Conversation:
    """A request raised outside any conversation (a form, say) is answered to the person directly."""
    return Conversation(actor.person.platform, f"@{actor.person.user_id}")
