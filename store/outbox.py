"""The outbox's statements: messages queued once per idempotency key, claimed under a lease in order, marked
sent, failed, deferred or dead, replayed, and deleted once sent and old."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping

from store.core import CHUNK, Conn
from store.models import outbox


async def enqueue(conn: Conn, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Adds messages to send; the ids of the rows inserted, by idempotency key. A message whose idempotency key is
    already queued is not queued again (and not among the ids)."""
    if not rows:
        return {}
    # one statement (the unique key decides), not a look-up and an insert: it runs inside the change's transaction
    statement = _ENQUEUE[conn.dialect.name]
    inserted: dict[str, int] = {}
    # one set of keys for every row of the statement; a message first becomes due at its first attempt's time
    values = [{**_OPTIONAL, "due_since": r["next_attempt_at"], **r} for r in rows]
    for start in range(0, len(values), CHUNK):
        result = await conn.execute(statement, values[start : start + CHUNK])
        inserted.update((str(key), int(id_)) for key, id_ in result)
    return inserted


# built once, their values bound as they run (see store.tickets)
_ENQUEUE = {
    name: make(outbox)
    .on_conflict_do_nothing(index_elements=[outbox.c.idempotency_key])
    .returning(outbox.c.idempotency_key, outbox.c.id)
    for name, make in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


# columns a queued row may leave out; ``lease_owner`` and ``lease_until`` are set when the process that queues a
# message sends it at once (it holds it until then)
_OPTIONAL = {"ordering_key": None, "lease_owner": None, "lease_until": None}


async def mark_sent(conn: Conn, ids: Sequence[int], *, owner: str, at: datetime) -> None:
    """Marks messages sent (those whose lease ``owner`` still holds)."""
    for start in range(0, len(ids), CHUNK):
        await conn.execute(_MARK_SENT, {"ids": list(ids[start : start + CHUNK]), "owner": owner, "at": at})


_MARK_SENT = (
    update(outbox)
    .where(outbox.c.id.in_(bindparam("ids", expanding=True)), outbox.c.lease_owner == bindparam("owner"))
    .values(
        status="sent",
        sent_at=bindparam("at"),
        attempts=outbox.c.attempts + 1,
        lease_owner=None,
        lease_until=None,
        last_error=None,
    )
)


async def outbox_counts(conn: Conn) -> dict[str, int]:
    result = await conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
    return {status: int(count) for status, count in result}


Paced = Sequence[tuple[str, str]]  # (channel, destination) pairs at their rate limit: not claimed for now


def _not_paced(query: Any, paced: Paced | None) -> Any:
    if paced:
        query = query.where(tuple_(outbox.c.channel, outbox.c.destination).not_in(list(paced)))
    return query


async def anything_due(
    conn: Conn, *, now: datetime, channels: Sequence[str] | None = None, paced: Paced | None = None
) -> bool:
    """Whether :func:`claim_due` could find anything (it may find less: ordering waits): a read, no write lock,
    so that idle polls and wake-ups cost the writers nothing."""
    query = select(outbox.c.id).where(
        outbox.c.status == "pending",
        outbox.c.next_attempt_at <= now,
        (outbox.c.lease_until.is_(None)) | (outbox.c.lease_until < now),
    )
    if channels is not None:
        query = query.where(outbox.c.channel.in_(list(channels)))
    return (await conn.execute(_not_paced(query, paced).limit(1))).first() is not None


async def claim_due(
    conn: Conn,
    *,
    owner: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
    channels: Sequence[str] | None = None,
    paced: Paced | None = None,
) -> list[RowMapping]:
    """Leases up to ``limit`` due messages, most urgent first, to ``owner``, none to a ``paced`` destination.

    A message waits while an earlier message with the same ordering key is still pending, so the messages
    of one ticket arrive in order. An expired lease (a sender that died mid-send) makes a message due again.
    On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets several senders claim side by side. ``channels`` limits
    the claim to what the caller can send; other messages wait for a process that can.
    """
    earlier = outbox.alias("earlier")
    query = (
        select(outbox.c.id)
        .where(
            outbox.c.status == "pending",
            outbox.c.next_attempt_at <= now,
            (outbox.c.lease_until.is_(None)) | (outbox.c.lease_until < now),
            ~(
                select(earlier.c.id)
                .where(
                    earlier.c.ordering_key == outbox.c.ordering_key,
                    earlier.c.status == "pending",
                    earlier.c.id < outbox.c.id,
                )
                .exists()
            ),
        )
        .order_by(outbox.c.priority, outbox.c.id)
        .limit(limit)
    )
    if channels is not None:
        query = query.where(outbox.c.channel.in_(list(channels)))
    query = _not_paced(query, paced)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=outbox)
    ids = list((await conn.execute(query)).scalars())
    if not ids:
        return []
    await conn.execute(update(outbox).where(outbox.c.id.in_(ids)).values(lease_owner=owner, lease_until=lease_until))
    result = await conn.execute(select(outbox).where(outbox.c.id.in_(ids)).order_by(outbox.c.priority, outbox.c.id))
    return list(result.mappings())


