"""What every benchmark needs: a throwaway database on each backend, the machine's description, and
percentiles. Benchmarks print figures; they assert nothing about time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import secrets
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_server() -> str | None:
    """The PostgreSQL server to benchmark on (BENCH_DATABASE_URL, then TEST_DATABASE_URL), or None."""
    for name in ("BENCH_DATABASE_URL", "TEST_DATABASE_URL"):
        raw = os.environ.get(name, "").strip()
        if raw:
            return raw
    return None


def backends(wanted: str) -> list[str]:
    """`sqlite`, `postgresql` or `both`; PostgreSQL only where a server is named."""
    names = ["sqlite", "postgresql"] if wanted == "both" else [wanted]
    if "postgresql" in names and postgres_server() is None:
        print("PostgreSQL skipped: set BENCH_DATABASE_URL or TEST_DATABASE_URL", file=sys.stderr)
        names.remove("postgresql")
    return names


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def scratch_database(backend: str, label: str = "bench") -> AsyncIterator[str]:
    """A new, empty database for one measurement, removed afterwards: a SQLite file in a temporary
    folder, or a PostgreSQL database of its own on the server."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"relaydesk-{label}-") as folder:
            yield f"sqlite+aiosqlite:///{Path(folder) / 'relaydesk.db'}"
        return
    server = postgres_server()
    assert server is not None
    name = f"relaydesk_{label}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(_dsn(server))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield (
            make_url(server)
            .set(drivername="postgresql+asyncpg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        admin = await asyncpg.connect(_dsn(server))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def machine() -> str:
    """One line naming the machine, so figures are never read without it."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{datetime.now(UTC):%Y-%m-%d} · {platform.system()} {platform.machine()} · {os.cpu_count()} cores "
        f"({cpu}) · Python {platform.python_version()}"
    )


def percentile(values: Sequence[float], share: float) -> float:
    """The value below which `share` (0..1) of the values lie (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def run(main: object) -> None:
    """asyncio.run for a benchmark's main coroutine, with the machine printed first."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"# {machine()}")
    asyncio.run(main)  # type: ignore[arg-type]
