"""How the bot speaks. Every sentence people read lives here, so the tone stays one voice.

Customers get short, warm, specific text with their name, the ticket number and the next step, and never
an internal word (no queue names, no status codes). Agents get terse, dense lines.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.commands import TicketCommand
from bot.domain import STATUS_WORDS, Agent, ClockState, Customer, Metric, Promise, Status, Ticket
from bot.durations import format_duration
from bot.messages import Person, TicketCard
from bot.text import first_line, shorten


def first_name(customer: Customer) -> str:
    """How customer-facing text addresses them: their chosen form of address, or their first name."""
    return customer.name_to_use


def subject(text: str, limit: int) -> str:
    return first_line(text, limit)


# --- customers ------------------------------------------------------------------------------------


def greeting(customer: Customer, ticket: Ticket, earlier: int, team: str, reply_by: str, hours: str) -> str:
    name = first_name(customer)
    if ticket.previous_number is not None:
        opening = (
            f"Hi {name}, welcome back. I've opened a new ticket, {ticket.ref}, and linked it to "
            f"your earlier one (#{ticket.previous_number}) so the team has the whole story."
        )
    elif earlier:
        opening = f"Hi {name}, good to hear from you again. I've opened ticket {ticket.ref} for you."
    else:
        opening = f"Hi {name}, thanks for getting in touch. I've opened ticket {ticket.ref} for you."
    return (
        f"{opening} Someone from our {team} will reply right here by {reply_by} (our hours are {hours}). "
        "If you think of anything else, just add it here; there's no need to start over."
    )


def welcome(customer: Customer) -> str:
    return (
        f"You're welcome, {first_name(customer)}! If anything else comes up, just write here "
        "and we'll be glad to help."
    )


def claimed(customer: Customer, ticket: Ticket, agent: Agent) -> str:
    return (
        f"Hi {first_name(customer)}, {agent.display_name} is now looking after your request "
        f"{ticket.ref} and will be in touch here."
    )


def agent_reply(agent: Agent, text: str) -> str:
    return f"{agent.display_name}: {text}"


def now_with_agent(customer: Customer, ticket: Ticket, agent: Agent) -> str:
    return (
        f"Hi {first_name(customer)}, {agent.display_name} is now looking after your request "
        f"{ticket.ref}. They have the full conversation, so you won't need to repeat anything."
    )


def now_with_team(customer: Customer, ticket: Ticket, team: str) -> str:
    return (
        f"Hi {first_name(customer)}, I've passed your request {ticket.ref} to our {team}. "
        "They have the full conversation, so you won't need to repeat anything."
    )


def resolved(customer: Customer, ticket: Ticket) -> str:
    return (
        f"Thanks for your patience, {first_name(customer)}. We've marked {ticket.ref} as resolved. "
        "If anything still isn't right, just reply here and we'll pick it straight back up."
    )


def reopened(customer: Customer, ticket: Ticket) -> str:
    return (
        f"Hi {first_name(customer)}, we've reopened your request {ticket.ref} and are looking "
        "into it again. We'll be in touch here."
    )


def customer_help() -> str:
    return (
        "Just write what you need here and someone from our support team will help; add anything "
        "else in the same place, and we'll keep it all together."
    )


def not_a_customer_command(name: str) -> str:
    first = name.split()[0] if name.strip() else "there"
    return (
        f"Sorry {first}, I didn't catch that. Just write what you need here and someone from our "
        "support team will help."
    )


def needs_text(verb: str, usage: str | None = None) -> str:
    return f"That {verb} has no text I can use. Usage: {usage or f'/ticket {verb} #<id> <text>'}"


def status_note(status: Status, reason: str) -> str:
    return f"{'On hold' if status is Status.ON_HOLD else 'Resolved'}: {reason}"


# --- customers: keeping them posted --------------------------------------------------------------


def progress_update(customer: Customer, ticket: Ticket, next_time: str) -> str:
    return (
        f"Hi {first_name(customer)}, a quick update on {ticket.ref}: we're still working on it and haven't "
        f"forgotten you. You'll hear from us again by {next_time} at the latest."
    )


def promise_made(customer: Customer, ticket: Ticket, agent: Agent, what: str, when: str) -> str:
    return (
        f"Hi {first_name(customer)}, {agent.display_name} here: {what}, by {when}. "
        f"I'll keep you posted on {ticket.ref}."
    )


def promise_late_customer(customer: Customer, ticket: Ticket, what: str, next_time: str) -> str:
    return (
        f"Hi {first_name(customer)}, I'm sorry: we said {what}, and that is running late. We're on it, "
        f"and you'll hear from us about {ticket.ref} by {next_time}."
    )


def waiting_checkin(customer: Customer, ticket: Ticket) -> str:
    return (
        f"Hi {first_name(customer)}, just checking in on {ticket.ref}: we're waiting to hear back from you. "
        "Whenever you're ready, reply here and we'll pick it straight up."
    )


def waiting_last_reminder(customer: Customer, ticket: Ticket, resolve_at: str) -> str:
    return (
        f"Hi {first_name(customer)}, we haven't heard back about {ticket.ref}. If we don't hear from you by "
        f"{resolve_at}, we'll mark it resolved; you can always reply here to reopen it."
    )


def auto_resolved(customer: Customer, ticket: Ticket) -> str:
    return (
        f"Hi {first_name(customer)}, as we haven't heard back, we've marked {ticket.ref} as resolved. If you "
        "still need help, just reply here and it reopens with everything kept."
    )


def weekly_report(customer: Customer, ticket: Ticket, week: int, next_time: str) -> str:
    status = {
        Status.ON_HOLD: "waiting on a colleague or partner",
        Status.WAITING_ON_CUSTOMER: "waiting on you",
    }
    where = status.get(ticket.status, "in progress")
    return (
        f"Hi {first_name(customer)}, your weekly update on {ticket.ref} (week {week + 1}): it's {where}, and "
        f"it stays on our list until it's solved. You'll hear from us again by {next_time}."
    )


def survey_ask(customer: Customer, ticket: Ticket) -> str:
    return (
        f"One quick question, {first_name(customer)}: how did we do with {ticket.ref}? Please rate us from "
        "1 (poor) to 5 (excellent); just reply with the number."
    )


def survey_thanks(customer: Customer) -> str:
    return (
        f"Thank you, {first_name(customer)}! If you'd like to tell us more, just reply here; we read "
        "every word."
    )


def survey_low(customer: Customer, ticket: Ticket) -> str:
    return (
        f"I'm sorry we let you down, {first_name(customer)}. Tell us what went wrong and a team lead will "
        f'look at it, or reply "reopen" and we\'ll pick {ticket.ref} straight back up.'
    )


def survey_comment_thanks(customer: Customer) -> str:
    return f"Thank you, {first_name(customer)}. We've passed that on to the team."


def survey_closed(customer_name: str) -> str:
    return (
        f"Thanks, {customer_name}, but that survey has closed. If you need anything, just write here and "
        "we'll help."
    )


def survey_done(customer_name: str) -> str:
    return f"Thanks, {customer_name}, we already have your rating."


def stats_title(period: timedelta, queue: str | None, agent: str | None) -> str:
    days = period.days
    span = f"last {days} days" if days > 1 else ("last 24 hours" if days == 1 else f"last {period}")
    scope = " · ".join(x for x in (queue, agent) if x)
    return f"{span.capitalize()}{f' · {scope}' if scope else ''}"


# --- agents: upset customers ------------------------------------------------------------------------


def upset_flag(ticket: Ticket, customer: Customer, score: float, phrases: str, changes: list[str]) -> str:
    said = f"; said: {phrases}" if phrases else ""
    done = f" {'; '.join(changes).capitalize()}." if changes else ""
    return f"Upset customer: {customer.display_name} on {ticket.ref} (mood {score:+.2f}{said}).{done}"


def upset_heading(ticket: Ticket) -> str:
    return f"{ticket.ref} needs a specialist: the customer is upset."


def tone_guidance(ticket: Ticket, guidance: str) -> str:
    return f"{ticket.ref}: {guidance}"


# --- agents: satisfaction ----------------------------------------------------------------------------


def survey_rated(ticket: Ticket, customer: Customer, rating: int, changed: bool) -> str:
    verb = "changed their rating of" if changed else "rated"
    return f"{customer.display_name} {verb} {ticket.ref}: {rating}/5."


def survey_low_alert(ticket: Ticket, customer: Customer, rating: int) -> str:
    return (
        f"Low rating: {customer.display_name} rated {ticket.ref} {rating}/5. They were offered a reopen; "
        f"/ticket show {ticket.ref} has the story."
    )


def survey_comment_header(ticket: Ticket, customer: Customer, rating: int | None) -> str:
    rated = f" (rated {rating}/5)" if rating else ""
    return f"{ticket.ref} · {customer.display_name}'s comment{rated}: "


# --- agents: service standards ----------------------------------------------------------------------

METRIC_WORDS = {
    Metric.FIRST_RESPONSE: "first response",
    Metric.NEXT_REPLY: "next reply",
    Metric.UPDATE: "update to the customer",
    Metric.RESOLUTION: "resolution",
}


def sla_warning(ticket: Ticket, metric: Metric, due: str, assignee: Agent | None) -> str:
    who = "" if assignee else " (unclaimed)"
    return f"Heads-up: {ticket.ref}{who} needs its {METRIC_WORDS[metric]} by {due}."


def update_nudge(ticket: Ticket, customer: Customer, due: str) -> str:
    return (
        f"Nudge: {customer.display_name} is due an update on {ticket.ref} by {due}. If you have nothing new, "
        "a short note that you're on it helps; otherwise I'll send a courtesy update then."
    )


def sla_breach(ticket: Ticket, metric: Metric, target: timedelta, lead: str | None) -> str:
    who = f"; escalated to {lead}" if lead else "; this queue's team has no lead to escalate to"
    span = _span(target)
    return f"Breach: {ticket.ref} missed its {METRIC_WORDS[metric]} target ({span} of business time){who}."


def promise_recorded(ticket: Ticket, number: int, what: str, due: str) -> str:
    kept = f"/ticket kept {ticket.ref} {number}"
    return f"{ticket.ref} promise {number}: {what}, by {due}. Mark it kept with {kept}"


def promise_reminder(ticket: Ticket, number: int, what: str, due: str) -> str:
    kept = f"/ticket kept {ticket.ref} {number}"
    return f"Reminder: {ticket.ref} promise {number} ({what}) is due by {due}. {kept} when done."


def promise_late_staff(ticket: Ticket, number: int, what: str, lead: str | None) -> str:
    told = f"; {lead} (lead) is told" if lead else ""
    return (
        f"Late: {ticket.ref} promise {number} ({what}) is overdue. The customer got an apology and a new "
        f"time{told}."
    )


def promise_kept(ticket: Ticket, number: int, what: str, late: bool) -> str:
    return f"{ticket.ref} promise {number} ({what}) kept{', late' if late else ''}."


def no_open_promise(ticket: Ticket, number: int | None) -> str:
    if number is None:
        return f"{ticket.ref} has no open promise."
    return f"{ticket.ref} has no open promise {number}. /ticket show {ticket.ref} lists them."


def which_promise(ticket: Ticket, numbers: str) -> str:
    return f"{ticket.ref} has several open promises ({numbers}). Which one? /ticket kept {ticket.ref} <n>"


def clock_line(metric: Metric, state: ClockState, due: str, overdue: bool) -> str:
    if state is ClockState.PAUSED:
        return f"{METRIC_WORDS[metric]}: paused while we wait on the customer"
    return f"{METRIC_WORDS[metric]} {'was due' if overdue else 'due'} {due}{' (breached)' if overdue else ''}"


def bad_when(problem: str) -> str:
    return f"{problem} Usage: /ticket promise [#id] <when> <what>"


def auto_resolved_update(ticket: Ticket) -> str:
    return f"{ticket.ref} resolved automatically: the customer didn't answer in time."


def digest(
    queue: str, local_now: datetime, unclaimed: list[Ticket], breaching: list[int], promises: list[Promise]
) -> str:
    lines = [f"Daily digest for {queue}, {local_now.strftime('%A %d %B')}:"]
    if unclaimed:
        shown = ", ".join(f"{t.ref} ({t.priority})" for t in unclaimed[:15])
        more = f" and {len(unclaimed) - 15} more" if len(unclaimed) > 15 else ""
        lines.append(f"  Unclaimed: {len(unclaimed)}: {shown}{more}")
    else:
        lines.append("  Unclaimed: none.")
    lines.append(
        f"  Due or breaching today: {', '.join(f'#{n}' for n in breaching[:20])}"
        if breaching
        else "  Due or breaching today: none."
    )
    if promises:
        lines.append(
            "  Promises due today: "
            + "; ".join(f"#{p.ticket_number}.{p.number} {shorten(p.what, 50)}" for p in promises[:15])
        )
    else:
        lines.append("  Promises due today: none.")
    return "\n".join(lines)


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes // 60}h{minutes % 60:02d}" if minutes >= 60 else f"{minutes}m"


# --- agents: refusals -----------------------------------------------------------------------------


def which_ticket(command: TicketCommand) -> str:
    verb = type(command).__name__.lower()
    verb = {"setpriority": "priority"}.get(verb, verb)
    return (
        f"Which ticket? Add its number with a #, e.g. /ticket {verb} #12 (inside a ticket's thread "
        "you can leave it out)."
    )


def no_such_ticket(number: int) -> str:
    return f"I can't find ticket #{number}. /ticket queue lists the unclaimed ones, /ticket mine yours."


def already_yours(ticket: Ticket) -> str:
    return f"{ticket.ref} is already yours."


def claimed_by_other(ticket: Ticket, holder: Agent | None) -> str:
    who = holder.display_name if holder else "someone else"
    return f"{ticket.ref} is already with {who}. To take it over, ask them or use /ticket transfer."


def cannot_release(ticket: Ticket, holder: Agent | None) -> str:
    if holder is None:
        return f"{ticket.ref} isn't claimed by anyone, so there's nothing to release."
    return f"{ticket.ref} is with {holder.display_name}; only they can release it (or transfer it)."


def closed(ticket: Ticket) -> str:
    return (
        f"{ticket.ref} is closed and stays closed; if the customer writes again, a new ticket "
        "linked to it opens automatically."
    )


def reopen_first(ticket: Ticket) -> str:
    return f"{ticket.ref} is resolved. Reopen it first with /ticket reopen {ticket.ref}."


def not_resolved(ticket: Ticket) -> str:
    return f"{ticket.ref} is {STATUS_WORDS[ticket.status]}, not resolved, so there's nothing to reopen."


def already_status(ticket: Ticket) -> str:
    return f"{ticket.ref} is already {STATUS_WORDS[ticket.status]}."


def cannot_move(ticket: Ticket, new: Status) -> str:
    return f"{ticket.ref} is {STATUS_WORDS[ticket.status]}; it can't go to {STATUS_WORDS[new]} from there."


def already_priority(ticket: Ticket) -> str:
    return f"{ticket.ref} is already {ticket.priority} priority."


def unknown_agent(key: str) -> str:
    return (
        f"I couldn't find an agent called @{shorten(key, 40)}. Check the name, or transfer to a "
        "queue instead."
    )


def already_with(ticket: Ticket, agent: Agent) -> str:
    return f"{ticket.ref} is already with {agent.display_name}."


def unknown_queue(name: str, names: list[str]) -> str:
    return f"There's no queue called '{shorten(name, 40)}'. Queues: {', '.join(names)}."


def already_in_queue(ticket: Ticket) -> str:
    return f"{ticket.ref} is already waiting in {ticket.queue}."


# --- agents: snippets -----------------------------------------------------------------------------

_ADD_SNIPPET = "/ticket snippet add <name> <text>"


def unknown_snippet(name: str, names: list[str]) -> str:
    if not names:
        return (
            f"There's no snippet called '{shorten(name, 40)}', and none are saved yet. "
            f"Save one with {_ADD_SNIPPET}."
        )
    return f"There's no snippet called '{shorten(name, 40)}'. Snippets: {', '.join(names)}."


def snippet_list(snippets: list[tuple[str, str]]) -> str:
    if not snippets:
        return f"No snippets yet. Save one with {_ADD_SNIPPET}."
    lines = [f"Snippets ({len(snippets)}); send one with /ticket snippet #<id> <name>:"]
    lines += [f"  {name}: {shorten(' '.join(text.split()), 70)}" for name, text in snippets]
    lines.append(f"Save a new one with {_ADD_SNIPPET}.")
    return "\n".join(lines)


def bad_snippet_name(name: str, problem: str) -> str:
    return f"'{shorten(name, 40)}' can't be a snippet's name: {problem}. Usage: {_ADD_SNIPPET}"


def bad_snippet_text(name: str, problem: str) -> str:
    return f"I can't save the snippet '{name}': {problem}. Usage: {_ADD_SNIPPET}"


def snippet_in_policy(name: str) -> str:
    return (
        f"There's already a snippet called '{name}' in the policy file. Please pick another name "
        "(/ticket snippet lists them all)."
    )


def snippet_taken(name: str, created_by: str) -> str:
    return (
        f"{created_by} already saved a snippet called '{name}'. Please pick another name "
        "(/ticket snippet lists them all)."
    )


def snippet_saved(name: str) -> str:
    return f"Saved the snippet '{name}'. Send it with /ticket snippet #<id> {name}"


def snippet_unusable(name: str, problem: str) -> str:
    return f"The snippet '{name}' can't be sent as it is: {problem}."


# --- agents: customers and profiles ---------------------------------------------------------------


def unknown_customer(platform: str, key: str) -> str:
    return (
        f"I don't know a customer {shorten(key, 40)} on {platform}. Name them by a ticket of theirs "
        "(#12), a mention, or as platform:user_id."
    )


def ambiguous_customer(key: str, count: int) -> str:
    return (
        f"{count} customers are called {shorten(key, 40)}. Name the one you mean by a ticket of theirs (#12)."
    )


def already_one_customer(customer: Customer) -> str:
    return f"Those are already the same customer, {customer.display_name}."


def linked(keep: Customer, other_name: str, tickets_moved: int) -> str:
    plural = "s" if tickets_moved != 1 else ""
    return (
        f"Linked: {other_name} and {keep.display_name} are one customer now. {tickets_moved} ticket{plural}, "
        "their accounts, notes and incentives moved to one profile; replies still go where each "
        "ticket started."
    )


def too_long(what: str, limit: int) -> str:
    return f"{what} can be at most {limit:,} characters; please shorten it."


def profile_note_header(ticket: Ticket, customer: Customer, agent: Agent) -> str:
    return (
        f"{ticket.ref} · profile note on {customer.display_name} from {agent.display_name} "
        "(shown on their future tickets): "
    )


def bad_profile_value(field: str, problem: str) -> str:
    return f"I can't set {field}: {problem}."


def profile_set(customer: Customer, field: str, shown: str, same_email: list[Customer]) -> str:
    text = f"{customer.display_name}'s {field}: {shown}."
    if same_email:
        others = ", ".join(f"{c.display_name} (customer {c.id})" for c in same_email[:5])
        text += (
            f" {others} has this email too; if they are the same person, link them with "
            "/ticket link <one> <other>."
        )
    return text


def incentive_recorded(ticket: Ticket, customer: Customer, agent: Agent, what: str) -> str:
    return f"{ticket.ref} · {agent.display_name} gave {customer.display_name}: {what} (on their profile now)."


def transcript_ready(ticket: Ticket, entries: int, events: int) -> str:
    return (
        f"Transcript of {ticket.ref}: {entries} messages and {events} events, internal notes included "
        "(staff only). Markdown and JSON attached."
    )


# --- agents: updates ------------------------------------------------------------------------------


def card(ticket: Ticket, customer: Customer, earlier: int) -> TicketCard:
    assert ticket.number is not None
    return TicketCard(
        number=ticket.number,
        customer_name=customer.display_name,
        subject=ticket.subject,
        priority=str(ticket.priority),
        queue=ticket.queue,
        status=STATUS_WORDS[ticket.status],
        returning=earlier > 0,
    )


def card_text(ticket: Ticket, customer: Customer, earlier: int, upset: bool = False) -> str:
    what = "internal request" if ticket.kind == "internal" else "ticket"
    lines = [
        f"New {what} {ticket.ref} · {customer.display_name} ({_history(earlier)}) · "
        f"{ticket.priority} priority · {ticket.queue}",
        f"Subject: {ticket.subject}",
    ]
    if upset:
        lines.append("Flagged: the customer is upset. Acknowledge it first; see the thread for why.")
    if ticket.previous_number is not None:
        lines.append(f"Follows up closed ticket #{ticket.previous_number}.")
    lines.append(f"Claim it with /ticket claim {ticket.ref}")
    return "\n".join(lines)


def relay_header(ticket: Ticket, customer: Customer, reopened_from: Status | None) -> str:
    note = f" (back to open; was {STATUS_WORDS[reopened_from]})" if reopened_from else ""
    return f"{ticket.ref} · {customer.display_name}{note}: "


def edited_header(ticket: Ticket, author: str) -> str:
    return f"{ticket.ref} · {author} edited a message (the original is kept on the timeline): "


def deleted_note(ticket: Ticket, author: str) -> str:
    return f"{ticket.ref} · {author} deleted a message; what they wrote stays on the ticket's record."


def note_header(ticket: Ticket, author: Person) -> str:
    return f"{ticket.ref} · internal note from {author.display_name}: "


def claimed_update(ticket: Ticket, agent: Agent) -> str:
    return f"{ticket.ref} claimed by {agent.display_name}."


def released(ticket: Ticket, agent: Agent) -> str:
    return f"{ticket.ref} released by {agent.display_name}; it's back in {ticket.queue}, unclaimed."


REASON_CHARS = 200


def transferred_update(ticket: Ticket, agent: Agent, target: str, reason: str) -> str:
    why = f": {shorten(reason, REASON_CHARS)}" if reason else ""
    return f"{ticket.ref} transferred to {target} by {agent.display_name}{why}"


def handed_to_you(ticket: Ticket, agent: Agent, reason: str) -> str:
    why = f" Reason: {shorten(reason, REASON_CHARS)}" if reason else ""
    return f"{agent.display_name} handed {ticket.ref} over to you.{why}"


def handed_to_queue(ticket: Ticket, agent: Agent, reason: str) -> str:
    why = f" Reason: {shorten(reason, REASON_CHARS)}" if reason else ""
    return f"{ticket.ref} moved to {ticket.queue} by {agent.display_name}, unclaimed.{why}"


def status_update(ticket: Ticket, agent: Agent) -> str:
    return f"{ticket.ref} is now {STATUS_WORDS[ticket.status]} ({agent.display_name})"


def priority_update(ticket: Ticket, agent: Agent) -> str:
    return f"{ticket.ref} is now {ticket.priority} priority ({agent.display_name})."


def queue_list(
    tickets: list[Ticket], names: dict[int, str], queue: str | None, now: datetime, limit: int
) -> str:
    where = f" in {queue}" if queue else ""
    if not tickets:
        return f"No unclaimed tickets{where}. Nice work."
    lines = [f"Unclaimed tickets{where} ({_count(tickets, limit)}):"]
    lines += [_list_line(t, names, now) for t in tickets]
    return "\n".join(lines)


def _count(tickets: list[Ticket], limit: int) -> str:
    """The list's size, saying so when the list stops at its limit and more may wait."""
    return f"the first {limit}" if len(tickets) >= limit else str(len(tickets))


