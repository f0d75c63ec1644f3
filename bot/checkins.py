"""Scheduled check-ins: the sweep that fires what falls due, exactly once.

The `checkins` table is the source of truth. A sweep claims due rows (FOR UPDATE SKIP LOCKED on
PostgreSQL; the rows are versioned, so two sweeps that read the same row cannot both fire it), re-checks
the ticket as it is now, and either fires (records what it said) or drops the check-in when it no longer
makes sense: nothing fires on a closed ticket, a waiting check-in not after the customer answered, a
clock's warning not once the clock stopped. Missed check-ins (the bot was down) fire on the next sweep.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from bot import voice
from bot.domain import (
    ACTIVE_STATUSES,
    Agent,
    Checkin,
    CheckinState,
    ClockState,
    Customer,
    EntryKind,
    Metric,
    Promise,
    PromiseState,
    SlaClock,
    Status,
    Ticket,
)
from bot.messages import Person, ToAgent, ToAgents, staff
from bot.policy import Policy
from bot.satisfaction import SURVEY_EXPIRE, Satisfaction
from bot.standards import BREACH, WARNING, Standards, schedule
from bot.when import customer_time, zone_or
from bot.work import (
    Work,
    addressed_customer,
    agent_about,
    agents_about,
    lead_of,
    log,
    record,
    to_customer,
)

WAITING_CHECKIN = "waiting_checkin"
WAITING_REMINDER = "waiting_reminder"
AUTO_RESOLVE = "auto_resolve"
CLOSE_RESOLVED = "close_resolved"
WEEKLY_REPORT = "weekly_report"
PROMISE_REMINDER = "promise_reminder"
PROMISE_OVERDUE = "promise_overdue"
DIGEST = "digest"
DIGEST_GRACE = timedelta(hours=12)
"""A digest missed while the bot was down is still sent within this long; later it is dropped."""
BOT = "Relaydesk"
SWEEP_BATCH = 100
DIGEST_TICKETS = 500

Handler = Callable[[Work, Checkin], Awaitable[str | None]]


class Checkins:
    """Plans the lifecycle's check-ins and fires due ones. A handler returns what it did, or None to
    drop the check-in."""

    def __init__(self, policy: Policy, standards: Standards, satisfaction: Satisfaction) -> None:
        self.policy = policy
        self.standards = standards
        self.satisfaction = satisfaction
        self._handlers: dict[str, Handler] = {
            WARNING: self._sla_warning,
            BREACH: self._sla_breach,
            WAITING_CHECKIN: self._waiting_checkin,
            WAITING_REMINDER: self._waiting_reminder,
            AUTO_RESOLVE: self._auto_resolve,
            CLOSE_RESOLVED: self._close_resolved,
            WEEKLY_REPORT: self._weekly_report,
            PROMISE_REMINDER: self._promise_reminder,
            PROMISE_OVERDUE: self._promise_overdue,
            DIGEST: self._digest,
            SURVEY_EXPIRE: self._survey_expire,
        }

    # --- planning ---------------------------------------------------------------------------------

    async def after_status(self, work: Work, ticket: Ticket, old: Status, new: Status) -> None:
        """Clocks follow the status; waiting and resolved tickets get their follow-ups planned."""
        await self.standards.on_status(work, ticket, old, new)
        since = _iso(ticket.status_changed_at or work.now)
        waiting = self.policy.waiting
        if new is Status.WAITING_ON_CUSTOMER:
            for kind, after in (
                (WAITING_CHECKIN, waiting.checkin_after),
                (WAITING_REMINDER, waiting.last_reminder_after),
                (AUTO_RESOLVE, waiting.auto_resolve_after),
            ):
                await schedule(
                    work,
                    f"{ticket.number}:{kind}:{since}",
                    kind,
                    work.now + after,
                    ticket.number,
                    since=since,
                )
        if old is Status.RESOLVED and new is not Status.CLOSED:
            await self.satisfaction.withdraw(work, ticket)
        if new is Status.RESOLVED:
            due = work.now + self.policy.lifecycle.close_resolved_after
            await schedule(
                work,
                f"{ticket.number}:{CLOSE_RESOLVED}:{since}",
                CLOSE_RESOLVED,
                due,
                ticket.number,
                since=since,
            )

    async def plan_weekly(self, work: Work, ticket: Ticket, week: int, start: datetime) -> None:
        due = start + self.policy.checkins.weekly_report_after
        await schedule(
            work, f"{ticket.number}:{WEEKLY_REPORT}:{week}", WEEKLY_REPORT, due, ticket.number, week=week
        )

    async def plan_promise(self, work: Work, ticket: Ticket, number: int, due: datetime) -> None:
        key = f"{ticket.number}:promise:{number}"
        remind = max(due - self.policy.promises.remind_before, work.now)
        await schedule(work, f"{key}:reminder", PROMISE_REMINDER, remind, ticket.number, promise=number)
        await schedule(work, f"{key}:overdue", PROMISE_OVERDUE, due, ticket.number, promise=number)

    async def plan_digests(self, work: Work) -> None:
        """Each queue's daily digest, cron-style in the queue's timezone: the next one, and one missed
        within the grace period."""
        days = ",".join(self.policy.checkins.digest_days)
        hour, minute = (int(part) for part in self.policy.checkins.digest_at.split(":"))
        for queue in self.policy.queues:
            zone = self.policy.hours_for(queue.name).zone
            trigger = CronTrigger(day_of_week=days, hour=hour, minute=minute, timezone=zone)
            for start in (work.now - DIGEST_GRACE, work.now):
                fire = trigger.get_next_fire_time(None, start.astimezone(zone))
                if fire is None:
                    continue
                day = fire.astimezone(zone).date().isoformat()
                await schedule(work, f"digest:{queue.name}:{day}", DIGEST, fire, None, queue=queue.name)

    # --- firing -----------------------------------------------------------------------------------

    async def sweep(self, work: Work) -> int:
        """Fire a batch of due check-ins; returns how many were claimed (a full batch: more may wait)."""
        await self.plan_digests(work)
        claimed = await work.uow.checkins.claim_due(work.now, SWEEP_BATCH)
        for checkin in claimed:
            handler = self._handlers.get(checkin.kind)
            before = checkin.due_at
            outcome = await handler(work, checkin) if handler else None
            if checkin.due_at != before:
                continue  # moved to a later time (a clock that was paused in between): still pending
            checkin.state = CheckinState.DONE if outcome else CheckinState.DROPPED
            checkin.fired_at = work.now
            checkin.outcome = (outcome or "no longer needed")[:200]
        return len(claimed)

    async def _ticket(self, work: Work, checkin: Checkin) -> Ticket | None:
        if checkin.ticket_number is None:
            return None
        ticket = await work.uow.tickets.get(checkin.ticket_number)
        return None if ticket is None or ticket.is_closed else ticket

    async def _clock(self, work: Work, checkin: Checkin) -> tuple[Ticket, SlaClock] | None:
        ticket = await self._ticket(work, checkin)
        if ticket is None or ticket.number is None:
            return None
        metric, cycle = Metric(checkin.detail["metric"]), int(checkin.detail["cycle"])
        for clock in await work.uow.clocks.for_ticket(ticket.number):
            if clock.metric is metric and clock.cycle == cycle and clock.state is ClockState.RUNNING:
                return ticket, clock
        return None

    async def _sla_warning(self, work: Work, checkin: Checkin) -> str | None:
        found = await self._clock(work, checkin)
        if found is None:
            return None
        ticket, clock = found
        warn_at = self.standards.warn_time(ticket, clock, work.now)
        if warn_at > work.now:
            checkin.due_at = warn_at
            return "moved"
        customer = await addressed_customer(work, ticket)
        due = customer_time(clock.due_at, self.standards.hours(ticket).zone, work.now)
        assignee = await _assignee(work, ticket)
        audience: ToAgent | ToAgents = agent_about(assignee, ticket) if assignee else agents_about(ticket)
        if clock.metric is Metric.UPDATE:
            text = voice.update_nudge(ticket, customer, due)
        else:
            text = voice.sla_warning(ticket, clock.metric, due, assignee)
        work.say(staff(audience, text))
        return f"warned {'the assignee' if assignee else 'the agents'}"

    async def _sla_breach(self, work: Work, checkin: Checkin) -> str | None:
        found = await self._clock(work, checkin)
        if found is None:
            return None
        ticket, clock = found
        if clock.due_at > work.now:
            checkin.due_at = clock.due_at
            return "moved"
        clock.breached_at = clock.breached_at or work.now
        lead = await lead_of(work, self.policy, ticket)
        text = voice.sla_breach(ticket, clock.metric, clock.target, lead.display_name if lead else None)
        work.say(staff(agents_about(ticket), text))
        if lead is not None:
            work.say(staff(agent_about(lead, ticket), text))
        await log(work, ticket, "breached", BOT, metric=clock.metric, cycle=clock.cycle)
        if clock.metric is Metric.UPDATE:
            # Nobody updated the customer in time: they hear from us anyway, with the next time.
            customer = await addressed_customer(work, ticket)
            next_due = self.standards.due(ticket, Metric.UPDATE, work.now)
            when = customer_time(next_due, self._zone(ticket, customer), work.now)
            await self._tell(work, ticket, customer, voice.progress_update(customer, ticket, when))
        return f"breach escalated to {lead.display_name if lead else 'the agents'}"

    async def _waiting_checkin(self, work: Work, checkin: Checkin) -> str | None:
        ticket = await self._still_waiting(work, checkin)
        if ticket is None:
            return None
        customer = await addressed_customer(work, ticket)
        await self._tell(work, ticket, customer, voice.waiting_checkin(customer, ticket))
        return "asked the customer"

    async def _waiting_reminder(self, work: Work, checkin: Checkin) -> str | None:
        ticket = await self._still_waiting(work, checkin)
        if ticket is None:
            return None
        customer = await addressed_customer(work, ticket)
        waiting = self.policy.waiting
        resolve_at = (
            ticket.status_changed_at + waiting.auto_resolve_after if ticket.status_changed_at else work.now
        )
        when = customer_time(resolve_at, self._zone(ticket, customer), work.now)
        await self._tell(work, ticket, customer, voice.waiting_last_reminder(customer, ticket, when))
        return "reminded the customer"

    async def _auto_resolve(self, work: Work, checkin: Checkin) -> str | None:
        ticket = await self._still_waiting(work, checkin)
        if ticket is None:
            return None
        customer = await addressed_customer(work, ticket)
        old = ticket.move_to(Status.RESOLVED, work.now)
        await log(work, ticket, "status", BOT, old=old, new=Status.RESOLVED, why="no answer")
        await self.after_status(work, ticket, old, Status.RESOLVED)
        await self._tell(work, ticket, customer, voice.auto_resolved(customer, ticket))
        work.say(staff(agents_about(ticket), voice.auto_resolved_update(ticket)))
        await self.satisfaction.offer(work, ticket)
        return "resolved for want of an answer"

    async def _close_resolved(self, work: Work, checkin: Checkin) -> str | None:
        ticket = await self._ticket(work, checkin)
        if ticket is None or ticket.status is not Status.RESOLVED:
            return None
        if _iso(ticket.status_changed_at) != checkin.detail.get("since"):
            return None
        ticket.move_to(Status.CLOSED, work.now)
        await log(work, ticket, "status", BOT, old=Status.RESOLVED, new=Status.CLOSED)
        await self.standards.on_status(work, ticket, Status.RESOLVED, Status.CLOSED)
        return "closed"

    async def _weekly_report(self, work: Work, checkin: Checkin) -> str | None:
        ticket = await self._ticket(work, checkin)
        if ticket is None or ticket.status in (Status.RESOLVED, Status.CLOSED):
            return None
        week = int(checkin.detail.get("week", "1"))
        customer = await addressed_customer(work, ticket)
        next_due = self.standards.due(ticket, Metric.UPDATE, work.now)
        when = customer_time(next_due, self._zone(ticket, customer), work.now)
        await self._tell(work, ticket, customer, voice.weekly_report(customer, ticket, week, when))
        await self.plan_weekly(work, ticket, week + 1, checkin.due_at)
        return f"week {week} report sent"

    async def _promise_reminder(self, work: Work, checkin: Checkin) -> str | None:
        found = await self._open_promise(work, checkin)
        if found is None:
            return None
        ticket, promise = found
        # Promises move with the ticket: its owner now is reminded; unclaimed, its queue's agents are.
        maker = await _assignee(work, ticket)
        due = customer_time(promise.due_at, self.standards.hours(ticket).zone, work.now)
        text = voice.promise_reminder(ticket, promise.number, promise.what, due)
        audience: ToAgent | ToAgents = agent_about(maker, ticket) if maker else agents_about(ticket)
        work.say(staff(audience, text))
        return "reminded the agent"

    async def _promise_overdue(self, work: Work, checkin: Checkin) -> str | None:
        found = await self._open_promise(work, checkin)
        if found is None:
            return None
        ticket, promise = found
        promise.broken_at = work.now
        await log(work, ticket, "promise_late", BOT, promise=promise.number)
        maker = await _assignee(work, ticket)
        lead = await lead_of(work, self.policy, ticket)
        text = voice.promise_late_staff(
            ticket, promise.number, promise.what, lead.display_name if lead else None
        )
        work.say(staff(agents_about(ticket), text))
        for person in {a.id: a for a in (maker, lead) if a is not None}.values():
            work.say(staff(agent_about(person, ticket), text))
        customer = await addressed_customer(work, ticket)
        late_update_in = self.policy.promises.late_update_in
        next_due = self.standards.hours(ticket).add(work.now, late_update_in)
        when = customer_time(next_due, self._zone(ticket, customer), work.now)
        text = voice.promise_late_customer(customer, ticket, promise.what, when)
        await self._tell(work, ticket, customer, text, next_update_in=late_update_in)
        return "late: agent, lead and customer told"

    async def _digest(self, work: Work, checkin: Checkin) -> str | None:
        queue = checkin.detail.get("queue", "")
        if work.now - checkin.due_at > DIGEST_GRACE or self.policy.queue(queue) is None:
            return None
        zone = self.policy.hours_for(queue).zone
        end_of_day = _end_of_day(work.now, zone)
        unclaimed = await work.uow.tickets.unassigned(queue, 25)
        active = await work.uow.tickets.in_queue(queue, DIGEST_TICKETS)
        numbers = [t.number for t in active if t.number is not None]
        clocks = await work.uow.clocks.for_tickets(numbers)
        breaching = sorted(
            {c.ticket_number for c in clocks if c.state is ClockState.RUNNING and c.due_at <= end_of_day}
        )
        promises = [
            p
            for p in await work.uow.promises.open_due_before(end_of_day, DIGEST_TICKETS)
            if p.ticket_number in set(numbers)
        ]
        text = voice.digest(queue, work.now.astimezone(zone), unclaimed, breaching, promises)
        work.say(staff(ToAgents(), text))
        return "digest sent"

    async def _survey_expire(self, work: Work, checkin: Checkin) -> str | None:
        if checkin.ticket_number is None:
            return None
        return await self.satisfaction.expire(
            work, checkin.ticket_number, int(checkin.detail.get("cycle", "0"))
        )

    # --- helpers ----------------------------------------------------------------------------------

    async def _still_waiting(self, work: Work, checkin: Checkin) -> Ticket | None:
        ticket = await self._ticket(work, checkin)
        if ticket is None or ticket.status is not Status.WAITING_ON_CUSTOMER:
            return None
        if _iso(ticket.status_changed_at) != checkin.detail.get("since"):
            return None  # the customer answered (and we asked again since): this check-in is stale
        return ticket

    async def _open_promise(self, work: Work, checkin: Checkin) -> tuple[Ticket, Promise] | None:
        ticket = await self._ticket(work, checkin)
        if ticket is None or ticket.number is None or ticket.status not in ACTIVE_STATUSES | {Status.NEW}:
            return None
        number = int(checkin.detail.get("promise", "0"))
        for promise in await work.uow.promises.for_ticket(ticket.number):
            if promise.number == number and promise.state is PromiseState.OPEN and promise.broken_at is None:
                return ticket, promise
        return None

    async def _tell(
        self,
        work: Work,
        ticket: Ticket,
        customer: Customer,
        text: str,
        next_update_in: timedelta | None = None,
    ) -> None:
        """The bot tells the customer something: recorded, sent, and it counts as an update. When it names
        the time of the next update (`next_update_in`), the update clock keeps that time."""
        await record(work, ticket, EntryKind.BOT, Person(ticket.platform, "relaydesk", BOT), text, None)
        work.say(to_customer(ticket, customer, text))
        await self.standards.on_customer_updated(work, ticket, next_in=next_update_in)

    def _zone(self, ticket: Ticket, customer: Customer) -> ZoneInfo:
        return customer_zone(customer, self.standards.hours(ticket).zone)


def customer_zone(customer: Customer, fallback: ZoneInfo) -> ZoneInfo:
    """The customer's own timezone when their profile has one, else the queue's."""
    return zone_or(customer.timezone, fallback)


async def _assignee(work: Work, ticket: Ticket) -> Agent | None:
    return await work.uow.agents.get(ticket.assignee_id) if ticket.assignee_id else None


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def _end_of_day(now: datetime, zone: ZoneInfo) -> datetime:
    local = now.astimezone(zone)
    return (local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)).astimezone(
        now.tzinfo
    )
