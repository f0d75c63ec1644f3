"""The service policy: queues, teams, priorities and intake rules, read from a TOML file.

A sensible default ships with the package; operators point `RELAYDESK_POLICY` at their own file.
Everything is validated at start, and errors name the key that is wrong.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Mapping
from datetime import date, timedelta
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.domain import Priority, TicketKind
from bot.durations import parse_duration
from bot.facts import DEFAULT_PATTERNS, FactFinder
from bot.hours import DAY_NAMES, BusinessHours, HoursError

Duration = Annotated[timedelta, BeforeValidator(lambda v: parse_duration(v) if isinstance(v, str) else v)]
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
NAME_LENGTH = 40
Name = Annotated[str, Field(min_length=1, max_length=NAME_LENGTH, pattern=NAME_PATTERN)]

SNIPPET_ADD = "add"
"""`/ticket snippet add ...` saves a snippet, so no snippet can be called this."""
SNIPPET_VARIABLES = ("customer_name", "agent_name", "ticket")
"""What a snippet's text may contain in braces: the customer's first name, the sending agent's name and
the ticket's number as customers see it (#12). `{{` and `}}` stand for a brace itself."""


def snippet_name_problem(name: str) -> str | None:
    """Why a snippet cannot have this name (names are like queue names), or None."""
    if name == SNIPPET_ADD:
        return f"'{SNIPPET_ADD}' is kept for saving snippets"
    if len(name) > NAME_LENGTH or not re.fullmatch(NAME_PATTERN, name):
        return (
            f"use up to {NAME_LENGTH} lower-case letters, digits, '-' and '_', starting with a letter "
            "or digit"
        )
    return None


def snippet_text_problem(text: str) -> str | None:
    """Why a snippet's text cannot be sent (empty, or a {variable} we cannot fill), or None."""
    if not text.strip():
        return "the text is empty"
    known = ", ".join("{" + v + "}" for v in SNIPPET_VARIABLES)
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        return f"a brace has no partner (the variables are {known}; write {{{{ or }}}} for a brace itself)"
    for _, name, spec, conv in parsed:
        if name is not None and (name not in SNIPPET_VARIABLES or spec or conv):
            written = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            return f"{written} is not a variable I can fill (the variables are {known})"
    return None


def fill_snippet(text: str, values: Mapping[str, str]) -> str:
    """A snippet's text with its variables filled; the text must have passed `snippet_text_problem`."""
    return text.format_map({name: values[name] for name in SNIPPET_VARIABLES})


def _valid_snippet_name(name: str) -> str:
    problem = snippet_name_problem(name)
    if problem:
        raise ValueError(f"not a snippet name I can use: {problem}")
    return name


def _valid_snippet_text(text: str) -> str:
    problem = snippet_text_problem(text)
    if problem:
        raise ValueError(problem)
    return text.strip()


