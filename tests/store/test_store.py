"""The store on both backends: migrations, time zones, the inbox, the outbox claim, and Redis."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from bot.domain.clock import TZ
from store import inbox as inbox_repo
from store import outbox as outbox_repo
from store import tickets as tickets_repo
from store.core import Store
from store.db import create_engine, current_revision, migrate
from store.models import Base, inbox, outbox, tickets
from store.redis import create_redis
from tests.conftest import REDIS_HOST, REDIS_PORT, REDIS_URL, require_service


async def test_migrations_are_idempotent_and_complete(store: Store) -> None:
    await migrate(store.engine)  # a second start finds nothing to do
    async with store.engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        revision = await conn.run_sync(current_revision)
    assert {"tickets", "deadlines", "audit_log", "inbox", "outbox", "alembic_version"} <= names
    assert revision == "0007"
    # and the migrations build exactly what the models declare (types aside: TZDateTime is a DateTime there)
    async with store.engine.connect() as conn:
        differences = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": False}), Base.metadata)
        )
    assert differences == []


BEFORE_EXTENSIONS = "0004"  # the revision 0005_extensions builds on


async def test_extensions_migration_keeps_existing_rows_and_goes_back(database_url: str) -> None:
    """0005_extensions on a database in use: tickets and deadlines already there get no pending request and nothing
    extended; the downgrade drops the columns again (SQLite through a table copy)."""
    from alembic import command

    from store.db import _alembic_config

    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(_alembic_config(c), BEFORE_EXTENSIONS))
            at = "2026-11-23 01:00:00"
            await conn.execute(
                text(
                    "INSERT INTO tickets (ticket_no, kind, content, is_repeat, is_media, state, evaluation, "
                    "return_count, redispatch_count, rehandle_count, cycle, dispatched_at, received_at, updated_at, "
                    "source, payload_hash, version, extra) VALUES ('T1', 'regular', 'x', false, false, 'claimed', "
                    f"'normal', 0, 0, 0, 1, '{at}', '{at}', '{at}', 'api', 'h', 1, '{{}}')"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO deadlines (ticket_id, name, cycle, policy, started_at, due_at, status, stage) "
                    f"SELECT id, 'handle', 1, '5wd', '{at}', '{at}', 'open', 0 FROM tickets"
                )
            )
        await migrate(engine)
        async with engine.connect() as conn:
            row = (await conn.execute(select(tickets.c.extension_days, tickets.c.extension_count))).one()
            extended = (await conn.execute(text("SELECT extended_days FROM deadlines"))).scalar_one()
        assert (tuple(row), extended) == ((None, 0), 0)
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(_alembic_config(c), BEFORE_EXTENSIONS))
            columns = await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("tickets")})
            assert not {name for name in columns if name.startswith("extension_")}
            assert (await conn.execute(text("SELECT count(*) FROM tickets"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_datetimes_round_trip_as_aware_shanghai_time(store: Store) -> None:
    at = datetime(2026, 11, 23, 1, 30, tzinfo=ZoneInfo("UTC"))
    row = {
        "ticket_no": "T0001", "kind": "regular", "content": "x", "state": "dispatched", "dispatched_at": at,
        "received_at": at, "updated_at": at, "source": "api", "payload_hash": "h", "extra": {},
    }
    async with store.transaction() as conn:
        await tickets_repo.insert_tickets(conn, [row])
    async with store.reading() as conn:
        got = (await conn.execute(select(tickets.c.dispatched_at))).scalar_one()
    assert got == at
    assert got.tzinfo is not None
    assert got.utcoffset() == timedelta(hours=8)
    assert got.hour == 9


async def test_naive_datetimes_are_refused(store: Store) -> None:
    row = {
        "ticket_no": "T0002", "kind": "regular", "content": "x", "state": "dispatched",
        "dispatched_at": datetime(2026, 11, 23, 9, 0), "received_at": datetime(2026, 11, 23, 9, 0, tzinfo=TZ),
        "updated_at": datetime(2026, 11, 23, 9, 0, tzinfo=TZ), "source": "api", "payload_hash": "h", "extra": {},
    }
    with pytest.raises(Exception, match="naive datetime"):
        async with store.transaction() as conn:
            await tickets_repo.insert_tickets(conn, [row])


async def test_inbox_deduplicates(store: Store) -> None:
    at = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)
    async with store.transaction() as conn:
        first = await inbox_repo.record_inbound(conn, source="wecom", dedup_key="msg-1", payload="{}", at=at)
        again = await inbox_repo.record_inbound(conn, source="wecom", dedup_key="msg-1", payload="{}", at=at)
        other_source = await inbox_repo.record_inbound(conn, source="hotline", dedup_key="msg-1", payload="{}", at=at)
    assert first is not None
    assert again is None
    assert other_source is not None
    async with store.transaction() as conn:
        await inbox_repo.finish_inbound(conn, first, at=at, error="boom")
    async with store.reading() as conn:
        row = await inbox_repo.inbound(conn, "wecom", "msg-1")
    assert row is not None
    assert (row["status"], row["error"]) == ("failed", "boom")


async def test_inbox_batch_insert_deduplicates_within_and_across_batches(store: Store) -> None:
    at = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)

    def row(source: str, key: str) -> dict[str, Any]:
        return {"source": source, "dedup_key": key, "payload": f"<{key}>", "received_at": at}

    async with store.transaction() as conn:
        assert await inbox_repo.record_inbound_many(conn, []) == []
        first = await inbox_repo.record_inbound_many(conn, [row("wecom", "a"), row("wecom", "b"), row("wecom", "a")])
    assert None not in first[:2]
    assert first[2] is None
    async with store.transaction() as conn:
        second = await inbox_repo.record_inbound_many(conn, [row("wecom", "b"), row("hotline", "a"), row("wecom", "c")])
    assert second[0] is None
    assert None not in second[1:]
    assert len({*first[:2], *second[1:]}) == 4
    async with store.transaction() as conn:
        await inbox_repo.finish_inbound_many(conn, [(first[0], None), (first[1], "boom"), (second[1], None)], at=at)
    async with store.reading() as conn:
        a, b, c = [await inbox_repo.inbound(conn, "wecom", k) for k in "abc"]
        hotline_a = await inbox_repo.inbound(conn, "hotline", "a")
    assert a is not None and b is not None and c is not None and hotline_a is not None  # noqa: PT018 - for mypy
    assert (a["status"], a["payload"], a["received_at"]) == ("done", "<a>", at)
    assert (b["status"], b["error"]) == ("failed", "boom")
    assert (c["status"], hotline_a["status"]) == ("pending", "done")


async def test_outbox_claims_most_urgent_first_and_leases(store: Store) -> None:
    now = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)

    def message(key: str, priority: int, due: datetime = now) -> dict[str, object]:
        return {
            "channel": "c", "destination": "d", "idempotency_key": key, "ordering_key": key, "priority": priority,
            "payload": {"k": key}, "status": "pending", "attempts": 0, "next_attempt_at": due, "created_at": now,
        }

    async with store.transaction() as conn:
        await outbox_repo.enqueue(conn, [message("routine", 5), message("urgent", 0), message("later", 0, now + timedelta(1))])
        await outbox_repo.enqueue(conn, [message("urgent", 0)])  # the same key again is not queued twice
    async with store.transaction() as conn:
        claimed = await outbox_repo.claim_due(conn, owner="a", now=now, lease_until=now + timedelta(seconds=60), limit=10)
    assert [r["idempotency_key"] for r in claimed] == ["urgent", "routine"]
    async with store.transaction() as conn:
        assert await outbox_repo.claim_due(conn, owner="b", now=now, lease_until=now, limit=10) == []
        expired = now + timedelta(seconds=61)
        again = await outbox_repo.claim_due(conn, owner="b", now=expired, lease_until=expired, limit=10)
    assert [r["lease_owner"] for r in again] == ["b", "b"]
    for owner in ("a", "b"):  # a lost its lease: its mark has no effect
        ids = [again[0]["id"]]
        await store.write_once(
            sqlite=lambda c: outbox_repo.sqlite_mark_sent(c, ids, owner=owner, at=now),  # noqa: B023 - run at once
            postgresql=lambda c: outbox_repo.pg_mark_sent(c, ids, owner=owner, at=now),  # noqa: B023
        )
    async with store.reading() as conn:
        counts = await outbox_repo.outbox_counts(conn)
    assert counts == {"pending": 2, "sent": 1}


async def test_sqlite_database_folder_is_created(tmp_path: object) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/deep/down/bot.db")
    await migrate(engine)
    await engine.dispose()


async def test_redis_round_trip() -> None:
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    client = create_redis(REDIS_URL)
    try:
        assert await client.ping()
        await client.set("hotline-bot:test", "值", ex=5)
        assert await client.get("hotline-bot:test") == "值"
        await client.delete("hotline-bot:test")
    finally:
        await client.aclose()


async def test_postgres_connections_plan_every_run(store: Store) -> None:
    """A generic plan cached while a table was small must not outlive its growth (see store.db)."""
    if store.backend != "postgresql":
        pytest.skip("PostgreSQL only")
    async with store.reading() as conn:
        assert (await conn.execute(text("SHOW plan_cache_mode"))).scalar_one() == "force_custom_plan"
        assert (await conn.execute(text("SHOW search_path"))).scalar_one().startswith("t_")  # options kept too


async def test_the_sqlite_one_trip_inbox_write_matches_the_sqlalchemy_one(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    await migrate(engine)
    store = Store(engine)
    at = datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=TZ)
    until = at + timedelta(minutes=5)

    def rows(prefix: str) -> list[dict[str, Any]]:
        keys = ["a", "b", "a", "c"]
        return [
            {"source": "wecom", "dedup_key": f"{prefix}{k}", "payload": f"<{k}>", "received_at": at} for k in keys
        ]

    try:
        async with store.transaction() as conn:
            by_sqlalchemy = await inbox_repo.record_inbound_many(conn, rows("x"), lease_owner="me", lease_until=until)
        assert store.sqlite_writer is not None
        by_sqlite = await store.write_at_once(
            lambda c: inbox_repo.sqlite_inbox_write(c, rows("y"), [], owner="me", lease_until=until, at=at)
        )
        assert [i is None for i in by_sqlalchemy] == [i is None for i in by_sqlite] == [False, False, True, False]
        again = await store.write_at_once(  # duplicates are None; marks for x-a (done) and x-b (failed)
            lambda c: inbox_repo.sqlite_inbox_write(
                c,
                rows("y")[:1],
                [(by_sqlalchemy[0], None), (by_sqlalchemy[1], "boom")],  # type: ignore[list-item]
                owner="me",
                lease_until=until,
                at=at,
            )
        )
        assert again == [None]
        async with store.reading() as conn:
            found = {r["dedup_key"]: dict(r) for r in (await conn.execute(select(inbox))).mappings()}
        for key in "abc":  # the same values, whichever path wrote them
            x, y = found[f"x{key}"], found[f"y{key}"]
            assert [x[c] for c in ("source", "payload", "received_at")] == [y[c] for c in ("source", "payload", "received_at")]
        assert (found["yc"]["received_at"], found["yc"]["lease_until"]) == (at, until)
        assert (found["yc"]["status"], found["yc"]["lease_owner"]) == ("pending", "me")
        assert (found["xa"]["status"], found["xa"]["lease_owner"], found["xa"]["processed_at"]) == ("done", None, at)
        assert (found["xb"]["status"], found["xb"]["error"]) == ("failed", "boom")
        # a failing transaction leaves nothing behind
        with pytest.raises(sqlite3.IntegrityError):
            await store.write_at_once(lambda c: c.execute("INSERT INTO inbox (source) VALUES ('only')"))
        async with store.reading() as conn:
            assert (await conn.execute(select(func.count()).select_from(inbox))).scalar_one() == 6
    finally:
        await store.close()
        await engine.dispose()


async def test_the_postgresql_one_statement_inbox_write_matches_the_sqlalchemy_one(store: Store) -> None:
    if store.backend != "postgresql":
        pytest.skip("PostgreSQL's path; SQLite has its own (above)")
    at = datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=TZ)
    until = at + timedelta(minutes=5)

    def rows(prefix: str) -> list[dict[str, Any]]:
        return [
            {"source": "wecom", "dedup_key": f"{prefix}{k}", "payload": f"<{k}>", "received_at": at}
            for k in ["a", "b", "a", "c"]
        ]

    async with store.transaction() as conn:
        by_sqlalchemy = await inbox_repo.record_inbound_many(conn, rows("x"), lease_owner="me", lease_until=until)
    async with store.autocommit() as conn:
        by_statement = await inbox_repo.pg_inbox_write(conn, rows("y"), [], owner="me", lease_until=until, at=at)
    assert [i is None for i in by_sqlalchemy] == [i is None for i in by_statement] == [False, False, True, False]
    xa, xb = by_sqlalchemy[0], by_sqlalchemy[1]
    assert xa is not None
    assert xb is not None
    async with store.autocommit() as conn:
        again = await inbox_repo.pg_inbox_write(
            conn, rows("y")[:1], [(xa, None), (xb, "boom")], owner="me", lease_until=until, at=at
        )
    assert again == [None]
    async with store.reading() as conn:
        found = {r["dedup_key"]: dict(r) for r in (await conn.execute(select(inbox))).mappings()}
    for key in "abc":
        x, y = found[f"x{key}"], found[f"y{key}"]
        assert [x[c] for c in ("source", "payload", "received_at")] == [y[c] for c in ("source", "payload", "received_at")]
    assert (found["yc"]["received_at"], found["yc"]["lease_until"], found["yc"]["lease_owner"]) == (at, until, "me")
    assert (found["xa"]["status"], found["xa"]["lease_owner"], found["xa"]["processed_at"]) == ("done", None, at)
    assert (found["xb"]["status"], found["xb"]["error"]) == ("failed", "boom")
    # one statement, one transaction: when any part fails, no part takes effect
    too_long = [{"source": "s" * 30, "dedup_key": "z", "payload": "", "received_at": at}]
    async with store.autocommit() as conn:
        with pytest.raises(DBAPIError):
            await inbox_repo.pg_inbox_write(conn, too_long, [(by_statement[0], None)], owner="me", lease_until=until, at=at)  # type: ignore[list-item]
    async with store.reading() as conn:
        ya = await inbox_repo.inbound(conn, "wecom", "ya")
    assert ya is not None
    assert ya["status"] == "pending"


async def test_the_one_trip_outbox_enqueue_skips_queued_keys_and_reads_back_the_same(store: Store) -> None:
    at = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)

    def row(key: str, text: str) -> dict[str, Any]:
        return {
            "channel": "wecom_app",
            "destination": "zhouting",
            "idempotency_key": key,
            "ordering_key": None,
            "priority": 2,
            "payload": {"msgtype": "text", "content": {"content": text}},
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": at,
            "created_at": at,
        }

    async def enqueue(rows: list[dict[str, Any]]) -> None:
        if store.sqlite_writer is not None:
            await store.write_at_once(lambda c: outbox_repo.sqlite_enqueue(c, rows))
        else:
            async with store.autocommit() as conn:
                await outbox_repo.pg_enqueue(conn, rows)

    await enqueue([row("r1", "您好"), row("r2", "第二条")])
    await enqueue([row("r1", "again"), row("r3", "第三条")])  # r1 is queued already: left out
    async with store.reading() as conn:
        found = {r["idempotency_key"]: dict(r) for r in (await conn.execute(select(outbox))).mappings()}
    assert sorted(found) == ["r1", "r2", "r3"]
    assert found["r1"]["payload"] == {"msgtype": "text", "content": {"content": "您好"}}
    assert (found["r3"]["next_attempt_at"], found["r3"]["priority"]) == (at, 2)
    async with store.transaction() as conn:  # and the outbox worker claims them as any other
        claimed = await outbox_repo.claim_due(conn, owner="w", now=at, lease_until=at, limit=10, channels=["wecom_app"])
    assert len(claimed) == 3


async def test_run_transaction_and_read_commit_roll_back_and_read_back_alike(store: Store) -> None:
    """On SQLite a whole transaction (and a whole read) runs in a thread of the store's in one round trip
    (Store.run_transaction, Store.read); on PostgreSQL through SQLAlchemy's async connection: the same results."""
    at = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)

    async def record(conn: Any, key: str, fail: bool = False) -> int | None:
        found = await inbox_repo.record_inbound(conn, source="t", dedup_key=key, payload="{}", at=at)
        if fail:
            raise ValueError("refused")
        return found

    first = await store.run_transaction(lambda conn: record(conn, "a"))
    assert first is not None
    assert await store.run_transaction(lambda conn: record(conn, "a")) is None  # recorded before
    with pytest.raises(ValueError, match="refused"):
        await store.run_transaction(lambda conn: record(conn, "b", fail=True))  # rolled back

    async def keys(conn: Any) -> list[tuple[str, datetime]]:
        rows = await conn.execute(select(inbox.c.dedup_key, inbox.c.received_at).order_by(inbox.c.id))
        return [(r[0], r[1]) for r in rows]

    assert await store.read(keys) == [("a", at)]  # typed as everywhere: an aware datetime


