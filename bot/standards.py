"""Service standards kept in numbers: SLA clocks, and the check-ins that keep them.

Each ticket has one clock per metric and cycle, its target copied from the policy when it starts and its
due time stored in UTC. First response never pauses; resolution and update pause while we wait on the
customer. Each running clock has two check-ins, a warning (at `warn_at` of the target) and a breach,
keyed by ticket, metric and cycle so each is sent once. The desk calls the `on_*` hooks as things happen;
the sweep (`bot.checkins`) fires what falls due.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain import (
    Checkin,
    CheckinState,
    ClockState,
    Metric,
    Priority,
    SlaClock,
    Status,
    Ticket,
    TicketKind,
)
from bot.durations import format_duration
from bot.hours import BusinessHours
from bot.policy import Policy, Targets
from bot.work import Work

WARNING = "sla_warning"
BREACH = "sla_breach"
PAUSED_WHILE_WAITING = (Metric.RESOLUTION, Metric.UPDATE)


def business_time(hours: BusinessHours, clock: SlaClock, met_at: datetime) -> timedelta:
    """The business time a clock took, as it is being met at `met_at`: what it consumed before its last
    pause, in whole seconds as stored (`consumed`), plus the open time since it resumed, unless it is
    met while paused (waiting on the customer: that time was counted when it paused). The duration a
    report measures (bot/reports.py), kept on the clock so reports need not work it out again."""
    consumed = timedelta(seconds=int(clock.consumed.total_seconds()))
    if clock.state is ClockState.PAUSED:
        return consumed
    return consumed + hours.between(clock.resumed_at, met_at)


def target_of(targets: Targets, metric: Metric) -> timedelta:
    return {
        Metric.FIRST_RESPONSE: targets.first_response,
        Metric.NEXT_REPLY: targets.next_reply,
        Metric.UPDATE: targets.update_interval,
        Metric.RESOLUTION: targets.resolution,
    }[metric]


async def schedule(
    work: Work,
    key: str,
    kind: str,
    due: datetime,
    ticket: int | None,
    rearm: bool = False,
    **detail: object,
) -> Checkin:
    """Plan a check-in once: a pending one with this key moves to the new time; one that fired stays as
    it is, so nothing is sent twice. `rearm`: one that was dropped unsent (a clock's warning that fell
    due while the clock was paused) is planned again."""
    existing = None if ticket in work.opened else await work.uow.checkins.get(key)
    if existing is None:
        return await work.uow.checkins.add(
            Checkin(key, kind, due, ticket, {k: str(v) for k, v in detail.items()})
        )
    if rearm and existing.state is CheckinState.DROPPED:
        existing.state, existing.fired_at, existing.outcome = CheckinState.PENDING, None, None
    if existing.state is CheckinState.PENDING and existing.due_at != due:
        existing.due_at = due
    return existing


class Standards:
    """The policy's service standards applied to tickets."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def hours(self, ticket: Ticket) -> BusinessHours:
        return self.policy.hours_for(ticket.queue)

    def targets(self, ticket: Ticket) -> Targets:
        return self.policy.standards.targets(ticket.kind, ticket.priority)

    def due(self, ticket: Ticket, metric: Metric, start: datetime) -> datetime:
        """When a metric would fall due for this ticket if its clock started at `start`."""
        return self.hours(ticket).add(start, target_of(self.targets(ticket), metric))

    # --- hooks the desk calls ---------------------------------------------------------------------

    async def on_opened(self, work: Work, ticket: Ticket) -> None:
        await self._start(work, ticket, Metric.FIRST_RESPONSE, [])
        await self._start(work, ticket, Metric.RESOLUTION, [])

    async def on_staff_answered(self, work: Work, ticket: Ticket) -> None:
        """A person on staff answered in public: first response and next reply are met, and the update
        interval starts again."""
        clocks = await self._clocks(work, ticket)
        for clock in clocks:
            if clock.metric in (Metric.FIRST_RESPONSE, Metric.NEXT_REPLY) and clock.running:
                self._meet(work, ticket, clock)
        await self.on_customer_updated(work, ticket, clocks)

    async def on_customer_updated(
        self,
        work: Work,
        ticket: Ticket,
        clocks: list[SlaClock] | None = None,
        next_in: timedelta | None = None,
    ) -> None:
        """The customer heard from us (a reply, or the bot's progress update): the update clock restarts."""
        clocks = clocks if clocks is not None else await self._clocks(work, ticket)
        for clock in clocks:
            if clock.metric is Metric.UPDATE and clock.state in (ClockState.RUNNING, ClockState.PAUSED):
                self._meet(work, ticket, clock)
        if ticket.status not in (Status.RESOLVED, Status.CLOSED):
            state = ClockState.PAUSED if ticket.status is Status.WAITING_ON_CUSTOMER else ClockState.RUNNING
            await self._start(work, ticket, Metric.UPDATE, clocks, state=state, target=next_in)

    async def on_customer_wrote(self, work: Work, ticket: Ticket) -> None:
        """A customer message after our first response wants a next reply (one clock at a time)."""
        clocks = await self._clocks(work, ticket)
        owed = any(c.metric in (Metric.FIRST_RESPONSE, Metric.NEXT_REPLY) and c.running for c in clocks)
        if not owed:  # (a ticket resolved unanswered and reopened owes a reply too)
            await self._start(work, ticket, Metric.NEXT_REPLY, clocks)

    async def on_status(self, work: Work, ticket: Ticket, old: Status, new: Status) -> None:
        clocks = await self._clocks(work, ticket)
        if new is Status.WAITING_ON_CUSTOMER:
            for clock in clocks:
                if clock.metric in PAUSED_WHILE_WAITING and clock.running:
                    self._pause(work, ticket, clock)
        elif old is Status.WAITING_ON_CUSTOMER and new in (Status.OPEN, Status.ON_HOLD):
            for clock in clocks:
                if clock.metric in PAUSED_WHILE_WAITING and clock.state is ClockState.PAUSED:
                    await self._resume(work, ticket, clock)
        if new is Status.RESOLVED:
            for clock in clocks:
                if clock.metric is Metric.RESOLUTION and clock.state in (
                    ClockState.RUNNING,
                    ClockState.PAUSED,
                ):
                    self._meet(work, ticket, clock)
                elif clock.state in (ClockState.RUNNING, ClockState.PAUSED):
                    clock.state = ClockState.CANCELLED
        elif old is Status.RESOLVED and new is Status.OPEN:
            await self._start(work, ticket, Metric.RESOLUTION, clocks)
            await self._start(work, ticket, Metric.UPDATE, clocks)
        elif new is Status.CLOSED:
            for clock in clocks:
                if clock.state in (ClockState.RUNNING, ClockState.PAUSED):
                    clock.state = ClockState.CANCELLED

    async def on_retargeted(self, work: Work, ticket: Ticket) -> None:
        """The priority or queue changed: running and paused clocks take the new targets and hours."""
        targets = self.targets(ticket)
        for clock in await self._clocks(work, ticket):
            if clock.state in (ClockState.RUNNING, ClockState.PAUSED):
                clock.target = target_of(targets, clock.metric)
                if clock.running:
                    await self._plan(work, ticket, clock)

    # --- clock mechanics --------------------------------------------------------------------------

    async def _clocks(self, work: Work, ticket: Ticket) -> list[SlaClock]:
        assert ticket.number is not None
        return await work.uow.clocks.for_ticket(ticket.number)

    async def _start(
        self,
        work: Work,
        ticket: Ticket,
        metric: Metric,
        clocks: list[SlaClock],
        state: ClockState = ClockState.RUNNING,
        target: timedelta | None = None,
    ) -> SlaClock:
        assert ticket.number is not None
        cycle = 1 + max((c.cycle for c in clocks if c.metric is metric), default=0)
        target = target if target is not None else target_of(self.targets(ticket), metric)
        clock = SlaClock(
            ticket.number,
            metric,
            cycle,
            target,
            started_at=work.now,
            resumed_at=work.now,
            due_at=self.hours(ticket).add(work.now, target),
            state=state,
        )
        await work.uow.clocks.add(clock)
        clocks.append(clock)
        if clock.running:
            await self._plan(work, ticket, clock)
        return clock

    def _meet(self, work: Work, ticket: Ticket, clock: SlaClock) -> None:
        if clock.running and work.now > clock.due_at and clock.breached_at is None:
            clock.breached_at = work.now  # met, but late
        clock.business = business_time(self.hours(ticket), clock, work.now)
        clock.state = ClockState.MET
        clock.met_at = work.now

    def _pause(self, work: Work, ticket: Ticket, clock: SlaClock) -> None:
        clock.consumed += self.hours(ticket).between(clock.resumed_at, work.now)
        clock.state = ClockState.PAUSED

    async def _resume(self, work: Work, ticket: Ticket, clock: SlaClock) -> None:
        clock.state = ClockState.RUNNING
        clock.resumed_at = work.now
        await self._plan(work, ticket, clock)

    async def _plan(self, work: Work, ticket: Ticket, clock: SlaClock) -> None:
        """Work out when the clock falls due and when to warn, and plan both check-ins."""
        hours = self.hours(ticket)
        left = max(clock.target - clock.consumed, timedelta(0))
        clock.due_at = hours.add(clock.resumed_at, left)
        warn_left = clock.target * self.policy.standards.warn_at - clock.consumed
        warn_at = hours.add(clock.resumed_at, warn_left) if warn_left > timedelta(0) else work.now
        key = f"{clock.ticket_number}:{clock.metric}:{clock.cycle}"
        detail = {"metric": clock.metric, "cycle": clock.cycle}
        await schedule(work, f"{key}:warning", WARNING, warn_at, clock.ticket_number, rearm=True, **detail)
        await schedule(work, f"{key}:breach", BREACH, clock.due_at, clock.ticket_number, rearm=True, **detail)

    def warn_time(self, ticket: Ticket, clock: SlaClock, now: datetime) -> datetime:
        warn_left = clock.target * self.policy.standards.warn_at - clock.consumed
        if warn_left <= timedelta(0):
            return now
        return self.hours(ticket).add(clock.resumed_at, warn_left)


