"""The scale benchmark runs end to end at a tiny size: it generates its database, asks every question and
prints a figure line for each. It checks nothing about time (bench/scale.py only prints figures)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = (
    "/ticket queue",
    "/ticket mine (busiest agent)",
    "/ticket show #",
    "/ticket stats 30d (with chart)",
    "Desk.report 30 days (figures)",
    "start-up until ready",
    "start-up until first sweep done",
    "idle RSS of the bot process",
)


def test_the_benchmark_completes_at_a_tiny_size_and_prints_its_figures() -> None:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    size = "--tickets 2000 --messages 20000 --checkins 2000 --runs 2 --report-runs 1 --idle 0.2"
    command = [sys.executable, "-m", "bench.scale", *size.split(), "--backend", "sqlite"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("# ") and "cores" in lines[0], lines[:2]  # the machine comes first
    assert any(line.startswith("sqlite      generated in") for line in lines), done.stdout
    for what in FIGURES:
        [line] = [line for line in lines if line.startswith("sqlite") and what in line]
        assert line.rstrip().endswith(("yes", "NO")), line
