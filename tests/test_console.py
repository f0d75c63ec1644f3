"""End to end: scripted conversations piped into `relaydesk console` as a real subprocess."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

RELAYDESK = str(Path(sys.executable).parent / "relaydesk")
PREFIX = re.compile(r"^\[(to \S+|agents|private \S+|console)\] ")


def relaydesk(
    *args: str, script: str = "", workdir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real console script with a clean environment rooted in `workdir`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYDESK_", "DATABASE_URL"))}
    base.update(env or {})
    return subprocess.run(
        [RELAYDESK, *args],
        input=script,
        capture_output=True,
        text=True,
        cwd=workdir,
        env=base,
        timeout=120,
    )


def console(script: str, workdir: Path, env: dict[str, str] | None = None) -> list[str]:
    result = relaydesk("console", script=script, workdir=workdir, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    for line in lines:
        assert PREFIX.match(line), f"line without an audience prefix: {line!r}"
    return lines


def said_to(lines: list[str], prefix: str) -> str:
    return "\n".join(line for line in lines if line.startswith(f"[{prefix}]"))


SCRIPT = """\
dana: Hi, my order A-1234 never arrived and I need it for Friday.
ana: /ticket claim #1
ana: /ticket note #1 NOTE-SECRET warehouse says the parcel was lost
dana: Also, the tracking page shows an error.
ana: /ticket transfer #1 @ben knows the courier
ben: /ticket reply #1 I'm sorry about this, Dana. A replacement ships today.
ben: /ticket resolve #1 RESOLVE-SECRET refunded shipping
dana: thanks!
/advance 8d
dana: The replacement is the wrong colour.
"""


def test_a_whole_conversation_in_the_console(tmp_path: Path) -> None:
    lines = console(SCRIPT, tmp_path)
    to_dana = said_to(lines, "to dana")
    agents = said_to(lines, "agents")
    to_ben = said_to(lines, "private ben")
    to_ana = said_to(lines, "private ana")

    assert "Hi Dana" in to_dana and "ticket #1" in to_dana
    assert "reply right here" in to_dana
    assert "New ticket #1 · Dana (new customer) · normal priority" in agents
    assert "Ana is now looking after your request #1" in to_dana
    assert "#1 · Dana: Also, the tracking page shows an error." in agents
    assert "] Hi, my order A-1234 never arrived" in to_ana

    assert "Ana handed #1 over to you. Reason: knows the courier" in to_ben
    assert "A-1234 never arrived" in to_ben
    assert "the tracking page shows an error" in to_ben
    assert "NOTE-SECRET" in to_ben
    assert "Ben is now looking after your request #1" in to_dana
    assert "won't need to repeat anything" in to_dana
    assert "Ben: I'm sorry about this, Dana. A replacement ships today." in to_dana
    assert "marked #1 as resolved" in to_dana
    assert "You're welcome, Dana!" in to_dana

    assert "welcome back" in to_dana and "#2" in to_dana and "(#1)" in to_dana
    assert "New ticket #2 · Dana (returning, 1 earlier ticket)" in agents
    assert "Follows up closed ticket #1." in agents
    assert "NOTE-SECRET" not in to_dana and "RESOLVE-SECRET" not in to_dana


def test_tickets_survive_a_restart(tmp_path: Path) -> None:
    console("erin: The invoice INV-77 is wrong.\n", tmp_path)
    assert (tmp_path / "relaydesk.db").exists()
    lines = console("ben: /ticket queue\nben: /ticket show 1\n", tmp_path)
    private = said_to(lines, "private ben")
    assert "Unclaimed tickets (1):" in private
    assert "#1 · normal · new · general · Erin: The invoice INV-77 is wrong." in private
    assert "The invoice INV-77 is wrong." in private.split("In their words:")[1]


def test_bad_input_gets_a_polite_answer_and_changes_nothing(tmp_path: Path) -> None:
    script = """\
