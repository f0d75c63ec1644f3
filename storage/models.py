"""Database tables. Repositories turn rows into the core's domain objects and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from bot.domain import (
    CheckinState,
    ClockState,
    DeliveryState,
    EntryKind,
    Metric,
    Priority,
    PromiseState,
    Status,
    SurveyState,
    TicketKind,
)


class UtcDateTime(TypeDecorator[datetime]):
    """Stores UTC and always gives back an aware UTC datetime, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; the core works in aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Seconds(TypeDecorator[timedelta]):
    """A duration as whole seconds: the same on every database, and easy to sum in reports."""

    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: timedelta | None, dialect: Dialect) -> int | None:
        return None if value is None else int(value.total_seconds())

    def process_result_value(self, value: int | None, dialect: Dialect) -> timedelta | None:
        return None if value is None else timedelta(seconds=value)


class Micros(TypeDecorator[timedelta]):
    """A duration as whole microseconds: exact for business time measured between stored moments, and
    summed or ranked by the database as a plain integer."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: timedelta | None, dialect: Dialect) -> int | None:
        return None if value is None else value // _MICROSECOND

    def process_result_value(self, value: int | None, dialect: Dialect) -> timedelta | None:
        return None if value is None else value * _MICROSECOND


_MICROSECOND = timedelta(microseconds=1)


def _enum(cls: type[StrEnum]) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=24,
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime}


class CustomerRow(Base):
    __tablename__ = "customers"
    __table_args__ = (Index("ix_customers_email", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[TicketKind] = mapped_column(_enum(TicketKind))
    created_at: Mapped[datetime]
    address_as: Mapped[str | None] = mapped_column(String(80))
    timezone: Mapped[str | None] = mapped_column(String(64))
    organisation: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    """Stored in lower case, so linking by email is one indexed comparison."""
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    tags: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    merged_into: Mapped[int | None]
    """The customer this one was linked into; such a row keeps nothing personal."""
    blocked_until: Mapped[datetime | None]
    block_told: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    burst_started_at: Mapped[datetime | None]
    burst_count: Mapped[int] = mapped_column(default=0, server_default="0")
    burst_told: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class IdentityRow(Base):
    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("platform", "external_id", name="uq_identities_platform_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    platform: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(200))


class AgentRow(Base):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("platform", "external_id", name="uq_agents_platform_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(200))


class TicketRow(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_thread", "platform", "channel_id", "thread_id"),
        Index("ix_tickets_customer", "customer_id", "number"),
        Index("ix_tickets_assignee", "assignee_id", "status"),
        Index("ix_tickets_status_queue", "status", "queue"),
        Index("ix_tickets_status_resolved", "status", "resolved_at"),
        Index("ix_tickets_created_at", "created_at"),
        Index("ix_tickets_resolved_at", "resolved_at"),
    )

    number: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[TicketKind] = mapped_column(_enum(TicketKind))
    queue: Mapped[str] = mapped_column(String(40))
    priority: Mapped[Priority] = mapped_column(_enum(Priority))
    status: Mapped[Status] = mapped_column(_enum(Status))
    subject: Mapped[str] = mapped_column(String(400))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    customer_user_id: Mapped[str] = mapped_column(String(200))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    platform: Mapped[str] = mapped_column(String(20))
    channel_id: Mapped[str] = mapped_column(String(200))
    thread_id: Mapped[str | None] = mapped_column(String(200))
    previous_number: Mapped[int | None] = mapped_column(ForeignKey("tickets.number"))
    workspace_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    first_agent_reply_at: Mapped[datetime | None]
    last_customer_message_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    status_changed_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    """Optimistic lock: an update that raced another loses and the desk runs again on fresh state."""

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's own mapping hook


class EntryRow(Base):
    __tablename__ = "entries"
    __table_args__ = (
        UniqueConstraint("platform", "external_id", name="uq_entries_platform_message"),
        Index("ix_entries_ticket", "ticket_number", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_number: Mapped[int] = mapped_column(ForeignKey("tickets.number"))
    kind: Mapped[EntryKind] = mapped_column(_enum(EntryKind))
    author_name: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    platform: Mapped[str | None] = mapped_column(String(20))
    external_id: Mapped[str | None] = mapped_column(String(200))
    mood: Mapped[float | None] = mapped_column(Float)


class TimelineRow(Base):
    __tablename__ = "timeline"
    __table_args__ = (
        Index("ix_timeline_ticket", "ticket_number", "id"),
        Index("ix_timeline_at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_number: Mapped[int] = mapped_column(ForeignKey("tickets.number"))
    action: Mapped[str] = mapped_column(String(40))
    actor_name: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class AnchorRow(Base):
    __tablename__ = "anchors"
    __table_args__ = (
        UniqueConstraint("platform", "channel_id", "message_id", name="uq_anchors_platform_message"),
        Index("ix_anchors_ticket", "ticket_number", "platform"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_number: Mapped[int] = mapped_column(ForeignKey("tickets.number"))
    platform: Mapped[str] = mapped_column(String(20))
    channel_id: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(200))


class ProfileNoteRow(Base):
    __tablename__ = "profile_notes"
    __table_args__ = (Index("ix_profile_notes_customer", "customer_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    text: Mapped[str] = mapped_column(Text)
    author_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    ticket_number: Mapped[int | None] = mapped_column(ForeignKey("tickets.number"))


class IncentiveRow(Base):
    __tablename__ = "incentives"
    __table_args__ = (Index("ix_incentives_customer", "customer_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    ticket_number: Mapped[int | None] = mapped_column(ForeignKey("tickets.number"))
    what: Mapped[str] = mapped_column(String(400))
    given_by: Mapped[str] = mapped_column(String(200))
    given_at: Mapped[datetime]


class SnippetRow(Base):
    __tablename__ = "snippets"
    __table_args__ = (UniqueConstraint("name", name="uq_snippets_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class AuditRow(Base):
    """Who exported or forgot which customer, and when. `detail` holds counts, never personal data."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_subject", "subject", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(20))
    subject: Mapped[int]
    actor: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class SlaClockRow(Base):
    __tablename__ = "sla_clocks"
    __table_args__ = (
        UniqueConstraint("ticket_number", "metric", "cycle", name="uq_sla_clocks_ticket_metric_cycle"),
        Index(
            "ix_sla_clocks_met",
            "state",
            "met_at",
            "metric",
            "breached_at",
            "cycle",
            "business",
            "ticket_number",
        ),
        Index("ix_sla_clocks_state_due", "state", "due_at"),
        Index("ix_sla_clocks_breached", "breached_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_number: Mapped[int] = mapped_column(ForeignKey("tickets.number"))
    metric: Mapped[Metric] = mapped_column(_enum(Metric))
    cycle: Mapped[int]
    target: Mapped[timedelta] = mapped_column(Seconds)
    started_at: Mapped[datetime]
    resumed_at: Mapped[datetime]
    due_at: Mapped[datetime]
    state: Mapped[ClockState] = mapped_column(_enum(ClockState))
    consumed: Mapped[timedelta] = mapped_column(Seconds)
    met_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    business: Mapped[timedelta | None] = mapped_column(Micros)
    """The business time the clock took, kept when it was met (migration 0012); None before."""


class PromiseRow(Base):
    __tablename__ = "promises"
    __table_args__ = (
        UniqueConstraint("ticket_number", "number", name="uq_promises_ticket_number"),
        Index("ix_promises_state_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_number: Mapped[int] = mapped_column(ForeignKey("tickets.number"))
    number: Mapped[int]
    what: Mapped[str] = mapped_column(String(500))
    due_at: Mapped[datetime]
    made_by: Mapped[str] = mapped_column(String(200))
    made_at: Mapped[datetime]
    state: Mapped[PromiseState] = mapped_column(_enum(PromiseState))
    kept_at: Mapped[datetime | None]
    broken_at: Mapped[datetime | None]


class CheckinRow(Base):
    """Scheduled work: the source of truth; every process's sweep claims due rows from here."""

    __tablename__ = "checkins"
    __table_args__ = (
        UniqueConstraint("key", name="uq_checkins_key"),
        Index("ix_checkins_state_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(40))
    due_at: Mapped[datetime]
    ticket_number: Mapped[int | None] = mapped_column(ForeignKey("tickets.number"))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[CheckinState] = mapped_column(_enum(CheckinState))
    fired_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    """Two sweeps that read the same due row cannot both fire it: the second one's update loses."""

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's own mapping hook


class SurveyRow(Base):
    __tablename__ = "surveys"
    __table_args__ = (
        UniqueConstraint("ticket_number", "cycle", name="uq_surveys_ticket_cycle"),
        Index("ix_surveys_customer", "customer_id", "id"),
        Index("ix_surveys_sent", "sent_at"),
        Index("ix_surveys_rated", "rated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_number: Mapped[int] = mapped_column(ForeignKey("tickets.number"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    cycle: Mapped[int]
    sent_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    state: Mapped[SurveyState] = mapped_column(_enum(SurveyState))
    rating: Mapped[int | None]
    rated_at: Mapped[datetime | None]
    comment: Mapped[str | None] = mapped_column(Text)
    commented_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    """A rating racing another rating (a double click) or the expiry: the second update loses."""

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's own mapping hook


class DeliveryRow(Base):
    """The outbox: what the desk said, until a platform took it (see bot.domain.Delivery)."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_state_due", "state", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    due_at: Mapped[datetime]
    ticket_number: Mapped[int | None] = mapped_column(index=True)
    platform: Mapped[str | None] = mapped_column(String(20))
    state: Mapped[DeliveryState] = mapped_column(_enum(DeliveryState))
    attempts: Mapped[int] = mapped_column(default=1)
    error: Mapped[str | None] = mapped_column(String(500))
    settled_at: Mapped[datetime | None]
