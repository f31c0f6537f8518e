"""outbox.due_since and ix_outbox_dead: how long a message has waited, and the dead letters by channel

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

/metrics says how long the longest-waiting pending message of each channel has waited: since it first became due,
which ``next_attempt_at`` no longer tells once a paced or failed attempt has moved it. The pending messages get
theirs now: since they were queued if tried already, else their next attempt's time. Every scrape also counts the
dead letters of each channel; without the partial index that count reads every row the outbox keeps.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

DEAD = sa.text("status = 'dead'")  # store.models.Outbox's ix_outbox_dead


def upgrade() -> None:
    op.add_column("outbox", sa.Column("due_since", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE outbox SET due_since = CASE WHEN attempts > 0 THEN created_at ELSE next_attempt_at END "
        "WHERE status = 'pending'"
    )
    op.create_index("ix_outbox_dead", "outbox", ["channel"], unique=False, postgresql_where=DEAD, sqlite_where=DEAD)


def downgrade() -> None:
    op.drop_index("ix_outbox_dead", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("due_since")
