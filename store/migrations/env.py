"""Alembic environment: migrations run on the connection the bot hands over (see store.db.migrate), or are written
out as SQL for a DBA to read first (store.db.pending_sql)."""

from __future__ import annotations

from alembic import context

from store.models import Base

if context.is_offline_mode():
    # `hotline-bot migrate --sql`: the SQL a DBA reads before it runs (store.db.pending_sql), nothing executed
    context.configure(
        dialect_name=context.config.attributes["dialect"],
        target_metadata=Base.metadata,
        literal_binds=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = context.config.attributes.get("connection")
    if connection is None:  # pragma: no cover - the bot always passes its connection
        raise RuntimeError("run migrations through `hotline-bot migrate`, which passes the connection")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
