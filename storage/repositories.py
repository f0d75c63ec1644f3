"""SQLAlchemy repositories that hand out the core's domain objects.

Rows never leave this module. A repository remembers which domain objects it handed out (one object per
row within a unit of work) and writes their changes back when the unit of work commits.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from itertools import repeat
from operator import attrgetter, methodcaller
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Table, bindparam, case, delete, func, insert, or_, select, true, type_coerce, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.types import NullType

from bot.domain import (
    WORKABLE_STATUSES,
    Agent,
    Anchor,
    AuditRecord,
    Checkin,
    CheckinState,
    Customer,
    Delivery,
    DeliveryState,
    Entry,
    EntryKind,
    EntryLine,
    Identity,
    Incentive,
    Priority,
    ProfileNote,
    Promise,
    PromiseState,
    SlaClock,
    Status,
    StoredSnippet,
    Survey,
    Ticket,
    TicketKind,
    TimelineEvent,
)
from bot.messages import InternalText
from bot.ports import Conflict
from bot.reports import Period, Tally
from storage import report_queries
from storage.engine import connection
from storage.models import (
    AgentRow,
    AnchorRow,
    AuditRow,
    Base,
    CheckinRow,
    CustomerRow,
    DeliveryRow,
    EntryRow,
    IdentityRow,
    IncentiveRow,
    ProfileNoteRow,
    PromiseRow,
    SlaClockRow,
    SnippetRow,
    SurveyRow,
    TicketRow,
    TimelineRow,
)

D = TypeVar("D")
R = TypeVar("R", bound=Base)

_PRIORITY_ORDER = case(
    {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3},
    value=TicketRow.priority,
    else_=4,
)


async def flush(session: AsyncSession) -> None:
    """Flush, reporting a lost race (a uniqueness rule, a stale version, a deadlock) as the core's
    Conflict, so the desk runs the work again on fresh state. Nothing to write: nothing is asked of
    the session (every query flushes first, and most find nothing pending)."""
    if not (session.new or session.dirty or session.deleted):
        return
    try:
        await session.flush()
    except IntegrityError as error:
        if not is_unique_violation(error):
            raise
        raise Conflict(str(error.orig)) from error
    except StaleDataError as error:
        raise Conflict(str(error)) from error
    except DBAPIError as error:
        if not is_lost_race(error):
            raise
        raise Conflict(str(error.orig)) from error


RETRYABLE_STATES = frozenset({"40P01", "40001"})
"""PostgreSQL's deadlock_detected and serialization_failure: two transactions crossed; one may retry."""


def is_lost_race(error: DBAPIError) -> bool:
    sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return sqlstate in RETRYABLE_STATES


UNAVAILABLE_WORDS = (
    "database is locked",
    "database is busy",
    "connection is closed",
    "connection was closed",
)


