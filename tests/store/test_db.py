"""Engines and migrations on both backends: the schema, time zones, connection settings."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection

from bot.domain.clock import TZ
from store import tickets as tickets_repo
from store.core import Store
from store.db import create_engine, current_revision, migrate
from store.models import Base, tickets


async def test_migrations_are_idempotent_and_complete(store: Store) -> None:
    await migrate(store.engine)  # a second start finds nothing to do
    async with store.engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        revision = await conn.run_sync(current_revision)
    assert {"tickets", "deadlines", "audit_log", "inbox", "outbox", "alembic_version"} <= names
    assert revision == "0016"
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
    from alembic.config import Config

    from store.db import MIGRATIONS

    def alembic_config(connection: Connection) -> Config:
        """Alembic on the bot's migrations, as an operator would run it, on ``connection``."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        return config

    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), BEFORE_EXTENSIONS))
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
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), BEFORE_EXTENSIONS))
            columns = await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("tickets")})
            assert not {name for name in columns if name.startswith("extension_")}
            assert (await conn.execute(text("SELECT count(*) FROM tickets"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_datetimes_round_trip_as_aware_shanghai_time(store: Store) -> None:
    at = datetime(2026, 11, 23, 1, 30, tzinfo=ZoneInfo("UTC"))
    row = {
        "ticket_no": "T0001",
        "kind": "regular",
        "content": "x",
        "state": "dispatched",
        "dispatched_at": at,
        "received_at": at,
        "updated_at": at,
        "source": "api",
        "payload_hash": "h",
        "extra": {},
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
        "ticket_no": "T0002",
        "kind": "regular",
        "content": "x",
        "state": "dispatched",
        "dispatched_at": datetime(2026, 11, 23, 9, 0),
        "received_at": datetime(2026, 11, 23, 9, 0, tzinfo=TZ),
        "updated_at": datetime(2026, 11, 23, 9, 0, tzinfo=TZ),
        "source": "api",
        "payload_hash": "h",
        "extra": {},
    }
    with pytest.raises(Exception, match="naive datetime"):
        async with store.transaction() as conn:
            await tickets_repo.insert_tickets(conn, [row])


async def test_sqlite_database_folder_is_created(tmp_path: object) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/deep/down/bot.db")
    await migrate(engine)
    await engine.dispose()


async def test_postgres_connections_plan_every_run(store: Store) -> None:
    """A generic plan cached while a table was small must not outlive its growth (see store.db)."""
    if store.backend != "postgresql":
        pytest.skip("PostgreSQL only")
    async with store.reading() as conn:
        assert (await conn.execute(text("SHOW plan_cache_mode"))).scalar_one() == "force_custom_plan"
        assert (await conn.execute(text("SHOW search_path"))).scalar_one().startswith("t_")  # options kept too


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
