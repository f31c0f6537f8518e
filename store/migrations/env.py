"""Alembic environment: migrations run on the connection the bot hands over (see store.db.migrate)."""

from __future__ import annotations

from alembic import context

from store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the bot always passes its connection
    raise RuntimeError("run migrations through `python run_bot.py migrate`, which passes the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
