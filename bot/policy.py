"""The service policy: queues, teams, priorities and intake rules, read from a TOML file.

A sensible default ships with the package; operators point `RELAYDESK_POLICY` at their own file.
Everything is validated at start, and errors name the key that is wrong.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Mapping
from datetime import timedelta
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
        return self

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
