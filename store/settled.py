"""The counts of settled periods, kept once counted (store.models.SettledFigures).

A period is settled a week after it ends (:data:`SETTLED_AFTER`): by then its deadlines have all fallen due and its
visits been made, and it changes only when one of its tickets does (a late 不纳入测评, a cancellation, an import of
the platform's history). Every such change clears the kept periods it could touch: those ending after the ticket was
dispatched, since every fact of a ticket (its deadlines, visits, returns) comes after its dispatch
(:func:`unsettle`). It also raises the epoch: counts read before the change are not kept after it
(:func:`keep` keeps them only while the epoch is the one read before counting), whichever process counted them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from store.core import Conn
from store.models import deadlines, settled_epoch, settled_figures
from store.reports import FACTS_VERSION, KINDS, Facts, Range

SETTLED_AFTER = timedelta(days=7)
_ALL = "*"  # a kept range's marker row, of each kind
_NO_UNIT = ""  # the rows of tickets of no unit (their unit is None in the rows themselves)


def settled(ends: datetime, now: datetime) -> bool:
    """Whether a range ending at ``ends`` is settled at ``now``."""
    return ends + SETTLED_AFTER <= now


async def epoch(conn: Conn) -> int:
    """The epoch, read before counting what :func:`keep` may keep."""
    return int((await conn.execute(select(settled_epoch.c.epoch).where(settled_epoch.c.id == 1))).scalar_one())


async def load(
    conn: Conn, ranges: Sequence[Range], kinds: frozenset[str] = KINDS, units: Sequence[str] | None = None
) -> dict[Range, Facts]:
    """The facts kept of ``ranges``, of ``kinds`` and ``units`` (None: every unit) only. A range kept is kept whole
    (every kind, every unit): one missing (not kept, or kept by another version of the counts) is missing."""
    if not ranges:
        return {}
    c = settled_figures.c
    query = select(c.starts, c.ends, c.kind, c.unit, c.facts).where(
        c.starts.in_(sorted({start for start, _ in ranges})), c.kind.in_(sorted(kinds))
    )
    if units is not None:
        query = query.where(c.unit.in_([_ALL, *units]))
    wanted = set(ranges)
    found: dict[Range, Facts] = {}
    marked: dict[Range, set[str]] = {}  # the kinds kept of each range, by their markers
    for start, end, kind, unit, data in (await conn.execute(query)).all():
        if (start, end) not in wanted or data.get("v") != FACTS_VERSION:
            continue
        if unit == _ALL:
            marked.setdefault((start, end), set()).add(kind)
        else:
            found.setdefault((start, end), Facts()).add(kind, data["rows"])
    return {r: found.get(r) or Facts() for r, kinds_kept in marked.items() if kinds_kept >= kinds}


async def keep(conn: Conn, read_epoch: int, counted: Iterable[tuple[Range, Facts]], at: datetime) -> bool:
    """Keeps the ``counted`` facts of settled ranges (every unit's, every kind) if nothing was cleared since
    ``read_epoch`` was read; False (nothing kept) otherwise. In a write transaction of its own: the epoch's row is
    locked until it ends, so a change clearing the ranges waits for it and then clears what it kept."""
    found = await conn.execute(select(settled_epoch.c.epoch).where(settled_epoch.c.id == 1).with_for_update())
    if int(found.scalar_one()) != read_epoch:
        return False
    c = settled_figures.c
    for (start, end), facts in counted:
        await conn.execute(delete(settled_figures).where(c.starts == start, c.ends == end))
        rows = []
        for kind in sorted(KINDS):
            by_unit: dict[str, list[Any]] = {}
            for row in facts.rows(kind):
                by_unit.setdefault(row[0] or _NO_UNIT, []).append(row)
            # a marker row per kind (unit _ALL): the range is kept even where no unit has rows of that kind
            by_unit[_ALL] = []
            rows += [
                {"starts": start, "ends": end, "kind": kind, "unit": unit, "facts": _json(unit_rows), "made_at": at}
                for unit, unit_rows in by_unit.items()
            ]
        await conn.execute(insert(settled_figures), rows)
    return True


def _json(rows: list[Any]) -> dict[str, Any]:
    return {"v": FACTS_VERSION, "rows": rows}


async def first_fact(conn: Conn, ticket_id: int) -> datetime | None:
    """When the ticket's first deadline started: its first dispatch, which ``tickets.dispatched_at`` no longer says
    once it was dispatched again (a re-dispatch, a reopening)."""
    found = await conn.execute(select(func.min(deadlines.c.started_at)).where(deadlines.c.ticket_id == ticket_id))
    return found.scalar_one()


async def unsettle(conn: Conn, dispatched: datetime | None, now: datetime) -> None:
    """A ticket first dispatched at ``dispatched`` changed in this transaction: the kept ranges ending after it are
    cleared. A ticket dispatched within the last week touches no settled range: nothing to do (no lock taken). The
    last statement of its transaction: the epoch's row is locked after every ticket's, as :func:`keep` locks only
    it, so that no two transactions wait for each other."""
    if dispatched is None or not settled(dispatched, now):
        return
    await conn.execute(update(settled_epoch).where(settled_epoch.c.id == 1).values(epoch=settled_epoch.c.epoch + 1))
    await conn.execute(delete(settled_figures).where(settled_figures.c.ends > dispatched))
