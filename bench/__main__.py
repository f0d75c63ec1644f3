"""Run every benchmark, one after another, each in a process of its own, and print their figures.

    python -m bench              # the sizes the README's table reports (about half an hour on 2 cores)
    python -m bench --quick      # small sizes: a minute or two, to see that everything runs
    python -m bench intake scale # only these

PostgreSQL figures need BENCH_DATABASE_URL (or TEST_DATABASE_URL) naming a server where the user may
create databases; each benchmark makes its own and drops it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "intake": ([], ["--messages", "500"]),
    "slack_http": ([], ["--seconds", "3", "--rate", "100", "--backend", "sqlite"]),
    "scheduler": ([], ["--checkins", "300", "--backend", "sqlite"]),
    "scaleout": ([], ["--messages", "300", "--checkins", "300"]),
    "scale": ([], ["--tickets", "5000", "--messages", "50000", "--backend", "sqlite"]),
}
"""Each benchmark's arguments: (full run, quick run)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"some of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check that everything runs")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"no benchmark called {', '.join(unknown)}; there are {', '.join(BENCHMARKS)}")
    failed = []
    for name in args.names or list(BENCHMARKS):
        full, quick = BENCHMARKS[name]
        command = [sys.executable, "-m", f"bench.{name}", *(quick if args.quick else full)]
        print(f"\n## {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(name)
        print(f"({name} took {time.perf_counter() - started:.0f} s)", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
