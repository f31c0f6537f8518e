"""Repeat complaints' statements (重复诉求, :mod:`bot.domain.repeats`): the tickets of a key within a window, read by
the keys' indexes (``ix_tickets_repeat_phone``, ``ix_tickets_repeat_address``: the key and ``dispatched_at``), the
pairs of ``ticket_repeats``, and a ticket's repeat columns recomputed from its pairs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Integer, LargeBinary, String, delete, func, select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from bot.domain.records import RepeatLink
from store.core import CHUNK, Conn, among_ids
from store.models import TZDateTime, sqlite_text, ticket_repeats, tickets

CANDIDATES = 100  # the most a key yields for one ticket (the closest in time)

Signal = Literal["phone", "address"]


@dataclass(frozen=True, slots=True)
class Lookup:
    """The tickets whose ``signal`` key is ``key``, dispatched from ``since`` to ``until`` (both included)."""

    signal: Signal
    key: str
    since: datetime
    until: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A stored ticket a lookup found: what matching compares (its keys and its text's signature)."""

    id: int
    ticket_no: str
    dispatched_at: datetime
    repeat_phone: str | None
    repeat_address: str | None
    repeat_signature: bytes | None


_COLUMNS = "t.id, t.ticket_no, t.dispatched_at, t.repeat_phone, t.repeat_address, t.repeat_signature"
_TYPES: dict[str, Any] = {
    "n": Integer(),
    "id": Integer(),
    "ticket_no": String(),
    "dispatched_at": TZDateTime(),
    "repeat_phone": String(),
    "repeat_address": String(),
    "repeat_signature": LargeBinary(),
}


