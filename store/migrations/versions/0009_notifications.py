"""notifications: who was told of which deadline, when, through which channel

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-06

One row per reminder, overdue notice, escalation, repeat, duty call or three-misses flag and recipient, written with
its outbox message. Append-only: triggers refuse UPDATE on both backends; rows are deleted only by the retention
purge (retention.notifications_days, at least 13 months). Indexed by ticket (a ticket's history) and by time (the
purge).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


_NO_UPDATE_SQLITE = [
    "CREATE TRIGGER notifications_no_update BEFORE UPDATE ON notifications "
    "BEGIN SELECT RAISE(ABORT, 'notifications is append-only'); END",
]
_NO_UPDATE_PG = [
    """CREATE FUNCTION notifications_append_only() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION 'notifications is append-only'; END; $$ LANGUAGE plpgsql""",
    "CREATE TRIGGER notifications_no_update BEFORE UPDATE ON notifications "
    "FOR EACH ROW EXECUTE FUNCTION notifications_append_only()",
]


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
    op.create_table('notifications',
    sa.Column('id', big, autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('level', sa.Integer(), nullable=True),
    sa.Column('ticket_id', big, nullable=False),
    sa.Column('ticket_no', sa.String(length=64), nullable=False),
    sa.Column('deadline_id', big, nullable=True),
    sa.Column('deadline_name', sa.String(length=24), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('unit_code', sa.String(length=32), nullable=True),
    sa.Column('recipient_kind', sa.String(length=8), nullable=False),
    sa.Column('recipient', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=24), nullable=False),
    sa.Column('outbox_key', sa.String(length=200), nullable=False),
    sa.Column('outbox_id', big, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    op.create_index(op.f('ix_notifications_at'), 'notifications', ['at'], unique=False)
    op.create_index('ix_notifications_ticket_id', 'notifications', ['ticket_id', 'at'], unique=False)
    for statement in _NO_UPDATE_PG if op.get_bind().dialect.name == "postgresql" else _NO_UPDATE_SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS notifications_no_update ON notifications")
        op.execute("DROP FUNCTION IF EXISTS notifications_append_only()")
    op.drop_index('ix_notifications_ticket_id', table_name='notifications')
    op.drop_index(op.f('ix_notifications_at'), table_name='notifications')
    op.drop_table('notifications')
