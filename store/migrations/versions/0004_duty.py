"""duty takeovers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

A member taking over the duty roster (/值班 接班) until the roster shift ends, or handing it back early (交班). The
index on ends_at makes "who is on duty at t" (ends_at > t) read the last day's rows only: a takeover lasts a day at
most. The changes are also in the audit log (ticket_id NULL, action duty_*), which needs no change for them.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('duty_takeovers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.String(length=64), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_duty_takeovers'))
    )
    op.create_index('ix_duty_takeovers_ends_at', 'duty_takeovers', ['ends_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_duty_takeovers_ends_at', table_name='duty_takeovers')
    op.drop_table('duty_takeovers')