async def mark_failed(
    conn: Conn,
    message_id: int,
    *,
    owner: str,
    error: str,
    retry_at: datetime | None,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """A failed attempt: retried at ``retry_at``, or dead-lettered when it is None; with ``payload``, the message's
    payload is replaced by it (the outbox's flag of an unsure send)."""
    values: dict[str, Any] = {
        "attempts": outbox.c.attempts + 1,
        "lease_owner": None,
        "lease_until": None,
        "last_error": error[:2000],
    }
    if payload is not None:
        values["payload"] = dict(payload)
    if retry_at is None:
        values["status"] = "dead"
    else:
        values["next_attempt_at"] = retry_at
    await conn.execute(update(outbox).where(outbox.c.id == message_id, outbox.c.lease_owner == owner).values(**values))


async def unreleased_due(conn: Conn, *, now: datetime, channels: Sequence[str] | None = None) -> set[int]:
    """The ids of due messages that are still leased, or were leased and never released: a sender finishing a
    message (sent, failed, deferred) always clears its lease owner, so a claimable one among these was left by a
    sender that died, or outlived its lease, perhaps after sending it. Read before a claim, compared with what the
    claim takes (a takeover must leave ``lease_owner`` in place for this to see it)."""
    query = select(outbox.c.id).where(
        outbox.c.status == "pending", outbox.c.next_attempt_at <= now, outbox.c.lease_owner.is_not(None)
    )
    if channels is not None:
        query = query.where(outbox.c.channel.in_(list(channels)))
    return set((await conn.execute(query)).scalars())


async def flag_unsure(conn: Conn, payloads: Mapping[int, Mapping[str, Any]]) -> None:
    """Replaces the payloads of these messages (by id) with the given ones: their flag that a send of theirs may
    have arrived."""
    for message_id, payload in payloads.items():
        await conn.execute(update(outbox).where(outbox.c.id == message_id).values(payload=dict(payload)))


async def defer(conn: Conn, message_id: int, *, owner: str, until: datetime) -> None:
    """Not attempted (its destination is at its rate limit): back in the queue from ``until``, attempts and last
    error unchanged."""
    await conn.execute(
        update(outbox)
        .where(outbox.c.id == message_id, outbox.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None, next_attempt_at=until)
    )


# sent, or void (superseded before it went out): past retention, both are deleted
_DONE_STATES = ("sent", "void")


async def void_held(conn: Conn, prefix: str, *, now: datetime, keep: str, why: str) -> int:
    """Pending messages whose idempotency key starts with ``prefix`` (and does not contain ``keep``), held for later
    (due after ``now``, not leased), become ``void``: superseded before they went out (a routine push waiting for
    the service window whose ticket has moved on). ``why`` goes to ``last_error``; how many."""
    result = await conn.execute(
        update(outbox)
        .where(
            outbox.c.status == "pending",
            outbox.c.next_attempt_at > now,
            outbox.c.lease_owner.is_(None),
            outbox.c.idempotency_key.startswith(prefix, autoescape=True),
            ~outbox.c.idempotency_key.contains(keep, autoescape=True),
        )
        .values(status="void", sent_at=now, last_error=why)
    )
    return int(result.rowcount)


async def sent_outbound_before(conn: Conn, *, sent_before: datetime, limit: int) -> list[int]:
    """The ids of up to ``limit`` outbox messages sent before ``sent_before``, oldest first (see
    :func:`handled_inbound_before`)."""
    query = (
        select(outbox.c.id)
        .where(outbox.c.status.in_(_DONE_STATES), outbox.c.sent_at < sent_before)
        .order_by(outbox.c.id)
        .limit(limit)
    )
    return list((await conn.execute(query)).scalars())


async def delete_sent(conn: Conn, ids: Sequence[int]) -> int:
    """Deletes these outbox messages if they were sent or void (pending messages and dead letters are never
    deleted); how many."""
    result = await conn.execute(delete(outbox).where(outbox.c.id.in_(list(ids)), outbox.c.status.in_(_DONE_STATES)))
    return int(result.rowcount)


async def dead_letters(conn: Conn, limit: int = 100) -> list[RowMapping]:
    result = await conn.execute(
        select(outbox).where(outbox.c.status == "dead").order_by(outbox.c.id.desc()).limit(limit)
    )
    return list(result.mappings())


async def replay(conn: Conn, ids: Sequence[int] | None, *, at: datetime) -> int:
    """Puts dead-lettered messages (all, or those given) back in the queue."""
    query = update(outbox).where(outbox.c.status == "dead")
    if ids is not None:
        query = query.where(outbox.c.id.in_(list(ids)))
    values = {"status": "pending", "next_attempt_at": at, "due_since": at, "attempts": 0, "last_error": None}
    result = await conn.execute(query.values(**values))
    return int(result.rowcount)
