"""tickets: repeat keys, count and link; ticket_repeats: the earlier tickets of the same matter

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26

重复诉求 (repeat complaints, bot.domain.repeats): a ticket whose citizen phone, or whose place and a similar text,
matches tickets dispatched within the repeat window before it is marked as a repeat. Each ticket keeps the keys it is
matched by (hashes of the normalised phone and place, each indexed with dispatched_at so that matching reads one key's
window only) and its text's signature (512 bits, one per character pair); its place among the tickets of the same
matter (repeat_count, 1 when none came before it); the number of the one just before it (repeat_of) and what matched
it (repeat_reason). ticket_repeats holds every pair, a ticket and an earlier one, indexed both ways; no foreign keys
(as the audit log: tickets are never deleted, and the checks made writing the pairs of an import batch four times
slower).

The keys and signatures of the tickets dispatched within the longest window the config allows (366 days) are computed
here once, in pages of 5,000, so that the first tickets after the upgrade find the earlier ones; tickets already stored
are not marked as repeats of each other (the platform's own is_repeat flag stays as it was).
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import context, op

from bot.domain.repeats import address_key, phone_key, signature
from store.models import TZDateTime

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_BACKFILL_DAYS = 366
_PAGE = 5000


def upgrade() -> None:
    op.add_column('tickets', sa.Column('repeat_phone', sa.String(length=32), nullable=True))
    op.add_column('tickets', sa.Column('repeat_address', sa.String(length=32), nullable=True))
    op.add_column('tickets', sa.Column('repeat_signature', sa.LargeBinary(length=64), nullable=True))
    op.add_column('tickets', sa.Column('repeat_count', sa.Integer(), server_default='1', nullable=False))
    op.add_column('tickets', sa.Column('repeat_of', sa.String(length=64), nullable=True))
    op.add_column('tickets', sa.Column('repeat_reason', sa.String(length=16), nullable=True))
    _backfill()
    op.create_index('ix_tickets_repeat_phone', 'tickets', ['repeat_phone', 'dispatched_at'], unique=False,
                    sqlite_where=sa.text('repeat_phone IS NOT NULL'),
                    postgresql_where=sa.text('repeat_phone IS NOT NULL'))
    op.create_index('ix_tickets_repeat_address', 'tickets', ['repeat_address', 'dispatched_at'], unique=False,
                    sqlite_where=sa.text('repeat_address IS NOT NULL'),
                    postgresql_where=sa.text('repeat_address IS NOT NULL'))
    op.create_table('ticket_repeats',
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('earlier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False,
              nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id', 'earlier_id', name=op.f('pk_ticket_repeats'))
    )
    op.create_index(op.f('ix_ticket_repeats_earlier_id'), 'ticket_repeats', ['earlier_id'], unique=False)


def _backfill() -> None:
    """The keys of the tickets dispatched in the last 366 days, page by page (before the indexes exist: faster)."""
    if context.is_offline_mode():  # `migrate --sql`: the keys are computed in Python, by the migration itself
        op.execute(sa.text("-- 0011: the repeat keys of the last year's tickets are computed by `hotline-bot migrate`"))
        return
    bind = op.get_bind()
    tickets = sa.table(
        'tickets',
        sa.column('id', sa.BigInteger()),
        sa.column('citizen_phone', sa.String()),
        sa.column('address', sa.String()),
        sa.column('dispatched_at', TZDateTime()),
        sa.column('category', sa.String()),
        sa.column('title', sa.String()),
        sa.column('content', sa.Text()),
        sa.column('repeat_phone', sa.String()),
        sa.column('repeat_address', sa.String()),
        sa.column('repeat_signature', sa.LargeBinary()),
    )
    since = datetime.now(UTC) - timedelta(days=_BACKFILL_DAYS)
    page = (
        sa.select(
            tickets.c.id,
            tickets.c.citizen_phone,
            tickets.c.address,
            tickets.c.category,
            tickets.c.title,
            tickets.c.content,
        )
        .where(tickets.c.id > sa.bindparam('after'), tickets.c.dispatched_at >= since)
        .order_by(tickets.c.id)
        .limit(_PAGE)
    )
    write = (
        sa.update(tickets)
        .where(tickets.c.id == sa.bindparam('_id'))
        .values(
            repeat_phone=sa.bindparam('_phone'),
            repeat_address=sa.bindparam('_address'),
            repeat_signature=sa.bindparam('_signature'),
        )
    )
    after = 0
    while True:
        rows = bind.execute(page, {'after': after}).all()
        if not rows:
            return
        after = rows[-1][0]
        keys = [
            {
                '_id': ticket_id,
                '_phone': phone_key(phone),
                '_address': address_key(address),
                '_signature': signature(category, title, content, address),
            }
            for ticket_id, phone, address, category, title, content in rows
        ]
        keys = [k for k in keys if k['_phone'] is not None or k['_address'] is not None]
        if keys:
            bind.execute(write, keys)


def downgrade() -> None:
    op.drop_index(op.f('ix_ticket_repeats_earlier_id'), table_name='ticket_repeats')
    op.drop_table('ticket_repeats')
    op.drop_index('ix_tickets_repeat_address', table_name='tickets',
                  sqlite_where=sa.text('repeat_address IS NOT NULL'),
                  postgresql_where=sa.text('repeat_address IS NOT NULL'))
    op.drop_index('ix_tickets_repeat_phone', table_name='tickets',
                  sqlite_where=sa.text('repeat_phone IS NOT NULL'),
                  postgresql_where=sa.text('repeat_phone IS NOT NULL'))
    with op.batch_alter_table('tickets') as batch:
        batch.drop_column('repeat_reason')
        batch.drop_column('repeat_of')
        batch.drop_column('repeat_count')
        batch.drop_column('repeat_signature')
        batch.drop_column('repeat_address')
        batch.drop_column('repeat_phone')