just some words without a name
/teleport
dana: /ticket claim #1
ana: /ticket claim #42
ana: /ticket frobnicate
ana: /ticket reply
ana: hello there
dana: @everyone <!channel> is anyone there?
ana: /ticket priority #1 extreme
ana: /ticket show #1
"""
    lines = console(script, tmp_path)
    text = "\n".join(lines)
    assert "[console] Please start each line with a name" in text
    assert "[console] I don't know /teleport." in text
    assert "[to dana] Sorry Dana, I didn't catch that." in text
    assert "[private ana] I can't find ticket #42." in text
    assert "[private ana] I don't know the ticket command 'frobnicate'." in text
    assert "[private ana] What should the reply say?" in text
    assert "[private ana] Usage: /ticket reply [#id] <text>" in text
    assert "[private ana] Agents answer with /ticket reply" in text
    assert "[private ana] 'extreme' is not a priority." in text
    assert "@everyone" not in text and "<!channel>" not in text
    assert "@\u2060everyone" in text
    shown = said_to(lines, "private ana").split("In their words:")[1]
    assert "normal priority" in said_to(lines, "private ana")
    assert shown.count("is anyone there?") == 1, "only the customer's one real message is on the ticket"
    assert "Dana" not in shown.split("Tried and said so far:")[-1], "nothing else was said"


def test_quit_stops_reading(tmp_path: Path) -> None:
    lines = console("dana: first\n/quit\ndana: never read\n", tmp_path)
    assert "never read" not in "\n".join(lines)
    assert said_to(lines, "to dana").count("ticket #1") == 1


def test_at_sets_the_clock_and_advance_moves_it(tmp_path: Path) -> None:
    lines = console("/at 2026-03-27T16:30+01:00\n/advance 90m\n/at tomorrow\n/advance soon\n", tmp_path)
    text = "\n".join(lines)
    assert "[console] The time is now Fri 27 Mar 2026 15:30 UTC." in text
    assert "[console] The time is now Fri 27 Mar 2026 17:00 UTC." in text
    assert "[console] /at needs an ISO 8601 time" in text
    assert "[console] 'soon' is not a duration" in text


def test_internal_requests_go_to_the_internal_queue(tmp_path: Path) -> None:
    lines = console("carl: /request My laptop won't boot\nana: /ticket queue internal\n", tmp_path)
    assert "New internal request #1 · Carl" in said_to(lines, "agents")
    assert "internal help desk" in said_to(lines, "to carl")
    assert "#1 · normal · new · internal · Carl: My laptop won't boot" in said_to(lines, "private ana")


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    result = relaydesk("db", "upgrade", workdir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stdout
    with sqlite3.connect(tmp_path / "relaydesk.db") as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master where type='table'")}
        mode = db.execute("pragma journal_mode").fetchone()[0]
    assert {"tickets", "entries", "timeline", "customers", "identities", "agents"} <= tables
    assert mode == "wal"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"DATABASE_URL": "mysql://localhost/x"}, "DATABASE_URL"),
        ({"RELAYDESK_CONSOLE_AGENTS": "ana,big ben"}, "RELAYDESK_CONSOLE_AGENTS"),
        ({"RELAYDESK_POLICY": "missing.toml"}, "RELAYDESK_POLICY"),
    ],
)
def test_invalid_configuration_stops_the_start_naming_the_key(
    tmp_path: Path, env: dict[str, str], key: str
) -> None:
    result = relaydesk("console", script="dana: hello\n", workdir=tmp_path, env=env)
    assert result.returncode == 2
    assert key in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_invalid_policy_names_the_key(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'default_queue = "nowhere"\ninternal_queue = "it"\n[[queues]]\nname = "it"\nlabel = "IT"\n'
    )
    result = relaydesk("console", workdir=tmp_path, env={"RELAYDESK_POLICY": str(policy)})
    assert result.returncode == 2
    assert "default_queue: 'nowhere' is not one of the queues (it)" in result.stderr


def test_settings_come_from_a_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("RELAYDESK_CONSOLE_AGENTS=zoe\nDATABASE_URL=sqlite:///desk.sqlite\n")
    lines = console("dana: help\nzoe: /ticket claim 1\n", tmp_path)
    assert "Zoe is now looking after your request #1" in said_to(lines, "to dana")
    assert (tmp_path / "desk.sqlite").exists()


def test_the_console_desk_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    """The same conversation with DATABASE_URL pointing at PostgreSQL, restart included."""
    env = {"DATABASE_URL": pg_url}
    lines = console(SCRIPT, tmp_path, env)
    assert "New ticket #2 · Dana (returning, 1 earlier ticket)" in said_to(lines, "agents")
    assert "NOTE-SECRET" not in said_to(lines, "to dana")
    again = console("ana: /ticket show #1\n", tmp_path, env)
    shown = said_to(again, "private ana")
    assert "closed" in shown and "NOTE-SECRET" in shown
    assert not (tmp_path / "relaydesk.db").exists()


def test_odd_bytes_and_odd_lines_never_end_the_desk(tmp_path: Path) -> None:
    """Invalid UTF-8, terminal escapes, bidi overrides, huge names and huge clock jumps: polite answers."""
    script = (
        b"dana: caf\xe9 \xff\xfe broken bytes\n"
        b"dana: \x1b[31mred\x1b[0m \xe2\x80\xae reversed \x00 nul\n"
        + b"x"
        * 300
        + b": hello\n/advance 99999999d\n/at 9999-12-31T23:59+00:00\n/advance 1d\n"
        b"ana: /ticket transcript #1\n"
    )
    result = subprocess.run(
        [RELAYDESK, "console"], input=script, capture_output=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("utf-8")
    assert "Traceback" not in result.stderr.decode("utf-8", "replace")
    assert "\x1b" not in out and "\u202e" not in out and "\x00" not in out
    assert "[to dana] Hi Dana" in out
    assert "[console] Please use a name of at most 64 characters." in out
    assert "is more than ten years" in out
    assert "That time is out of range" in out or "Sorry, something went wrong" in out
    assert "[private ana] saved ticket-1.md to exports/ticket-1.md" in out
    shown = (tmp_path / "exports" / "ticket-1.md").read_text(encoding="utf-8")
    assert "caf\ufffd" in shown and "red" in shown and "reversed" in shown
    assert "\x1b" not in shown and "\u202e" not in shown and "\x00" not in shown


@pytest.mark.parametrize("url", ["sqlite+pysqlite:///x.db", "postgresql+psycopg2://u@h/d"])
def test_database_drivers_we_cannot_run_are_refused_up_front(tmp_path: Path, url: str) -> None:
    result = relaydesk("console", script="dana: hi\n", workdir=tmp_path, env={"DATABASE_URL": url})
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr and "is not supported" in result.stderr
