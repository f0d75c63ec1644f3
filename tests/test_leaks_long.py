"""The leak machine of tests/test_leaks.py, run long: more and longer sequences (marked `long`).

30 sequences of up to 50 steps, times RELAYDESK_TEST_SCALE (`-m "not long"` skips it). What was tried is
printed: sequences, steps, messages checked, time, how often each verb was carried out or refused, and
what was never carried out (at scale 1 a rare verb may miss a run; test_leaks.py carries out each verb
once in a scripted tour, so none is left unchecked).
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test
from test_leaks import DUE_WORK, QUICK, TALLY, LeakMachine

from bot.grammar import VERBS

SCALE = int(os.environ.get("RELAYDESK_TEST_SCALE", "1"))
EXAMPLES = 30 * SCALE
LONG = settings(QUICK, max_examples=EXAMPLES, stateful_step_count=50)
EVENTS = (
    "write:blocked",
    "write-at-once",
    "request:done",
    "rate:done",
    "edit:done",
    "delete:done",
    "agent-writes:done",
    "staff-thread:done",
    "time:done",
    "write:flood",
    *(f"due:{kind}" for kind in DUE_WORK),
)
"""Besides the verbs: what a long run should have done at least once."""


def summary(seconds: float) -> str:
    lines = [
        f"[leaks] state machine: {TALLY['sequences']} sequences, {TALLY['steps']} steps, "
        f"{TALLY['messages checked']} messages checked, {seconds:.0f} s "
        f"(max_examples={EXAMPLES}, stateful_step_count={LONG.stateful_step_count})"
    ]
    lines += [
        f"  {count:6d}  {what}"
        for what, count in sorted(TALLY.items())
        if what not in ("sequences", "steps", "messages checked")
    ]
    done = {what.split(":")[1] for what in TALLY if what.startswith("verb:") and what.endswith(":done")}
    missed = sorted(set(VERBS) - done) + [what for what in EVENTS if not TALLY[what]]
    lines.append(f"  never carried out: {', '.join(missed) or 'nothing'}")
    return "\n".join(lines)


@pytest.mark.long
def test_no_leaks_over_many_long_sequences(capsys: pytest.CaptureFixture[str]):
    TALLY.clear()
    start = time.monotonic()
    try:
        run_state_machine_as_test(LeakMachine, settings=LONG)
    finally:
        with capsys.disabled():
            print("\n" + summary(time.monotonic() - start))
    assert TALLY["messages checked"] > TALLY["sequences"], "the machine said next to nothing"
