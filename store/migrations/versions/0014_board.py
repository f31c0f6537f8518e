"""ix_deadlines_open_due: the board's deadline list, the open deadlines by due time

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

The board (bot.board) lists the open deadlines of the tickets a viewer sees, the earliest due first, and counts
those overdue, due within two hours and due today: a range of this partial index, however many deadlines were met
long ago.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")  # store.models.Deadline's ix_deadlines_open_due


def upgrade() -> None:
    op.create_index(
        "ix_deadlines_open_due",
        "deadlines",
        ["due_at"],
        unique=False,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
        postgresql_include=["ticket_id", "name"],  # the office's tiles from the index alone
    )


def downgrade() -> None:
    op.drop_index("ix_deadlines_open_due", table_name="deadlines")
