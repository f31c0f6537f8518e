"""The ticket service: hand-overs from the hotline and actions on tickets, each in one transaction.

A change, its deadlines, its audit entry and the messages it causes (the outbox) commit together. What the
caller acknowledges has been persisted.

**Hooks.** Whatever else must follow a change in the same transaction (the pushes into the work groups,
:mod:`notifiers.pushes`) is a :class:`ChangeHook`: the service describes each change as a :class:`TicketChange`
(a ticket created, an action applied) and hands the hooks the list with the transaction's connection, so what they
write commits with the change or not at all; once the transaction has committed, each hook that was told is
told so (:meth:`ChangeHook.committed`: wake the outbox). Hooks decide for themselves what concerns them.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain.records import Deadline, RepeatLink, Ticket
from bot.services.handovers import HOTLINE, HandOvers
from bot.services.ticket_actions import _access_audit
from bot.services.ticket_core import SyncBack
from bot.services.ticket_model import (
    ActionOutcome,
    ChangeHook,
    NotPermitted,
    TicketChange,
    TicketDetail,
    TicketNotFound,
    UnknownUnit,
    UpsertOutcome,
)
from store import audit as audit_repo
from store import deadlines as deadlines_repo
from store import notifications as notifications_repo
from store import repeats as repeats_repo
from store import tickets as tickets_repo
from store.core import Conn

__all__ = [
    "HOTLINE",
    "ActionOutcome",
    "ChangeHook",
    "NotPermitted",
    "SyncBack",
    "TicketChange",
    "TicketDetail",
    "TicketNotFound",
    "TicketService",
    "UnknownUnit",
    "UpsertOutcome",
]


class TicketService(HandOvers):
    """Hand-overs (:class:`bot.services.handovers.HandOvers`), actions (:class:`bot.services.ticket_actions.
    TicketActions`) and reads of tickets."""

    async def record_access(self, ticket: Ticket, *, actor: str, what: str) -> None:
        """Who saw a citizen's full contact details, and when: an audit entry (the state does not change)."""
        entry = _access_audit(ticket, actor=actor, at=self.clock.now(), via=what)
        async with self.store.transaction() as conn:
            await audit_repo.append_audit(conn, [entry])

    async def deadlines_of(self, ticket_id: int) -> Sequence[Deadline]:
        """A ticket's deadlines, every cycle's, as :meth:`get` gives them."""
        async with self.store.reading() as conn:
            return await deadlines_repo.deadlines_of(conn, ticket_id)

    async def repeats_of(self, ticket: Ticket) -> tuple[Sequence[RepeatLink], Sequence[RepeatLink]]:
        """The tickets of the same matter (重复诉求): the earlier ones ``ticket`` repeats and the later ones that repeat
        it, each the latest first, as they are now."""
        async with self.store.reading() as conn:
            earlier = await repeats_repo.earlier_of(conn, [ticket.id])
            later = await repeats_repo.later_of(conn, [ticket.id])
        return earlier.get(ticket.id, []), later.get(ticket.id, [])

    async def get(self, ticket_no: str, *, history: bool = True, deadlines: bool = True) -> TicketDetail:
        """The ticket with its deadlines, its history and who was told of its deadlines (each can be left out when not
        needed, e.g. in a chat reply; ``history`` covers both the audit log and the notifications)."""

        async def query(conn: Conn) -> TicketDetail:
            row = await tickets_repo.ticket_by_no(conn, ticket_no)
            if row is None:
                raise TicketNotFound(ticket_no)
            return TicketDetail(
                ticket=row,
                deadlines=await deadlines_repo.deadlines_of(conn, row.id) if deadlines else (),
                history=await audit_repo.history_of(conn, row.id) if history else (),
                notifications=await notifications_repo.of_ticket(conn, row.id) if history else (),
            )

        async with self.store.reading() as conn:
            return await query(conn)
