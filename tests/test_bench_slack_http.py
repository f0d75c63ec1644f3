"""`bench.slack_http` runs end to end at a tiny size, so the benchmark keeps working as the code changes.

Only that it completes and prints its figure lines is checked: benchmarks print figures, and nothing here
depends on how fast this machine is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURE_LINES = [("raw", "command"), ("raw", "event"), ("sqlite", "command"), ("sqlite", "event")]


def test_the_slack_http_benchmark_runs_and_prints_its_figures() -> None:
    command = [sys.executable, "-m", "bench.slack_http", "--rate=20", "--seconds=1", "--backend=sqlite"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# ") and "cores" in lines[0], "the machine comes first"
    for backend, kind in FIGURE_LINES:
        assert any(line.split()[:2] == [backend, kind] for line in lines), result.stdout
    assert any(line.startswith("target sqlite: slash command ack p99 ") for line in lines), result.stdout