def is_unavailable(error: BaseException) -> bool:
    """Whether an error means the database was out of reach rather than that the work was wrong: a
    connection lost (SQLAlchemy invalidates it), a server that cannot be reached, a locked SQLite file."""
    if isinstance(error, OSError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated or isinstance(error.orig, OSError):
        return True
    text = str(error.orig).lower()
    return any(words in text for words in UNAVAILABLE_WORDS)


def is_unique_violation(error: IntegrityError) -> bool:
    """Races break uniqueness rules; other integrity errors (a missing key) are bugs, not retried."""
    sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if sqlstate is not None:
        return sqlstate == "23505"
    return "UNIQUE" in str(error.orig).upper()


def _chunks(numbers: list[int], size: int = 1000) -> list[list[int]]:
    """IN lists of a size every database takes (SQLite's bound-parameter limit, PostgreSQL's planner)."""
    return [numbers[i : i + size] for i in range(0, len(numbers), size)]


async def _execute(session: AsyncSession, statement: Any, params: dict[str, Any] | None = None) -> Any:
    """A query whose row locks (FOR UPDATE) may deadlock with another transaction: that is a Conflict."""
    try:
        return await session.execute(statement, params)
    except DBAPIError as error:
        if not is_lost_race(error):
            raise
        raise Conflict(str(error.orig)) from error


async def _core(session: AsyncSession, statement: Any, params: Any = None) -> Any:
    """A Core statement (of plain columns, no mapped classes) on the session's connection: the session's
    ORM execution path cost more than the statement. A row lock that deadlocked is a Conflict."""
    try:
        return await (await connection(session)).execute(statement, params)
    except DBAPIError as error:
        if not is_lost_race(error):
            raise
        raise Conflict(str(error.orig)) from error


async def _insert_row(
    session: AsyncSession, table: Table, values: dict[str, Any], statement: Any = None
) -> Any:
    """Insert one row with Core (`statement`: the INSERT, when it returns something), a broken uniqueness
    rule being a lost race, as with the ORM's flush."""
    try:
        return await _core(session, _INSERTS[table] if statement is None else statement, values)
    except IntegrityError as error:
        if not is_unique_violation(error):
            raise
        raise Conflict(str(error.orig)) from error


_INSERTS = {table: insert(table) for table in Base.metadata.sorted_tables}
"""A plain INSERT of each table, built once."""


async def _scalars(session: AsyncSession, statement: Any) -> Any:
    return (await _execute(session, statement)).scalars()


def _snapshot(values: dict[str, Any]) -> dict[str, Any]:
    """A row's values as written, with its JSON values copied: the domain object holds the originals,
    and a change made to one in place must still differ from what was written."""
    return {name: copy.copy(v) if isinstance(v, dict | list) else v for name, v in values.items()}


class _Tracked(Generic[D, R]):
    """Maps rows to domain objects one-to-one and writes their changes back on `sync()`.

    SQLAlchemy Core rather than the ORM's unit of work: every message loads and changes a handful of rows,
    and the ORM's bookkeeping for them (instances, identity map, flush planning) cost more than the
    statements. A row's values as loaded are kept beside its domain object; `sync()` updates only the
    columns that changed, and a table with a version column (optimistic locking) has the update lose a
    race as the ORM's version check did: as a Conflict, so the desk runs the work again."""

    domain: type[D]
    row_type: type[R]
    key: str = "id"

    _fields: list[str]
    """The domain class's field names, worked out once per repository class (units of work are many)."""
    _table: Table
    _columns: list[Any]
    """Every column of the table, for SELECTs."""
    _version: str | None
    """The table's version column, if it has one."""
    _inserting: Any
    _by_key: Any
    _updates: dict[tuple[str, ...], Any]
    """UPDATE statements by the columns they set. Statements are built once: SQLAlchemy works out a
    statement's cache key each time one is built, which costs more than running it."""

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._fields = [f.name for f in dataclasses.fields(cls.domain)]  # type: ignore[arg-type]
        mapper = cls.row_type.__mapper__
        cls._table = cast(Table, cls.row_type.__table__)
        cls._columns = list(cls._table.c)
        version = mapper.version_id_col
        cls._version = version.key if version is not None else None
        table = cls._table
        cls._inserting = insert(table).returning(table.c[cls.key])
        cls._by_key = select(*cls._columns).where(table.c[cls.key] == bindparam("key_"))
        cls._updates = {}

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._seen: dict[Any, tuple[D, dict[str, Any]]] = {}

    def _load(self, row: Any) -> D | None:
        """A domain object from a row of `_columns` (the one already handed out, if any)."""
        if row is None:
            return None
        values = row._mapping
        pk = values[self.key]
        if pk not in self._seen:
            obj = self.domain(**{name: self._decode(name, values[name]) for name in self._fields})
            self._seen[pk] = (obj, dict(values))
        return self._seen[pk][0]

    async def _insert(self, obj: D) -> D:
        values = {name: self._encode(name, getattr(obj, name)) for name in self._fields if name != self.key}
        table = self._table
        if self._version is not None:
            values[self._version] = 1
        await flush(self.session)  # rows the ORM still holds go first, in the order they came
        pk = (await _insert_row(self.session, table, values, self._inserting)).scalar()
        setattr(obj, self.key, pk)
        values[self.key] = pk
        self._seen[pk] = (obj, _snapshot(values))
        return obj

    async def _get(self, pk: Any) -> D | None:
        if pk in self._seen:
            return self._seen[pk][0]
        return await self._first(self._by_key, key_=pk)

    async def _one(self, statement: Any) -> D | None:
        await self._settle()
        return self._load((await self._rows(statement.limit(1))).first())

    async def _many(self, statement: Any) -> list[D]:
        await self._settle()
        rows = (await self._rows(statement)).all()
        return [obj for obj in map(self._load, rows) if obj is not None]

    async def _first(self, statement: Any, **params: Any) -> D | None:
        """The first row of a statement built once (with its limit, of this repository's columns)."""
        await self._settle()
        return self._load((await _core(self.session, statement, params)).first())

    async def _all(self, statement: Any, **params: Any) -> list[D]:
        """Every row of a statement built once, of this repository's columns."""
        await self._settle()
        rows = (await _core(self.session, statement, params)).all()
        return [obj for obj in map(self._load, rows) if obj is not None]

    async def _rows(self, statement: Any) -> Any:
        """A SELECT of this repository's rows (written against the mapped class) as plain rows."""
        return await _core(self.session, statement.with_only_columns(*self._columns))

    async def _settle(self) -> None:
        """Write this unit of work's changes so far to the database before asking it anything, so a
        query sees them (a ticket moved to another customer a moment ago, say)."""
        await self.sync()
        await flush(self.session)

    async def sync(self) -> None:
        """Update each changed row (only its changed columns); a versioned row also checks that nobody
        changed it since it was read."""
        table = self._table
        for obj, stored in self._seen.values():
            changes = {}
            for name in self._fields:
                value = self._encode(name, getattr(obj, name))
                if stored[name] != value:
                    changes[name] = value
            if not changes:
                continue
            params = {f"new_{name}": value for name, value in changes.items()}
            params["key_"] = stored[self.key]
            version = self._version
            if version is not None:
                params["version_"] = stored[version]
                params[f"new_{version}"] = changes[version] = stored[version] + 1
            try:
                result = await _core(self.session, self._update_of(tuple(changes)), params)
            except IntegrityError as error:
                if not is_unique_violation(error):
                    raise
                raise Conflict(str(error.orig)) from error
            if version is not None and result.rowcount != 1:
                raise Conflict(f"{table.name} {stored[self.key]} was changed by someone else")
            stored.update(changes)

    def _update_of(self, names: tuple[str, ...]) -> Any:
        """The UPDATE of these columns of one row (checking its version, if the table has one)."""
        statement = self._updates.get(names)
        if statement is None:
            table = self._table
            statement = update(table).where(table.c[self.key] == bindparam("key_"))
            if self._version is not None:
                statement = statement.where(table.c[self._version] == bindparam("version_"))
            statement = statement.values({name: bindparam(f"new_{name}") for name in names})
            self._updates[names] = statement
        return statement

    def _decode(self, name: str, value: Any) -> Any:
        """A column's value as the domain holds it (the same, unless a repository says otherwise)."""
        return value

    def _encode(self, name: str, value: Any) -> Any:
        """A domain field's value as its column holds it."""
        return value


class SqlCustomers(_Tracked[Customer, CustomerRow]):
    domain = Customer
    row_type = CustomerRow

    def _decode(self, name: str, value: Any) -> Any:
        return tuple(value or ()) if name == "tags" else value

    def _encode(self, name: str, value: Any) -> Any:
        if name == "tags":
            return list(value)
        if name == "email" and value is not None:
            return value.lower()
        return value

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self._identities: dict[tuple[str, str], Identity] = {}

    async def by_identity(self, platform: str, external_id: str, *, lock: bool = False) -> Customer | None:
        """The customer, with the identity kept for `identity()`: every message asks for both."""
        await self._settle()
        statement = _CUSTOMER_BY_IDENTITY_LOCKED if lock else _CUSTOMER_BY_IDENTITY
        params = {"platform": platform, "external_id": external_id}
        found = (await _core(self.session, statement, params)).first()
        if found is None:
            return None
        values = found._mapping
        self._identities[(platform, external_id)] = Identity(
            values["customer_id_"], platform, external_id, values["display_name_"], values["id_"]
        )
        return self._load(found)

    async def get(self, customer_id: int) -> Customer | None:
        return await self._get(customer_id)

    async def add(self, customer: Customer, identity: Identity) -> Customer:
        await self._insert(customer)
        assert customer.id is not None
        identity.customer_id = customer.id
        values = {
            "customer_id": customer.id,
            "platform": identity.platform,
            "external_id": identity.external_id,
            "display_name": identity.display_name,
        }
        identity.id = (await _insert_row(self.session, _IDENTITIES, values, _IDENTITY_INSERT)).scalar()
        self._identities[(identity.platform, identity.external_id)] = dataclasses.replace(identity)
        return customer

    async def identity(self, platform: str, external_id: str) -> Identity | None:
        kept = self._identities.get((platform, external_id))
        if kept is not None:
            return dataclasses.replace(kept)
        row = (
            await self.session.scalars(
                select(IdentityRow).where(
                    IdentityRow.platform == platform, IdentityRow.external_id == external_id
                )
            )
        ).first()
        if row is None:
            return None
        return _identity(row)

    async def identities(self, customer_id: int) -> list[Identity]:
        await flush(self.session)
        rows = await self.session.scalars(
            select(IdentityRow).where(IdentityRow.customer_id == customer_id).order_by(IdentityRow.id)
        )
        return [_identity(row) for row in rows]

    async def set_identity(self, identity_id: int, external_id: str, display_name: str) -> None:
        row = await self.session.get(IdentityRow, identity_id)
        assert row is not None, f"no identity {identity_id}"
        row.external_id = external_id
        row.display_name = display_name
        self._identities.clear()

    async def find(self, platform: str, key: str) -> list[Customer]:
        on_platform = (
            select(CustomerRow)
            .join(IdentityRow, IdentityRow.customer_id == CustomerRow.id)
            .where(IdentityRow.platform == platform)
        )
        by_id = await self._many(on_platform.where(IdentityRow.external_id == key))
        if by_id:
            return by_id
        named = await self._many(
            on_platform.where(func.lower(IdentityRow.display_name) == key.lower()).order_by(CustomerRow.id)
        )
        return list({customer.id: customer for customer in named}.values())

    async def with_email(self, email: str) -> list[Customer]:
        return await self._many(
            select(CustomerRow)
            .where(CustomerRow.email == email.lower(), CustomerRow.merged_into.is_(None))
            .order_by(CustomerRow.id)
        )

    async def move_identities(self, from_customer: int, to_customer: int) -> int:
        rows = (
            await self.session.scalars(select(IdentityRow).where(IdentityRow.customer_id == from_customer))
        ).all()
        for row in rows:
            row.customer_id = to_customer
        self._identities.clear()
        return len(rows)


_IDENTITY_LABELLED = (
    IdentityRow.id.label("id_"),
    IdentityRow.customer_id.label("customer_id_"),
    IdentityRow.display_name.label("display_name_"),
)
"""The identity's columns beside its customer's, under names of their own."""


_CUSTOMERS = cast(Table, CustomerRow.__table__)
_IDENTITIES = cast(Table, IdentityRow.__table__)
_CUSTOMER_BY_IDENTITY = (
    select(*_CUSTOMERS.c, *_IDENTITY_LABELLED)
    .join(_IDENTITIES, _IDENTITIES.c.customer_id == _CUSTOMERS.c.id)
    .where(
        _IDENTITIES.c.platform == bindparam("platform"), _IDENTITIES.c.external_id == bindparam("external_id")
    )
    .limit(1)
)
_CUSTOMER_BY_IDENTITY_LOCKED = _CUSTOMER_BY_IDENTITY.with_for_update(of=_CUSTOMERS)
_IDENTITY_INSERT = insert(_IDENTITIES).returning(_IDENTITIES.c.id)


def _identity(row: IdentityRow) -> Identity:
    return Identity(row.customer_id, row.platform, row.external_id, row.display_name, row.id)


class SqlAgents(_Tracked[Agent, AgentRow]):
    domain = Agent
    row_type = AgentRow

    async def by_identity(self, platform: str, external_id: str) -> Agent | None:
        return await self._one(
            select(AgentRow).where(AgentRow.platform == platform, AgentRow.external_id == external_id)
        )

    async def find(self, platform: str, key: str) -> Agent | None:
        by_id = await self.by_identity(platform, key)
        if by_id is not None:
            return by_id
        # Agents are few; compare names in Python, since SQLite's lower() folds ASCII only.
        wanted = key.casefold()
        rows = await self._many(select(AgentRow).where(AgentRow.platform == platform).order_by(AgentRow.id))
        return next((agent for agent in rows if agent.display_name.casefold() == wanted), None)

    async def get(self, agent_id: int) -> Agent | None:
        return await self._get(agent_id)

    async def add(self, agent: Agent) -> Agent:
        return await self._insert(agent)


class SqlTickets(_Tracked[Ticket, TicketRow]):
    domain = Ticket
    row_type = TicketRow
    key = "number"

    async def get(self, number: int) -> Ticket | None:
        return await self._get(number)

    async def by_thread(self, platform: str, channel_id: str, thread_id: str) -> Ticket | None:
        return await self._first(
            _TICKET_BY_THREAD, platform=platform, channel_id=channel_id, thread_id=thread_id
        )

    async def latest_in(
        self, customer_id: int, platform: str, channel_id: str, kind: TicketKind
    ) -> Ticket | None:
        return await self._first(
            _LATEST_TICKET_IN, customer_id=customer_id, platform=platform, channel_id=channel_id, kind=kind
        )

    async def add(self, ticket: Ticket) -> Ticket:
        return await self._insert(ticket)

    async def unassigned(self, queue: str | None, limit: int) -> list[Ticket]:
        statement = select(TicketRow).where(
            TicketRow.assignee_id.is_(None), TicketRow.status.in_(WORKABLE_STATUSES)
        )
        if queue:
            statement = statement.where(TicketRow.queue == queue)
        return await self._many(statement.order_by(_PRIORITY_ORDER, TicketRow.number).limit(limit))

    async def in_queue(self, queue: str, limit: int) -> list[Ticket]:
        return await self._many(
            select(TicketRow)
            .where(TicketRow.queue == queue, TicketRow.status.in_(WORKABLE_STATUSES))
            .order_by(_PRIORITY_ORDER, TicketRow.number)
            .limit(limit)
        )

    async def assigned_to(self, agent_id: int, limit: int) -> list[Ticket]:
        return await self._many(
            select(TicketRow)
            .where(TicketRow.assignee_id == agent_id, TicketRow.status.in_(WORKABLE_STATUSES))
            .order_by(_PRIORITY_ORDER, TicketRow.number)
            .limit(limit)
        )

    async def count_for_customer(self, customer_id: int, before: int | None = None) -> int:
        await self._settle()
        if before is None:
            found = await _core(self.session, _TICKETS_OF_CUSTOMER, {"customer_id": customer_id})
            return int(found.scalar() or 0)
        statement = select(func.count()).select_from(TicketRow).where(TicketRow.customer_id == customer_id)
        return int(await self.session.scalar(statement.where(TicketRow.number < before)) or 0)

    async def resolved_before(self, moment: datetime, limit: int) -> list[Ticket]:
        return await self._many(
            select(TicketRow)
            .where(TicketRow.status == Status.RESOLVED, TicketRow.resolved_at <= moment)
            .order_by(TicketRow.resolved_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )

    async def touched_between(self, start: datetime, end: datetime, limit: int) -> list[Ticket]:
        return await self._many(
            select(TicketRow)
            .where(
                TicketRow.created_at < end,
                (TicketRow.updated_at >= start) | TicketRow.status.in_(WORKABLE_STATUSES),
            )
            .order_by(TicketRow.number)
            .limit(limit)
        )

    async def for_customer(self, customer_id: int) -> list[Ticket]:
        return await self._many(
            select(TicketRow).where(TicketRow.customer_id == customer_id).order_by(TicketRow.number)
        )

    async def report_tally(self, period: Period) -> Tally:
        """A report's counts made by the database (storage/report_queries.py), however big the period."""
        await self._settle()
        return await report_queries.tally(self.session, period)


_ENTRIES = cast(Table, EntryRow.__table__)
_TIMELINE = cast(Table, TimelineRow.__table__)


_TICKETS = cast(Table, TicketRow.__table__)
_TICKET_BY_THREAD = (
    select(*_TICKETS.c)
    .where(
        _TICKETS.c.platform == bindparam("platform"),
        _TICKETS.c.channel_id == bindparam("channel_id"),
        _TICKETS.c.thread_id == bindparam("thread_id"),
    )
    .order_by(_TICKETS.c.number.desc())
    .limit(1)
)
_LATEST_TICKET_IN = (
    select(*_TICKETS.c)
    .where(
        _TICKETS.c.customer_id == bindparam("customer_id"),
        _TICKETS.c.platform == bindparam("platform"),
        _TICKETS.c.channel_id == bindparam("channel_id"),
        _TICKETS.c.thread_id.is_(None),
        _TICKETS.c.kind == bindparam("kind"),
    )
    .order_by(_TICKETS.c.number.desc())
    .limit(1)
)
_TICKETS_OF_CUSTOMER = (
    select(func.count()).select_from(_TICKETS).where(_TICKETS.c.customer_id == bindparam("customer_id"))
)
_ENTRY_SEEN = (
    select(_ENTRIES.c.id)
    .where(_ENTRIES.c.platform == bindparam("platform"), _ENTRIES.c.external_id == bindparam("external_id"))
    .limit(1)
)


class SqlEntries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, entry: Entry) -> None:
        body = entry.body.hidden if isinstance(entry.body, InternalText) else entry.body
        values = {
            "ticket_number": entry.ticket_number,
            "kind": entry.kind,
            "author_name": entry.author_name,
            "body": body,
            "created_at": entry.created_at,
            "platform": entry.platform,
            "external_id": entry.external_id,
            "mood": entry.mood,
        }
        await _insert_row(self.session, _ENTRIES, values)

    async def seen(self, platform: str, external_id: str) -> bool:
        await flush(self.session)
        found = await _core(self.session, _ENTRY_SEEN, {"platform": platform, "external_id": external_id})
        return found.first() is not None

    async def for_ticket(self, number: int) -> list[Entry]:
        await flush(self.session)
        # Plain rows, not mapped objects: a long ticket has thousands, and nothing here changes them.
        rows = await self.session.execute(
            select(*_ENTRY_COLUMNS).where(EntryRow.ticket_number == number).order_by(EntryRow.id)
        )
        return [_entry(row) for row in rows]

    async def lines_for_ticket(self, number: int) -> list[EntryLine]:
        await flush(self.session)
        # The driver's own values, made column by column what the column types would make of them (an
        # aware UTC moment, a kind, a note's InternalText): a long ticket has thousands of rows.
        raw = [type_coerce(column, NullType()) for column in _LINE_COLUMNS]
        statement = (
            select(*raw)
            .where(EntryRow.ticket_number == number, EntryRow.kind != EntryKind.BOT)
            .order_by(EntryRow.id)
        )
        rows = (await _core(self.session, statement)).all()
        if not rows:
            return []
        kind_values, authors, bodies, moments, moods = zip(*rows, strict=True)
        kinds = list(map(_KINDS.__getitem__, kind_values))
        note = EntryKind.NOTE
        said = [
            InternalText(body) if kind is note else body for kind, body in zip(kinds, bodies, strict=True)
        ]
        columns = zip(kinds, authors, said, _utc_moments(moments), moods, strict=True)
        return list(map(tuple.__new__, repeat(EntryLine), columns))

    async def by_message(self, platform: str, external_id: str) -> Entry | None:
        await flush(self.session)
        found = await _scalars(
            self.session,
            select(EntryRow)
            .where(EntryRow.platform == platform, EntryRow.external_id == external_id)
            .with_for_update(),
        )
        row = found.first()
        return _entry(row) if row else None

    async def set_body(self, entry_id: int, body: str) -> None:
        row = await self.session.get(EntryRow, entry_id)
        assert row is not None, f"no entry {entry_id}"
        row.body = body

    async def redact(self, entry_id: int, body: str, author_name: str) -> None:
        row = await self.session.get(EntryRow, entry_id)
        assert row is not None, f"no entry {entry_id}"
        row.body = body
        row.author_name = author_name
        row.external_id = None


_ENTRY_COLUMNS = (
    EntryRow.id,
    EntryRow.ticket_number,
    EntryRow.kind,
    EntryRow.author_name,
    EntryRow.body,
    EntryRow.created_at,
    EntryRow.platform,
    EntryRow.external_id,
    EntryRow.mood,
)


def _utc_moments(values: Sequence[Any]) -> list[datetime]:
    """Moments as `UtcDateTime` reads them back: aware, in UTC. SQLite's driver gives the text its
    DateTime type stores, a naive UTC moment; PostgreSQL's an aware datetime."""
    if isinstance(values[0], datetime):
        try:  # each aware (a naive one would be taken for local time)
            if None not in map(_tzinfo, values):
                return list(map(_as_utc, values))
        except (AttributeError, TypeError):
            pass
    if isinstance(values[0], str):
        try:  # each text without an offset of its own: read as UTC in one go
            return list(map(datetime.fromisoformat, map("{}+00:00".format, values)))
        except (TypeError, ValueError):
            pass
    found = []
    for value in values:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        found.append(moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC))
    return found