SnippetName = Annotated[str, AfterValidator(_valid_snippet_name)]
SnippetText = Annotated[str, AfterValidator(_valid_snippet_text)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Queue(_Strict):
    name: Name
    label: str = Field(min_length=1, description="How customers hear of this queue.")
    hours: str | None = Field(default=None, description="Its business hours (a name under [hours]).")


DayName = Annotated[str, AfterValidator(lambda d: _day_name(d))]


def _day_name(day: str) -> str:
    if day.lower() not in DAY_NAMES:
        raise ValueError(f"'{day}' is not a day; use {', '.join(DAY_NAMES)}")
    return day.lower()


class Hours(_Strict):
    """Opening hours: `days` share `blocks`, `week` gives a day its own blocks, holidays are closed."""

    timezone: str = "UTC"
    days: list[DayName] = Field(default_factory=list)
    blocks: list[str] = Field(default_factory=list)
    week: dict[DayName, list[str]] = Field(default_factory=dict)
    holidays: list[date] = Field(default_factory=list)
    always: bool = False

    @model_validator(mode="after")
    def _valid(self) -> Self:
        try:
            self.business_hours("check")
        except HoursError as error:
            raise ValueError(str(error)) from None
        except (KeyError, ValueError):
            raise ValueError(
                f"timezone: '{self.timezone}' is not an IANA timezone like Europe/Berlin"
            ) from None
        return self

    def business_hours(self, name: str) -> BusinessHours:
        week = {day: list(self.blocks) for day in self.days} | dict(self.week)
        if self.days and not self.blocks:
            raise HoursError('days are listed without blocks; add blocks = ["09:00-17:00"]')
        return BusinessHours.build(name, self.timezone, week, self.holidays, self.always)


class Targets(_Strict):
    """Service targets for one kind and priority, in business time of the ticket's queue."""

    first_response: Duration
    next_reply: Duration
    update_interval: Duration
    resolution: Duration

    @model_validator(mode="after")
    def _positive(self) -> Self:
        for name in ("first_response", "next_reply", "update_interval", "resolution"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name}: must be longer than zero")
        return self


def _targets(first: str, next_reply: str, update: str, resolution: str) -> Targets:
    return Targets.model_validate(
        {
            "first_response": first,
            "next_reply": next_reply,
            "update_interval": update,
            "resolution": resolution,
        }
    )


def _default_targets() -> dict[Priority, Targets]:
    return {
        Priority.URGENT: _targets("30m", "1h", "2h", "8h"),
        Priority.HIGH: _targets("1h", "2h", "4h", "16h"),
        Priority.NORMAL: _targets("4h", "8h", "8h", "40h"),
        Priority.LOW: _targets("8h", "16h", "16h", "80h"),
    }


class Standards(_Strict):
    """Targets per kind of ticket and priority; a warning goes out at `warn_at` of each target."""

    warn_at: float = Field(default=0.8, gt=0, lt=1)
    external: dict[Priority, Targets] = Field(default_factory=_default_targets)
    internal: dict[Priority, Targets] = Field(default_factory=_default_targets)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        for kind in ("external", "internal"):
            missing = [str(p) for p in Priority if p not in getattr(self, kind)]
            if missing:
                raise ValueError(f"{kind}: no targets for priority {', '.join(missing)}")
        return self

    def targets(self, kind: TicketKind, priority: Priority) -> Targets:
        table = self.internal if kind is TicketKind.INTERNAL else self.external
        return table[priority]


class Waiting(_Strict):
    """A ticket waiting on the customer: a check-in, a last reminder, then it resolves itself."""

    checkin_after: Duration = timedelta(days=1)
    last_reminder_after: Duration = timedelta(days=3)
    auto_resolve_after: Duration = timedelta(days=5)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.checkin_after < self.last_reminder_after < self.auto_resolve_after:
            raise ValueError("checkin_after < last_reminder_after < auto_resolve_after must hold")
        return self


class Promises(_Strict):
    """Promises agents make: a reminder this long before one is due; when one runs late, the customer
    is told when they will hear next (`late_update_in` of business time later)."""

    remind_before: Duration = timedelta(minutes=30)
    late_update_in: Duration = timedelta(hours=2)


class Checkins(_Strict):
    """Scheduled check-ins: a weekly report on long-running tickets, and the agents' daily digest."""

    weekly_report_after: Duration = timedelta(days=7)
    digest_at: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    digest_days: list[DayName] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])


class Team(_Strict):
    name: Name
    queues: list[str] = Field(default_factory=list)
    lead: str | None = None


class Priorities(_Strict):
    external_default: Priority = Priority.NORMAL
    internal_default: Priority = Priority.NORMAL


class Intake(_Strict):
    thanks_phrases: list[str] = Field(default_factory=list)
    courtesy_phrases: list[str] = Field(default_factory=list)
    courtesy_window: Duration = timedelta(days=3)
    subject_length: int = Field(default=80, ge=20, le=200)

    @field_validator("thanks_phrases", "courtesy_phrases")
    @classmethod
    def _normalise(cls, phrases: list[str]) -> list[str]:
        return [normalise_phrase(p) for p in phrases if normalise_phrase(p)]


class Requests(_Strict):
    """Internal requests: the categories colleagues pick from in a request form."""

    categories: list[str] = Field(
        default_factory=lambda: ["Access and accounts", "Hardware", "Software", "Purchasing", "Other"],
        min_length=1,
    )


class Facts(_Strict):
    """What the handoff packet picks out of conversations: named patterns and product names."""

    patterns: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PATTERNS))
    products: list[str] = Field(default_factory=list)

    @field_validator("patterns")
    @classmethod
    def _compile(cls, patterns: dict[str, str]) -> dict[str, str]:
        for kind, pattern in patterns.items():
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"{kind}: not a valid regular expression ({error})") from None
        return patterns

    def finder(self) -> FactFinder:
        return FactFinder(self.patterns, self.products)


