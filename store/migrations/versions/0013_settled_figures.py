"""settled_figures, settled_epoch: the counts of settled periods, kept once counted; indexes of the ticket lists

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

A report compares its period with the one before, the same period a year earlier and the chart rate's last twelve
periods: most of what it reads are periods that ended long ago. Their counts are kept once counted (settled_figures,
by the period's start and end, the kind of count and the unit: a unit's report reads its own); a change to a ticket
dispatched before a kept period's end clears it, and raises settled_epoch's one number so that counts read before the
change are not kept after it.

The workbook's lists read the period's dissatisfied visits and repeat complaints by index rather than every ticket
visited or dispatched in it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.models import TZDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settled_figures",
        sa.Column("starts", TZDateTime(), nullable=False),
        sa.Column("ends", TZDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("made_at", TZDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("starts", "ends", "kind", "unit", name=op.f("pk_settled_figures")),
    )
    epoch = op.create_table(
        "settled_epoch",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settled_epoch")),
    )
    op.bulk_insert(epoch, [{"id": 1, "epoch": 0}])
    # the workbook's ticket lists read by index: the period's dissatisfied visits, its repeat complaints
    op.create_index("ix_tickets_satisfaction_visited", "tickets", ["satisfaction", "visited_at"], unique=False)
    repeated = sa.text("is_repeat OR repeat_count > 1")  # store.models.REPEATED
    op.create_index(
        "ix_tickets_repeated", "tickets", ["dispatched_at"], unique=False, postgresql_where=repeated, sqlite_where=repeated
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_repeated", table_name="tickets")
    op.drop_index("ix_tickets_satisfaction_visited", table_name="tickets")
    op.drop_table("settled_epoch")
    op.drop_table("settled_figures")