_as_utc = methodcaller("astimezone", UTC)
_tzinfo = attrgetter("tzinfo")
_LINE_COLUMNS = (EntryRow.kind, EntryRow.author_name, EntryRow.body, EntryRow.created_at, EntryRow.mood)
_KINDS = {kind.value: kind for kind in EntryKind}


def _entry(row: Any) -> Entry:
    """An entry from its mapped row, or from a plain row of `_ENTRY_COLUMNS` (same names)."""
    return Entry(
        ticket_number=row.ticket_number,
        kind=row.kind,
        author_name=row.author_name,
        body=InternalText(row.body) if row.kind is EntryKind.NOTE else row.body,
        created_at=row.created_at,
        platform=row.platform,
        external_id=row.external_id,
        id=row.id,
        mood=row.mood,
    )


class SqlAnchors:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, anchor: Anchor) -> None:
        self.session.add(
            AnchorRow(
                ticket_number=anchor.ticket_number,
                platform=anchor.platform,
                channel_id=anchor.channel_id,
                message_id=anchor.message_id,
            )
        )
        await flush(self.session)

    async def by_message(self, platform: str, channel_id: str, message_id: str) -> Anchor | None:
        row = await self.session.scalar(
            select(AnchorRow).where(
                AnchorRow.platform == platform,
                AnchorRow.channel_id == channel_id,
                AnchorRow.message_id == message_id,
            )
        )
        return _anchor(row) if row else None

    async def for_ticket(self, number: int, platform: str) -> Anchor | None:
        found = await _core(self.session, _ANCHOR_OF_TICKET, {"number": number, "platform": platform})
        row = found.first()
        return _anchor(row) if row else None


