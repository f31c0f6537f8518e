"""Who hears of the requests the office decides, a return (退单) and an exclusion from the ratings (不纳入测评),
written to the outbox in the transaction of the change (a :class:`bot.services.tickets.ChangeHook`, as the pushes
are), whether the change came from the chat or the API:

* a handler's return waiting for a signature: the unit's heads and deputies, privately (without a private channel,
  in the unit's group, mentioning them);
* a signed return: the office's group and each dispatcher privately, with the ticket, the unit, the reason, the
  suggested unit and the words to answer; the office's review deadline reminds them after that;
* a head's refusal to sign: the handler who asked;
* the office's decision: the unit that asked, in its group, mentioning whoever asked (an approval that re-dispatches
  the ticket is told by the pushes' notice to the unit it left instead); a ticket that needs 签派: the center leads
  privately and the office's group;
* an exclusion asked for: the office's group, each dispatcher and center lead privately; decided: the unit's group.

Every message's key derives from the ticket, its cycle and the audit entry, so a change applied once is told once;
a group gets them in order with the ticket's pushes there.
What each says: :mod:`bot.messages.reviews`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from datetime import datetime

from bot.domain.clock import Clock
from bot.domain.lifecycle import Action, TicketState
from bot.domain.records import Deadline
from bot.messages import reviews as texts
from bot.messages.notice import Notice
from bot.services.channels import Channels
from bot.services.tickets import TicketChange
from config.model import BotConfig
from config.vocabulary import DeadlineName, Role
from notifiers.rows import Row, notice_rows
from store import deadlines as deadlines_repo
from store import outbox as outbox_repo
from store.core import Conn

# set by :meth:`ReviewNotices.changed` when its transaction queued a notice, read by :meth:`ReviewNotices.committed`
# in the same task (one hook serves concurrent transactions)
_QUEUED: ContextVar[bool] = ContextVar("return_notice_queued", default=False)


class ReviewNotices:
    """Tells the heads, the office, the unit and the center leads of a return's and an exclusion's steps (see the
    module)."""

    def __init__(
        self, config: BotConfig, clock: Clock, channels: Channels, *, wake: Callable[[], None] | None = None
    ) -> None:
        self.config = config
        self.clock = clock
        self.channels = channels
        self.wake = wake

    async def changed(self, conn: Conn, changes: Sequence[TicketChange]) -> None:
        now = self.clock.now()
        rows: list[Row] = []
        for change in changes:
            open_now: Sequence[Deadline] = ()
            if change.action == Action.REJECT_RETURN:  # the deadlines that run on, for the unit's notice
                open_now = await deadlines_repo.open_deadlines(conn, change.ticket.id)
            for notice in self._notices(change, open_now, now):
                if notice.unit is not None:
                    # in a group, in the order of the ticket's other messages there (its pushes)
                    notice = dataclasses.replace(notice, ordering_key=f"push:{change.ticket_no}:{notice.unit}")
                rows += notice_rows(notice, self.config, self.channels, at=now)
        if rows:
            await outbox_repo.enqueue(conn, rows)
            _QUEUED.set(True)

    def committed(self) -> None:
        """Wakes the outbox once the transaction that queued a notice has committed."""
        if _QUEUED.get():
            _QUEUED.set(False)
            if self.wake is not None:
                self.wake()

    def _notices(self, change: TicketChange, open_now: Sequence[Deadline], now: datetime) -> list[Notice]:
        action, ticket = change.action, change.ticket
        key = f"return:{ticket.ticket_no}:{ticket.cycle}:{change.audit_id}"
        if action == Action.REQUEST_RETURN and change.to_state is not TicketState.RETURN_REQUESTED:
            unit = self.config.unit(ticket.unit_code or "")
            heads = [userid for userid in (unit.heads if unit is not None else []) if userid != change.actor]
            return [
                self._private(key, texts.signoff_request(self.config, ticket, change.actor), heads, ticket.unit_code)
            ]
        if change.to_state is TicketState.RETURN_REQUESTED and change.from_state is not TicketState.RETURN_REQUESTED:
            review = next((d for d in change.deadlines if d.name == DeadlineName.RETURN_REVIEW), None)
            text = texts.review_request(self.config, ticket, review)
            return [
                Notice(key=key, text=text, unit=self.config.office.unit),
                self._private(f"{key}:dispatchers", text, self._holders(Role.DISPATCHER), None),
            ]
        if action == Action.DECLINE_RETURN:
            asked = change.data.get("requested_by")
            text = texts.head_declined(self.config, ticket, change.actor, change.data)
            return [self._private(key, text, [asked] if asked else [], ticket.unit_code)]
        if action == Action.REJECT_RETURN:
            asked = change.data.get("requested_by")
            text = texts.rejected(self.config, ticket, open_now, change.data, now)
            mention = [m for m in (asked, ticket.handler_userid) if m]
            return [Notice(key=key, text=text, unit=ticket.unit_code, mention=list(dict.fromkeys(mention)))]
        if action == Action.APPROVE_RETURN and change.to_state is not TicketState.DISPATCHED:
            notices = [
                Notice(
                    key=key,
                    text=texts.approved(self.config, ticket, change.from_unit, change.data),
                    unit=change.from_unit,
                    mention=[change.from_handler] if change.from_handler else [],
                )
            ]
            if change.to_state is TicketState.PENDING_ASSIGNMENT:
                text = texts.to_assignment(self.config, ticket, change.from_unit, change.data)
                notices.append(Notice(key=f"{key}:assign", text=text, unit=self.config.office.unit))
                notices.append(self._private(f"{key}:leads", text, self._holders(Role.CENTER_LEAD), None))
            return notices
        if action == Action.REQUEST_EXCLUSION:
            text = texts.exclusion_request(self.config, ticket, change.actor, change.data.get("reason"))
            deciders = [*self._holders(Role.DISPATCHER), *self._holders(Role.CENTER_LEAD)]
            return [
                Notice(key=key, text=text, unit=self.config.office.unit),
                self._private(f"{key}:deciders", text, list(dict.fromkeys(deciders)), None),
            ]
        if action in (Action.APPROVE_EXCLUSION, Action.REJECT_EXCLUSION):
            approved = action == Action.APPROVE_EXCLUSION
            text = texts.exclusion_decided(
                self.config, ticket, change.actor, approved=approved, reason=change.data.get("reason")
            )
            return [Notice(key=key, text=text, unit=ticket.unit_code)]
        return []

    def _holders(self, role: Role) -> list[str]:
        return [m.userid for m in self.config.members_with_role(role)]

    def _private(self, key: str, text: str, userids: Sequence[str], unit: str | None) -> Notice:
        """``text`` to ``userids`` privately; without a private channel, in ``unit``'s group mentioning them."""
        if self.channels.private or unit is None:
            return Notice(key=key, text=text, members=list(userids))
        return Notice(key=key, text=text, unit=unit, mention=list(userids))