class _UtcText(TypeDecorator[datetime]):
    """SQLite's stored UTC text as an aware datetime in UTC: all a candidate's time is used for is comparing (the
    store's own type also moves it to Beijing time, which an import's hundreds of thousands of candidates feel)."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _branch(column: str, signal: str) -> str:
    return f"""(
            SELECT {_COLUMNS} FROM tickets t
            WHERE p.signal = '{signal}' AND t.{column} = p.key AND t.dispatched_at BETWEEN p.since AND p.until
            ORDER BY t.dispatched_at DESC LIMIT {CANDIDATES}
        )"""


# PostgreSQL: each lookup's closest CANDIDATES tickets by its key's index, every lookup of a batch in one statement (the
# branch of the other signal is skipped at once: its condition on p.signal is false)
_PG = text(
    f"""
    SELECT p.n, {_COLUMNS}
    FROM unnest(CAST(:ns AS integer[]), CAST(:signals AS text[]), CAST(:keys AS text[]),
                CAST(:sinces AS timestamptz[]), CAST(:untils AS timestamptz[])) AS p(n, signal, key, since, until)
    CROSS JOIN LATERAL ({_branch("repeat_phone", "phone")} UNION ALL {_branch("repeat_address", "address")}) AS t
    """
).columns(**_TYPES)


def _sqlite_batch(column: str) -> Any:
    """SQLite: the tickets of every lookup of a batch, by the key's index, in one statement: the lookups come as one
    JSON parameter, each row of ``json_each`` an index range (the CROSS JOIN keeps them the outer loop). Each lookup
    keeps its closest :data:`CANDIDATES` (in :func:`candidates`)."""
    return text(
        f"""
        SELECT CAST(json_extract(p.value, '$[0]') AS INTEGER) AS n, {_COLUMNS}
        FROM json_each(:probes) AS p
        CROSS JOIN tickets AS t
        WHERE t.{column} = json_extract(p.value, '$[1]')
          AND t.dispatched_at BETWEEN json_extract(p.value, '$[2]') AND json_extract(p.value, '$[3]')
        ORDER BY n, t.dispatched_at DESC
        """
    ).columns(**{**_TYPES, "dispatched_at": _UtcText()})


_SQLITE = {"phone": _sqlite_batch("repeat_phone"), "address": _sqlite_batch("repeat_address")}


def _candidate(row: Mapping[Any, Any]) -> Candidate:
    return Candidate(
        id=row["id"],
        ticket_no=row["ticket_no"],
        dispatched_at=row["dispatched_at"],
        repeat_phone=row["repeat_phone"],
        repeat_address=row["repeat_address"],
        repeat_signature=row["repeat_signature"],
    )


async def candidates(conn: Conn, lookups: Sequence[Lookup]) -> list[list[Candidate]]:
    """For each lookup, its tickets, the latest first, at most :data:`CANDIDATES`."""
    found: list[list[Candidate]] = [[] for _ in lookups]
    if conn.dialect.name == "postgresql":
        for i in range(0, len(lookups), CHUNK):
            part = lookups[i : i + CHUNK]
            result = await conn.execute(
                _PG,
                {
                    "ns": list(range(i, i + len(part))),
                    "signals": [lookup.signal for lookup in part],
                    "keys": [lookup.key for lookup in part],
                    "sinces": [lookup.since for lookup in part],
                    "untils": [lookup.until for lookup in part],
                },
            )
            for row in result.mappings():
                found[row["n"]].append(_candidate(row))
        return found
    stamps: dict[datetime, str] = {}  # a ticket's two look-ups share their bounds

    def stamp(at: datetime) -> str:
        found = stamps.get(at)
        if found is None:
            found = stamps[at] = sqlite_text(at)
        return found

    for signal in ("phone", "address"):
        probes = [
            [n, lookup.key, stamp(lookup.since), stamp(lookup.until)]
            for n, lookup in enumerate(lookups)
            if lookup.signal == signal
        ]
        for i in range(0, len(probes), CHUNK):
            result = await conn.execute(_SQLITE[signal], {"probes": json.dumps(probes[i : i + CHUNK])})
            for row in result.mappings():
                if len(found[row["n"]]) < CANDIDATES:
                    found[row["n"]].append(_candidate(row))
    return found


async def add_links(conn: Conn, rows: Sequence[Mapping[str, Any]]) -> None:
    """Pairs (``ticket_id``, ``earlier_id``, ``reason``); a pair already there is left as it is."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":  # one statement, not one per pair: an import writes a thousand at once
        for i in range(0, len(rows), CHUNK):
            part = rows[i : i + CHUNK]
            await conn.execute(
                _PG_LINKS,
                {
                    "tickets": [r["ticket_id"] for r in part],
                    "earlier": [r["earlier_id"] for r in part],
                    "reasons": [r["reason"] for r in part],
                },
            )
        return
    statement = sqlite_insert(ticket_repeats).on_conflict_do_nothing(index_elements=["ticket_id", "earlier_id"])
    await conn.execute(statement, [dict(r) for r in rows])


_PG_LINKS = text(
    "INSERT INTO ticket_repeats (ticket_id, earlier_id, reason) "
    "SELECT * FROM unnest(CAST(:tickets AS bigint[]), CAST(:earlier AS bigint[]), CAST(:reasons AS text[])) "
    "ON CONFLICT DO NOTHING"
)


async def drop_links(conn: Conn, ticket_id: int) -> None:
    """The pairs in which ``ticket_id`` is the later ticket (before it is matched again)."""
    await conn.execute(delete(ticket_repeats).where(ticket_repeats.c.ticket_id == ticket_id))


_EARLIER_ONE = tickets.alias("earlier_one")
_LATEST = (
    select(_EARLIER_ONE.c.ticket_no)
    .select_from(ticket_repeats.join(_EARLIER_ONE, _EARLIER_ONE.c.id == ticket_repeats.c.earlier_id))
    .where(ticket_repeats.c.ticket_id == tickets.c.id)
    .order_by(_EARLIER_ONE.c.dispatched_at.desc(), _EARLIER_ONE.c.id.desc())
    .limit(1)
)