_ANCHORS = cast(Table, AnchorRow.__table__)
_ANCHOR_OF_TICKET = (
    select(*_ANCHORS.c)
    .where(_ANCHORS.c.ticket_number == bindparam("number"), _ANCHORS.c.platform == bindparam("platform"))
    .order_by(_ANCHORS.c.id)
    .limit(1)
)


def _anchor(row: Any) -> Anchor:
    """An anchor from its mapped row or a plain one (same names)."""
    return Anchor(row.ticket_number, row.platform, row.channel_id, row.message_id, row.id)


class SqlTimeline:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, event: TimelineEvent) -> None:
        values = {
            "ticket_number": event.ticket_number,
            "action": event.action,
            "actor_name": event.actor_name,
            "at": event.at,
            "detail": event.detail,
        }
        await _insert_row(self.session, _TIMELINE, values)

    async def for_ticket(self, number: int) -> list[TimelineEvent]:
        await flush(self.session)
        rows = await self.session.scalars(
            select(TimelineRow).where(TimelineRow.ticket_number == number).order_by(TimelineRow.id)
        )
        return [
            TimelineEvent(row.ticket_number, row.action, row.actor_name, row.at, dict(row.detail), row.id)
            for row in rows
        ]

    async def for_tickets(self, numbers: list[int]) -> list[TimelineEvent]:
        await flush(self.session)
        found: list[TimelineEvent] = []
        for chunk in _chunks(numbers):
            rows = await self.session.scalars(
                select(TimelineRow).where(TimelineRow.ticket_number.in_(chunk)).order_by(TimelineRow.id)
            )
            found += [
                TimelineEvent(row.ticket_number, row.action, row.actor_name, row.at, dict(row.detail), row.id)
                for row in rows
            ]
        return found

    async def redact(self, event_id: int, actor_name: str, detail: dict[str, Any]) -> None:
        row = await self.session.get(TimelineRow, event_id)
        assert row is not None, f"no timeline event {event_id}"
        row.actor_name = actor_name
        row.detail = dict(detail)


