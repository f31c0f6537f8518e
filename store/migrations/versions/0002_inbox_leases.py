"""inbox leases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Which process is handling an accepted inbound message, and until when: another process recovers the message only
once the lease has run out (its holder died), so several processes can share the inbox without processing a
message twice or leaving a dead one's messages behind.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('inbox', sa.Column('lease_owner', sa.String(length=64), nullable=True))
    op.add_column('inbox', sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbox') as batch:
        batch.drop_column('lease_until')
        batch.drop_column('lease_owner')
