"""Engine creation and migrations for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# any constant will do: every bot process migrating the same PostgreSQL database takes this lock first
_MIGRATION_LOCK_ID = 0x484F544C  # "HOTL"


def create_engine(url: str, *, echo: bool = False, pool_size: int = 20) -> AsyncEngine:
    """An async engine; on SQLite creates the database folder and sets WAL, foreign keys, busy timeout."""
    parsed = make_url(url)
    # hide_parameters: a failing statement's error (and so the log) must not carry citizen data
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs["poolclass"] = NullPool
        kwargs["connect_args"] = {"timeout": 30}
    else:
        # the pool covers what one process runs at once: the inbox's lanes (8), the group commits (inbox, replies,
        # sent marks, hand-overs), the outbox worker, the engine's tick, the digest flush and API requests. Beyond
        # pool_size, SQLAlchemy opens overflow connections and closes them on return: under a steady load above the
        # pool, every few transactions paid for a new PostgreSQL connection (a 10-connection pool doubled the
        # command benchmark's p99). Each process holds at most pool_size + 10 (plus its leader locks' own).
        kwargs.update(pool_size=pool_size, max_overflow=10)
        parsed, server_settings = _libpq_options(parsed)
        # asyncpg prepares every statement, and PostgreSQL switches a prepared statement to a generic plan
        # after five runs. A plan made while a table was small (a sequential scan) then stays as the table
        # grows: after a 100k-ticket import, lookups by number took 1.2 s instead of 20 ms. Planning each run
        # with its actual parameters costs a fraction of a millisecond and never goes stale.
        server_settings.setdefault("plan_cache_mode", "force_custom_plan")
        # PostgreSQL compiles a query it expects to be costly (the reports' counts over a period) to machine code
        # first: 100-140 ms a statement, planned afresh each run (above), more than it saves on these counts, and
        # /报表 of one unit is one chat answer (300 ms)
        server_settings.setdefault("jit", "off")
        kwargs["connect_args"] = {"server_settings": server_settings}
    engine = create_async_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", sqlite_begin)
    else:
        event.listen(engine.sync_engine.pool, "checkout", _ping_if_idle)
        event.listen(engine.sync_engine.pool, "checkin", _note_checkin)
    return engine


# A pooled connection that sat idle this long is pinged before use; one in steady use is not. SQLAlchemy's
# pool_pre_ping pings on every checkout: a round trip more for every transaction, and a busy bot checks out
# several per chat command. A connection that broke while in use (the server restarted under load) raises a
# disconnect error, upon which SQLAlchemy replaces the whole pool.
PING_AFTER_IDLE = 5.0  # seconds
_CHECKED_IN = "hotline_checked_in"


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info[_CHECKED_IN] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """The pessimistic disconnect check (SQLAlchemy's recipe), for connections that were idle: a dead one is
    replaced by a fresh connection before the caller gets it (the pool retries on DisconnectionError)."""
    idle_since = record.info.get(_CHECKED_IN)
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
        return  # new, or in steady use
    try:
        dbapi_connection.ping()
    except Exception as exc:
        raise DisconnectionError("connection found dead after being idle") from exc


def _libpq_options(url: URL) -> tuple[URL, dict[str, str]]:
    """libpq's ``?options=-c search_path=bot`` becomes asyncpg's ``server_settings`` (asyncpg has no options)."""
    options = url.query.get("options")
    if not options:
        return url, {}
    settings: dict[str, str] = {}
    for part in (options if isinstance(options, str) else " ".join(options)).split("-c"):
        key, _, value = part.strip().partition("=")
        if key and value:
            settings[key.strip()] = value.strip()
    return url.difference_update_query(["options"]), settings


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # the driver's own implicit BEGIN is switched off: SQLAlchemy's "begin" event emits BEGIN IMMEDIATE,
    # so a transaction that reads and then writes holds the write lock from the start and never fails
    # half-way with "database is locked" when another writer committed in between
    dbapi_connection.isolation_level = None
    sqlite_settings(dbapi_connection)


def sqlite_settings(dbapi_connection: Any, *, busy_timeout_ms: int = 30_000) -> None:
    """The settings every connection to the SQLite database runs with."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: an acknowledged commit survives an OS crash or power loss (NORMAL may lose the last ones in WAL)
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cursor.close()


READ_ONLY = "hotline_read_only"


def sqlite_begin(conn: Connection) -> None:
    # readers (marked by Store.reading) take no write lock: WAL lets them run beside the writer
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


def _alembic_config(connection: Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # several bot processes may start at once: one migrates, the others wait and find nothing to do
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    command.upgrade(_alembic_config(connection), "head")


async def migrate(engine: AsyncEngine) -> None:
    """Apply every pending Alembic migration (called on start)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
    log.info("database schema is up to date", extra={"backend": engine.dialect.name})


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest migration's revision: what ``migrate`` brings a database to."""
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def revision_of(url: str) -> str | None:
    """The database's current revision (None: never migrated)."""

    async def _read() -> str | None:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(current_revision)
        finally:
            await engine.dispose()

    return asyncio.run(_read())


def pending_sql(url: str) -> tuple[str | None, str]:
    """The database's current revision, and the SQL ``migrate`` would run on it to reach the head (PostgreSQL: its
    DBA reads it first; "" when there is nothing to do). Nothing is changed."""
    import io

    if make_url(url).get_backend_name() != "postgresql":
        raise ValueError("migrate --sql writes PostgreSQL's SQL; a SQLite database is migrated by the bot itself")
    current = revision_of(url)
    if current == head_revision():
        return current, ""
    out = io.StringIO()
    cfg = AlembicConfig(output_buffer=out)
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["dialect"] = "postgresql"
    command.upgrade(cfg, f"{current}:head" if current else "head", sql=True)
    return current, out.getvalue()


def migrate_sync_url(url: str) -> None:
    """For the CLI: run migrations to completion on a fresh event loop."""

    async def _run() -> None:
        engine = create_engine(url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(_run())
