"""deadlines: the unit responsible; tickets: when submitted and visited; indexes the reports read by

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

The reports (bot.domain.reports) count deadlines due in a period, per unit. A ticket re-dispatched to another unit
carries deadlines of both: each deadline now records the unit that had the ticket when it started
(deadlines.unit_code), indexed with its due time by name and by unit. The 及时回复率 compares the unit's first
submission with the platform's deadline (tickets.submitted_at); the 实际解决率 and 满意率 count the visits made in a
period (tickets.visited_at); returns and warnings are counted from the audit log by action and time.

Rows already stored are filled in once: a deadline's unit is its ticket's unit now (the unit of an earlier cycle of a
re-dispatched ticket is not recorded elsewhere); a ticket's submission is its first 办结 in the audit log (else its
first handling deadline met: an imported ticket), its visit the time it was closed (else last changed) when it has a
visit result, counted for its unit (tickets.visit_unit: the unit that had the ticket at its visit).
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
    # a new column, no row updated (the audit log's triggers refuse UPDATE): entries before it have none
    op.add_column("audit_log", sa.Column("unit_code", sa.String(length=32), nullable=True))
    op.add_column("tickets", sa.Column("submitted_at", TZDateTime(), nullable=True))
    op.add_column("tickets", sa.Column("visited_at", TZDateTime(), nullable=True))
    op.add_column("tickets", sa.Column("visit_unit", sa.String(length=32), nullable=True))
    op.execute("UPDATE deadlines SET unit_code = (SELECT t.unit_code FROM tickets t WHERE t.id = deadlines.ticket_id)")
    op.execute(
        "UPDATE tickets SET submitted_at = COALESCE("
        "(SELECT min(a.at) FROM audit_log a WHERE a.ticket_id = tickets.id AND a.action = 'submit'), "
        "(SELECT min(d.met_at) FROM deadlines d WHERE d.ticket_id = tickets.id "
        "AND d.name = 'handle' AND d.status = 'met')) WHERE state IN ('submitted', 'warning', 'closed')"
    )
    op.execute(
        "UPDATE tickets SET visited_at = COALESCE(closed_at, updated_at), visit_unit = unit_code "
        "WHERE satisfaction IS NOT NULL"
    )
    # what the reports count of a deadline is in the index (PostgreSQL): the counts read no table rows; by name for
    # the office's report, by unit for one unit's
    op.create_index(
        "ix_deadlines_report",
        "deadlines",
        ["name", "due_at"],
        unique=False,
        postgresql_include=["unit_code", "status", "met_at", "ticket_id"],
    )
    op.create_index(
        "ix_deadlines_unit_report",
        "deadlines",
        ["unit_code", "due_at"],
        unique=False,
        postgresql_include=["name", "status", "met_at", "ticket_id"],
    )
    # the few tickets no rate counts (cancelled, 不纳入测评): the counts leave them out by this, not by a join
    uncounted = sa.text("state = 'cancelled' OR evaluation = 'excluded'")
    op.create_index(
        "ix_tickets_uncounted", "tickets", ["id"], unique=False, postgresql_where=uncounted, sqlite_where=uncounted
    )
    op.create_index("ix_tickets_submitted_at", "tickets", ["submitted_at"], unique=False)
    op.create_index("ix_tickets_visited_at", "tickets", ["visited_at"], unique=False)
    op.create_index("ix_tickets_dispatched_at", "tickets", ["dispatched_at"], unique=False)
    op.create_index("ix_tickets_hotline_deadline", "tickets", ["hotline_deadline"], unique=False)
    # one unit's: /报表 of a unit reads its own rows only
    op.create_index("ix_tickets_unit_dispatched", "tickets", ["unit_code", "dispatched_at"], unique=False)
    op.create_index("ix_tickets_visit_unit", "tickets", ["visit_unit", "visited_at"], unique=False)
    op.create_index("ix_tickets_unit_hotline_deadline", "tickets", ["unit_code", "hotline_deadline"], unique=False)
    # a visit counts only when it made a warning ticket: by its to_state, not among every visit
    op.create_index("ix_audit_log_action_at", "audit_log", ["action", "to_state", "at"], unique=False)
    op.create_index("ix_audit_log_unit_action_at", "audit_log", ["unit_code", "action", "at"], unique=False)
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
    op.drop_index("ix_tickets_unit_hotline_deadline", table_name="tickets")
    op.drop_index("ix_tickets_visit_unit", table_name="tickets")
    op.drop_index("ix_tickets_unit_dispatched", table_name="tickets")
    op.drop_index("ix_tickets_dispatched_at", table_name="tickets")
    op.drop_index("ix_tickets_visited_at", table_name="tickets")
    op.drop_index("ix_tickets_submitted_at", table_name="tickets")
    op.drop_index("ix_tickets_uncounted", table_name="tickets")
    op.drop_index("ix_deadlines_unit_report", table_name="deadlines")
    op.drop_index("ix_deadlines_report", table_name="deadlines")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("visit_unit")
        batch.drop_column("visited_at")
        batch.drop_column("submitted_at")
    op.drop_index("ix_audit_log_unit_action_at", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("unit_code")
    with op.batch_alter_table("deadlines") as batch:
        batch.drop_column("unit_code")
