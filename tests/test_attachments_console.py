"""Files for staff on the console: the real ConsoleDesk (on a real Desk and database) prints a staff
message as usual and saves each attachment in the export folder, never over an existing file and never
outside the folder, whatever the file's name says."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from test_console import console, said_to

from adapters.console.desk import ConsoleDesk, safe_filename
from bot.clock import OffsetClock
from bot.config import Settings, load_settings
from bot.desk import Desk
from bot.messages import Attachment, Person, StaffKind, StaffMessage, ToAgent, ToAgents
from bot.policy import load_policy
from storage.engine import session_factory
from storage.uow import SqlUnitOfWork

ANA = Person("console", "ana", "Ana")
MARKDOWN = "# Ticket #12\n\nDana: my order A-1234 never arrived\r\nAna: on it — ünïcödé ✓\n"
JSON = '{"ticket": 12, "status": "resolved"}\n'


def transcript(*files: Attachment) -> StaffMessage:
    return StaffMessage(ToAgent(ANA), ("Transcript of #12",), StaffKind.INFO, attachments=files)


def console_on(engine: AsyncEngine, out: io.StringIO, export_dir: Path | None = None) -> ConsoleDesk:
    sessions = session_factory(engine)
    desk = Desk(lambda: SqlUnitOfWork(sessions), OffsetClock(), load_policy())
    if export_dir is None:
        return ConsoleDesk(desk, OffsetClock(), ["ana", "ben"], out=out)
    return ConsoleDesk(desk, OffsetClock(), ["ana", "ben"], out=out, export_dir=export_dir)


def files_under(root: Path) -> list[str]:
    """Every file below `root` but the test's database, as relative paths."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith("relaydesk.db")
    )


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def test_a_transcript_is_printed_and_its_files_saved_in_the_export_folder(
    sqlite_engine: AsyncEngine, workdir: Path
) -> None:
    out = io.StringIO()
    console = console_on(sqlite_engine, out)
    files = (
        Attachment("ticket-12.md", MARKDOWN, "text/markdown"),
        Attachment("ticket-12.json", JSON, "application/json"),
    )

    await console.deliver([transcript(*files)])

    assert out.getvalue().splitlines() == [
        "[private ana] Transcript of #12",
        "[private ana] saved ticket-12.md to exports/ticket-12.md",
        "[private ana] saved ticket-12.json to exports/ticket-12.json",
    ]
    assert (workdir / "exports" / "ticket-12.md").read_bytes() == MARKDOWN.encode("utf-8"), "byte for byte"
    assert (workdir / "exports" / "ticket-12.json").read_text(encoding="utf-8") == JSON


async def test_an_existing_file_is_never_overwritten(sqlite_engine: AsyncEngine, workdir: Path) -> None:
    (workdir / "exports").mkdir()
    (workdir / "exports" / "ticket-12.md").write_text("an earlier export")
    out = io.StringIO()
    console = console_on(sqlite_engine, out)

    await console.deliver([transcript(Attachment("ticket-12.md", "first", "text/markdown"))])
    await console.deliver([transcript(Attachment("ticket-12.md", "second", "text/markdown"))])

    saved = [line for line in out.getvalue().splitlines() if "saved" in line]
    assert saved == [
        "[private ana] saved ticket-12.md to exports/ticket-12-2.md",
        "[private ana] saved ticket-12.md to exports/ticket-12-3.md",
    ]
    assert (workdir / "exports" / "ticket-12.md").read_text() == "an earlier export"
    assert (workdir / "exports" / "ticket-12-2.md").read_text() == "first"
    assert (workdir / "exports" / "ticket-12-3.md").read_text() == "second"


@pytest.mark.parametrize(
    ("name", "saved_as"),
    [
        ("../../etc/passwd", "passwd"),
        ("/etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        (".bashrc", "bashrc"),
        ("..", "attachment"),
        ("", "attachment"),
        ("a\x00b\x1b[31m.md", "ab[31m.md"),
    ],
)
async def test_a_file_name_cannot_leave_the_export_folder(
    sqlite_engine: AsyncEngine, tmp_path: Path, name: str, saved_as: str
) -> None:
    folder = tmp_path / "deep" / "exports"
    out = io.StringIO()
    console = console_on(sqlite_engine, out, folder)

    await console.deliver([transcript(Attachment(name, "root:x:0:0", "text/plain"))])

    assert out.getvalue().splitlines()[-1] == f"[private ana] saved {saved_as} to {folder / saved_as}"
    assert files_under(tmp_path) == [f"deep/exports/{saved_as}"], (
        "nothing written anywhere but the export folder"
    )
    assert (folder / saved_as).read_text() == "root:x:0:0"


def test_names_are_sanitised_and_kept_to_a_sane_length() -> None:
    assert safe_filename("ticket-12.md") == "ticket-12.md"
    long = safe_filename("x" * 500 + ".json")
    assert len(long) == 120 and long.endswith(".json")
    assert "/" not in safe_filename("a/b/../../c") and safe_filename("a/b/../../c") == "c"


async def test_a_file_for_the_agents_channel_is_saved_too(sqlite_engine: AsyncEngine, tmp_path: Path) -> None:
    out = io.StringIO()
    console = console_on(sqlite_engine, out, tmp_path / "exports")
    message = StaffMessage(
        ToAgents(12), ("Weekly report",), attachments=(Attachment("r.csv", "a,b\n", "text/csv"),)
    )

    await console.deliver([message])

    assert out.getvalue().splitlines() == [
        "[agents] Weekly report",
        f"[agents] saved r.csv to {tmp_path / 'exports' / 'r.csv'}",
    ]


async def test_a_folder_that_cannot_be_written_gets_a_line_not_a_crash(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    blocker = tmp_path / "exports"
    blocker.write_text("a file where the folder should be")
    out = io.StringIO()
    console = console_on(sqlite_engine, out, blocker)

    await console.deliver([transcript(Attachment("ticket-12.md", MARKDOWN, "text/markdown"))])

    last = out.getvalue().splitlines()[-1]
    assert last.startswith(f"[private ana] could not save ticket-12.md to {blocker}: ")
    assert blocker.read_text() == "a file where the folder should be"


def test_the_export_folder_is_a_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.delenv("RELAYDESK_EXPORT_DIR", raising=False)
    assert load_settings().export_dir == Path("exports")
    monkeypatch.setenv("RELAYDESK_EXPORT_DIR", str(tmp_path / "transcripts"))
    settings: Settings = load_settings()
    assert settings.export_dir == tmp_path / "transcripts"


def test_ticket_transcript_on_the_real_console_saves_into_the_configured_folder(tmp_path: Path) -> None:
    """`relaydesk console` as a subprocess: RELAYDESK_EXPORT_DIR reaches the console, and asking twice
    keeps both transcripts."""
    script = "dana: my order A-1234 never arrived\nana: /ticket transcript #1\nana: /ticket transcript #1\n"

    lines = console(script, tmp_path, env={"RELAYDESK_EXPORT_DIR": "transcripts"})

    saved = [line for line in said_to(lines, "private ana").splitlines() if " saved " in line]
    assert saved == [
        "[private ana] saved ticket-1.md to transcripts/ticket-1.md",
        "[private ana] saved ticket-1.json to transcripts/ticket-1.json",
        "[private ana] saved ticket-1.md to transcripts/ticket-1-2.md",
        "[private ana] saved ticket-1.json to transcripts/ticket-1-2.json",
    ]
    assert "my order A-1234 never arrived" in (tmp_path / "transcripts" / "ticket-1.md").read_text()
    assert not (tmp_path / "exports").exists()
