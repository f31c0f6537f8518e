"""Hand-overs from the hotline: new tickets routed and planned, known ones updated (the platform's re-dispatch, a
new policy), in one transaction per batch; identical repeats change nothing."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from bot.domain.deadlines import PlanRequest
from bot.domain.history import Settled, TicketHistory, settle, settle_deadline
from bot.domain.lifecycle import (
    Action,
    ActionRequest,
    CycleKind,
    Evaluation,
    TicketState,
)
from bot.domain.records import Deadline, HistoryEntry, Ticket
from bot.domain.ticket import UPDATABLE_FIELDS, TicketInput
from bot.services import history_rows
from bot.services.ticket_actions import TicketActions
from bot.services.ticket_model import TicketChange, UpsertOutcome
from config.vocabulary import DeadlineName, TicketKind
from store import audit as audit_repo
from store import deadlines as deadlines_repo
from store import tickets as tickets_repo
from store.core import ConcurrentUpdate, Conn, ConstraintViolation

log = logging.getLogger(__name__)

HOTLINE = "hotline"
_RETRIES = 5
# what a ticket is matched with its earlier tickets by (bot.services.repeats)
# what a platform update may write that no report counts (store.settled need count nothing again)
_NOT_COUNTED = frozenset(
    {"title", "content", "address", "citizen_name", "citizen_phone", "extra", "payload_hash", "updated_at"}
)
_MATCHED_BY = frozenset({"citizen_phone", "address", "category", "title", "content", "dispatched_at"})
_HANDLED = (TicketState.DISPATCHED, TicketState.CLAIMED, TicketState.CONTACTED, TicketState.ON_SITE)


class HandOvers(TicketActions):
    async def upsert(
        self, inputs: Sequence[TicketInput], *, source: str = "api", actor: str = HOTLINE
    ) -> list[UpsertOutcome]:
        """Creates new tickets and updates known ones (by number); identical repeats change nothing.

        Everything is committed before this returns. Concurrent hand-overs of the same new number are
        resolved by retrying: the loser finds the ticket and updates it.
        """
        # the last hand-over of a number within one batch wins
        latest = {t.ticket_no: t for t in inputs}
        for attempt in range(_RETRIES):
            try:
                async with self._transaction() as conn:
                    outcomes = await self._upsert(conn, list(latest.values()), source, actor)
                by_no = {o.ticket_no: o for o in outcomes}
                return [by_no[t.ticket_no] for t in inputs]
            except (ConstraintViolation, ConcurrentUpdate):
                if attempt == _RETRIES - 1:
                    raise
                log.info("concurrent hand-over of the same ticket; retrying", extra={"attempt": attempt + 1})
        raise AssertionError("unreachable")

    async def preview(self, inputs: Sequence[TicketInput]) -> list[Literal["created", "updated", "unchanged"]]:
        """What ``upsert`` would answer for each input, from a read-only look-up (a dry run)."""
        async with self.store.reading() as conn:
            existing = await tickets_repo.tickets_by_no(conn, [t.ticket_no for t in inputs])
        statuses: list[Literal["created", "updated", "unchanged"]] = []
        for item in inputs:
            row = existing.get(item.ticket_no)
            if row is None:
                statuses.append("created")
            else:
                statuses.append("unchanged" if row.payload_hash == item.payload_hash() else "updated")
        return statuses

    async def _upsert(self, conn: Conn, inputs: list[TicketInput], source: str, actor: str) -> list[UpsertOutcome]:
        now = self.clock.now()
        existing = await tickets_repo.tickets_by_no(conn, [t.ticket_no for t in inputs])
        fresh = [t for t in inputs if t.ticket_no not in existing]
        touched: list[datetime] = []
        outcomes = await self._create(conn, fresh, now, source, actor, touched)
        for item in inputs:
            row = existing.get(item.ticket_no)
            if row is not None:
                outcomes.append(await self._update(conn, row, item, now, actor, source, touched))
        await self._unsettle(conn, touched)
        return outcomes

    async def _create(
        self, conn: Conn, items: list[TicketInput], now: datetime, source: str, actor: str, touched: list[datetime]
    ) -> list[UpsertOutcome]:
        if not items:
            return []
        rows: list[dict[str, Any]] = []
        routes = []
        settled: list[Settled | None] = []
        awaiting_visit = self.config.imports.awaiting_visit.natural()
        for item in items:
            dispatched_at = item.dispatched_at or now
            done = (
                None
                if item.history is None
                else settle(item.history, dispatched_at=dispatched_at, now=now, awaiting_visit=awaiting_visit)
            )
            settled.append(done)
            route = self.router.route(
                unit_label=item.unit_label,
                category=item.category,
                area=item.area,
                content=item.content,
                kind=item.kind,
            )
            routes.append(route)
            rows.append(
                {
                    "ticket_no": item.ticket_no,
                    "kind": item.kind.value,
                    "request_type": item.request_type,
                    "category": item.category,
                    "area": item.area,
                    "title": item.title,
                    "content": item.content,
                    "address": item.address,
                    "citizen_name": item.citizen_name,
                    "citizen_phone": item.citizen_phone,
                    "is_repeat": item.is_repeat,
                    "is_media": item.is_media,
                    "unit_code": route.unit_code,
                    "handler_userid": None,
                    "state": (done.state if done is not None else TicketState.DISPATCHED).value,
                    "state_before_return": None,
                    "evaluation": Evaluation.NORMAL.value,
                    "return_count": 0,
                    "redispatch_count": 0,
                    "rehandle_count": 0,
                    "cycle": 1,
                    "satisfaction": None,
                    "routed_by": route.reason,
                    "hotline_unit": item.unit_label,
                    "hotline_deadline": item.hotline_deadline,
                    "dispatched_at": dispatched_at,
                    "received_at": now,
                    "updated_at": now,
                    "closed_at": None,
                    # every row has every key a history may set: a multi-row insert takes the first row's keys
                    "submitted_at": None,
                    "visited_at": None,
                    "solved": None,
                    "visit_solved": None,
                    "visit_note": None,
                    "extension_days": None,
                    "extension_reason": None,
                    "extension_requested_by": None,
                    "extension_requested_at": None,
                    "extension_count": 0,
                    **self.repeats.keys(
                        phone=item.citizen_phone,
                        address=item.address,
                        category=item.category,
                        title=item.title,
                        content=item.content,
                    ),
                    "repeat_count": 1,
                    "repeat_of": None,
                    "repeat_reason": None,
                    "source": source,
                    "payload_hash": item.payload_hash(),
                    "version": 1,
                    "extra": item.extra,
                }
            )
            if done is not None:
                rows[-1].update(done.changes)
            # a visit in the row's history counts for the unit that has the ticket
            rows[-1]["visit_unit"] = rows[-1]["unit_code"] if rows[-1].get("visited_at") is not None else None
        repeats = await self.repeats.before_insert(conn, rows)
        ids = await tickets_repo.insert_tickets(conn, rows)
        # tickets from the platform's past (an import) count in periods whose counts may be kept: counted again
        touched.append(min(r["dispatched_at"] for r in rows))
        await self.repeats.after_insert(conn, repeats, rows, ids)
        plans = self.planner.plan_many(
            [
                PlanRequest(kind=i.kind, category=i.category, start=r["dispatched_at"], cycle_kind="dispatch")
                for i, r in zip(items, rows, strict=True)
            ]
        )
        imported = source == "import"
        deadline_rows = self._deadline_rows(
            [
                (ticket_id, 1, p, r["unit_code"])
                for ticket_id, plan, r in zip(ids, plans, rows, strict=True)
                for p in plan
            ],
            now,
            history=imported,
        )
        history_rows.settle_deadline_rows(deadline_rows, ids, items, settled)
        await deadlines_repo.insert_deadlines(conn, deadline_rows)
        audits = [
            {
                "ticket_id": ticket_id,
                "ticket_no": row["ticket_no"],
                "at": now,
                "actor": actor,
                "action": "dispatch",
                "from_state": None,
                "to_state": row["state"],
                "note": None,
                "data": history_rows.dispatch_data(route.unit_code, route.reason, source, item.history),
            }
            for ticket_id, row, route, item in zip(ids, rows, routes, items, strict=True)
        ]
        audit_ids = await audit_repo.append_audit(conn, audits)
        if self.hooks:
            planned: dict[int, list[Deadline]] = {}
            for d in deadline_rows:
                if d["status"] == "open":  # (what an imported row met or missed is the platform's past)
                    planned.setdefault(d["ticket_id"], []).append(Deadline.of(d))
            await self._tell(
                conn,
                [
                    TicketChange(
                        action="dispatch",
                        ticket=Ticket.of({**row, "id": ticket_id}),
                        from_state=None,
                        to_state=TicketState(row["state"]),
                        from_unit=None,
                        from_handler=None,
                        at=now,
                        actor=actor,
                        audit_id=audit_id,
                        source=source,
                        deadlines=planned.get(ticket_id, []),
                        dated=item.dispatched_at is not None,
                    )
                    for ticket_id, row, audit_id, item in zip(ids, rows, audit_ids, items, strict=True)
                ],
            )
        # the bot's own routing decision is news to the hotline; a unit the platform named is not, and neither
        # is anything in an import of the platform's own export
        if source == "import":
            return [_created(r) for r in rows]
        await self._sync_back(
            conn,
            [
                HistoryEntry.of({**audit, "id": a_id})
                for a_id, audit, route in zip(audit_ids, audits, routes, strict=True)
                if route.reason != "hotline"
            ],
        )
        return [_created(r) for r in rows]

    async def _update(
        self,
        conn: Conn,
        row: Ticket,
        item: TicketInput,
        now: datetime,
        actor: str,
        source: str,
        touched: list[datetime],
    ) -> UpsertOutcome:
        digest = item.payload_hash()
        if digest == row.payload_hash:
            return UpsertOutcome(ticket_no=row.ticket_no, status="unchanged", state=row.state, unit_code=row.unit_code)
        values: dict[str, Any] = {}
        for name in UPDATABLE_FIELDS:
            new = getattr(item, name)
            if new != getattr(row, name):
                values[name] = new.value if isinstance(new, TicketKind) else new
        if item.dispatched_at is not None and item.dispatched_at != row.dispatched_at and row.cycle == 1:
            # a corrected 派单时间 (only the platform's own dispatch: later cycles start in the bot)
            values["dispatched_at"] = item.dispatched_at
        if item.extra != row.extra:
            values["extra"] = item.extra
        # the platform re-dispatches only when *its* unit changes: a later update that still names the unit
        # a ticket was returned from must not undo the office's re-dispatch
        platform_moved = item.unit_label is not None and item.unit_label != row.hotline_unit
        if item.unit_label is not None and item.unit_label != row.hotline_unit:
            values["hotline_unit"] = item.unit_label
        state = row.state
        if item.history is not None:
            values.update(await self._history_update(conn, row, item.history, now))
            state = TicketState(values.get("state", state))
        changed = tuple(sorted(values))
        if _MATCHED_BY & set(changed):
            # its keys and its earlier tickets follow what it now says (derived: not listed as changed)
            values.update(await self.repeats.rematch(conn, row.updated(values)))
        values.update(payload_hash=digest, updated_at=now)
        await tickets_repo.update_ticket(conn, row.id, row.version, values)
        if set(values) - _NOT_COUNTED:  # a new text alone changes no count (a new match of repeats may)
            await self._touched(conn, row, touched)
            touched.append(values.get("dispatched_at", row.dispatched_at))  # a corrected 派单时间
        version = row.version + 1
        if changed:
            await audit_repo.append_audit(
                conn,
                [
                    {
                        "ticket_id": row.id,
                        "ticket_no": row.ticket_no,
                        "at": now,
                        "actor": actor,
                        "action": "update",
                        "from_state": row.state.value,
                        "to_state": state.value,
                        "note": None,
                        "data": {"changed": list(changed)},
                    }
                ],
            )
        if {"kind", "category", "dispatched_at"} & set(changed) and state.is_open:
            start = values.get("dispatched_at")
            quiet = history_rows.imported_until(row.source, row.received_at)
            await self._reschedule(conn, row.id, TicketKind(item.kind), item.category, now, start, quiet)
        unit = row.unit_code
        target = self.config.unit_for_label(item.unit_label) if platform_moved else None
        if target is not None and target.code != row.unit_code and state.is_open:
            fresh = await tickets_repo.ticket_by_no(conn, row.ticket_no)
            if fresh is None or fresh.version != version:
                raise ConcurrentUpdate(row.id)
            req = ActionRequest(action=Action.REDISPATCH, actor=HOTLINE, at=now, unit=target.code, by_hotline=True)
            outcome = await self._apply(conn, fresh, req, touched=touched, source=source)
            state, unit = outcome.to_state, target.code
            changed = (*changed, "unit")
        return UpsertOutcome(
            ticket_no=row.ticket_no,
            status="updated" if changed else "unchanged",
            state=state,
            unit_code=unit,
            changed=changed,
        )

    async def _reschedule(
        self,
        conn: Conn,
        ticket_id: int,
        kind: TicketKind,
        category: str | None,
        now: datetime,
        start: datetime | None = None,
        quiet_until: datetime | None = None,
    ) -> None:
        """The kind, category or dispatch time changed: open deadlines follow the new policy from their start
        (``start`` when the dispatch time itself was corrected). A moved deadline's reminders start over."""
        open_rows = await deadlines_repo.open_deadlines(conn, ticket_id)
        if not open_rows:
            return
        cycle = max(r.cycle for r in open_rows)
        current = [r for r in open_rows if r.cycle == cycle]
        cycle_kind: CycleKind = "rehandle" if any(r.name == DeadlineName.REHANDLE for r in current) else "dispatch"
        start = start or min(r.started_at for r in current)
        request = PlanRequest(kind=kind, category=category, start=start, cycle_kind=cycle_kind)
        wanted = {p.name: p for p in self.planner.plan(request)}
        obsolete = []
        for r in current:
            assert r.id is not None  # read from the store
            planned = wanted.pop(r.name, None)
            if planned is None:
                obsolete.append(r.id)
                continue
            # approved extensions (延期) still apply to the new due time
            due = self.calendar.add_working_days(planned.due_at, r.extended_days) if r.extended_days else None
            due = due or planned.due_at
            if due != r.due_at or planned.started_at != r.started_at:
                policy = str(planned.policy)
                stage, next_due_at = self.nag_point(
                    r.name, policy, planned.started_at, due, now, quiet_until=quiet_until
                )
                await deadlines_repo.reschedule_deadline(
                    conn,
                    r.id,
                    policy=policy,
                    started_at=planned.started_at,
                    due_at=due,
                    stage=stage,
                    next_due_at=next_due_at,
                )
        await deadlines_repo.close_deadlines(conn, obsolete, status="cancelled", at=None)
        # names the new policy adds, unless they were already met or cancelled in this cycle
        closed = {r.name for r in await deadlines_repo.deadlines_of(conn, ticket_id) if r.cycle == cycle}
        unit = current[0].unit_code
        added = [(ticket_id, cycle, p, unit) for n, p in wanted.items() if n.value not in closed]
        await deadlines_repo.insert_deadlines(conn, self._deadline_rows(added, now, history=quiet_until is not None))

    async def _history_update(self, conn: Conn, row: Ticket, history: TicketHistory, now: datetime) -> dict[str, Any]:
        """An imported row about a ticket the bot has, brought forward by what the platform says happened since: its
        milestones meet its open deadlines, and when the row says it is finished (or visited, closed, cancelled) the
        ticket is, with its results. Never backwards: a closed ticket, or a row older than the bot's state, changes
        nothing here. Returns the ticket columns to write."""
        if not row.state.is_open:
            return {}
        done = settle(
            history,
            dispatched_at=row.dispatched_at,
            now=now,
            awaiting_visit=self.config.imports.awaiting_visit.natural(),
        )
        # submitted only from the unit's own states (a warning ticket re-handled now is past an older 已办结)
        finishing = done.state in (TicketState.CLOSED, TicketState.CANCELLED) or (
            done.state is TicketState.SUBMITTED and row.state in _HANDLED
        )
        open_rows = await deadlines_repo.open_deadlines(conn, row.id)
        closing: dict[tuple[str, datetime | None], list[int]] = {}
        for r in open_rows:
            outcome, at = settle_deadline(history, r.name, r.due_at, finished=finishing)
            if outcome != "open" and r.id is not None:
                closing.setdefault((outcome, at), []).append(r.id)
        for (status, at), ids in closing.items():
            await deadlines_repo.close_deadlines(conn, ids, status=status, at=at)
        if not finishing:
            return {}
        changes = {k: v for k, v in done.changes.items() if v is not None and v != getattr(row, k)}
        if "visited_at" in changes:  # the visit counts for the unit that had the ticket
            changes["visit_unit"] = row.unit_code
        return {"state": done.state.value, "closed_at": done.changes["closed_at"], **changes}


def _created(row: Mapping[str, Any]) -> UpsertOutcome:
    return UpsertOutcome(
        ticket_no=row["ticket_no"], status="created", state=TicketState(row["state"]), unit_code=row["unit_code"]
    )
