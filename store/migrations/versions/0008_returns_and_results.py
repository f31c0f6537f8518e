"""tickets: the return request awaiting its head's signature and the office's review; what was solved; the visit

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

退单 (return): a unit asks to give a ticket back, with a reason and a suggested unit. A handler's request waits
for the unit head's signature, then for the hotline office's review; the request waits on the ticket (why, which
unit is suggested, who asked and when, which head signed; NULL when none is pending). 实际解决: the unit declares
whether the problem was solved when it submits the result (``solved``), and the return visit records the citizen's
view of it (``visit_solved``) beside satisfaction, with the visit's note.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tickets', sa.Column('return_reason', sa.Text(), nullable=True))
    op.add_column('tickets', sa.Column('return_unit', sa.String(length=64), nullable=True))
    op.add_column('tickets', sa.Column('return_requested_by', sa.String(length=64), nullable=True))
    op.add_column('tickets', sa.Column('return_requested_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tickets', sa.Column('return_signed_by', sa.String(length=64), nullable=True))
    op.add_column('tickets', sa.Column('solved', sa.String(length=16), nullable=True))
    op.add_column('tickets', sa.Column('visit_solved', sa.String(length=16), nullable=True))
    op.add_column('tickets', sa.Column('visit_note', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tickets') as batch:
        for column in (
            'visit_note',
            'visit_solved',
            'solved',
            'return_signed_by',
            'return_requested_at',
            'return_requested_by',
            'return_unit',
            'return_reason',
        ):
            batch.drop_column(column)