class Handoff(_Strict):
    """The handoff packet: how much text it may hold (about 250 words read in under a minute); each
    platform's own message limit caps it further."""

    packet_chars: int = Field(default=1800, ge=600, le=6000)


class Satisfaction(_Strict):
    """The survey after a resolution: how long it stays open, how many resolutions get one (a share,
    and at most one per customer per cooldown), and which ratings alert the lead."""

    enabled: bool = True
    expires_after: Duration = timedelta(days=3)
    sample_rate: float = Field(default=1.0, ge=0, le=1)
    cooldown: Duration = timedelta(0)
    alert_at_or_below: int = Field(default=2, ge=1, le=4)


class Abuse(_Strict):
    """So one person cannot flood the desk. Past `burst_limit` messages within `burst_window`, a person's
    messages are still recorded but go quiet: they are told once, the agents are alerted once, and a
    /request is refused. Agents block people for `default_block` unless they say how long; a block
    longer than `agent_block_limit`, or one with no end, takes a team lead."""

    burst_limit: int = Field(default=20, ge=1)
    burst_window: Duration = timedelta(minutes=1)
    default_block: Duration = timedelta(hours=24)
    agent_block_limit: Duration = timedelta(days=7)


class Delivery(_Strict):
    """Every message is kept in the outbox with the change that made it, until its platform took it.
    A message not settled within `lease` (its process died) is sent by the next sweep; a failed one is
    tried again after each of `retry_after`, then marked undeliverable on its ticket, and agents are told."""

    lease: Duration = timedelta(minutes=2)
    retry_after: list[Duration] = Field(
        default_factory=lambda: [timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30)],
        min_length=0,
        max_length=10,
    )
    keep_sent: Duration = timedelta(days=7)


class Complaints(_Strict):
    """Upset customers: phrases that escalate on their own, how negative a message must score (VADER's
    compound score, -1 to 1) to count as upset, where such tickets go, and what agents are told."""

    queue: str | None = Field(default=None, description="Specialists' queue for complaints, if any.")
    phrases: list[str] = Field(
        default_factory=lambda: [
            "refund",
            "cancel",
            "cancellation",
            "lawyer",
            "legal action",
            "complaint",
            "complain",
            "chargeback",
            "unacceptable",
            "ridiculous",
            "speak to a manager",
            "worst",
        ]
    )
    upset_below: float = Field(default=-0.5, ge=-1, le=0)
    raise_priority_to: Priority = Priority.HIGH
    tone_guidance: str = (
        "This customer is upset. Acknowledge how they feel in your own words, skip policy lectures, "
        "and end with one concrete next step and when it will happen."
    )


class Lifecycle(_Strict):
    close_resolved_after: Duration = timedelta(days=7)


