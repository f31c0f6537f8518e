"""tickets: pending extension request and count; deadlines: working days added by extensions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

延期 (extension): a unit asks for more working days on a ticket's handling deadline, and the unit head or the
hotline office approves or rejects. The pending request waits on the ticket (how many working days, why, who
asked and when; NULL when none is pending), beside the number of extensions approved so far. An approved
extension moves the running handling deadlines; each deadline row keeps how many working days extensions added,
so that a later re-planning (a corrected kind or category) keeps them.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tickets', sa.Column('extension_days', sa.Integer(), nullable=True))
    op.add_column('tickets', sa.Column('extension_reason', sa.Text(), nullable=True))
    op.add_column('tickets', sa.Column('extension_requested_by', sa.String(length=64), nullable=True))
    op.add_column('tickets', sa.Column('extension_requested_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tickets', sa.Column('extension_count', sa.Integer(), server_default='0', nullable=False))
    op.add_column('deadlines', sa.Column('extended_days', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('deadlines') as batch:
        batch.drop_column('extended_days')
    with op.batch_alter_table('tickets') as batch:
        batch.drop_column('extension_count')
        batch.drop_column('extension_requested_at')
        batch.drop_column('extension_requested_by')
        batch.drop_column('extension_reason')
        batch.drop_column('extension_days')
