"""Storage on a real database, SQLite and PostgreSQL alike (see `database_url` in conftest.py).

First the schema, then each repository against the `bot.ports` contract, then the unit of work, then the
Desk service end to end on the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.script import ScriptDirectory
from fakes import Delivering
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import FakeClock
from bot.commands import Actor, AgentMention, Claim, IncomingMessage, Note, Reply, Resolve, Show, Transfer
from bot.desk import Desk
from bot.domain import (
    Agent,
    Checkin,
    Customer,
    Entry,
    EntryKind,
    EntryLine,
    Identity,
    Priority,
    Role,
    Status,
    Survey,
    Ticket,
    TicketKind,
    TimelineEvent,
)
from bot.messages import Conversation, CustomerMessage, InternalText, Outgoing, Person, StaffMessage
from bot.policy import load_policy
from bot.ports import Conflict
from bot.text import clean
from storage.engine import session_factory
from storage.migrate import alembic_config, current_revision, upgrade
from storage.models import Base, CustomerRow, EntryRow, TicketRow
from storage.repositories import _utc_moments
from storage.uow import SqlUnitOfWork

UowFactory = Callable[[], SqlUnitOfWork]

# Microseconds on purpose: they must survive the round trip.
T0 = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)
PLUS_0530 = timezone(timedelta(hours=5, minutes=30))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def assert_aware_utc(value: datetime | None, expected: datetime) -> None:
    assert value is not None
    assert value.tzinfo is not None, f"{value!r} came back naive"
    assert value.utcoffset() == timedelta(0), f"{value!r} is not in UTC"
    assert value == expected


async def add_customer(
    uow: SqlUnitOfWork,
    name: str = "Cleo Park",
    user_id: str = "U-cleo",
    platform: str = "slack",
    kind: TicketKind = TicketKind.EXTERNAL,
) -> Customer:
    return await uow.customers.add(
        Customer(display_name=name, kind=kind, created_at=T0),
        Identity(0, platform, user_id, name),
    )


def new_ticket(customer: Customer, **fields: object) -> Ticket:
    assert customer.id is not None
    values: dict[str, object] = {
        "kind": TicketKind.EXTERNAL,
        "queue": "general",
        "priority": Priority.NORMAL,
        "subject": "My invoice is wrong",
        "customer_id": customer.id,
        "customer_user_id": "U-cleo",
        "platform": "slack",
        "channel_id": "D-cleo",
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(fields)
    return Ticket(**values)  # type: ignore[arg-type]


async def seed_tickets(uow_factory: UowFactory, *specs: dict[str, object]) -> list[int]:
    """One customer and a ticket per spec (fields over the defaults); returns their numbers."""
    async with uow_factory() as uow:
        customer = await add_customer(uow)
        numbers = []
        for spec in specs:
            ticket = await uow.tickets.add(new_ticket(customer, **spec))
            assert ticket.number is not None
            numbers.append(ticket.number)
        await uow.commit()
    return numbers


# --- schema -----------------------------------------------------------------------------------------


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _columns_by_table(connection: Connection) -> dict[str, set[str]]:
    inspector = inspect(connection)
    return {name: {c["name"] for c in inspector.get_columns(name)} for name in inspector.get_table_names()}


async def test_migrations_create_every_table_and_report_head(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        columns = await connection.run_sync(_columns_by_table)

    expected = {name: {c.name for c in table.columns} for name, table in Base.metadata.tables.items()}
    assert set(columns) == set(expected) | {"alembic_version"}
    for name, names in expected.items():
        assert columns[name] == names, name
    assert await current_revision(engine) == _head()


async def test_upgrade_twice_is_harmless(engine: AsyncEngine, uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        customer = await add_customer(uow)
        await uow.tickets.add(new_ticket(customer))
        await uow.commit()

    await upgrade(engine)
    await upgrade(engine)

    assert await current_revision(engine) == _head()
    async with uow_factory() as uow:
        ticket = await uow.tickets.get(1)
        assert ticket is not None
        assert ticket.subject == "My invoice is wrong"
        assert await uow.customers.by_identity("slack", "U-cleo") is not None
        version_rows = (await uow.session.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert [tuple(row) for row in version_rows] == [(_head(),)]


# --- round trips --------------------------------------------------------------------------------------


async def test_customer_and_identity_round_trip(uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        customer = await uow.customers.add(
            Customer(
                display_name="Zoë Åsa 🌷", kind=TicketKind.INTERNAL, created_at=T0.astimezone(PLUS_0530)
            ),
            identity := Identity(0, "discord", "1234567890", "zoe#1"),
        )
        assert customer.id is not None
        assert identity.customer_id == customer.id
        await uow.commit()

    async with uow_factory() as uow:
        loaded = await uow.customers.get(customer.id)
        assert loaded == Customer("Zoë Åsa 🌷", TicketKind.INTERNAL, T0, id=customer.id)
        assert loaded.kind is TicketKind.INTERNAL
        assert_aware_utc(loaded.created_at, T0)
        assert await uow.customers.by_identity("discord", "1234567890") is loaded
        assert await uow.customers.by_identity("slack", "1234567890") is None
        assert await uow.customers.by_identity("discord", "999") is None
        assert await uow.customers.get(customer.id + 1) is None

        stored = await uow.customers.identity("discord", "1234567890")
        assert stored is not None
        assert (stored.customer_id, stored.platform, stored.external_id, stored.display_name) == (
            customer.id,
            "discord",
            "1234567890",
            "zoe#1",
        )
        assert stored.id is not None
        assert await uow.customers.identity("slack", "1234567890") is None


async def test_agent_round_trip(uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        agent = await uow.agents.add(Agent("slack", "U-ana", "Ana Lima"))
        assert agent.id is not None
        await uow.commit()

    async with uow_factory() as uow:
        loaded = await uow.agents.get(agent.id)
        assert loaded == Agent("slack", "U-ana", "Ana Lima", agent.id)
        assert await uow.agents.by_identity("slack", "U-ana") is loaded
        assert await uow.agents.by_identity("discord", "U-ana") is None
        assert await uow.agents.get(agent.id + 1) is None


async def test_ticket_round_trip_with_every_field(uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        customer = await add_customer(uow)
        agent = await uow.agents.add(Agent("slack", "U-ana", "Ana Lima"))
        first = await uow.tickets.add(new_ticket(customer))
        # Aware datetimes in another zone are stored as the same instant.
        ticket = await uow.tickets.add(
            Ticket(
                kind=TicketKind.INTERNAL,
                queue="billing",
                priority=Priority.URGENT,
                subject="Refund 💸 please",
                customer_id=customer.id,  # type: ignore[arg-type]
                customer_user_id="U-cleo",
                platform="slack",
                channel_id="C-help",
                created_at=at(0).astimezone(PLUS_0530),
                updated_at=at(90),
                status=Status.RESOLVED,
                thread_id="1712345678.000100",
                assignee_id=agent.id,
                previous_number=first.number,
                first_agent_reply_at=at(5),
                last_customer_message_at=at(4).astimezone(PLUS_0530),
                resolved_at=at(90),
                closed_at=at(100),
            )
        )
        assert ticket.number is not None
        await uow.commit()

    async with uow_factory() as uow:
        loaded = await uow.tickets.get(ticket.number)
        assert loaded is not None
        assert loaded == Ticket(
            kind=TicketKind.INTERNAL,
            queue="billing",
            priority=Priority.URGENT,
            subject="Refund 💸 please",
            customer_id=customer.id,  # type: ignore[arg-type]
            customer_user_id="U-cleo",
            platform="slack",
            channel_id="C-help",
            created_at=at(0),
            updated_at=at(90),
            status=Status.RESOLVED,
            thread_id="1712345678.000100",
            assignee_id=agent.id,
            previous_number=first.number,
            first_agent_reply_at=at(5),
            last_customer_message_at=at(4),
            resolved_at=at(90),
            closed_at=at(100),
            number=ticket.number,
        )
        assert (loaded.kind, loaded.priority, loaded.status) == (
            TicketKind.INTERNAL,
            Priority.URGENT,
            Status.RESOLVED,
        )
        assert type(loaded.status) is Status and type(loaded.priority) is Priority
        for name in (
            "created_at",
            "updated_at",
            "first_agent_reply_at",
            "last_customer_message_at",
            "resolved_at",
            "closed_at",
        ):
            assert_aware_utc(getattr(loaded, name), getattr(ticket, name))

        plain = await uow.tickets.get(first.number)  # type: ignore[arg-type]
        assert plain is not None
        assert plain.thread_id is plain.assignee_id is plain.previous_number is None
        assert plain.first_agent_reply_at is plain.resolved_at is plain.closed_at is None
        assert plain.status is Status.NEW


async def test_datetimes_are_stored_as_utc(engine: AsyncEngine, uow_factory: UowFactory) -> None:
    """A time given in +05:30 is stored as its UTC wall time, not just stripped of its zone."""
    async with uow_factory() as uow:
        await uow.customers.add(
            Customer("Cleo", TicketKind.EXTERNAL, datetime(2026, 3, 2, 15, 0, tzinfo=PLUS_0530)),
            Identity(0, "slack", "U-cleo", "Cleo"),
        )
        await uow.commit()

    query = {
        "sqlite": "SELECT created_at FROM customers",
        "postgresql": "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM customers",
    }[engine.dialect.name]
    async with engine.connect() as connection:
        raw = (await connection.execute(text(query))).scalar_one()
    assert str(raw).startswith("2026-03-02 09:30:00")

    async with uow_factory() as uow:
        customer = await uow.customers.by_identity("slack", "U-cleo")
        assert customer is not None
        assert_aware_utc(customer.created_at, datetime(2026, 3, 2, 9, 30, tzinfo=UTC))


async def test_naive_datetimes_are_refused(uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        with pytest.raises(StatementError, match="naive datetimes are not stored"):
            await uow.customers.add(
                Customer("Naive", TicketKind.EXTERNAL, datetime(2026, 3, 2, 9, 30)),
                Identity(0, "slack", "U-naive", "Naive"),
            )

    async with uow_factory() as uow:
        assert await uow.customers.by_identity("slack", "U-naive") is None


async def test_entries_round_trip_and_notes_come_back_as_internal_text(uow_factory: UowFactory) -> None:
    (number,) = await seed_tickets(uow_factory, {})
    written = [
        Entry(number, EntryKind.CUSTOMER, "Cleo Park", "It charged me twice", at(0), "slack", "m-1"),
        Entry(number, EntryKind.BOT, "Relaydesk", "Hi Cleo, I've opened ticket #1", at(0)),
        Entry(number, EntryKind.NOTE, "Ana Lima", InternalText("VIP; check Stripe first"), at(1)),
        Entry(number, EntryKind.REPLY, "Ana Lima", "Refund issued.", at(2)),
    ]
    async with uow_factory() as uow:
        for entry in written:
            await uow.entries.add(entry)
        await uow.commit()

    async with uow_factory() as uow:
        entries = await uow.entries.for_ticket(number)
        assert await uow.entries.for_ticket(number + 1) == []

    assert [e.kind for e in entries] == [e.kind for e in written]
    assert all(e.id is not None for e in entries)
    assert [e.id for e in entries] == sorted(e.id for e in entries)  # type: ignore[type-var]
    for got, want in zip(entries, written, strict=True):
        assert (got.ticket_number, got.author_name, got.platform, got.external_id) == (
            want.ticket_number,
            want.author_name,
            want.platform,
            want.external_id,
        )
        assert_aware_utc(got.created_at, want.created_at)

    note = entries[2]
    assert isinstance(note.body, InternalText)
    assert note.body.hidden == "VIP; check Stripe first"
    with pytest.raises(TypeError):
        str(note.body)


async def test_entry_lines_for_packets_are_the_entries_but_the_bots_as_read_back(
    uow_factory: UowFactory,
) -> None:
    """The light lines a packet reads are what `for_ticket` gives (kinds, authors, bodies, aware UTC
    moments, moods), the bot's own messages left out, in order."""
    (number,) = await seed_tickets(uow_factory, {})
    east = timezone(timedelta(hours=5, minutes=30))
    written = [
        Entry(
            number, EntryKind.CUSTOMER, "Cleo Park", "It charged me twice", at(0), "slack", "m-1", mood=-0.5
        ),
        Entry(number, EntryKind.BOT, "Relaydesk", "Hi Cleo, I've opened ticket #1", at(0)),
        Entry(
            number,
            EntryKind.NOTE,
            "Ana Lima",
            InternalText("VIP; check Stripe first"),
            at(1).astimezone(east),
        ),
        Entry(number, EntryKind.REPLY, "Ana Lima", "Refund issued.", at(2) + timedelta(microseconds=123456)),
        Entry(number, EntryKind.CUSTOMER, "Cleo Park", "Thanks!", at(3) + timedelta(microseconds=7)),
    ]
    async with uow_factory() as uow:
        for entry in written:
            await uow.entries.add(entry)
        await uow.commit()

    async with uow_factory() as uow:
        entries = await uow.entries.for_ticket(number)
        lines = await uow.entries.lines_for_ticket(number)
        assert await uow.entries.lines_for_ticket(number + 1) == []

    expected = [
        EntryLine(e.kind, e.author_name, e.body, e.created_at, e.mood)
        for e in entries
        if e.kind is not EntryKind.BOT
    ]
    assert lines == expected
    assert [line.kind for line in lines] == [
        EntryKind.CUSTOMER,
        EntryKind.NOTE,
        EntryKind.REPLY,
        EntryKind.CUSTOMER,
    ]
    assert all(type(line.kind) is EntryKind for line in lines)
    for line, want in zip(lines, [written[0], *written[2:]], strict=True):
        assert_aware_utc(line.created_at, want.created_at)
    assert isinstance(lines[1].body, InternalText)
    assert lines[1].body.hidden == "VIP; check Stripe first"
    for entry in (entries[0], entries[1], entries[3]):
        assert type(entry.body) is str
    assert [entries[0].body, entries[1].body, entries[3].body] == [
        "It charged me twice",
        "Hi Cleo, I've opened ticket #1",
        "Refund issued.",
    ]


