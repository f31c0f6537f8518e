"""Helpers shared by the benchmarks: a bot server in its own process, PostgreSQL schemas, tables."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A database URL working in a fresh schema, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


async def drop_for_load(conn: Any, tables: Sequence[str], *, postgres: bool) -> list[str]:
    """Drops ``tables``' secondary indexes, and on PostgreSQL their unique and foreign-key constraints (not their
    keys), for a bulk load: far faster than keeping them up to date, and checking them, row by row. Returns the
    statements that make them again, to run after the load."""
    names = ", ".join(f"'{t}'" for t in tables)
    if postgres:
        await conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        found = await conn.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                f"AND tablename IN ({names}) AND indexname LIKE 'ix_%'"
            )
        )
    else:
        found = await conn.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                f"AND tbl_name IN ({names})"
            )
        )
    indexes = found.all()
    for name, _ in indexes:
        await conn.execute(text(f'DROP INDEX "{name}"'))
    remake = [definition for _, definition in indexes]
    if postgres:
        regclasses = ", ".join(f"'{t}'::regclass" for t in tables)
        constraints = await conn.execute(
            text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                f"WHERE conrelid IN ({regclasses}) AND contype IN ('u', 'f')"
            )
        )
        for table, name, definition in constraints.all():
            await conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
            remake.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    return remake


@contextlib.contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        yield f"sqlite+aiosqlite:///{tmp}/bench.db"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(
    args: list[str], port: int, *, name: str, env: dict[str, str] | None = None, ready_within: float = 30
) -> AsyncIterator[str]:
    """A process serving HTTP on ``port``; yields its base URL once ``/healthz`` answers 200, stops it after."""
    async with serving_process(args, port, name=name, env=env, ready_within=ready_within) as (base, _pid):
        yield base


@contextlib.asynccontextmanager
async def serving_process(
    args: list[str], port: int, *, name: str, env: dict[str, str] | None = None, ready_within: float = 30
) -> AsyncIterator[tuple[str, int]]:
    """:func:`serving`, yielding the process id with the base URL (to read its memory, say)."""
    proc = await asyncio.create_subprocess_exec(*args, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_within
        async with aiohttp.ClientSession() as session:
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode} before it was ready")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(base + "/healthz") as response:
                        if response.status == 200:
                            break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not become healthy within {ready_within:.0f} s")
                await asyncio.sleep(0.05)
        yield base, proc.pid
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@contextlib.asynccontextmanager
async def bot_server(database_url: str, **env: str) -> AsyncIterator[str]:
    """``run_bot.py serve`` in its own process, as in production; yields its base URL once healthy."""
    async with bot_process(database_url, **env) as (base, _pid):
        yield base


@contextlib.asynccontextmanager
async def bot_process(database_url: str, *, without: Sequence[str] = (), **env: str) -> AsyncIterator[tuple[str, int]]:
    """:func:`bot_server`, yielding the process id with the base URL; ``without``: variables of this environment the
    bot is not to see."""
    port = free_port()
    environ = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BOT_CONFIG": str(ROOT / "config" / "sandbox.yaml"),
        "BOT_HOST": "127.0.0.1",
        "BOT_PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "text",
        **env,
    }
    for name in without:
        environ.pop(name, None)
    args = [sys.executable, str(ROOT / "run_bot.py"), "serve"]
    async with serving_process(args, port, name="the bot", env=environ) as (base, pid):
        yield base, pid


async def on_both_backends(name: str, measure: Callable[[str, str], Awaitable[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``measure(backend, database_url)`` on a fresh SQLite database, then in a PostgreSQL schema of its own (a row
    saying so when PostgreSQL cannot be reached)."""
    rows = []
    with sqlite_url() as url:
        rows.append(await measure("SQLite", url))
    if pg_available():
        async with pg_schema() as url:
            rows.append(await measure("PostgreSQL", url))
    else:
        rows.append({"benchmark": f"{name} (PostgreSQL)", "value": "-", "unit": "", "note": "PostgreSQL not reachable"})
    return rows


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def print_table(rows: list[dict[str, Any]]) -> None:
    headers = ["benchmark", "value", "unit", "note"]
    cells = [[str(r["benchmark"]), _fmt(r["value"]), str(r["unit"]), str(r.get("note", ""))] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value >= 1000:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    return str(value)
