"""Satisfaction, measured: a short survey after each resolution, a rating, an optional comment.

One survey per resolution (sampled and rate-limited per customer as the policy says); it expires after a
while and is withdrawn if the ticket reopens. A rating at or below the policy's threshold alerts the
queue's lead and offers to reopen. Ratings come as buttons (Slack, Discord) or as a number in a reply.
"""

from __future__ import annotations

import re
import zlib

from bot import voice
from bot.domain import Agent, EntryKind, Status, Survey, SurveyState, Ticket
from bot.messages import CustomerMessage, Person, SurveyPrompt, staff
from bot.policy import Policy
from bot.standards import schedule
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

SURVEY_EXPIRE = "survey_expire"
SCALE = 5
_NUMBER = re.compile(r"^\s*([1-5])\s*(?:/\s*5|out of 5|stars?)?\s*[.!]*\s*$", re.IGNORECASE)
_STARS = re.compile(r"^\s*([★⭐]\ufe0f?\s*){1,5}$")
_REOPEN = re.compile(r"\bre-?open\b", re.IGNORECASE)
REOPEN_WORDS_AT_MOST = 6
"""A short message asking to reopen ("Please reopen.", "reopen it please") reopens; a longer one that
happens to use the word is a comment."""
BOT = "Relaydesk"


def rating_in(text: str) -> int | None:
    """A rating typed as a reply: `4`, `4/5`, `4 stars`, `★★★★`; None for anything else."""
    match = _NUMBER.match(text)
    if match:
        return int(match.group(1))
    if _STARS.match(text):
        return sum(text.count(star) for star in "★⭐")
    return None


_NEGATION = re.compile(r"\b(no|not|don'?t|dont|never|without|no need)\b", re.IGNORECASE)


def asks_to_reopen(text: str) -> bool:
    """A short request to reopen ("Please reopen."), not a mention of it ("no need to reopen")."""
    short = len(text.split()) <= REOPEN_WORDS_AT_MOST
    return short and bool(_REOPEN.search(text)) and not _NEGATION.search(text)