async def test_timeline_detail_json_round_trips(uow_factory: UowFactory) -> None:
    (number,) = await seed_tickets(uow_factory, {})
    detail = {
        "old": "new",
        "new": "open",
        "reason": "café ☕ «quoted» — عربى",
        "none": None,
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "nested": {"list": [1, "two", None], "empty": {}},
    }
    async with uow_factory() as uow:
        await uow.timeline.add(
            TimelineEvent(number, "status", "Ana Lima", at(1).astimezone(PLUS_0530), detail)
        )
        await uow.timeline.add(TimelineEvent(number, "claimed", "Ana Lima", at(0)))
        await uow.commit()

    async with uow_factory() as uow:
        events = await uow.timeline.for_ticket(number)
        assert await uow.timeline.for_ticket(number + 1) == []

    assert [(e.ticket_number, e.action, e.actor_name) for e in events] == [
        (number, "status", "Ana Lima"),
        (number, "claimed", "Ana Lima"),
    ]
    assert events[0].detail == detail
    assert events[1].detail == {}
    assert_aware_utc(events[0].at, at(1))
    assert_aware_utc(events[1].at, at(0))
    assert events[0].id is not None and events[1].id is not None and events[0].id < events[1].id


# --- numbering, commit and rollback ---------------------------------------------------------------------


