"""Retention: handled inbound messages and sent outbound ones are deleted once past ``retention:`` in the YAML.

The inbox keeps every inbound message (WeCom callbacks, the hotline's hand-overs and events) to recognise a retry;
the outbox keeps every message it sent. Neither is needed for long, and without a limit both grow by every message
the bot ever handled. :func:`purge` finds them in read transactions (a search may read a whole table; it holds up
no writer) and deletes them in small batches, each its own short transaction, so the writers (callbacks, commands)
wait for one batch's delete at most. Pending rows and dead letters are never deleted. The process that
runs the deadline engine purges every hour (:mod:`bot.app`); ``run_bot.py purge`` does it once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from config.model import Retention
from store import inbox as inbox_repo
from store import outbox as outbox_repo
from store.core import Store

log = logging.getLogger(__name__)

BATCH = 1000  # rows per transaction


@dataclass(frozen=True)
class Purged:
    inbox: int
    outbox: int


async def purge(store: Store, retention: Retention, now: datetime, *, batch: int = BATCH) -> Purged:
    """Deletes the inbox rows handled before ``retention.inbox_days`` and the outbox messages sent before
    ``retention.outbox_days``, ``batch`` rows per transaction, until none is left; how many of each."""
    received_before = now - timedelta(days=retention.inbox_days)
    sent_before = now - timedelta(days=retention.outbox_days)
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
    if inbox or outbox:
        log.info("retention: deleted %d inbox rows and %d sent outbox messages", inbox, outbox)
    return Purged(inbox, outbox)


async def _in_batches(
    store: Store,
    find: Callable[[AsyncConnection], Awaitable[list[int]]],
    delete: Callable[[AsyncConnection, Sequence[int]], Awaitable[int]],
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
