"""pushes: the tickets waiting for their unit's digest

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25

New tickets of the kinds the config gathers into a digest (regular ones by default) wait here for their unit's next
digest message; the flush marks what it sent. One row per ticket and cycle; a partial index on queued_at over the
waiting rows only, so a flush never scans what was sent.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('digest_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ticket_no', sa.String(length=64), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.Column('unit_code', sa.String(length=32), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('flushed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('digest_key', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_digest_items_ticket_id_tickets'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_digest_items')),
    sa.UniqueConstraint('ticket_id', 'cycle', name='uq_digest_items_ticket_cycle')
    )
    op.create_index('ix_digest_items_waiting', 'digest_items', ['queued_at'], unique=False,
                    sqlite_where=sa.text('flushed_at IS NULL'), postgresql_where=sa.text('flushed_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_digest_items_waiting', table_name='digest_items',
                  sqlite_where=sa.text('flushed_at IS NULL'), postgresql_where=sa.text('flushed_at IS NULL'))
    op.drop_table('digest_items')