async def test_ticket_numbers_count_1_2_3_per_deployment(uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        cleo = await add_customer(uow)
        dan = await add_customer(uow, name="Dan Wu", user_id="U-dan")
        first = await uow.tickets.add(new_ticket(cleo))
        assert first.number == 1  # numbered on add, before the commit: entries need it
        await uow.commit()

    async with uow_factory() as uow:
        second = await uow.tickets.add(new_ticket(dan, customer_user_id="U-dan"))
        third = await uow.tickets.add(new_ticket(cleo, previous_number=1))
        await uow.commit()
    assert (second.number, third.number) == (2, 3)

    async with uow_factory() as uow:
        owners = [(await uow.tickets.get(n)) for n in (1, 2, 3)]
        assert [t.customer_id if t else None for t in owners] == [cleo.id, dan.id, cleo.id]
        assert owners[2] is not None and owners[2].previous_number == 1
        assert await uow.tickets.get(4) is None


async def test_changes_to_loaded_objects_are_written_on_commit(uow_factory: UowFactory) -> None:
    (number,) = await seed_tickets(uow_factory, {"thread_id": "T1"})
    async with uow_factory() as uow:
        agent = await uow.agents.add(Agent("slack", "U-ana", "Ana"))
        await uow.commit()

    async with uow_factory() as uow:
        ticket = await uow.tickets.by_thread("slack", "D-cleo", "T1")  # loaded by a query, not by get
        assert ticket is not None
        ticket.assign(agent.id, at(5))
        ticket.priority = Priority.HIGH
        ticket.queue = "billing"
        ticket.move_to(Status.RESOLVED, at(6).astimezone(PLUS_0530))
        customer = await uow.customers.by_identity("slack", "U-cleo")
        assert customer is not None
        customer.display_name = "Cleo P."
        loaded_agent = await uow.agents.find("slack", "ana")
        assert loaded_agent is not None
        loaded_agent.display_name = "Ana Lima"
        await uow.commit()

    async with uow_factory() as uow:
        ticket = await uow.tickets.get(number)
        assert ticket is not None
        assert (ticket.assignee_id, ticket.priority, ticket.queue, ticket.status) == (
            agent.id,
            Priority.HIGH,
            "billing",
            Status.RESOLVED,
        )
        assert_aware_utc(ticket.resolved_at, at(6))
        assert_aware_utc(ticket.updated_at, at(6))
        customer = await uow.customers.get(ticket.customer_id)
        assert customer is not None and customer.display_name == "Cleo P."
        found = await uow.agents.get(agent.id)  # type: ignore[arg-type]
        assert found is not None and found.display_name == "Ana Lima"


@pytest.mark.parametrize("ending", ["no commit", "rollback", "exception"])
async def test_changes_without_commit_are_discarded(uow_factory: UowFactory, ending: str) -> None:
    (number,) = await seed_tickets(uow_factory, {})

    class Boom(Exception):
        pass

    with pytest.raises(Boom) if ending == "exception" else nullcontext():
        async with uow_factory() as uow:
            ticket = await uow.tickets.get(number)
            assert ticket is not None
            ticket.priority = Priority.URGENT
            ticket.move_to(Status.ON_HOLD, at(3))
            customer = await uow.customers.get(ticket.customer_id)
            assert customer is not None
            customer.display_name = "Changed"
            await uow.agents.add(Agent("slack", "U-ana", "Ana"))
            extra = await uow.tickets.add(new_ticket(customer))
            await uow.entries.add(Entry(number, EntryKind.CUSTOMER, "Cleo", "hello", at(3), "slack", "m-9"))
            await uow.timeline.add(TimelineEvent(number, "status", "Ana", at(3), {"new": "on_hold"}))
            assert extra.number == number + 1
            if ending == "rollback":
                await uow.rollback()
            elif ending == "exception":
                raise Boom

    async with uow_factory() as uow:
        ticket = await uow.tickets.get(number)
        assert ticket is not None
        assert (ticket.priority, ticket.status, ticket.updated_at) == (Priority.NORMAL, Status.NEW, T0)
        customer = await uow.customers.get(ticket.customer_id)
        assert customer is not None and customer.display_name == "Cleo Park"
        assert await uow.tickets.get(number + 1) is None
        assert await uow.agents.by_identity("slack", "U-ana") is None
        assert await uow.entries.for_ticket(number) == []
        assert not await uow.entries.seen("slack", "m-9")
        assert await uow.timeline.for_ticket(number) == []


async def test_one_object_per_row_within_a_unit_of_work(uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        agent = await uow.agents.add(Agent("slack", "U-ana", "Ana Lima"))
        await uow.commit()
    (number, resolved) = await seed_tickets(
        uow_factory,
        {"thread_id": "T1"},
        {"status": Status.RESOLVED, "resolved_at": at(0), "assignee_id": agent.id},
    )

    async with uow_factory() as uow:
        ticket = await uow.tickets.get(number)
        assert ticket is not None
        ticket.subject = "changed in memory"  # later loads must hand back this very object
        assert await uow.tickets.get(number) is ticket
        assert await uow.tickets.by_thread("slack", "D-cleo", "T1") is ticket
        assert (await uow.tickets.unassigned(None, 10))[0] is ticket
        customer = await uow.customers.get(ticket.customer_id)
        assert customer is not None
        assert await uow.customers.by_identity("slack", "U-cleo") is customer
        assert await uow.customers.get(ticket.customer_id) is customer

        closing = (await uow.tickets.resolved_before(at(1), 10))[0]
        assert closing.number == resolved
        assert await uow.tickets.get(resolved) is closing

        found = await uow.agents.by_identity("slack", "U-ana")
        assert found is not None
        assert await uow.agents.get(agent.id) is found  # type: ignore[arg-type]
        assert await uow.agents.find("slack", "ANA LIMA") is found
        assert await uow.agents.find("slack", "U-ana") is found

    async with uow_factory() as other:
        fresh = await other.tickets.get(number)
        assert fresh is not None and fresh is not ticket
        assert fresh.subject == "My invoice is wrong"


# --- entries: seen and the unique platform message -----------------------------------------------------


async def test_seen_reports_recorded_platform_messages(uow_factory: UowFactory) -> None:
    (number,) = await seed_tickets(uow_factory, {})
    async with uow_factory() as uow:
        assert not await uow.entries.seen("slack", "m-1")
        await uow.entries.add(Entry(number, EntryKind.CUSTOMER, "Cleo", "hi", at(0), "slack", "m-1"))
        await uow.commit()

    async with uow_factory() as uow:
        assert await uow.entries.seen("slack", "m-1")
        assert not await uow.entries.seen("discord", "m-1")
        assert not await uow.entries.seen("slack", "m-2")


async def test_same_platform_message_in_two_units_of_work_conflicts(uow_factory: UowFactory) -> None:
    (number,) = await seed_tickets(uow_factory, {})
    async with uow_factory() as uow:
        await uow.entries.add(Entry(number, EntryKind.CUSTOMER, "Cleo", "first", at(0), "slack", "m-1"))
        await uow.commit()

    async with uow_factory() as uow:
        ticket = await uow.tickets.get(number)
        assert ticket is not None
        ticket.customer_wrote(at(1))
        with pytest.raises(Conflict):  # at once, or at the latest when committing
            await uow.entries.add(Entry(number, EntryKind.CUSTOMER, "Cleo", "again", at(1), "slack", "m-1"))
            await uow.commit()

    async with uow_factory() as uow:
        entries = await uow.entries.for_ticket(number)
        assert [(e.body, e.external_id) for e in entries] == [("first", "m-1")]
        ticket = await uow.tickets.get(number)
        assert ticket is not None and ticket.last_customer_message_at is None  # the loser wrote nothing


async def test_interleaved_units_of_work_recording_one_message_conflict(
    uow_factory: UowFactory, database_url: str
) -> None:
    """Two deliveries both checked `seen` before either committed: one records the message, the other
    loses (its insert waits for the winner's transaction, then breaks the unique rule). (On SQLite a
    transaction takes the write lock when it begins, so the second one waits instead, and this
    interleaving cannot happen: see the next test.)"""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite serialises writers at BEGIN")
    (number,) = await seed_tickets(uow_factory, {})
    both_checked = asyncio.Barrier(2)

    async def deliver() -> None:
        async with uow_factory() as uow:
            assert not await uow.entries.seen("slack", "m-1")
            await both_checked.wait()
            await uow.entries.add(Entry(number, EntryKind.CUSTOMER, "Cleo", "hi", at(0), "slack", "m-1"))
            await uow.commit()

    outcomes = await asyncio.wait_for(asyncio.gather(deliver(), deliver(), return_exceptions=True), 30)
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["Conflict", "NoneType"], outcomes

    async with uow_factory() as uow:
        assert len(await uow.entries.for_ticket(number)) == 1


async def test_on_sqlite_a_second_writer_waits_for_the_first_and_then_sees_its_work(
    uow_factory: UowFactory, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's write lock")
    (number,) = await seed_tickets(uow_factory, {})
    first_in = asyncio.Event()

    async def first() -> None:
        async with uow_factory() as uow:
            assert not await uow.entries.seen("slack", "m-1")  # its transaction has begun
            await uow.entries.add(Entry(number, EntryKind.CUSTOMER, "Cleo", "hi", at(0), "slack", "m-1"))
            first_in.set()
            await asyncio.sleep(0.2)
            await uow.commit()

    async def second() -> bool:
        await first_in.wait()
        async with uow_factory() as uow:
            return await uow.entries.seen("slack", "m-1")

    _, seen = await asyncio.gather(first(), second())
    assert seen, "the second transaction began after the first committed"


async def test_same_message_id_on_another_platform_and_null_ids_may_repeat(uow_factory: UowFactory) -> None:
    (number,) = await seed_tickets(uow_factory, {})
    for platform, external_id in [
        ("slack", "m-1"),
        ("discord", "m-1"),
        ("slack", "m-2"),
        (None, None),
        (None, None),
        ("slack", None),
        ("slack", None),
    ]:
        async with uow_factory() as uow:
            await uow.entries.add(
                Entry(number, EntryKind.BOT, "Relaydesk", "x", at(0), platform, external_id)
            )
            await uow.commit()

    async with uow_factory() as uow:
        ids = [(e.platform, e.external_id) for e in await uow.entries.for_ticket(number)]
    assert ids.count((None, None)) == 2
    assert ids.count(("slack", None)) == 2
    assert len(ids) == 7


# --- ticket queries -----------------------------------------------------------------------------------


async def test_unassigned_puts_urgent_first_and_skips_claimed_resolved_and_closed(
    uow_factory: UowFactory,
) -> None:
    async with uow_factory() as uow:
        agent = await uow.agents.add(Agent("slack", "U-ana", "Ana"))
        await uow.commit()
    numbers = await seed_tickets(
        uow_factory,
        {"priority": Priority.LOW},  # 1
        {"priority": Priority.URGENT, "status": Status.OPEN},  # 2
        {"priority": Priority.NORMAL, "status": Status.WAITING_ON_CUSTOMER},  # 3
        {"priority": Priority.HIGH, "status": Status.ON_HOLD},  # 4
        {"priority": Priority.URGENT},  # 5
        {"priority": Priority.URGENT, "status": Status.RESOLVED, "resolved_at": at(0)},  # 6
        {"priority": Priority.URGENT, "status": Status.CLOSED, "closed_at": at(0)},  # 7
        {"priority": Priority.URGENT, "status": Status.OPEN, "assignee_id": agent.id},  # 8
        {"priority": Priority.HIGH},  # 9
    )
    assert numbers == list(range(1, 10))

    async with uow_factory() as uow:
        assert [t.number for t in await uow.tickets.unassigned(None, 25)] == [2, 5, 4, 9, 3, 1]
        assert [t.number for t in await uow.tickets.unassigned(None, 3)] == [2, 5, 4]


async def test_unassigned_filters_by_queue(uow_factory: UowFactory) -> None:
    await seed_tickets(
        uow_factory,
        {"queue": "general"},
        {"queue": "billing", "priority": Priority.LOW},
        {"queue": "billing", "priority": Priority.HIGH},
        {"queue": "billing", "status": Status.CLOSED, "closed_at": at(0)},
    )
    async with uow_factory() as uow:
        assert [t.number for t in await uow.tickets.unassigned("billing", 25)] == [3, 2]
        assert [t.number for t in await uow.tickets.unassigned("general", 25)] == [1]
        assert await uow.tickets.unassigned("complaints", 25) == []
        assert [t.number for t in await uow.tickets.unassigned(None, 25)] == [3, 1, 2]


async def test_assigned_to(uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        ana = await uow.agents.add(Agent("slack", "U-ana", "Ana"))
        ben = await uow.agents.add(Agent("slack", "U-ben", "Ben"))
        await uow.commit()
    await seed_tickets(
        uow_factory,
        {"assignee_id": ana.id, "status": Status.OPEN},  # 1
        {"assignee_id": ben.id, "status": Status.OPEN, "priority": Priority.URGENT},  # 2
        {"assignee_id": ana.id, "status": Status.ON_HOLD, "priority": Priority.URGENT},  # 3
        {"assignee_id": ana.id, "status": Status.RESOLVED, "resolved_at": at(0)},  # 4
        {"assignee_id": ana.id, "status": Status.CLOSED, "closed_at": at(0)},  # 5
        {"assignee_id": ana.id, "status": Status.WAITING_ON_CUSTOMER, "priority": Priority.LOW},  # 6
        {},  # 7, unassigned
        {"assignee_id": ana.id, "status": Status.OPEN},  # 8
    )
    async with uow_factory() as uow:
        assert [t.number for t in await uow.tickets.assigned_to(ana.id, 25)] == [3, 1, 8, 6]  # type: ignore[arg-type]
        assert [t.number for t in await uow.tickets.assigned_to(ana.id, 2)] == [3, 1]  # type: ignore[arg-type]
        assert [t.number for t in await uow.tickets.assigned_to(ben.id, 25)] == [2]  # type: ignore[arg-type]
        assert await uow.tickets.assigned_to(ben.id + 1, 25) == []  # type: ignore[operator]


async def test_latest_in_ignores_threaded_tickets(uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        cleo = await add_customer(uow)
        dan = await add_customer(uow, name="Dan", user_id="U-dan")
        for spec in (
            {"channel_id": "D-cleo"},  # 1
            {"channel_id": "D-cleo", "status": Status.CLOSED, "closed_at": at(0)},  # 2
            {"channel_id": "D-cleo", "thread_id": "T-9"},  # 3: threaded, newer
            {"channel_id": "C-other"},  # 4: another channel
            {"channel_id": "D-cleo", "platform": "discord"},  # 5: another platform
        ):
            await uow.tickets.add(new_ticket(cleo, **spec))
        await uow.tickets.add(new_ticket(dan, channel_id="D-cleo", customer_user_id="U-dan"))  # 6
        await uow.commit()

    async with uow_factory() as uow:
        latest = await uow.tickets.latest_in(cleo.id, "slack", "D-cleo", TicketKind.EXTERNAL)  # type: ignore[arg-type]
        assert latest is not None and latest.number == 2  # the newest unthreaded one, closed or not
        other = await uow.tickets.latest_in(cleo.id, "slack", "C-other", TicketKind.EXTERNAL)  # type: ignore[arg-type]
        assert other is not None and other.number == 4
        on_discord = await uow.tickets.latest_in(cleo.id, "discord", "D-cleo", TicketKind.EXTERNAL)  # type: ignore[arg-type]
        assert on_discord is not None and on_discord.number == 5
        dans = await uow.tickets.latest_in(dan.id, "slack", "D-cleo", TicketKind.EXTERNAL)  # type: ignore[arg-type]
        assert dans is not None and dans.number == 6
        assert await uow.tickets.latest_in(cleo.id, "slack", "C-none", TicketKind.EXTERNAL) is None  # type: ignore[arg-type]

    async with uow_factory() as uow:
        only_threads = await add_customer(uow, name="Eve", user_id="U-eve")
        await uow.tickets.add(new_ticket(only_threads, channel_id="C-eve", thread_id="T-1"))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.tickets.latest_in(only_threads.id, "slack", "C-eve", TicketKind.EXTERNAL) is None  # type: ignore[arg-type]


async def test_by_thread(uow_factory: UowFactory) -> None:
    await seed_tickets(
        uow_factory,
        {"channel_id": "C-help", "thread_id": "T-1"},  # 1
        {"channel_id": "C-help", "thread_id": "T-2"},  # 2
        {"channel_id": "C-other", "thread_id": "T-1"},  # 3: same thread id, other channel
        {"channel_id": "C-help", "thread_id": "T-1", "platform": "discord"},  # 4: other platform
        {"channel_id": "C-help"},  # 5: no thread
    )
    async with uow_factory() as uow:

        async def number(platform: str, channel: str, thread: str) -> int | None:
            found = await uow.tickets.by_thread(platform, channel, thread)
            return found.number if found else None

        assert await number("slack", "C-help", "T-1") == 1
        assert await number("slack", "C-help", "T-2") == 2
        assert await number("slack", "C-other", "T-1") == 3
        assert await number("discord", "C-help", "T-1") == 4
        assert await number("slack", "C-help", "T-3") is None
        assert await number("discord", "C-other", "T-1") is None


async def test_resolved_before(uow_factory: UowFactory) -> None:
    await seed_tickets(
        uow_factory,
        {"status": Status.RESOLVED, "resolved_at": at(30)},  # 1
        {"status": Status.RESOLVED, "resolved_at": at(10)},  # 2
        {"status": Status.RESOLVED, "resolved_at": at(60)},  # 3: exactly at the cutoff
        {"status": Status.RESOLVED, "resolved_at": at(61)},  # 4: after it
        {"status": Status.CLOSED, "resolved_at": at(0), "closed_at": at(5)},  # 5: already closed
        {"status": Status.OPEN, "resolved_at": at(0)},  # 6: reopened
        {"status": Status.RESOLVED, "resolved_at": at(20)},  # 7
    )
    async with uow_factory() as uow:
        assert [t.number for t in await uow.tickets.resolved_before(at(60), 200)] == [2, 7, 1, 3]
        assert [t.number for t in await uow.tickets.resolved_before(at(60), 2)] == [2, 7]
        # The same moment written in another zone selects the same tickets.
        assert [t.number for t in await uow.tickets.resolved_before(at(25).astimezone(PLUS_0530), 200)] == [
            2,
            7,
        ]
        assert await uow.tickets.resolved_before(at(5), 200) == []


async def test_count_for_customer(uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        cleo = await add_customer(uow)
        dan = await add_customer(uow, name="Dan", user_id="U-dan")
        eve = await add_customer(uow, name="Eve", user_id="U-eve")
        await uow.tickets.add(new_ticket(cleo))
        await uow.tickets.add(new_ticket(cleo, status=Status.CLOSED, closed_at=at(0)))
        await uow.tickets.add(new_ticket(cleo, thread_id="T-1"))
        await uow.tickets.add(new_ticket(dan))
        await uow.commit()

    async with uow_factory() as uow:
        assert await uow.tickets.count_for_customer(cleo.id) == 3  # type: ignore[arg-type]
        assert await uow.tickets.count_for_customer(dan.id) == 1  # type: ignore[arg-type]
        assert await uow.tickets.count_for_customer(eve.id) == 0  # type: ignore[arg-type]


# --- agents -------------------------------------------------------------------------------------------


async def test_find_agent_by_id_or_by_name_in_any_case(uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        ana = await uow.agents.add(Agent("slack", "U-ana", "Ana Lima"))
        ben = await uow.agents.add(Agent("slack", "U-ben", "Ben Okafor"))
        # A display name that is another agent's user id: the user id wins.
        tricky = await uow.agents.add(Agent("slack", "U-tricky", "U-ben"))
        twin = await uow.agents.add(Agent("slack", "U-ana2", "ana lima"))  # same name, later
        on_discord = await uow.agents.add(Agent("discord", "42", "Dora"))
        await uow.commit()

    async with uow_factory() as uow:

        async def found(platform: str, key: str) -> int | None:
            agent = await uow.agents.find(platform, key)
            return agent.id if agent else None

        assert await found("slack", "U-ana") == ana.id
        assert await found("slack", "U-ben") == ben.id
        assert await found("slack", "U-tricky") == tricky.id
        assert await found("slack", "U-ana2") == twin.id
        assert await found("slack", "Ben Okafor") == ben.id
        assert await found("slack", "ben okafor") == ben.id
        assert await found("slack", "BEN OKAFOR") == ben.id
        assert await found("slack", "ANA LIMA") == ana.id  # the first of two with that name
        assert await found("discord", "dora") == on_discord.id
        assert await found("discord", "42") == on_discord.id
        assert await found("slack", "dora") is None  # agents are per platform
        assert await found("discord", "ana lima") is None
        assert await found("slack", "u-ana") is None  # user ids are exact; no name is "u-ana"
        assert await found("slack", "Ben") is None  # whole names only
        assert await found("slack", "") is None


async def test_find_agent_by_non_ascii_name_in_any_case(
    uow_factory: UowFactory,
) -> None:
    async with uow_factory() as uow:
        zoe = await uow.agents.add(Agent("slack", "U-zoe", "Zoë Åsa"))
        await uow.commit()
    async with uow_factory() as uow:
        for key in ("Zoë Åsa", "zoë åsa", "ZOË ÅSA"):
            agent = await uow.agents.find("slack", key)
            assert agent is not None and agent.id == zoe.id, key


# --- reading one's own writes within a unit of work ---------------------------------------------------


async def test_customer_added_is_found_by_identity_in_the_same_unit_of_work(uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        customer = await add_customer(uow)
        assert await uow.customers.get(customer.id) is customer  # type: ignore[arg-type]
        assert await uow.customers.by_identity("slack", "U-cleo") is customer
        identity = await uow.customers.identity("slack", "U-cleo")
        assert identity is not None and identity.customer_id == customer.id


async def test_seen_counts_a_message_added_in_the_same_unit_of_work(uow_factory: UowFactory) -> None:
    (number,) = await seed_tickets(uow_factory, {})
    async with uow_factory() as uow:
        await uow.entries.add(Entry(number, EntryKind.CUSTOMER, "Cleo", "hi", at(0), "slack", "m-1"))
        assert await uow.entries.seen("slack", "m-1")


# --- the desk, end to end ---------------------------------------------------------------------------

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CLEO = Actor(Person("slack", "U-cleo", "Cleo Park"), Role.CUSTOMER)
ANA = Actor(Person("slack", "U-ana", "Ana Lima"), Role.AGENT)
BEN = Actor(Person("slack", "U-ben", "Ben Okafor"), Role.AGENT)
DM = Conversation("slack", "D-cleo")


def make_desk(uow_factory: UowFactory) -> tuple[Desk, FakeClock]:
    clock = FakeClock(START)
    return Delivering(Desk(uow_factory, clock, load_policy())), clock


def customer_texts(out: list[Outgoing]) -> list[str]:
    return [m.text for m in out if isinstance(m, CustomerMessage)]


async def count_rows(uow_factory: UowFactory, row: type, *where: object) -> int:
    async with uow_factory() as uow:
        statement = select(func.count()).select_from(row).where(*where)  # type: ignore[arg-type]
        return int(await uow.session.scalar(statement) or 0)


async def test_desk_ticket_lifecycle_on_the_database(uow_factory: UowFactory) -> None:
    desk, clock = make_desk(uow_factory)
    close_after = desk.policy.lifecycle.close_resolved_after

    out = await desk.receive(IncomingMessage(CLEO, "My invoice is wrong\nIt says 40, not 20", DM, "m-1"))
    assert any("ticket #1" in t for t in customer_texts(out))
    assert any(isinstance(m, StaffMessage) and m.card and m.card.number == 1 for m in out)

    clock.advance(timedelta(minutes=5))
    out = await desk.execute(ANA, Claim(1))
    assert any("Ana Lima is now looking after" in t for t in customer_texts(out))

    clock.advance(timedelta(minutes=1))
    await desk.execute(ANA, Note(1, "Duplicate charge in Stripe"))
    await desk.register_agents([BEN.person])

    clock.advance(timedelta(minutes=1))
    out = await desk.execute(ANA, Transfer(1, AgentMention("ben okafor"), "billing expert"))
    assert any("Ben Okafor is now looking after" in t for t in customer_texts(out))

    clock.advance(timedelta(minutes=10))
    replied_at = clock.now()
    out = await desk.execute(BEN, Reply(1, "Refunded the duplicate 20."))
    assert customer_texts(out) == ["Ben Okafor: Refunded the duplicate 20."]

    clock.advance(timedelta(minutes=1))
    resolved_at = clock.now()
    await desk.execute(BEN, Resolve(1, "refund issued"))

    clock.advance(close_after - timedelta(seconds=1))
    said = await desk.run_due_work()
    assert not [m for m in said if isinstance(m, CustomerMessage) and m.audience.ticket_number == 1]
    async with uow_factory() as uow:
        ticket = await uow.tickets.get(1)
        assert ticket is not None and ticket.status is Status.RESOLVED

    clock.advance(timedelta(seconds=1))
    await desk.run_due_work()
    closed_at = clock.now()

    async with uow_factory() as uow:
        ticket = await uow.tickets.get(1)
        assert ticket is not None
        ben = await uow.agents.by_identity("slack", "U-ben")
        ana = await uow.agents.by_identity("slack", "U-ana")
        assert ben is not None and ana is not None
        assert (ticket.status, ticket.assignee_id, ticket.subject, ticket.queue) == (
            Status.CLOSED,
            ben.id,
            "My invoice is wrong",
            "general",
        )
        assert_aware_utc(ticket.created_at, START)
        assert_aware_utc(ticket.last_customer_message_at, START)
        assert_aware_utc(ticket.first_agent_reply_at, replied_at)
        assert_aware_utc(ticket.resolved_at, resolved_at)
        assert_aware_utc(ticket.closed_at, closed_at)
        assert_aware_utc(ticket.updated_at, closed_at)

        entries = await uow.entries.for_ticket(1)
        assert [(e.kind, e.author_name) for e in entries] == [
            (EntryKind.CUSTOMER, "Cleo Park"),
            (EntryKind.BOT, "Relaydesk"),  # greeting
            (EntryKind.BOT, "Relaydesk"),  # claimed
            (EntryKind.NOTE, "Ana Lima"),
            (EntryKind.BOT, "Relaydesk"),  # now with Ben
            (EntryKind.REPLY, "Ben Okafor"),
            (EntryKind.NOTE, "Ben Okafor"),  # the resolution summary
            (EntryKind.BOT, "Relaydesk"),  # resolved
            (EntryKind.BOT, "Relaydesk"),  # the satisfaction survey
        ]
        assert entries[0].body == "My invoice is wrong\nIt says 40, not 20"
        assert (entries[0].platform, entries[0].external_id) == ("slack", "m-1")
        assert isinstance(entries[3].body, InternalText)
        assert entries[3].body.hidden == "Duplicate charge in Stripe"
        assert entries[5].body == "Refunded the duplicate 20."

        timeline = await uow.timeline.for_ticket(1)
        assert [(e.action, e.actor_name) for e in timeline] == [
            ("created", "Cleo Park"),
            ("claimed", "Ana Lima"),
            ("status", "Ana Lima"),  # new -> open on claim
            ("transferred", "Ana Lima"),
            ("claimed", "Ben Okafor"),  # the receiving agent's claim
            ("status", "Ben Okafor"),
            ("status", "Relaydesk"),
        ]
        assert timeline[2].detail == {"old": "new", "new": "open"}
        assert timeline[3].detail == {
            "from_agent": "Ana Lima",
            "to_agent": "Ben Okafor",
            "reason": "billing expert",
        }
        assert timeline[4].detail == {"agent": "Ben Okafor", "handed_by": "Ana Lima"}
        assert timeline[5].detail == {"old": "open", "new": "resolved"}
        assert entries[6].body == InternalText("Resolved: refund issued")
        assert timeline[6].detail == {"old": "resolved", "new": "closed"}
        assert_aware_utc(timeline[6].at, closed_at)

    # The ticket is closed: Cleo's next message opens a new ticket that follows it.
    clock.advance(timedelta(hours=1))
    out = await desk.receive(IncomingMessage(CLEO, "Now the receipt is missing", DM, "m-2"))
    assert any("#2" in t and "#1" in t for t in customer_texts(out))
    async with uow_factory() as uow:
        follow_up = await uow.tickets.get(2)
        assert follow_up is not None
        assert (follow_up.previous_number, follow_up.status, follow_up.assignee_id) == (1, Status.NEW, None)
        customer = await uow.customers.by_identity("slack", "U-cleo")
        assert customer is not None and await uow.tickets.count_for_customer(customer.id) == 2  # type: ignore[arg-type]


async def test_redelivered_message_is_recorded_once(uow_factory: UowFactory) -> None:
    desk, clock = make_desk(uow_factory)
    message = IncomingMessage(CLEO, "Hello, my order is late", DM, "m-1")
    assert await desk.receive(message) != []
    clock.advance(timedelta(seconds=30))
    assert await desk.receive(message) == []
    follow = IncomingMessage(CLEO, "Order 1234", DM, "m-2")
    assert await desk.receive(follow) != []
    assert await desk.receive(follow) == []

    async with uow_factory() as uow:
        entries = await uow.entries.for_ticket(1)
        assert [(e.kind, e.external_id) for e in entries if e.kind is EntryKind.CUSTOMER] == [
            (EntryKind.CUSTOMER, "m-1"),
            (EntryKind.CUSTOMER, "m-2"),
        ]
        assert await uow.tickets.get(2) is None
    assert await count_rows(uow_factory, CustomerRow) == 1


async def test_concurrent_deliveries_of_one_message_are_recorded_once(uow_factory: UowFactory) -> None:
    desk, clock = make_desk(uow_factory)

    # A new customer: both deliveries would open a ticket and create the customer.
    first = IncomingMessage(CLEO, "Is anyone there?", DM, "m-1")
    results = await asyncio.gather(desk.receive(first), desk.receive(first))
    assert sorted(len(r) > 0 for r in results) == [False, True]
    assert await count_rows(uow_factory, CustomerRow) == 1
    assert await count_rows(uow_factory, TicketRow) == 1
    assert await count_rows(uow_factory, EntryRow, EntryRow.external_id == "m-1") == 1

    # An existing ticket: both deliveries would add to it.
    clock.advance(timedelta(minutes=2))
    second = IncomingMessage(CLEO, "Hello??", DM, "m-2")
    results = await asyncio.gather(desk.receive(second), desk.receive(second))
    assert sorted(len(r) > 0 for r in results) == [False, True]

    async with uow_factory() as uow:
        customer = await uow.customers.by_identity("slack", "U-cleo")
        assert customer is not None
        ticket = await uow.tickets.latest_in(customer.id, "slack", "D-cleo", TicketKind.EXTERNAL)  # type: ignore[arg-type]
        assert ticket is not None
        said = [(e.external_id, e.body) for e in await uow.entries.for_ticket(ticket.number)]  # type: ignore[arg-type]
        assert said.count(("m-1", "Is anyone there?")) == 1
        assert said.count(("m-2", "Hello??")) == 1
        assert_aware_utc(ticket.last_customer_message_at, clock.now())
    assert await count_rows(uow_factory, TicketRow) == 1
    assert await count_rows(uow_factory, EntryRow, EntryRow.external_id.is_not(None)) == 2


AWKWARD = "Hi\x00 there 👋🏽👨‍👩‍👧 — مرحبا بالعالم · שלום עולם\r\nend\x00"
LONG = ("🙂 long line שלום " * 6250)[:100_000]


async def test_awkward_and_long_text_is_stored_and_read_back(uow_factory: UowFactory) -> None:
    assert len(LONG) == 100_000
    desk, _ = make_desk(uow_factory)
    rtl_customer = Actor(Person("slack", "U-rtl", "نور 🌙 שרה"), Role.CUSTOMER)

    await desk.receive(IncomingMessage(rtl_customer, AWKWARD, DM, "m-1"))
    await desk.receive(IncomingMessage(rtl_customer, LONG + "\x00", DM, "m-2"))
    await desk.execute(ANA, Reply(1, AWKWARD))
    await desk.execute(ANA, Note(1, LONG))
    await desk.execute(ANA, Resolve(1, "done ✅ \x00 تم"))
    shown = await desk.execute(ANA, Show(1))
    assert shown and isinstance(shown[0], StaffMessage)

    async with uow_factory() as uow:
        customer = await uow.customers.by_identity("slack", "U-rtl")
        assert customer is not None and customer.display_name == "نور 🌙 שרה"
        ticket = await uow.tickets.get(1)
        assert ticket is not None
        assert ticket.subject == "Hi there 👋🏽👨‍👩‍👧 — مرحبا بالعالم · שלום עולם"
        entries = await uow.entries.for_ticket(1)
        spoken = [e for e in entries if e.kind is not EntryKind.BOT]
        assert [e.kind for e in spoken] == [
            EntryKind.CUSTOMER,
            EntryKind.CUSTOMER,
            EntryKind.REPLY,
            EntryKind.NOTE,
            EntryKind.NOTE,
        ]
        assert spoken[0].body == clean(AWKWARD) == "Hi there 👋🏽👨‍👩‍👧 — مرحبا بالعالم · שלום עולם\nend"
        assert spoken[1].body == LONG
        assert spoken[2].body == clean(AWKWARD)
        assert isinstance(spoken[3].body, InternalText) and spoken[3].body.hidden == LONG
        assert not any(
            "\x00" in (e.body.hidden if isinstance(e.body, InternalText) else e.body) for e in entries
        )
        assert spoken[4].body == InternalText("Resolved: done ✅  تم")


async def test_display_name_with_nul_does_not_break_intake(
    uow_factory: UowFactory,
) -> None:
    desk, _ = make_desk(uow_factory)
    person = Actor(Person("slack", "U-nul", "Nul\x00Name"), Role.CUSTOMER)
    out = await desk.receive(IncomingMessage(person, "hello", DM, "m-1"))
    assert out != []
    async with uow_factory() as uow:
        customer = await uow.customers.by_identity("slack", "U-nul")
        assert customer is not None
        assert customer.display_name.replace("\x00", "") == "NulName"


# --- races between units of work ----------------------------------------------------------------------


async def test_two_agents_claiming_at_once_one_wins_and_the_other_is_told(uow_factory: UowFactory) -> None:
    """Both read the ticket unclaimed; the version check makes the second writer run again and see it."""
    desk, _ = make_desk(uow_factory)
    await desk.receive(IncomingMessage(CLEO, "My card was charged twice", DM, "m-1"))
    outs = await asyncio.gather(desk.command(ANA, "/ticket claim #1"), desk.command(BEN, "/ticket claim #1"))
    told = [m.text for out in outs for m in out if isinstance(m, CustomerMessage)]
    assert len(told) == 1, told
    refused = [
        m.text for out in outs for m in out if isinstance(m, StaffMessage) and "already with" in m.text
    ]
    assert len(refused) == 1
    async with uow_factory() as uow:
        ticket = await uow.tickets.get(1)
        assert ticket is not None and ticket.assignee_id is not None
        claims = [e for e in await uow.timeline.for_ticket(1) if e.action == "claimed"]
        assert len(claims) == 1


async def test_a_closed_ticket_is_never_reopened_by_a_message_racing_the_close(
    uow_factory: UowFactory,
) -> None:
    desk, clock = make_desk(uow_factory)
    await desk.receive(IncomingMessage(CLEO, "Printer jammed", DM, "m-1"))
    await desk.command(ANA, "/ticket claim #1")
    await desk.command(ANA, "/ticket resolve #1")
    clock.advance(timedelta(days=8))
    await asyncio.gather(
        desk.run_due_work(), desk.receive(IncomingMessage(CLEO, "It jammed again", DM, "m-2"))
    )
    async with uow_factory() as uow:
        first = await uow.tickets.get(1)
        assert first is not None
        assert first.status in (Status.CLOSED, Status.OPEN)
        assert not (first.status is Status.OPEN and first.closed_at is not None)
        if first.status is Status.CLOSED:
            second = await uow.tickets.get(2)
            assert second is not None and second.previous_number == 1


async def test_sqlite_units_of_work_take_turns_in_the_order_they_asked(sqlite_engine: AsyncEngine) -> None:
    """SQLite has one connection. A task that runs units of work back to back must not take it again
    ahead of one already waiting (SQLAlchemy's pool hands a returned connection to whoever asks first):
    the waiting one goes next, not after the busy task's last."""
    sessions = session_factory(sqlite_engine)
    finished: list[str] = []

    async def busy() -> None:
        for n in range(30):
            async with SqlUnitOfWork(sessions) as uow:
                await uow.session.execute(text("SELECT 1"))
                if n == 0:
                    await asyncio.sleep(0.01)  # the other task asks while this one holds the connection
            finished.append(f"busy {n}")

    async def waiting() -> None:
        await asyncio.sleep(0.001)
        async with SqlUnitOfWork(sessions) as uow:
            await uow.session.execute(text("SELECT 1"))
        finished.append("waiting")

    await asyncio.gather(busy(), waiting())
    assert finished.index("waiting") <= 2, finished[:5]


def test_driver_moments_are_made_aware_utc_as_the_column_type_makes_them() -> None:
    """What `lines_for_ticket` does with the driver's values: SQLite's stored text (naive UTC), an aware
    PostgreSQL value in any zone, and anything unexpected taken the slow, careful way."""
    east = timezone(timedelta(hours=5, minutes=30))
    naive = ["2026-03-01 09:00:00.000000", "2026-03-01 09:00:00.000007", "2026-03-01 09:00:00"]
    assert _utc_moments(naive) == [datetime.fromisoformat(v).replace(tzinfo=UTC) for v in naive]
    assert all(m.tzinfo is UTC for m in _utc_moments(naive))
    offset = ["2026-03-01 09:00:00.000000", "2026-03-01 14:30:00+05:30"]
    assert _utc_moments(offset) == [datetime(2026, 3, 1, 9, tzinfo=UTC)] * 2
    aware = [datetime(2026, 3, 1, 14, 30, tzinfo=east), datetime(2026, 3, 1, 9, tzinfo=UTC)]
    assert _utc_moments(aware) == [datetime(2026, 3, 1, 9, tzinfo=UTC)] * 2
    assert all(m.utcoffset() == timedelta(0) for m in _utc_moments(aware))
    mixed = [datetime(2026, 3, 1, 9, tzinfo=UTC), datetime(2026, 3, 1, 9)]  # a naive one: UTC, not local
    assert _utc_moments(mixed) == [datetime(2026, 3, 1, 9, tzinfo=UTC)] * 2


async def test_surveys_of_many_tickets_come_by_ticket_then_cycle(uow_factory: UowFactory) -> None:
    """One query for a profile's ratings: each ticket's surveys in the order `for_ticket` gives them."""
    first, second, third = await seed_tickets(uow_factory, {}, {}, {})
    async with uow_factory() as uow:
        customer = (await uow.tickets.get(first)).customer_id  # type: ignore[union-attr]
        for number, cycle, rating in [(second, 2, 4), (first, 1, 5), (second, 1, None), (third, 1, 2)]:
            sent = at(cycle)
            survey = Survey(number, customer, cycle, sent, sent + timedelta(days=3), rating=rating)
            await uow.surveys.add(survey)
        await uow.commit()

    async with uow_factory() as uow:
        found = await uow.surveys.for_tickets([second, first])
        one_by_one = [s for n in sorted([second, first]) for s in await uow.surveys.for_ticket(n)]
        assert await uow.surveys.for_tickets([]) == []

    assert [(s.ticket_number, s.cycle, s.rating) for s in found] == [
        (first, 1, 5),
        (second, 1, None),
        (second, 2, 4),
    ]
    assert found == one_by_one


async def test_a_change_that_breaks_a_unique_rule_at_commit_is_a_lost_race(uow_factory: UowFactory) -> None:
    """Two units of work each give a different check-in the same key: the second breaks the rule when
    its change is written, which the desk must see as a Conflict (and run again), not as a crash."""
    (number,) = await seed_tickets(uow_factory, {})
    async with uow_factory() as uow:
        for key in ("first", "second"):
            await uow.checkins.add(Checkin(key, "nudge", at(10), number))
        await uow.commit()
    for key, other in (("first", "taken"), ("second", "taken")):
        async with uow_factory() as uow:
            checkin = await uow.checkins.get(key)
            assert checkin is not None
            checkin.key = other
            if key == "first":
                await uow.commit()
                continue
            with pytest.raises(Conflict):
                await uow.commit()
    async with uow_factory() as uow:
        assert await uow.checkins.get("second") is not None, "the loser wrote nothing"


async def test_a_value_changed_in_place_after_its_row_was_inserted_is_written(
    uow_factory: UowFactory,
) -> None:
    """A check-in's detail edited in place in the unit of work that inserted it still reaches the
    database: what was written is remembered as a copy, so the edit shows as a change."""
    (number,) = await seed_tickets(uow_factory, {})
    async with uow_factory() as uow:
        checkin = await uow.checkins.add(Checkin("nudge-1", "nudge", at(10), number, {"cycle": 1}))
        checkin.detail["cycle"] = 2
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.checkins.get("nudge-1")
        assert stored is not None and stored.detail == {"cycle": 2}
