"""Retention: handled inbound messages, sent outbound ones and the record of who was told of a deadline are deleted
once past ``retention:`` in the YAML.

The inbox keeps every inbound message (WeCom callbacks, the hotline's hand-overs and events) to recognise a retry;
the outbox keeps every message it sent. Neither is needed for long, and without a limit both grow by every message
the bot ever handled. The notifications (every reminder, overdue notice, escalation and three-misses flag, with its
recipients) are the proof that a unit was told: they are kept far longer (``notifications_days``, at least 13 months)
and purged the same way. :func:`purge` finds them in read transactions (a search may read a whole table; it holds up
no writer) and deletes them in small batches, each its own short transaction, so the writers (callbacks, commands)
wait for one batch's delete at most. Pending rows and dead letters are never deleted. The process that
runs the deadline engine purges every hour (:mod:`bot.app`); ``run_bot.py purge`` does it once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from config.model import Retention
from store import inbox as inbox_repo
from store import notifications as notifications_repo
from store import outbox as outbox_repo
from store.core import Conn, Store

log = logging.getLogger(__name__)

BATCH = 1000  # rows per transaction


@dataclass(frozen=True)
class Purged:
    inbox: int
    outbox: int
    notifications: int = 0


async def purge(store: Store, retention: Retention, now: datetime, *, batch: int = BATCH) -> Purged:
    """Deletes the inbox rows handled before ``retention.inbox_days``, the outbox messages sent before
    ``retention.outbox_days`` and the notifications recorded before ``retention.notifications_days``, ``batch`` rows
    per transaction, until none is left; how many of each."""
    received_before = now - timedelta(days=retention.inbox_days)
    sent_before = now - timedelta(days=retention.outbox_days)
    told_before = now - timedelta(days=retention.notifications_days)
    inbox = await _in_batches(
        store,
        lambda conn: inbox_repo.handled_inbound_before(conn, received_before=received_before, limit=batch),
        inbox_repo.delete_handled_inbound,
        batch,
    )
    outbox = await _in_batches(
        store,
        lambda conn: outbox_repo.sent_outbound_before(conn, sent_before=sent_before, limit=batch),
        outbox_repo.delete_sent,
        batch,
    )
    told = await _in_batches(
        store,
        lambda conn: notifications_repo.recorded_before(conn, before=told_before, limit=batch),
        lambda conn, ids: notifications_repo.delete_recorded_before(conn, ids, before=told_before),
        batch,
    )
    if inbox or outbox or told:
        log.info("retention: deleted %d inbox rows, %d sent outbox messages and %d notifications", inbox, outbox, told)
    return Purged(inbox, outbox, told)


async def _in_batches(
    store: Store,
    find: Callable[[Conn], Awaitable[list[int]]],
    delete: Callable[[Conn, Sequence[int]], Awaitable[int]],
    batch: int,
) -> int:
    """The rows ``find`` names (at most ``batch``, looked for in a read transaction, which holds up no writer),
    deleted in a short write transaction of their own; again until it finds fewer."""
    total = 0
    while True:
        async with store.reading() as conn:
            ids = await find(conn)
        if ids:
            async with store.transaction() as conn:
                total += await delete(conn, ids)
        if len(ids) < batch:
            return total
