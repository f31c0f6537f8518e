"""Actions on tickets (a member's command, the platform's re-dispatch): each one transaction that checks who may do
it, decides the transition (:func:`bot.domain.lifecycle.decide`), and writes the ticket, its deadlines, the audit
entry, the sync-back and what the hooks add."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.domain.deadlines import PlanRequest
from bot.domain.history import imported_until
from bot.domain.lifecycle import (
    Action,
    ActionRequest,
    Transition,
    decide,
)
from bot.domain.nags import NAG_FREE, period_start
from bot.domain.permissions import refusal
from bot.domain.records import Deadline, HistoryEntry, Ticket
from bot.services.ticket_core import TicketCore
from bot.services.ticket_model import (
    ActionOutcome,
    NotPermitted,
    TicketChange,
    TicketNotFound,
    UnknownUnit,
)
from config.vocabulary import DeadlineName
from store import audit as audit_repo
from store import deadlines as deadlines_repo
from store import inbox as inbox_repo
from store import nags as nag_store
from store import tickets as tickets_repo
from store.core import ConcurrentUpdate, Conn

log = logging.getLogger(__name__)

_RETRIES = 5


class TicketActions(TicketCore):
    async def act(
        self,
        ticket_no: str,
        req: ActionRequest,
        *,
        dedup: tuple[str, str, str] | None = None,
        with_deadlines: bool = False,
        viewed: str | None = None,
        row: Ticket | None = None,
    ) -> ActionOutcome:
        """Applies an action. ``dedup`` = (source, key, raw payload): an inbound message applied once only.
        ``with_deadlines``: the outcome carries the ticket's open deadlines as the action left them (worked out from
        what it read and changed, not read again; read in the same transaction for a retried event). ``viewed``:
        the actor is shown the citizen's contact details with the outcome (claiming in chat); recorded as
        :meth:`record_access` records it, in the same transaction. ``row``: the ticket as the
        caller just read it (a command that looked it up), used instead of reading it again; the change is written
        only if the ticket's version is still that row's, else the action is retried on a fresh read.

        A member's action (not the hotline platform's: ``by_hotline``) is checked against who may do what to which
        unit's tickets (:mod:`bot.domain.permissions`), on the ticket as it is read here.

        Raises TicketNotFound, NotPermitted or TransitionRefused (nothing changed in any case). The whole action is
        one transaction.
        """

        known = [row] if row is not None and row.ticket_no == ticket_no else []  # used on the first try only

        async def transaction(conn: Conn) -> ActionOutcome:
            touched: list[datetime] = []
            outcome = await steps(conn, touched)
            await self._unsettle(conn, touched)
            return outcome

        async def steps(conn: Conn, touched: list[datetime]) -> ActionOutcome:
            outcome: ActionOutcome | None = None
            if dedup is not None:
                source, key, payload = dedup
                inbox_id = await inbox_repo.record_inbound(
                    conn, source=source, dedup_key=key, payload=payload, at=self.clock.now(), status="done"
                )
                if inbox_id is None:
                    outcome = await self._duplicate(conn, ticket_no, req)
            if outcome is None:
                current = known.pop() if known else await tickets_repo.ticket_by_no(conn, ticket_no)
                if current is None:
                    raise TicketNotFound(ticket_no)
                refused = None if req.by_hotline else refusal(self.config, req.actor, req.action, current)
                if refused is not None:
                    raise NotPermitted(refused)
                outcome = await self._apply(conn, current, req, touched=touched)
                if viewed is not None:
                    await audit_repo.append_audit(
                        conn, [_access_audit(outcome.ticket, actor=req.actor, at=self.clock.now(), via=viewed)]
                    )
            if not with_deadlines:
                return dataclasses.replace(outcome, deadlines=())
            if outcome.duplicate:  # a retry: nothing was worked out, read them
                found = await deadlines_repo.open_deadlines(conn, outcome.ticket.id)
                outcome = dataclasses.replace(outcome, deadlines=found)
            return outcome

        for attempt in range(_RETRIES):
            try:
                async with self._told(), self.store.transaction() as conn:
                    return await transaction(conn)
            except ConcurrentUpdate:
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    async def _duplicate(self, conn: Conn, ticket_no: str, req: ActionRequest) -> ActionOutcome:
        row = await tickets_repo.ticket_by_no(conn, ticket_no)
        if row is None:
            raise TicketNotFound(ticket_no)
        return ActionOutcome(
            action=req.action, from_state=row.state, to_state=row.state, audit_id=0, ticket=row, duplicate=True
        )

    async def _apply(
        self, conn: Conn, row: Ticket, req: ActionRequest, *, touched: list[datetime], source: str | None = None
    ) -> ActionOutcome:
        """``req`` applied to ``row``; ``touched`` collects the change for :meth:`_unsettle`, which the caller runs
        when its transaction's changes are all made."""
        req = self.prepared(row, req)
        ticket = row
        open_rows = await deadlines_repo.open_deadlines(conn, row.id)
        current = [r for r in open_rows if r.cycle == ticket.cycle]
        transition = decide(ticket, req, {r.name: r.due_at for r in current})
        values: dict[str, Any] = {"state": transition.to_state.value, "updated_at": req.at, **transition.changes}
        if transition.new_cycle is not None:
            values["cycle"] = ticket.cycle + 1
        await tickets_repo.update_ticket(conn, row.id, row.version, values)
        await self._touched(conn, row, touched)
        started, closed = await self._apply_deadlines(conn, row, ticket, transition, open_rows, req.at)
        data = dict(transition.data)
        moved: dict[str, dict[str, str]] = {}
        if transition.extend:
            quiet = imported_until(row.source, row.received_at)
            moved = data["deadlines"] = await self._extend(conn, current, transition, req.at, quiet)
        # the open deadlines as the action leaves them (what an answer shows), worked out rather than read again
        still_open = [
            r.updated(due_at=datetime.fromisoformat(moved[r.name]["to"]))
            if r.cycle == ticket.cycle and r.name in moved
            else r
            for r in open_rows
            if r.id not in closed
        ]
        facts = {k: v for k, v in data.items() if v is not None}
        audit = {
            "ticket_id": row.id,
            "ticket_no": ticket.ticket_no,
            # the unit the ticket was with when it happened: whose returns and warnings the reports count it in
            "unit_code": row.unit_code,
            "at": req.at,
            "actor": req.actor,
            "action": req.action.value,
            "from_state": ticket.state.value,
            "to_state": transition.to_state.value,
            "note": req.note,
            "data": facts,
        }
        (audit_id,) = await audit_repo.append_audit(conn, [audit])
        if not req.by_hotline:
            await self._sync_back(conn, [HistoryEntry.of({**audit, "id": audit_id})])
        merged = row.updated({**values, "version": row.version + 1})
        if self.hooks:
            change = TicketChange(
                action=req.action.value,
                ticket=merged,
                from_state=ticket.state,
                to_state=transition.to_state,
                from_unit=row.unit_code,
                from_handler=row.handler_userid,
                at=req.at,
                actor=req.actor,
                audit_id=audit_id,
                source=source,
                deadlines=started,
                data=facts,
            )
            await self._tell(conn, [change])
        return ActionOutcome(
            action=req.action,
            from_state=ticket.state,
            to_state=transition.to_state,
            audit_id=audit_id,
            ticket=merged,
            deadlines=[*still_open, *started],
        )

    def prepared(self, row: Ticket, req: ActionRequest) -> ActionRequest:
        """``req`` as the lifecycle is asked it on ``row``: its unit by code, and the configuration's limits and rules
        for its action (extensions, returns and re-dispatches, a return's signature, the visits that warn). Raises
        UnknownUnit for a unit the configuration does not know."""
        if req.unit and req.action in (Action.REDISPATCH, Action.ASSIGN, Action.APPROVE_RETURN):
            unit = self.config.unit_for_label(req.unit)
            if unit is None:
                raise UnknownUnit(req.unit)
            req = _replace(req, unit=unit.code)
        if req.action is Action.REQUEST_EXTENSION:
            return _replace(req, extension_limits=self.extension_limits)
        if req.action in (Action.APPROVE_RETURN, Action.REDISPATCH):
            return _replace(req, return_limits=self.return_limits)
        if req.action is Action.REQUEST_RETURN:
            return _replace(req, signoff=self._needs_signoff(row, req))
        if req.action is Action.VISIT:
            return _replace(req, warning_results=self.warning_results)
        return req

    def _needs_signoff(self, ticket: Ticket, req: ActionRequest) -> bool:
        """Whether a return asked for by ``req.actor`` waits for the unit head's signature: a handler's does, when
        the configuration says so; a head's or deputy's goes straight to the office."""
        if req.by_hotline or not self.config.returns.head_signoff:
            return False
        unit = self.config.unit(ticket.unit_code) if ticket.unit_code else None
        return unit is None or req.actor not in unit.heads

    async def _apply_deadlines(
        self,
        conn: Conn,
        row: Ticket,
        ticket: Ticket,
        transition: Transition,
        open_rows: Sequence[Deadline],
        at: datetime,
    ) -> tuple[list[Deadline], set[int]]:
        """Closes what the transition meets or cancels; (the deadlines of the new cycle it starts, if any, the ids of
        those it closed)."""
        met = [r.id for r in open_rows if r.id is not None and r.cycle == ticket.cycle and r.name in transition.meet]
        # a new cycle supersedes whatever the previous one left open
        closed = [
            r
            for r in open_rows
            if r.id not in met
            and (transition.new_cycle is not None or r.cycle != ticket.cycle or r.name in transition.cancel)
        ]
        # an obligation already overdue when it stops mattering was missed, and counts so in the rates; a window (the
        # return window) that passes is not a miss, nor what fell due after the transition's excuse began
        excused = transition.excused_from
        missed = [
            r.id
            for r in closed
            if r.id is not None
            and r.due_at < at
            and r.name != DeadlineName.RETURN_WINDOW
            and (excused is None or r.due_at < excused)
        ]
        cancelled = [r.id for r in closed if r.id is not None and r.id not in missed]
        await deadlines_repo.close_deadlines(conn, met, status="met", at=at)
        await deadlines_repo.close_deadlines(conn, missed, status="missed", at=at)
        await deadlines_repo.close_deadlines(conn, cancelled, status="cancelled", at=None)
        closing = set(met) | {r.id for r in closed if r.id is not None}
        # a return under review holds the unit's reminders; a rejected one lets them go on from now
        remaining = [r.id for r in open_rows if r.id is not None and r.id not in closing and r.cycle == ticket.cycle]
        if transition.hold:
            await deadlines_repo.hold_deadlines(conn, remaining)
        elif transition.resume:
            nagged = [r.id for r in open_rows if r.id in remaining and r.name not in NAG_FREE]
            await deadlines_repo.resume_deadlines(conn, nagged, at=at)
        # an accept deadline that passed unmet counts against the unit that had the ticket (three misses); the
        # deadline engine counts it when it finds it open after its due time, this when a late claim is first
        # (one due before its ticket was imported is the platform's history: it counts in no unit's misses now)
        history = imported_until(row.source, row.received_at)
        late = [
            r
            for r in open_rows
            if (r.id in missed or (r.id in met and r.due_at < at))
            and r.name == DeadlineName.ACCEPT
            and (history is None or r.due_at > history)
        ]
        if late and row.unit_code:
            months = self.config.nags.three_misses.period_months
            await nag_store.record_misses(
                conn,
                [
                    {
                        "deadline_id": r.id,
                        "ticket_id": row.id,
                        "unit_code": row.unit_code,
                        "period_start": period_start(r.due_at, months),
                        "missed_at": r.due_at,
                    }
                    for r in late
                ],
                threshold=self.config.nags.three_misses.count,
                at=at,
            )
        started: list[Deadline] = []
        if transition.review:
            review = self._review_deadline(row.id, ticket.cycle, at, row.unit_code)
            await deadlines_repo.insert_deadlines(conn, review)
            started += [Deadline.of(d) for d in review]
        if transition.new_cycle is None:
            return started, closing
        request = PlanRequest(kind=ticket.kind, category=ticket.category, start=at, cycle_kind=transition.new_cycle)
        plan = self.planner.plan(request)
        unit = transition.changes.get("unit_code", row.unit_code)
        rows = self._deadline_rows([(row.id, ticket.cycle + 1, p, unit) for p in plan], at)
        await deadlines_repo.insert_deadlines(conn, rows)
        return [*started, *(Deadline.of(d) for d in rows)], closing

    def _review_deadline(self, ticket_id: int, cycle: int, at: datetime, unit: str | None) -> list[dict[str, Any]]:
        """The office's deadline to decide on a return (``returns.review``), reminded and escalated like any (kept
        under the unit that asked: the reports leave it out of every unit's rates)."""
        planned = self.planner.plan_one(DeadlineName.RETURN_REVIEW, self.config.returns.review, at)
        return self._deadline_rows([(ticket_id, cycle, planned, unit)], at)

    async def _extend(
        self,
        conn: Conn,
        current: Sequence[Deadline],
        transition: Transition,
        at: datetime,
        quiet_until: datetime | None = None,
    ) -> dict[str, dict[str, str]]:
        """An approved extension: each deadline of ``transition.extend`` moves ``extend_days`` working days later,
        counted from its own due time on the working-day calendar. Returns {name: {"from": …, "to": …}} (ISO) for
        the audit log."""
        moved: dict[str, dict[str, str]] = {}
        for r in current:
            if r.name not in transition.extend or r.id is None:
                continue
            due = self.calendar.add_working_days(r.due_at, transition.extend_days)
            stage, next_due_at = self.nag_point(r.name, r.policy, r.started_at, due, at, quiet_until=quiet_until)
            await deadlines_repo.reschedule_deadline(
                conn,
                r.id,
                policy=r.policy,
                started_at=r.started_at,
                due_at=due,
                stage=stage,
                next_due_at=next_due_at,
                extended_days=r.extended_days + transition.extend_days,
            )
            moved[r.name] = {"from": r.due_at.isoformat(), "to": due.isoformat()}
        return moved


def _access_audit(ticket: Ticket, *, actor: str, at: datetime, via: str) -> dict[str, Any]:
    return {
        "ticket_id": ticket.id,
        "ticket_no": ticket.ticket_no,
        "at": at,
        "actor": actor,
        "action": "view_contact",
        "from_state": ticket.state.value,
        "to_state": ticket.state.value,
        "note": None,
        "data": {"via": via},
    }


def _replace(req: ActionRequest, **changes: Any) -> ActionRequest:
    from dataclasses import replace

    return replace(req, **changes)