# SQLite: each ticket's pairs counted, and the latest found, by correlated subqueries (in-process: microseconds)
_RECOUNT = (
    update(tickets)
    .where(among_ids(tickets.c.id, "sqlite"))
    .values(
        repeat_count=1 + select(func.count()).where(ticket_repeats.c.ticket_id == tickets.c.id).scalar_subquery(),
        repeat_of=_LATEST.scalar_subquery(),
        repeat_reason=_LATEST.with_only_columns(ticket_repeats.c.reason).scalar_subquery(),
    )
)


# PostgreSQL: the pairs read once, in one pass (the correlated form reads them three times a ticket)
_PG_RECOUNT = text(
    """
    UPDATE tickets AS t SET repeat_count = 1 + s.earlier, repeat_of = s.ticket_no, repeat_reason = s.reason
    FROM (
        SELECT DISTINCT ON (r.ticket_id) r.ticket_id, count(*) OVER (PARTITION BY r.ticket_id) AS earlier,
               e.ticket_no, r.reason
        FROM ticket_repeats r JOIN tickets e ON e.id = r.earlier_id
        WHERE r.ticket_id = ANY(CAST(:ids AS bigint[]))
        ORDER BY r.ticket_id, e.dispatched_at DESC, e.id DESC
    ) AS s
    WHERE t.id = s.ticket_id
    """
)


async def recount(conn: Conn, ticket_ids: Sequence[int]) -> None:
    """Sets the repeat columns of ``ticket_ids`` from their pairs: one more than their earlier tickets, the latest of
    them and what matched it (for tickets that gained an earlier one imported after them). Not a change of the
    ticket's own: its version stays."""
    ids = sorted(set(ticket_ids))
    for i in range(0, len(ids), CHUNK):
        statement = _PG_RECOUNT if conn.dialect.name == "postgresql" else _RECOUNT
        await conn.execute(statement, {"ids": ids[i : i + CHUNK]})


def _linked(by: Any, other: Any, dialect: str) -> Any:
    """Each pair's ``by`` side with the ticket on its ``other`` side, as it is now."""
    return (
        select(
            by.label("of_id"),
            tickets.c.ticket_no,
            tickets.c.dispatched_at,
            tickets.c.state,
            tickets.c.satisfaction,
            ticket_repeats.c.reason,
        )
        .select_from(ticket_repeats.join(tickets, tickets.c.id == other))
        .where(among_ids(by, dialect))
        .order_by(tickets.c.dispatched_at.desc(), tickets.c.id.desc())
    )


_EARLIER = {d: _linked(ticket_repeats.c.ticket_id, ticket_repeats.c.earlier_id, d) for d in ("postgresql", "sqlite")}
_LATER = {d: _linked(ticket_repeats.c.earlier_id, ticket_repeats.c.ticket_id, d) for d in ("postgresql", "sqlite")}


async def earlier_of(conn: Conn, ticket_ids: Sequence[int]) -> dict[int, list[RepeatLink]]:
    """The earlier tickets each of ``ticket_ids`` repeats, the latest first (tickets without any are left out)."""
    return await _links(conn, _EARLIER, ticket_ids)


async def later_of(conn: Conn, ticket_ids: Sequence[int]) -> dict[int, list[RepeatLink]]:
    """The later tickets that repeat each of ``ticket_ids``, the latest first."""
    return await _links(conn, _LATER, ticket_ids)


async def _links(conn: Conn, statements: Mapping[str, Any], ticket_ids: Sequence[int]) -> dict[int, list[RepeatLink]]:
    found: dict[int, list[RepeatLink]] = {}
    ids = list(dict.fromkeys(ticket_ids))
    for i in range(0, len(ids), CHUNK):
        result = await conn.execute(statements[conn.dialect.name], {"ids": ids[i : i + CHUNK]})
        for row in result.mappings():
            values = dict(row)
            found.setdefault(values.pop("of_id"), []).append(RepeatLink.of(values))
    return found
