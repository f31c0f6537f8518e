"""ix_outbox_dead: the dead letters by channel, for /metrics and ``outbox dead``

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

Every scrape of /metrics counts the dead letters of each channel; without this partial index that count reads every
row the outbox keeps (sent messages stay for their retention).
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
    op.create_index("ix_outbox_dead", "outbox", ["channel"], unique=False, postgresql_where=DEAD, sqlite_where=DEAD)


def downgrade() -> None:
    op.drop_index("ix_outbox_dead", table_name="outbox")
