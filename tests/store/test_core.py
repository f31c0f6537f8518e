"""The store's two entries, a write transaction and a read, on both backends."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlalchemy import func, select

from bot.domain.clock import TZ
from store import inbox as inbox_repo
from store.core import ConstraintViolation, Store
from store.models import inbox


async def test_a_transaction_commits_or_rolls_back_and_a_read_sees_what_was_committed(store: Store) -> None:
    at = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)

    async def record(key: str, *, fail: bool = False) -> int | None:
        async with store.transaction() as conn:
            found = await inbox_repo.record_inbound(conn, source="t", dedup_key=key, payload="{}", at=at)
            await asyncio.sleep(0)  # a transaction may await anything: it runs on the event loop
            if fail:
                raise ValueError("refused")
            return found

    assert await record("a") is not None
    assert await record("a") is None  # recorded before
    with pytest.raises(ValueError, match="refused"):
        await record("b", fail=True)  # rolled back
    async with store.reading() as conn:
        rows = await conn.execute(select(inbox.c.dedup_key, inbox.c.received_at).order_by(inbox.c.id))
        assert [(r[0], r[1]) for r in rows] == [("a", at)]  # typed as everywhere: an aware datetime


async def test_a_refused_write_is_a_constraint_violation_and_leaves_nothing_behind(store: Store) -> None:
    at = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)

    async def record_then_refused() -> None:
        async with store.transaction() as conn:
            await inbox_repo.record_inbound(conn, source="t", dedup_key="kept?", payload="{}", at=at)
            await conn.execute(inbox.insert().values(source="only"))  # dedup_key, payload … are NOT NULL

    with pytest.raises(ConstraintViolation):
        await record_then_refused()
    async with store.reading() as conn:
        assert (await conn.execute(select(func.count()).select_from(inbox))).scalar_one() == 0


async def test_writers_queue_and_a_reader_reads_the_last_commit_beside_them(store: Store) -> None:
    """Read-then-write transactions side by side all succeed (on SQLite they queue behind one another from their
    BEGIN IMMEDIATE); a read while one is open sees what was committed before it."""
    at = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)
    async with store.transaction() as conn:
        await inbox_repo.record_inbound(conn, source="t", dedup_key="seed", payload="0", at=at)
    opened = asyncio.Event()

    async def bump() -> None:
        async with store.transaction() as conn:
            row = await inbox_repo.inbound(conn, "t", "seed")
            assert row is not None
            opened.set()
            await asyncio.sleep(0.01)
            await conn.execute(
                inbox.update().where(inbox.c.id == row["id"]).values(payload=str(int(row["payload"]) + 1))
            )

    async def read_while_writing() -> str:
        await opened.wait()
        async with store.reading() as conn:
            row = await inbox_repo.inbound(conn, "t", "seed")
        assert row is not None
        return str(row["payload"])

    *_, seen = await asyncio.gather(*(bump() for _ in range(5)), read_while_writing())
    async with store.reading() as conn:
        row = await inbox_repo.inbound(conn, "t", "seed")
    assert row is not None
    if store.backend == "sqlite":
        assert row["payload"] == "5"  # one writer at a time: no update lost
    assert int(seen) < 5
