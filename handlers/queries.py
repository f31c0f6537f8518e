"""The read-only lists and figures the chat commands show: /我的, /待办, /逾期, /统计 (in all, and per unit).

Rows are plain mappings: the ticket's list columns (``ticket_no``, ``title``, ``content``, ``kind``, ``category``,
``unit_code``, ``handler_userid``, ``state``, ``dispatched_at`` …, never the citizen's phone; the name and address
only to mask them in the text) and its next open deadline, ``deadline_name`` and ``deadline_due_at`` (None when it
has none). The return window is a window, not an obligation: it is never the next deadline and never makes a ticket
overdue. The office's review of a return counts in the office's lists (all units), never in a unit's or a
handler's. The SQL is in store.queries.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, time

from bot.domain.clock import TZ
from bot.domain.lifecycle import TicketState
from bot.domain.records import TicketLine
from config.vocabulary import DeadlineName
from store import queries as queries_repo
from store.core import Store

# not closed, not cancelled
OPEN_STATES: tuple[str, ...] = tuple(s.value for s in TicketState if s.is_open)
# a unit's own: an approved return (returned, awaiting re-dispatch or 签派) is back with the office
UNIT_STATES: tuple[str, ...] = tuple(
    s for s in OPEN_STATES if s not in (TicketState.RETURNED, TicketState.PENDING_ASSIGNMENT)
)
UNCLAIMED_STATES: tuple[str, ...] = (TicketState.DISPATCHED.value,)
WINDOWS: tuple[str, ...] = (DeadlineName.RETURN_WINDOW.value,)
# what a unit's lists leave out besides: the office's review of a return is the office's to meet, not the unit's
UNIT_WINDOWS: tuple[str, ...] = (*WINDOWS, DeadlineName.RETURN_REVIEW.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """/统计: ``open`` tickets, of which ``unclaimed`` and ``overdue``; ``closed_today`` (办结, since midnight)."""

    open: int
    unclaimed: int
    overdue: int
    closed_today: int


def _scope(units: Collection[str] | None) -> list[str] | None:
    return None if units is None else sorted(set(units))


async def my_open_tickets(store: Store, userid: str, *, limit: int = 100) -> list[TicketLine]:
    """The tickets ``userid`` handles that are still open, the nearest deadline first (none last)."""
    async with store.reading() as conn:
        return await queries_repo.handler_tickets(conn, userid, states=OPEN_STATES, windows=UNIT_WINDOWS, limit=limit)


async def unit_open_tickets(store: Store, unit_codes: Collection[str], *, limit: int = 20) -> list[TicketLine]:
    """The open tickets of the units (not those whose return was approved): unclaimed first, then by next
    deadline, those without one last."""
    units = _scope(unit_codes)
    if not units:
        return []
    async with store.reading() as conn:
        return await queries_repo.unit_tickets(
            conn, units, states=UNIT_STATES, first_states=UNCLAIMED_STATES, windows=UNIT_WINDOWS, limit=limit
        )


async def overdue_tickets(
    store: Store, unit_codes: Collection[str] | None, now: datetime, *, limit: int = 20
) -> list[TicketLine]:
    """Open tickets of the units (None: all) with a deadline past due at ``now``, the longest overdue first;
    ``deadline_name`` / ``deadline_due_at`` is that deadline."""
    units = _scope(unit_codes)
    if units == []:
        return []
    async with store.reading() as conn:
        return await queries_repo.overdue_unit_tickets(
            conn, units, now, states=OPEN_STATES, windows=WINDOWS if units is None else UNIT_WINDOWS, limit=limit
        )


async def quick_figures(store: Store, unit_codes: Collection[str] | None, now: datetime) -> Figures:
    """Counts for /统计 over the units (None: the whole office). "Today" starts at midnight in Asia/Shanghai. For
    units, ``open`` counts their own tickets (as /待办 lists them); for the whole office, every ticket not closed or
    cancelled (returned ones included)."""
    units = _scope(unit_codes)
    if units == []:
        return Figures(open=0, unclaimed=0, overdue=0, closed_today=0)
    async with store.reading() as conn:
        counts = await queries_repo.ticket_figures(
            conn,
            units,
            now,
            since=_midnight(now),
            states=OPEN_STATES if units is None else UNIT_STATES,
            unclaimed_states=UNCLAIMED_STATES,
            closed_states=(TicketState.CLOSED.value,),
            windows=WINDOWS if units is None else UNIT_WINDOWS,
        )
    return _figures(counts)


async def unit_figures(store: Store, unit_codes: Collection[str] | None, now: datetime) -> dict[str, Figures]:
    """:func:`quick_figures` of each unit of ``unit_codes`` (None: every unit) by its code, as that unit's own
    /统计 counts them (an approved return is the office's, the office's review of a return nobody's overdue); a unit
    with nothing to count is left out."""
    units = _scope(unit_codes)
    if units == []:
        return {}
    async with store.reading() as conn:
        counts = await queries_repo.ticket_figures_by_unit(
            conn,
            units,
            now,
            since=_midnight(now),
            states=UNIT_STATES,
            unclaimed_states=UNCLAIMED_STATES,
            closed_states=(TicketState.CLOSED.value,),
            windows=UNIT_WINDOWS,
        )
    return {code: _figures(c) for code, c in counts.items()}


def _midnight(now: datetime) -> datetime:
    """The start of ``now``'s day in Asia/Shanghai: "today" for the figures."""
    return datetime.combine(now.astimezone(TZ).date(), time(0), tzinfo=TZ)


def _figures(counts: Mapping[str, int]) -> Figures:
    return Figures(
        open=counts["open"], unclaimed=counts["unclaimed"], overdue=counts["overdue"], closed_today=counts["closed"]
    )