def mine_list(tickets: list[Ticket], names: dict[int, str], now: datetime, limit: int) -> str:
    if not tickets:
        return "You have no tickets in progress."
    lines = [f"Your tickets ({_count(tickets, limit)}):"]
    lines += [_list_line(t, names, now) for t in tickets]
    return "\n".join(lines)


def _history(earlier: int) -> str:
    if earlier <= 0:
        return "new customer"
    plural = "s" if earlier != 1 else ""
    return f"returning, {earlier} earlier ticket{plural}"


def _list_line(ticket: Ticket, names: dict[int, str], now: datetime) -> str:
    who = names.get(ticket.customer_id, "?")
    return (
        f"  {ticket.ref} · {ticket.priority} · {STATUS_WORDS[ticket.status]} · {ticket.queue} · "
        f"{who}: {shorten(ticket.subject, 60)} · {age(now - ticket.created_at)} old"
    )


def age(delta: timedelta) -> str:
    minutes = max(int(delta.total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 48 * 60:
        return f"{minutes // 60}h"
    return f"{minutes // 1440}d"


def _when(moment: datetime) -> str:
    return moment.strftime("%a %d %b %H:%M UTC")


# --- abuse: rate limit and blocks -------------------------------------------------------------------


def you_are_blocked(customer: Customer, until: str | None) -> str:
    when = f"until {until}" if until else "until further notice"
    return (
        f"Hi {first_name(customer)}, our team has paused messages from you {when}, so what you send "
        "before then won't reach us. After that, write here as usual and we'll pick it up."
    )


def slow_down(customer: Customer) -> str:
    return (
        f"Thanks, {first_name(customer)}. We've got every message you sent, and an agent will read them "
        "all together, so there's no need to send more for now. We'll answer you here."
    )


def too_many_requests(customer: Customer) -> str:
    return (
        f"Sorry {first_name(customer)}, that's a lot of requests in a short time, so I didn't open this "
        "one. Please wait a minute and raise it again; the ones you already sent are with the team."
    )


def flooding(customer: Customer, limit: int, window: timedelta) -> str:
    return (
        f"{customer.display_name} sent more than {limit} messages within {format_duration(window)}. "
        "They are all recorded on the ticket, but I'm not relaying more of them for now. If this is "
        "abuse, /ticket block them."
    )


def block_needs_lead(limit: timedelta) -> str:
    return (
        f"Blocks longer than {format_duration(limit)}, or forever, need a team lead. Block them for up to "
        f"{format_duration(limit)} now and ask your lead to extend it."
    )


def blocked(customer: Customer, until: datetime | None) -> str:
    when = f"until {_when(until)}" if until else "until someone unblocks them"
    return (
        f"Blocked {customer.display_name} {when}: their messages are not taken, and they are told so "
        f"once. /ticket unblock lifts it."
    )


def not_blocked(customer: Customer) -> str:
    return f"{customer.display_name} isn't blocked."


def unblocked(customer: Customer) -> str:
    return f"Unblocked {customer.display_name}: their messages are taken again."


def undeliverable(ticket: Ticket, text: str, reason: str, tries: int) -> str:
    plural = "try" if tries == 1 else "tries"
    return (
        f"Couldn't deliver our message to the customer of #{ticket.number} ({reason}, after {tries} "
        f"{plural}). It said: “{shorten(text, 200)}”. Please reach them another way."
    )
