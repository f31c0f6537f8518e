"""deadline misses

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25

The "three misses" of the bi-monthly report: each accept deadline a unit let pass unmet, once (keyed by the
deadline), and a counter per unit and reporting period, incremented atomically, that records when the unit was
flagged to the dispatchers. The deadline engine's own state needs no change: deadlines.stage and next_due_at exist
since the initial schema.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('deadline_misses',
    sa.Column('deadline_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('unit_code', sa.String(length=32), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('missed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deadline_id'], ['deadlines.id'], name=op.f('fk_deadline_misses_deadline_id_deadlines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('deadline_id', name=op.f('pk_deadline_misses'))
    )
    op.create_index('ix_deadline_misses_unit_period', 'deadline_misses', ['unit_code', 'period_start'], unique=False)
    op.create_table('unit_miss_counts',
    sa.Column('unit_code', sa.String(length=32), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('misses', sa.Integer(), nullable=False),
    sa.Column('flagged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('unit_code', 'period_start', name=op.f('pk_unit_miss_counts'))
    )


def downgrade() -> None:
    op.drop_table('unit_miss_counts')
    op.drop_index('ix_deadline_misses_unit_period', table_name='deadline_misses')
    op.drop_table('deadline_misses')
