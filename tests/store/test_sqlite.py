"""SQLite's transactions (store/sqlite.py): statements on the loop's thread, a locked file waited for beside it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from bot.domain.clock import TZ
from store import inbox as inbox_repo
from store.core import Store
from store.db import create_engine, migrate

AT = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[tuple[Store, Path]]:
    path = tmp_path / "bot.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    store = Store(engine)
    yield store, path
    await store.dispose()


async def record(store: Store, key: str) -> int | None:
    async with store.transaction() as conn:
        return await inbox_repo.record_inbound(conn, source="t", dedup_key=key, payload="", at=AT)


async def test_a_write_waits_for_another_process_holding_the_lock_and_the_loop_goes_on(
    sqlite_store: tuple[Store, Path],
) -> None:
    store, path = sqlite_store
    other = sqlite3.connect(path, isolation_level=None)  # another process's connection, as a CLI import's
    try:
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(record(store, "k1"))
        turns = 0
        while turns < 20:  # the loop keeps turning while the write waits for the lock
            await asyncio.sleep(0.005)
            turns += 1
        assert not write.done()
        async with store.reading() as conn:  # reads are not held up either (WAL)
            assert await inbox_repo.inbound(conn, "t", "k1") is None
        other.execute("COMMIT")
        assert await asyncio.wait_for(write, 5) is not None
    finally:
        other.close()
    async with store.reading() as conn:
        assert await inbox_repo.inbound(conn, "t", "k1") is not None


async def test_a_failed_transaction_leaves_the_next_one_clean(sqlite_store: tuple[Store, Path]) -> None:
    store, _ = sqlite_store

    async def failing() -> None:
        async with store.transaction() as conn:
            await inbox_repo.record_inbound(conn, source="t", dedup_key="lost", payload="", at=AT)
            raise RuntimeError("the caller's own failure")

    with pytest.raises(RuntimeError):
        await failing()
    assert await record(store, "kept") is not None
    async with store.reading() as conn:
        assert await inbox_repo.inbound(conn, "t", "lost") is None
        assert await inbox_repo.inbound(conn, "t", "kept") is not None


async def test_a_write_cancelled_while_committing_is_not_overtaken(sqlite_store: tuple[Store, Path]) -> None:
    """The commit runs in the writer's thread: a caller cancelled meanwhile still holds the writer until the commit
    has ended, so the next transaction never runs on the connection while it commits."""
    store, _ = sqlite_store
    first = asyncio.create_task(record(store, "a"))
    await asyncio.sleep(0)  # it takes the writer; its statement runs at once, and it waits for its commit's thread
    first.cancel()
    assert await record(store, "b") is not None
    with pytest.raises(asyncio.CancelledError):
        await first
    async with store.reading() as conn:
        assert await inbox_repo.inbound(conn, "t", "b") is not None


def test_an_in_memory_database_is_refused() -> None:
    with pytest.raises(ValueError, match="must be a file"):
        Store(create_engine("sqlite+aiosqlite:///:memory:"))