async def test_a_sqlite_one_trip_transaction_may_await_only_its_statements(sqlite_url: str) -> None:
    from store.sqlite_writer import SuspendedError

    engine = create_engine(sqlite_url)
    await migrate(engine)
    store = Store(engine)
    try:

        async def waits(conn: Any) -> None:
            await inbox_repo.record_inbound(conn, source="t", dedup_key="k", payload="{}", at=datetime.now(TZ))
            await asyncio.sleep(0)  # not the database: the thread cannot wait for the event loop

        with pytest.raises(SuspendedError):
            await store.run_transaction(waits)
        async with store.reading() as conn:
            assert (await conn.execute(select(func.count()).select_from(inbox))).scalar_one() == 0  # rolled back
    finally:
        await store.close()
        await engine.dispose()


async def test_a_postgresql_connection_that_died_while_idle_is_replaced_before_use(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle pooled connections are pinged at checkout (busy ones are not: a round trip saved per transaction); a
    dead one is replaced, so the caller never sees the server's restart."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the check-out ping is PostgreSQL's")
    import store.db

    monkeypatch.setattr(store.db, "PING_AFTER_IDLE", 0.0)  # every connection counts as idle: no waiting in a test
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        admin = create_engine(database_url)
        try:
            async with admin.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            await admin.dispose()
        async with engine.connect() as conn:  # the pooled connection is dead: pinged, replaced
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() != pid
    finally:
        await engine.dispose()
