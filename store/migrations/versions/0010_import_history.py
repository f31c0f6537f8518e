"""deployment: what the serving bot tells other processes on the database about itself (its outbox's channels)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

A command-line import run beside the serving bot writes the pushes its recent rows need; the serving bot's outbox
sends them. They are addressed to the channels the serving bot has (``channels``: the self-built app, the robot's
long connection, webhooks), which it records here at each start, not to whatever the importing process's own
environment has.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'deployment',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('value', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_deployment')),
    )


def downgrade() -> None:
    op.drop_table('deployment')