class SqlAudit:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, record: AuditRecord) -> AuditRecord:
        row = AuditRow(
            at=record.at,
            action=record.action,
            subject=record.subject,
            actor=record.actor,
            detail=dict(record.detail),
        )
        self.session.add(row)
        await flush(self.session)
        record.id = row.id
        return record

    async def for_subject(self, customer_id: int) -> list[AuditRecord]:
        rows = await self.session.scalars(
            select(AuditRow).where(AuditRow.subject == customer_id).order_by(AuditRow.id)
        )
        return [
            AuditRecord(row.action, row.subject, row.actor, row.at, dict(row.detail), row.id) for row in rows
        ]


class SqlProfiles:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_note(self, note: ProfileNote) -> None:
        row = ProfileNoteRow(
            customer_id=note.customer_id,
            text=note.text.hidden,
            author_name=note.author_name,
            created_at=note.created_at,
            ticket_number=note.ticket_number,
        )
        self.session.add(row)
        await flush(self.session)
        note.id = row.id

    async def notes(self, customer_id: int) -> list[ProfileNote]:
        rows = await self.session.scalars(
            select(ProfileNoteRow)
            .where(ProfileNoteRow.customer_id == customer_id)
            .order_by(ProfileNoteRow.id)
        )
        return [
            ProfileNote(
                row.customer_id,
                InternalText(row.text),
                row.author_name,
                row.created_at,
                row.ticket_number,
                row.id,
            )
            for row in rows
        ]

    async def add_incentive(self, incentive: Incentive) -> None:
        row = IncentiveRow(
            customer_id=incentive.customer_id,
            ticket_number=incentive.ticket_number,
            what=incentive.what,
            given_by=incentive.given_by,
            given_at=incentive.given_at,
        )
        self.session.add(row)
        await flush(self.session)
        incentive.id = row.id

    async def incentives(self, customer_id: int) -> list[Incentive]:
        rows = await self.session.scalars(
            select(IncentiveRow).where(IncentiveRow.customer_id == customer_id).order_by(IncentiveRow.id)
        )
        return [
            Incentive(row.customer_id, row.ticket_number, row.what, row.given_by, row.given_at, row.id)
            for row in rows
        ]

    async def move(self, from_customer: int, to_customer: int) -> None:
        for table in (ProfileNoteRow, IncentiveRow):
            await self.session.execute(
                update(table).where(table.customer_id == from_customer).values(customer_id=to_customer)
            )

    async def erase(self, customer_id: int, placeholder: str) -> tuple[int, int]:
        notes = await self.session.execute(
            delete(ProfileNoteRow).where(ProfileNoteRow.customer_id == customer_id)
        )
        incentives = await self.session.execute(
            update(IncentiveRow).where(IncentiveRow.customer_id == customer_id).values(what=placeholder)
        )
        return notes.rowcount or 0, incentives.rowcount or 0  # type: ignore[attr-defined]


