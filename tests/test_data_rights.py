"""Data rights: `export` gives everything held about a customer; `forget` erases it for good.

The service runs on SQLite and PostgreSQL (see `uow_factory` in conftest.py), with tickets made by the
real Desk; the `relaydesk customer` commands run as a subprocess.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes import START, Delivering, FakeStore
from sqlalchemy import select
from test_console import relaydesk

from bot import data_rights
from bot.clock import FakeClock
from bot.commands import Actor, AgentMention, Claim, IncomingMessage, Note, Reply, Resolve, Transfer
from bot.data_rights import ERASED, FORGOTTEN_NAME, UnknownCustomer
from bot.desk import Desk
from bot.domain import Role, Status
from bot.messages import Conversation, Person
from bot.policy import load_policy
from storage.models import Base
from storage.uow import SqlUnitOfWork

UowFactory = Callable[[], SqlUnitOfWork]

DANA = Actor(Person("slack", "U-dana", "Dana Whitfield"), Role.CUSTOMER)
OMAR = Actor(Person("slack", "U-omar", "Omar Haddad"), Role.CUSTOMER)
ANA = Actor(Person("slack", "U-ana", "Ana Lima"), Role.AGENT)
BEN = Actor(Person("slack", "U-ben", "Ben Okafor"), Role.AGENT)
DANA_DM = Conversation("slack", "D-U-dana")
OMAR_DM = Conversation("slack", "D-U-omar")

DANA_FIRST = "Hi, my parcel A-1234 never arrived. Write to dana.w@example.com please."
DANA_EDITED = "Hi, my parcel A-1234 never arrived. Mail dana.w@example.com or call 07700 900123."
OMAR_TEXT = "My invoice INV-777 is wrong, mail omar@example.org"

DANA_SECRETS = (
    "Dana",
    "Whitfield",
    "U-dana",
    "A-1234",
    "parcel",
    "dana.w@example.com",
    "07700 900123",
    "courier",
    "replacement",
    "D-U-dana",
    "m-dana",
)


async def build_history(uow_factory: UowFactory) -> tuple[Desk, FakeClock, int, int]:
    """Dana's ticket: claimed, noted, edited, transferred, answered, resolved; Omar's ticket beside it."""
    clock = FakeClock(START)
    desk = Delivering(Desk(uow_factory, clock, load_policy()))
    await desk.receive(IncomingMessage(DANA, DANA_FIRST, DANA_DM, "m-dana-1"))
    await desk.receive(IncomingMessage(OMAR, OMAR_TEXT, OMAR_DM, "m-omar-1"))
    clock.advance(timedelta(minutes=3))
    await desk.message_edited("slack", "m-dana-1", DANA_EDITED)
    await desk.execute(ANA, Claim(1))
    await desk.execute(ANA, Note(1, "Dana Whitfield's courier lost the parcel"))
    await desk.register_agents([BEN.person])
    clock.advance(timedelta(minutes=5))
    await desk.execute(ANA, Transfer(1, AgentMention("ben okafor"), "knows Whitfield's courier"))
    await desk.execute(BEN, Reply(1, "Sorry, Dana: a replacement for A-1234 ships today."))
    thanks = "Thank you! The courier tracking works now."
    await desk.receive(IncomingMessage(DANA, thanks, DANA_DM, "m-dana-2"))
    await desk.execute(BEN, Resolve(1, "replacement sent to Dana Whitfield"))
    await desk.execute(ANA, Claim(2))
    async with uow_factory() as uow:
        dana = await uow.customers.by_identity("slack", "U-dana")
        omar = await uow.customers.by_identity("slack", "U-omar")
        assert dana is not None and dana.id is not None and omar is not None and omar.id is not None
        return desk, clock, dana.id, omar.id


def without_time(export: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in export.items() if key != "exported_at"}


async def all_text(uow_factory: UowFactory) -> list[tuple[str, str, str]]:
    """Every string and JSON value in every table of the models: (table, column, text)."""
    found = []
    async with uow_factory() as uow:
        for table in Base.metadata.sorted_tables:
            for row in (await uow.session.execute(select(table))).mappings():
                for column, value in row.items():
                    if isinstance(value, str):
                        found.append((table.name, column, value))
                    elif isinstance(value, dict | list):
                        found.append((table.name, column, json.dumps(value, ensure_ascii=False)))
    return found


async def statistics(uow_factory: UowFactory, customer_id: int) -> list[tuple[Any, ...]]:
    async with uow_factory() as uow:
        tickets = await uow.tickets.for_customer(customer_id)
        shape = []
        for t in tickets:
            assert t.number is not None
            entries = await uow.entries.for_ticket(t.number)
            events = await uow.timeline.for_ticket(t.number)
            shape.append(
                (
                    t.number,
                    t.kind,
                    t.status,
                    t.priority,
                    t.queue,
                    t.assignee_id,
                    t.created_at,
                    t.updated_at,
                    t.first_agent_reply_at,
                    t.resolved_at,
                    [(e.kind, e.created_at) for e in entries],
                    [(e.action, e.at) for e in events],
                )
            )
        return shape


async def test_export_holds_everything_as_json(uow_factory: UowFactory) -> None:
    _, clock, dana_id, _ = await build_history(uow_factory)

    export = await data_rights.export(uow_factory, "slack:U-dana", clock, actor="auditor")
    assert export == json.loads(json.dumps(export))  # JSON-safe as it is
    assert export["exported_at"] == clock.now().isoformat()
    assert export["customer"] == {
        "id": dana_id,
        "display_name": "Dana Whitfield",
        "kind": "external",
        "created_at": START.isoformat(),
        "address_as": None,
        "timezone": None,
        "organisation": None,
        "email": None,
        "email_verified": False,
        "tags": [],
    }
    assert export["identities"] == [
        {"platform": "slack", "user_id": "U-dana", "display_name": "Dana Whitfield"}
    ]
    [ticket] = export["tickets"]
    assert (ticket["number"], ticket["status"], ticket["assignee"], ticket["channel_id"]) == (
        1,
        "resolved",
        "Ben Okafor",
        "D-U-dana",
    )
    texts = [(e["kind"], e["author"], e["text"], e["internal_note"]) for e in ticket["entries"]]
    assert ("customer", "Dana Whitfield", DANA_EDITED, False) in texts
    assert ("note", "Ana Lima", "Dana Whitfield's courier lost the parcel", True) in texts
    assert ("reply", "Ben Okafor", "Sorry, Dana: a replacement for A-1234 ships today.", False) in texts
    assert ("note", "Ben Okafor", "Resolved: replacement sent to Dana Whitfield", True) in texts
    notes = [e for e in ticket["entries"] if e["kind"] == "note"]
    assert notes and all(e["internal_note"] and "internal note" in e["visibility"] for e in notes)
    assert all(not e["internal_note"] for e in ticket["entries"] if e["kind"] != "note")
    first = ticket["entries"][0]
    assert (first["platform"], first["message_id"], first["at"]) == ("slack", "m-dana-1", START.isoformat())
    actions = [event["action"] for event in ticket["timeline"]]
    assert actions[0] == "created" and "edited" in actions and "transferred" in actions
    edited = next(event for event in ticket["timeline"] if event["action"] == "edited")
    assert edited["detail"]["original"] == DANA_FIRST
    assert ticket["timeline"][0]["at"] == START.isoformat()

    # By number too; Omar's ticket is not in Dana's export.
    assert without_time(await data_rights.export(uow_factory, str(dana_id), clock)) == without_time(export)
    assert "INV-777" not in json.dumps(export)

    async with uow_factory() as uow:
        record, again = await uow.audit.for_subject(dana_id)
    assert (again.action, again.actor) == ("export", "Relaydesk")
    assert (record.action, record.actor, record.at) == ("export", "auditor", clock.now())
    counts = {"identities": 1, "tickets": 1, "entries": len(texts), "timeline_events": len(actions)}
    counts |= {"profile_notes": 0, "incentives": 0}
    assert record.detail == counts


async def test_forget_erases_every_trace_and_keeps_the_statistics(uow_factory: UowFactory) -> None:
    desk, clock, dana_id, omar_id = await build_history(uow_factory)
    assert any("A-1234" in text for _, _, text in await all_text(uow_factory))
    await data_rights.export(uow_factory, "slack:U-dana", clock, actor="auditor")
    omar_before = await data_rights.export(uow_factory, str(omar_id), clock)
    stats_before = await statistics(uow_factory, dana_id)
    held = await data_rights.survey(uow_factory, str(dana_id))

    clock.advance(timedelta(hours=1))
    forgotten = await data_rights.forget(uow_factory, "slack:U-dana", clock, actor="auditor")
    assert forgotten == held
    assert (held.identities, held.tickets) == (1, 1)

    leaks = [
        (table, column, secret)
        for table, column, text in await all_text(uow_factory)
        for secret in DANA_SECRETS
        if secret.casefold() in text.casefold()
    ]
    assert leaks == []

    # The anonymous statistics stay.
    assert await statistics(uow_factory, dana_id) == stats_before
    async with uow_factory() as uow:
        ticket = await uow.tickets.get(1)
        assert ticket is not None
        assert (ticket.status, ticket.subject, ticket.thread_id) == (Status.RESOLVED, ERASED, None)
        customer = await uow.customers.get(dana_id)
        assert customer is not None and customer.display_name == FORGOTTEN_NAME
        [identity] = await uow.customers.identities(dana_id)
        assert (identity.platform, identity.external_id, identity.display_name) == (
            "slack",
            f"forgotten:{dana_id}:1",
            FORGOTTEN_NAME,
        )
        entries = await uow.entries.for_ticket(1)
        assert entries and all(e.external_id is None for e in entries)
        assert {e.body if isinstance(e.body, str) else e.body.hidden for e in entries} == {ERASED}
        assert {e.author_name for e in entries} <= {FORGOTTEN_NAME, "Relaydesk", "Ana Lima", "Ben Okafor"}
        events = await uow.timeline.for_ticket(1)
        assert next(e for e in events if e.action == "edited").detail["original"] == ERASED
        transfer = next(e for e in events if e.action == "transferred")
        assert transfer.detail == {"from_agent": "Ana Lima", "to_agent": "Ben Okafor", "reason": ERASED}
        assert [(r.action, r.actor) for r in await uow.audit.for_subject(dana_id)] == [
            ("export", "auditor"),
            ("forget", "auditor"),
        ]
        assert [r.action for r in await uow.audit.for_subject(omar_id)] == ["export"]

    # Omar is untouched.
    omar_after = await data_rights.export(uow_factory, str(omar_id), clock)
    assert without_time(omar_after) == without_time(omar_before)

    # Dana is not found by her identity any more, and writing again she is a new customer.
    with pytest.raises(UnknownCustomer):
        await data_rights.export(uow_factory, "slack:U-dana", clock)
    await desk.receive(IncomingMessage(DANA, "Hello again, about A-1234", DANA_DM, "m-dana-1"))
    async with uow_factory() as uow:
        again = await uow.customers.by_identity("slack", "U-dana")
        assert again is not None and again.id not in (dana_id, omar_id)
        [new_ticket] = await uow.tickets.for_customer(again.id)  # type: ignore[arg-type]
        assert new_ticket.number == 3 and new_ticket.previous_number is None
        assert await uow.tickets.count_for_customer(dana_id) == 1


async def test_unknown_or_malformed_customer_is_a_clear_error(uow_factory: UowFactory) -> None:
    clock = FakeClock(START)
    for ref in ("42", "slack:U-nobody", "dana", "slack:"):
        with pytest.raises(UnknownCustomer, match="platform:user_id"):
            await data_rights.export(uow_factory, ref, clock)
        with pytest.raises(UnknownCustomer):
            await data_rights.forget(uow_factory, ref, clock, actor="auditor")
    async with uow_factory() as uow:
        assert await uow.audit.for_subject(42) == []


async def test_forget_on_the_fakes() -> None:
    store = FakeStore()
    clock = FakeClock(START)
    desk = Delivering(Desk(store.uow, clock, load_policy()))
    await desk.receive(IncomingMessage(DANA, DANA_FIRST, DANA_DM, "m-dana-1"))
    await desk.execute(ANA, Note(1, "Dana called twice"))
    await data_rights.forget(store.uow, "slack:U-dana", clock, actor="auditor")
    assert "Dana" not in repr(store.tables())  # InternalText hides itself here, so notes are checked below
    bodies = {e.body if isinstance(e.body, str) else e.body.hidden for e in store.entries_for(1)}
    assert bodies == {ERASED}
    assert [r.action for r in store.audit_log.values()] == ["forget"]
    assert len(store.entries_for(1)) >= 3


# --- the `relaydesk customer` commands ----------------------------------------------------------------

CONSOLE_SCRIPT = """\
dana: Hi, my parcel P-5555 never arrived, mail dana@example.com
ana: /ticket claim #1
ana: /ticket note #1 Dana's courier lost it
omar: My invoice INV-777 is wrong
"""


def _rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql).fetchall()


def _dump(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        return "\n".join(connection.iterdump())


@pytest.fixture
def console_db(tmp_path: Path) -> Path:
    result = relaydesk("console", script=CONSOLE_SCRIPT, workdir=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / "relaydesk.db"


def test_cli_export_to_a_file(console_db: Path) -> None:
    workdir = console_db.parent
    result = relaydesk("customer", "export", "console:dana", "--out", "dana.json", workdir=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    data = json.loads((workdir / "dana.json").read_text(encoding="utf-8"))
    assert data["customer"]["display_name"] == "Dana"
    [ticket] = data["tickets"]
    assert any("P-5555" in e["text"] for e in ticket["entries"] if e["kind"] == "customer")
    assert any(e["internal_note"] and "courier" in e["text"] for e in ticket["entries"])

    by_number = relaydesk("customer", "export", str(data["customer"]["id"]), workdir=workdir)
    assert by_number.returncode == 0, by_number.stderr
    assert json.loads(by_number.stdout)["tickets"] == data["tickets"]
    assert [row[0] for row in _rows(console_db, "SELECT action FROM audit_log")] == ["export", "export"]


def test_cli_forget_without_yes_refuses_and_changes_nothing(console_db: Path) -> None:
    before = _dump(console_db)
    result = relaydesk("customer", "forget", "console:dana", workdir=console_db.parent)
    assert result.returncode == 1
    assert "--yes" in result.stderr and "1 ticket" in result.stderr and "Traceback" not in result.stderr
    assert "Nothing was changed" in result.stderr
    assert _dump(console_db) == before


def test_cli_forget_with_yes(console_db: Path) -> None:
    result = relaydesk("customer", "forget", "console:dana", "--yes", workdir=console_db.parent)
    assert result.returncode == 0, result.stderr
    assert "forgotten" in result.stdout
    dump = _dump(console_db)
    for secret in ("dana", "P-5555", "courier"):
        assert secret not in dump.casefold()
    assert "INV-777" in dump
    [(action, actor, detail)] = _rows(console_db, "SELECT action, actor, detail FROM audit_log")
    assert action == "forget" and actor and json.loads(detail)["tickets"] == 1
    tickets = _rows(console_db, "SELECT number, status FROM tickets ORDER BY number")
    assert tickets == [(1, "open"), (2, "new")]


def test_cli_unknown_customer_exits_1_politely(console_db: Path) -> None:
    for args in (("export", "99"), ("forget", "console:nobody", "--yes"), ("export", "nobody")):
        result = relaydesk("customer", *args, workdir=console_db.parent)
        assert result.returncode == 1
        assert result.stderr.startswith("relaydesk: ") and "Traceback" not in result.stderr
        assert "platform:user_id" in result.stderr
        assert result.stdout == ""
