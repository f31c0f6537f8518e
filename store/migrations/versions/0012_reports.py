"""deadlines: the unit responsible; tickets: when submitted and visited; indexes the reports read by

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

The reports (bot.domain.reports) count deadlines due in a period, per unit. A ticket re-dispatched to another unit
carries deadlines of both: each deadline now records the unit that had the ticket when it started
(deadlines.unit_code), indexed with its due time. The 及时回复率 compares the unit's first submission with the
platform's deadline (tickets.submitted_at); the 实际解决率 and 满意率 count the visits made in a period
(tickets.visited_at); returns and warnings are counted from the audit log by action and time.

Rows already stored are filled in once: a deadline's unit is its ticket's unit now (the unit of an earlier cycle of a
re-dispatched ticket is not recorded elsewhere); a ticket's submission is its first handling deadline met, its visit
the time it was closed (else last changed) when it has a visit result.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.models import TZDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deadlines", sa.Column("unit_code", sa.String(length=32), nullable=True))
    op.add_column("tickets", sa.Column("submitted_at", TZDateTime(), nullable=True))
    op.add_column("tickets", sa.Column("visited_at", TZDateTime(), nullable=True))
    op.execute("UPDATE deadlines SET unit_code = (SELECT t.unit_code FROM tickets t WHERE t.id = deadlines.ticket_id)")
    op.execute(
        "UPDATE tickets SET submitted_at = (SELECT min(d.met_at) FROM deadlines d WHERE d.ticket_id = tickets.id "
        "AND d.name = 'handle' AND d.status = 'met') WHERE state IN ('submitted', 'warning', 'closed')"
    )
    op.execute("UPDATE tickets SET visited_at = COALESCE(closed_at, updated_at) WHERE satisfaction IS NOT NULL")
    op.create_index("ix_deadlines_due_at", "deadlines", ["due_at"], unique=False)
    op.create_index("ix_tickets_submitted_at", "tickets", ["submitted_at"], unique=False)
    op.create_index("ix_tickets_visited_at", "tickets", ["visited_at"], unique=False)
    op.create_index("ix_tickets_dispatched_at", "tickets", ["dispatched_at"], unique=False)
    op.create_index("ix_tickets_hotline_deadline", "tickets", ["hotline_deadline"], unique=False)
    op.create_index("ix_audit_log_action_at", "audit_log", ["action", "at"], unique=False)
    op.create_table(
        "report_runs",
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("queued_at", TZDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_report_runs")),
    )


def downgrade() -> None:
    op.drop_table("report_runs")
    op.drop_index("ix_audit_log_action_at", table_name="audit_log")
    op.drop_index("ix_tickets_hotline_deadline", table_name="tickets")
    op.drop_index("ix_tickets_dispatched_at", table_name="tickets")
    op.drop_index("ix_tickets_visited_at", table_name="tickets")
    op.drop_index("ix_tickets_submitted_at", table_name="tickets")
    op.drop_index("ix_deadlines_due_at", table_name="deadlines")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("visited_at")
        batch.drop_column("submitted_at")
    with op.batch_alter_table("deadlines") as batch:
        batch.drop_column("unit_code")