class SqlSnippets:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, name: str) -> StoredSnippet | None:
        row = await self.session.scalar(select(SnippetRow).where(SnippetRow.name == name))
        return _snippet(row) if row else None

    async def add(self, snippet: StoredSnippet) -> StoredSnippet:
        row = SnippetRow(
            name=snippet.name,
            text=snippet.text,
            created_by=snippet.created_by,
            created_at=snippet.created_at,
        )
        self.session.add(row)
        await flush(self.session)
        snippet.id = row.id
        return snippet

    async def names(self) -> list[str]:
        # Sorted here: PostgreSQL's collation and SQLite's bytes order '-' and '_' differently.
        return sorted(await self.session.scalars(select(SnippetRow.name)))


def _snippet(row: SnippetRow) -> StoredSnippet:
    return StoredSnippet(row.name, row.text, row.created_by, row.created_at, row.id)


class SqlClocks(_Tracked[SlaClock, SlaClockRow]):
    domain = SlaClock
    row_type = SlaClockRow

    async def add(self, clock: SlaClock) -> SlaClock:
        return await self._insert(clock)

    async def for_ticket(self, number: int) -> list[SlaClock]:
        return await self._all(_CLOCKS_OF_TICKET, number=number)

    async def for_tickets(self, numbers: list[int]) -> list[SlaClock]:
        found: list[SlaClock] = []
        for chunk in _chunks(numbers):
            found += await self._many(
                select(SlaClockRow).where(SlaClockRow.ticket_number.in_(chunk)).order_by(SlaClockRow.id)
            )
        return found