class Policy(_Strict):
    default_queue: str
    internal_queue: str
    queues: list[Queue] = Field(min_length=1)
    teams: list[Team] = Field(default_factory=list)
    priorities: Priorities = Priorities()
    intake: Intake = Intake()
    requests: Requests = Requests()
    facts: Facts = Facts()
    handoff: Handoff = Handoff()
    hours: dict[Name, Hours] = Field(default_factory=lambda: {"always": Hours(always=True)}, min_length=1)
    default_hours: str | None = Field(default=None, description="Hours of queues that name none.")
    standards: Standards = Standards()
    waiting: Waiting = Waiting()
    promises: Promises = Promises()
    checkins: Checkins = Checkins()
    satisfaction: Satisfaction = Satisfaction()
    complaints: Complaints = Complaints()
    abuse: Abuse = Abuse()
    delivery: Delivery = Delivery()
    snippets: dict[SnippetName, SnippetText] = Field(
        default_factory=dict, description="Saved replies agents send by name: name -> text."
    )
    lifecycle: Lifecycle = Lifecycle()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [q.name for q in self.queues]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"queues: duplicate queue name(s) {', '.join(duplicates)}")
        for key in ("default_queue", "internal_queue"):
            if getattr(self, key) not in names:
                raise ValueError(
                    f"{key}: '{getattr(self, key)}' is not one of the queues ({', '.join(names)})"
                )
        owner: dict[str, str] = {}
        for index, team in enumerate(self.teams):
            for queue in team.queues:
                if queue not in names:
                    raise ValueError(f"teams[{index}].queues: unknown queue '{queue}'")
                if queue in owner:
                    raise ValueError(
                        f"teams[{index}].queues: queue '{queue}' already belongs to team '{owner[queue]}'"
                    )
                owner[queue] = team.name
        if self.complaints.queue is not None and self.complaints.queue not in names:
            raise ValueError(
                f"complaints.queue: '{self.complaints.queue}' is not one of the queues ({', '.join(names)})"
            )
        hour_names = list(self.hours)
        if self.default_hours is not None and self.default_hours not in self.hours:
            raise ValueError(
                f"default_hours: '{self.default_hours}' is not one of the hours ({', '.join(hour_names)})"
            )
        for index, listed in enumerate(self.queues):
            if listed.hours is not None and listed.hours not in self.hours:
                known = ", ".join(hour_names)
                raise ValueError(f"queues[{index}].hours: '{listed.hours}' is not one of the hours ({known})")
        if len(self.hours) > 1 and self.default_hours is None:
            unset = [q.name for q in self.queues if q.hours is None]
            if unset:
                raise ValueError(f"queues {', '.join(unset)} name no hours; set their hours or default_hours")
        return self

    @cached_property
    def _business_hours(self) -> dict[str, BusinessHours]:
        return {name: hours.business_hours(name) for name, hours in self.hours.items()}

    def hours_for(self, queue: str) -> BusinessHours:
        """The business hours a queue's clocks count in."""
        found = self.queue(queue)
        name = (found.hours if found else None) or self.default_hours or next(iter(self.hours))
        return self._business_hours[name]

    def leads(self) -> set[str]:
        """Every team lead, as the policy names them (a platform user id or a name)."""
        return {team.lead for team in self.teams if team.lead}

    def lead_of(self, queue: str) -> str | None:
        """The lead of the team that owns the queue (who breaches are escalated to), if any."""
        return next((t.lead for t in self.teams if queue in t.queues and t.lead), None)

    def queue(self, name: str) -> Queue | None:
        return next((q for q in self.queues if q.name == name), None)

    def queue_label(self, name: str) -> str:
        queue = self.queue(name)
        return queue.label if queue else "support team"

    def default_queue_for(self, kind: TicketKind) -> str:
        return self.internal_queue if kind is TicketKind.INTERNAL else self.default_queue

    def default_priority_for(self, kind: TicketKind) -> Priority:
        if kind is TicketKind.INTERNAL:
            return self.priorities.internal_default
        return self.priorities.external_default

    def is_courtesy(self, text: str) -> bool:
        """Thanks, greetings and acknowledgements: nothing that needs a ticket of its own."""
        phrase = normalise_phrase(text)
        return phrase in self.intake.courtesy_phrases or phrase in self.intake.thanks_phrases

    def is_thanks(self, text: str) -> bool:
        return normalise_phrase(text) in self.intake.thanks_phrases


class PolicyError(ValueError):
    """The policy file cannot be used; the message names the file, the key and the reason."""


def normalise_phrase(text: str) -> str:
    """Lower case, punctuation and repeated spaces dropped: "Thanks!!" and "thanks" match."""
    kept = "".join(ch for ch in text.lower() if ch.isalnum() or ch.isspace() or ord(ch) > 0x2000)
    return " ".join(kept.split())


def load_policy(path: Path | None = None) -> Policy:
    """Load and validate the policy file, or the packaged default when no path is given."""
    if path is None:
        source = "the default policy"
        text = resources.files("bot").joinpath("default_policy.toml").read_text("utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise PolicyError(f"RELAYDESK_POLICY: cannot read {source}: {exc.strerror}") from exc
    try:
        return Policy.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {source}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        raise PolicyError(f"policy file {source}:\n{describe_errors(exc)}") from exc


def describe_errors(exc: ValidationError) -> str:
    """One line per problem: `key.path: why`."""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"] if part != "[key]")  # a dict's key: its name
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {key}: {message}" if key else f"  {message}")
    return "\n".join(lines)
