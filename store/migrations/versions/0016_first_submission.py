"""tickets.submitted_at: the first submission, as the 及时回复率 counts it

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

The 及时回复率 compares a ticket's first submission (办结提交) with the platform's 办理时限. A reopening used to
clear the time kept, and a submission after a re-dispatch replaced it: such a ticket counted as answered late, or not
yet. Each ticket's time is now its first 办结 in the audit log where that is earlier than the time kept (an imported
ticket without one keeps its export's). The counts kept of settled periods are counted again (store.reports'
FACTS_VERSION), with these times.
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


# a 办结 of the ticket, not a warning ticket's re-handling (as the submission rule: bot.domain.lifecycle.rules)
_FIRST = "a.ticket_id = tickets.id AND a.action = 'submit' AND (a.from_state IS NULL OR a.from_state <> 'warning')"


def upgrade() -> None:
    op.execute(
        f"UPDATE tickets SET submitted_at = (SELECT min(a.at) FROM audit_log a WHERE {_FIRST}) "
        f"WHERE EXISTS (SELECT 1 FROM audit_log a WHERE {_FIRST} "
        "AND (tickets.submitted_at IS NULL OR a.at < tickets.submitted_at))"
    )


def downgrade() -> None:
    """Nothing to undo: the times stay the first submissions."""