def due_times(
    policy: Policy, at: datetime, queue: str, kind: TicketKind, priority: Priority
) -> list[tuple[Metric, datetime]]:
    """When each target would fall due for a ticket of this queue, kind and priority opened at `at`,
    in the queue's timezone (for `relaydesk policy due`)."""
    hours = policy.hours_for(queue)
    targets = policy.standards.targets(kind, priority)
    return [(metric, hours.add(at, target_of(targets, metric)).astimezone(hours.zone)) for metric in Metric]


def summary(policy: Policy, at: datetime) -> str:
    """Every queue's hours and every target, readable (for `relaydesk policy check`)."""
    lines = []
    for queue in policy.queues:
        hours = policy.hours_for(queue.name)
        holidays = sorted(d.isoformat() for d in hours.holidays)
        lead = policy.lead_of(queue.name)
        lines.append(f"Queue {queue.name} ({queue.label}): {hours.describe(at)} [{hours.zone.key}]")
        if holidays:
            lines.append(f"  closed on {', '.join(holidays)}")
        lines.append(
            f"  breaches escalate to {lead}" if lead else "  no lead: breaches go to the agents' channel"
        )
    lines.append(f"Targets in business hours (warning at {policy.standards.warn_at:.0%}):")
    for kind in TicketKind:
        for priority in Priority:
            t = policy.standards.targets(kind, priority)
            lines.append(
                f"  {kind:<8} {priority:<6} first response {_hours(t.first_response)}, next reply "
                f"{_hours(t.next_reply)}, update every {_hours(t.update_interval)}, "
                f"resolution {_hours(t.resolution)}"
            )
    waiting, d = policy.waiting, format_duration
    lines.append(
        f"Waiting on the customer: check in after {d(waiting.checkin_after)}, last reminder after "
        f"{d(waiting.last_reminder_after)}, resolve after {d(waiting.auto_resolve_after)}."
    )
    lines.append(
        f"Resolved tickets close after {d(policy.lifecycle.close_resolved_after)}; promises are reminded "
        f"{d(policy.promises.remind_before)} ahead; the digest goes out at {policy.checkins.digest_at} on "
        f"{', '.join(policy.checkins.digest_days) or 'no days'}."
    )
    return "\n".join(lines)


def _hours(delta: timedelta) -> str:
    """Business time in hours (`40h`, `1h30m`): days would suggest calendar days."""
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes % 60 else f"{minutes // 60}h"
