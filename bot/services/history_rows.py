"""An import's history on the rows a hand-over writes: each new deadline as the export row says it went (met, missed,
cancelled, or open: :func:`bot.domain.history.settle_deadline`), and what the ticket's audit entry keeps of it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.domain.history import Settled, TicketHistory, imported_until, settle_deadline
from bot.domain.ticket import TicketInput

__all__ = ["dispatch_data", "imported_until", "settle_deadline_rows"]


def settle_deadline_rows(
    rows: Sequence[dict[str, Any]],
    ids: Sequence[int],
    items: Sequence[TicketInput],
    settled: Sequence[Settled | None],
) -> None:
    """Closes, in place, the deadline ``rows`` of the new tickets (``ids``, in the order of ``items``) that their
    history says were met, missed or cancelled (no step for the engine then)."""
    known: dict[int, tuple[TicketHistory, bool]] = {}
    for ticket_id, item, done in zip(ids, items, settled, strict=True):
        if item.history is not None and done is not None:
            known[ticket_id] = (item.history, done.finished)
    if not known:
        return
    for row in rows:
        found = known.get(row["ticket_id"])
        if found is None:
            continue
        history, finished = found
        outcome, at = settle_deadline(history, row["name"], row["due_at"], finished=finished)
        if outcome != "open":
            row.update(status=outcome, met_at=at, next_due_at=None, stage=0)


def dispatch_data(unit: str | None, routed_by: str, source: str, history: TicketHistory | None) -> dict[str, Any]:
    """The data of a new ticket's audit entry: its unit, why, where from, and what its row said of its past."""
    data: dict[str, Any] = {"unit": unit, "routed_by": routed_by, "source": source}
    if history is not None:
        data["history"] = history.as_data()
    return data
