"""Service standards on the console, end to end: `relaydesk console` as a real subprocess whose clock is
moved with `/at` and `/advance`.

The policy is test_standards.py's, written to a file and named by RELAYDESK_POLICY: Mon-Fri 09:00-17:00
Europe/Berlin, a 1h30m first response warned at 80%, breaches escalated to the lead Lea, a promise
reminder 30 minutes ahead, and a waiting ticket resolving itself after 5 days. The story starts on Friday
27 March 2026 at 16:30 CET, the last Friday before Europe moves its clocks to summer time.

The console's clock keeps running between lines (by milliseconds), so a moment `/advance` reaches is
always a little later than the same moment computed from a line typed before it: whatever falls due
there has fallen due.
"""

from __future__ import annotations

from pathlib import Path

from test_console import console
from test_standards import POLICY_TOML

SCRIPT = """\
/at 2026-03-27T16:30+01:00
dana: Hi, my order A-1234 never arrived.
/advance 2d16h
/advance 12m
/advance 18m
ana: /ticket promise #1 2h we'll send a replacement
/advance 1h
/advance 30m
ana: /ticket kept #1
ana: /ticket pending #1
/advance 1d
/advance 2d
/advance 2d
dana: It still hasn't arrived, sorry for the silence.
"""


def environment(tmp_path: Path) -> dict[str, str]:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY_TOML, "utf-8")
    return {"RELAYDESK_POLICY": str(policy), "RELAYDESK_CONSOLE_AGENTS": "ana,ben,lea"}


def by_time(lines: list[str]) -> dict[str, list[str]]:
    """The lines printed after each `The time is now ...` (keyed by that time, in UTC), and before the
    first one under ''."""
    steps: dict[str, list[str]] = {"": []}
    current = ""
    for line in lines:
        if line.startswith("[console] The time is now "):
            current = line.removeprefix("[console] The time is now ").removesuffix(" UTC.")
            steps[current] = []
        else:
            steps[current].append(line)
    return steps


def test_a_friday_afternoon_ticket_through_warning_breach_promise_and_auto_resolve(tmp_path: Path) -> None:
    lines = console(SCRIPT, tmp_path, environment(tmp_path))
    steps = by_time(lines)
    assert list(steps) == [
        "",
        "Fri 27 Mar 2026 15:30",
        "Mon 30 Mar 2026 07:30",
        "Mon 30 Mar 2026 07:42",
        "Mon 30 Mar 2026 08:00",
        "Mon 30 Mar 2026 09:00",
        "Mon 30 Mar 2026 09:30",
        "Tue 31 Mar 2026 09:30",
        "Thu 02 Apr 2026 09:30",
        "Sat 04 Apr 2026 09:30",
    ]

    friday = steps["Fri 27 Mar 2026 15:30"]
    assert (
        "[to dana] Hi Dana, thanks for getting in touch. I've opened ticket #1 for you. Someone from our "
        "support team will reply right here by 10:00 CEST on Monday 30 March (our hours are Mon-Fri "
        "9:00-17:00 CET). If you think of anything else, just add it here; there's no need to start over."
    ) in friday

    monday_morning = steps["Mon 30 Mar 2026 07:30"]
    assert not [line for line in monday_morning if "Heads-up" in line or "Breach" in line]
    assert "[agents] Daily digest for general, Monday 30 March:" in monday_morning

    assert steps["Mon 30 Mar 2026 07:42"] == [
        "[agents] Heads-up: #1 (unclaimed) needs its first response by 10:00 CEST today."
    ]

    breach = "Breach: #1 missed its first response target (1h30 of business time); escalated to Lea."
    at_ten = steps["Mon 30 Mar 2026 08:00"]
    assert at_ten[:2] == [f"[agents] {breach}", f"[private lea] {breach}"]
    assert (
        "[to dana] Hi Dana, Ana here: we'll send a replacement, by 12:00 CEST today. "
        "I'll keep you posted on #1."
    ) in at_ten

    assert steps["Mon 30 Mar 2026 09:00"] == []
    reminder = steps["Mon 30 Mar 2026 09:30"]
    assert reminder[0] == (
        "[private ana] Reminder: #1 promise 1 (we'll send a replacement) is due by 12:00 CEST today. "
        "/ticket kept #1 1 when done."
    )
    assert "[agents] #1 promise 1 (we'll send a replacement) kept." in reminder
    assert "[agents] #1 is now waiting on customer (Ana)" in reminder

    assert (
        "[to dana] Hi Dana, just checking in on #1: we're waiting to hear back from you. Whenever you're "
        "ready, reply here and we'll pick it straight up."
    ) in steps["Tue 31 Mar 2026 09:30"]
    assert (
        "[to dana] Hi Dana, we haven't heard back about #1. If we don't hear from you by 11:30 CEST on "
        "Saturday 4 April, we'll mark it resolved; you can always reply here to reopen it."
    ) in steps["Thu 02 Apr 2026 09:30"]

    saturday = steps["Sat 04 Apr 2026 09:30"]
    resolved = (
        "[to dana] Hi Dana, as we haven't heard back, we've marked #1 as resolved. If you still need help, "
        "just reply here and it reopens with everything kept."
    )
    assert resolved in saturday
    assert "[agents] #1 resolved automatically: the customer didn't answer in time." in saturday
    assert (
        "[agents] #1 · Dana (back to open; was resolved): It still hasn't arrived, sorry for the silence."
        in saturday
    ), "replying after the auto-resolve reopens the same ticket, as the customer was told"

    said = [line for line in lines if not line.startswith("[console]")]
    for once in (f"[agents] {breach}", resolved, reminder[0], steps["Mon 30 Mar 2026 07:42"][0]):
        assert said.count(once) == 1, once
    assert not [line for line in lines if "Late:" in line or "running late" in line], "kept in time"


def test_a_ticket_opened_in_office_hours_is_promised_an_answer_the_same_morning(tmp_path: Path) -> None:
    lines = console(
        "/at 2026-03-02T09:00+01:00\ndana: Where is my parcel?\n/advance 1h13m\n/advance 18m\n",
        tmp_path,
        environment(tmp_path),
    )
    steps = by_time(lines)
    assert any("will reply right here by 10:30 CET today" in line for line in steps["Mon 02 Mar 2026 08:00"])
    assert steps["Mon 02 Mar 2026 09:13"] == [
        "[agents] Heads-up: #1 (unclaimed) needs its first response by 10:30 CET today."
    ]
    assert steps["Mon 02 Mar 2026 09:31"][1] == (
        "[private lea] Breach: #1 missed its first response target (1h30 of business time); escalated to Lea."
    )