_CLOCKS = cast(Table, SlaClockRow.__table__)
_CLOCKS_OF_TICKET = (
    select(*_CLOCKS.c).where(_CLOCKS.c.ticket_number == bindparam("number")).order_by(_CLOCKS.c.id)
)


class SqlPromises(_Tracked[Promise, PromiseRow]):
    domain = Promise
    row_type = PromiseRow

    async def add(self, promise: Promise) -> Promise:
        return await self._insert(promise)

    async def for_ticket(self, number: int) -> list[Promise]:
        return await self._many(
            select(PromiseRow).where(PromiseRow.ticket_number == number).order_by(PromiseRow.number)
        )

    async def for_tickets(self, numbers: list[int]) -> list[Promise]:
        found: list[Promise] = []
        for chunk in _chunks(numbers):
            found += await self._many(select(PromiseRow).where(PromiseRow.ticket_number.in_(chunk)))
        return found

    async def open_due_before(self, moment: datetime, limit: int) -> list[Promise]:
        return await self._many(
            select(PromiseRow)
            .where(PromiseRow.state == PromiseState.OPEN, PromiseRow.due_at <= moment)
            .order_by(PromiseRow.due_at)
            .limit(limit)
        )


class SqlCheckins(_Tracked[Checkin, CheckinRow]):
    domain = Checkin
    row_type = CheckinRow

    def _decode(self, name: str, value: Any) -> Any:
        return dict(value) if name == "detail" else value

    async def get(self, key: str) -> Checkin | None:
        return await self._one(select(CheckinRow).where(CheckinRow.key == key))

    async def add(self, checkin: Checkin) -> Checkin:
        return await self._insert(checkin)

    async def claim_due(self, moment: datetime, limit: int) -> list[Checkin]:
        # PostgreSQL: rows another process's sweep holds are skipped, so each fires once. SQLite ignores
        # the clause; there a write lock serialises sweeps (see storage/engine.py).
        return await self._many(
            select(CheckinRow)
            .where(CheckinRow.state == CheckinState.PENDING, CheckinRow.due_at <= moment)
            .order_by(CheckinRow.due_at, CheckinRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )

    async def pending_count(self) -> int:
        statement = (
            select(func.count()).select_from(CheckinRow).where(CheckinRow.state == CheckinState.PENDING)
        )
        return int(await self.session.scalar(statement) or 0)


class SqlSurveys(_Tracked[Survey, SurveyRow]):
    domain = Survey
    row_type = SurveyRow

    async def add(self, survey: Survey) -> Survey:
        return await self._insert(survey)

    async def for_ticket(self, number: int) -> list[Survey]:
        return await self._many(
            select(SurveyRow).where(SurveyRow.ticket_number == number).order_by(SurveyRow.cycle)
        )

    async def for_tickets(self, numbers: list[int]) -> list[Survey]:
        found: list[Survey] = []
        for chunk in _chunks(sorted(numbers)):
            found += await self._many(
                select(SurveyRow)
                .where(SurveyRow.ticket_number.in_(chunk))
                .order_by(SurveyRow.ticket_number, SurveyRow.cycle)
            )
        return found

    async def touched_between(self, start: datetime, end: datetime) -> list[Survey]:
        sent = (SurveyRow.sent_at >= start) & (SurveyRow.sent_at < end)
        rated = (SurveyRow.rated_at >= start) & (SurveyRow.rated_at < end)
        return await self._many(select(SurveyRow).where(sent | rated).order_by(SurveyRow.id))

    async def latest_for_customer(self, customer_id: int) -> Survey | None:
        return await self._one(
            select(SurveyRow).where(SurveyRow.customer_id == customer_id).order_by(SurveyRow.id.desc())
        )


_DELIVERIES = cast(Table, DeliveryRow.__table__)
"""Settling and holding update the table directly: the ORM's bulk UPDATE path (matching the session's
objects) cost more than the statement on every delivery."""


_MARK_SENT = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.id.in_(bindparam("ids", expanding=True)),
        _DELIVERIES.c.state == DeliveryState.PENDING,
    )
    .values(state=DeliveryState.SENT, settled_at=bindparam("moment"))
)


