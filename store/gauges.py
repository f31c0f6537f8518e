"""What ``/metrics`` reads of the database at a scrape: the outbox's and the inbox's backlogs, in grouped statements
over the partial indexes that hold the rows waiting (pending, dead), never over what was sent or handled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, literal, select, type_coerce

from store.core import Conn
from store.inbox import pending_of
from store.models import TZDateTime, inbox, outbox


@dataclass(frozen=True)
class Backlog:
    count: int
    waiting_since: datetime | None  # since when the longest-waiting of them has waited; None: none waits


async def outbox_backlog(conn: Conn, now: datetime) -> dict[tuple[str, str], Backlog]:
    """The pending and the dead messages by (channel, status). A pending message waits from when it first became
    due (``due_since``, kept through paced and failed attempts); one held until later does not wait yet. A dead
    letter waits since it was queued. One statement per status, each read through its partial index."""
    waiting = case((outbox.c.due_since <= now, outbox.c.due_since), else_=None)
    backlog: dict[tuple[str, str], Backlog] = {}
    for status, since in (("pending", waiting), ("dead", outbox.c.created_at)):
        query = (
            select(outbox.c.channel, func.count(), type_coerce(func.min(since), TZDateTime()))
            .where(outbox.c.status == literal(status, literal_execute=True))  # a partial index's condition, as text
            .group_by(outbox.c.channel)
        )
        for channel, n, first in await conn.execute(query):
            backlog[(channel, status)] = Backlog(int(n), first)
    return backlog


async def inbox_backlog(conn: Conn, sources: Sequence[str]) -> dict[str, Backlog]:
    """The inbound messages of ``sources`` accepted and not yet handled, by source, and since when the oldest waits."""
    if not sources:
        return {}
    query = (
        select(inbox.c.source, func.count(), func.min(inbox.c.received_at))
        .where(pending_of(sources))
        .group_by(inbox.c.source)
    )
    return {source: Backlog(int(n), first) for source, n, first in await conn.execute(query)}