class Satisfaction:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    async def offer(self, work: Work, ticket: Ticket) -> None:
        """Ask for a rating after a resolution, unless sampling or the customer's cooldown says no."""
        settings = self.policy.satisfaction
        assert ticket.number is not None
        if not settings.enabled:
            return
        surveys = await work.uow.surveys.for_ticket(ticket.number)
        cycle = 1 + max((s.cycle for s in surveys), default=0)
        # Each resolution is drawn on its own (the ticket's nth), and deterministically, so a unit of work
        # that runs again decides the same.
        events = await work.uow.timeline.for_ticket(ticket.number)
        nth = sum(1 for e in events if e.action == "status" and e.detail.get("new") == Status.RESOLVED)
        if zlib.crc32(f"{ticket.number}:{nth}".encode()) % 1000 >= settings.sample_rate * 1000:
            return
        latest = await work.uow.surveys.latest_for_customer(ticket.customer_id)
        if latest is not None and work.now - latest.sent_at < settings.cooldown:
            return
        expires = work.now + settings.expires_after
        await work.uow.surveys.add(Survey(ticket.number, ticket.customer_id, cycle, work.now, expires))
        await schedule(
            work, f"{ticket.number}:survey:{cycle}:expire", SURVEY_EXPIRE, expires, ticket.number, cycle=cycle
        )
        customer = await addressed_customer(work, ticket)
        text = voice.survey_ask(customer, ticket)
        await record(work, ticket, EntryKind.BOT, Person(ticket.platform, "relaydesk", BOT), text, None)
        message = to_customer(ticket, customer, text)
        work.say(CustomerMessage(message.audience, message.text, SurveyPrompt(ticket.number, SCALE)))

    async def withdraw(self, work: Work, ticket: Ticket) -> None:
        """The ticket reopened: an unanswered survey about its resolution no longer applies."""
        assert ticket.number is not None
        for survey in await work.uow.surveys.for_ticket(ticket.number):
            if survey.state is SurveyState.OPEN:
                survey.state = SurveyState.WITHDRAWN

    async def take_reply(
        self,
        work: Work,
        ticket: Ticket,
        author: Person,
        author_id: int | None,
        text: str,
        message_id: str | None,
        mood: float | None = None,
    ) -> bool:
        """A customer's message answers the survey (a rating, or the comment after one): take it and
        return True; anything else (including "reopen") is left to the usual intake. Only the ticket's
        own customer answers its survey, whoever else writes in its thread."""
        assert ticket.number is not None
        if author_id != ticket.customer_id or ticket.status is not Status.RESOLVED:
            return False  # a survey is answered only while its ticket stays resolved
        surveys = await work.uow.surveys.for_ticket(ticket.number)
        survey = surveys[-1] if surveys else None
        if survey is None or work.now >= survey.expires_at:
            return False
        rating = rating_in(text)
        if survey.state is SurveyState.OPEN and ticket.status is Status.RESOLVED and rating is not None:
            await record(work, ticket, EntryKind.CUSTOMER, author, text, message_id, mood)
            await self._rated(work, ticket, survey, rating)
            return True
        # Only while the ticket stays resolved: once it reopens, their words are about the problem again.
        if survey.awaits_comment and ticket.status is Status.RESOLVED and not asks_to_reopen(text):
            await record(work, ticket, EntryKind.CUSTOMER, author, text, message_id, mood)
            survey.comment, survey.commented_at = text.strip(), work.now
            await log(work, ticket, "survey_comment", author.display_name)
            customer = await addressed_customer(work, ticket)
            work.say(to_customer(ticket, customer, voice.survey_comment_thanks(customer)))
            header = voice.survey_comment_header(ticket, customer, survey.rating)
            work.say(staff(agents_about(ticket), header, text.strip()))
            lead = await self._low_rating_lead(work, ticket, survey.rating)
            if lead is not None:  # they were told a team lead would look at it
                work.say(staff(agent_about(lead, ticket), header, text.strip()))
            return True
        return False

    async def rate(self, work: Work, ticket: Ticket, rating: int) -> str | None:
        """A rating from a button. Returns why it was not taken (for a polite answer), or None."""
        assert ticket.number is not None
        surveys = await work.uow.surveys.for_ticket(ticket.number)
        survey = surveys[-1] if surveys else None
        if survey is None or survey.state in (SurveyState.EXPIRED, SurveyState.WITHDRAWN):
            return "closed"
        if work.now >= survey.expires_at or ticket.status is not Status.RESOLVED:
            return "closed"  # its time is up, or the ticket reopened: the survey no longer applies
        if survey.state is SurveyState.RATED and (not survey.awaits_comment or survey.rating == rating):
            return "done"  # answered already, or the same button pressed again
        await self._rated(work, ticket, survey, rating)
        return None

    async def expire(self, work: Work, number: int, cycle: int) -> str | None:
        """The survey's time is up: an unanswered one expires quietly."""
        for survey in await work.uow.surveys.for_ticket(number):
            if survey.cycle == cycle and survey.state is SurveyState.OPEN:
                survey.state = SurveyState.EXPIRED
                return "expired unanswered"
        return None

    async def _low_rating_lead(self, work: Work, ticket: Ticket, rating: int | None) -> Agent | None:
        """The queue's lead, when a rating is low enough to go to them."""
        if rating is None or rating > self.policy.satisfaction.alert_at_or_below:
            return None
        return await lead_of(work, self.policy, ticket)

    async def _rated(self, work: Work, ticket: Ticket, survey: Survey, rating: int) -> None:
        first = survey.state is SurveyState.OPEN
        survey.state, survey.rating, survey.rated_at = SurveyState.RATED, rating, work.now
        await log(work, ticket, "rated", BOT, rating=rating, cycle=survey.cycle)
        customer = await addressed_customer(work, ticket)
        low = rating <= self.policy.satisfaction.alert_at_or_below
        text = voice.survey_low(customer, ticket) if low else voice.survey_thanks(customer)
        work.say(to_customer(ticket, customer, text))
        update = voice.survey_rated(ticket, customer, rating, changed=not first)
        work.say(staff(agents_about(ticket), update))
        if low:
            lead = await self._low_rating_lead(work, ticket, rating)
            if lead is not None:
                alert = voice.survey_low_alert(ticket, customer, rating)
                work.say(staff(agent_about(lead, ticket), alert))