_DELIVERIES_INSERT = insert(_DELIVERIES).returning(_DELIVERIES.c.id, sort_by_parameter_order=True)


class SqlDeliveries(_Tracked[Delivery, DeliveryRow]):
    domain = Delivery
    row_type = DeliveryRow

    def _decode(self, name: str, value: Any) -> Any:
        return dict(value) if name == "payload" else value

    async def add_many(self, deliveries: list[Delivery]) -> list[Delivery]:
        """One statement for all of them: a busy intake says two or three things each time."""
        rows = [
            {name: self._encode(name, getattr(d, name)) for name in self._fields if name != self.key}
            for d in deliveries
        ]
        await flush(self.session)
        ids = (await _core(self.session, _DELIVERIES_INSERT, rows)).scalars().all()
        for delivery, values, delivery_id in zip(deliveries, rows, ids, strict=True):
            delivery.id = values["id"] = delivery_id
            self._seen[delivery_id] = (delivery, _snapshot(values))
        return deliveries

    async def get(self, delivery_id: int) -> Delivery | None:
        return await self._get(delivery_id)

    async def mark_sent(self, ids: list[int], moment: datetime) -> None:
        for chunk in _chunks(ids):
            await _core(self.session, _MARK_SENT, {"ids": chunk, "moment": moment})

    async def hold(self, ids: list[int], until: datetime) -> None:
        for chunk in _chunks(ids):
            await self.session.execute(
                update(_DELIVERIES)
                .where(_DELIVERIES.c.id.in_(chunk), _DELIVERIES.c.state == DeliveryState.PENDING)
                .values(due_at=until)
            )

    async def claim_due(
        self, moment: datetime, limit: int, platforms: Collection[str] | None = None
    ) -> list[Delivery]:
        served = (
            true()
            if platforms is None
            else or_(DeliveryRow.platform.is_(None), DeliveryRow.platform.in_(sorted(platforms)))
        )
        return await self._many(
            select(DeliveryRow)
            .where(DeliveryRow.state == DeliveryState.PENDING, DeliveryRow.due_at <= moment, served)
            .order_by(DeliveryRow.due_at, DeliveryRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )

    async def prune(self, settled_before: datetime) -> int:
        result = await self.session.execute(
            delete(DeliveryRow).where(
                DeliveryRow.state != DeliveryState.PENDING, DeliveryRow.settled_at < settled_before
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def forget(self, ticket_numbers: list[int]) -> int:
        gone = 0
        for chunk in _chunks(ticket_numbers):
            result = await self.session.execute(
                delete(DeliveryRow).where(DeliveryRow.ticket_number.in_(chunk))
            )
            gone += int(getattr(result, "rowcount", 0) or 0)
        return gone
