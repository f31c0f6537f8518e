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

import dataclasses
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.clock import Clock
from bot.domain.deadlines import DeadlinePlanner, PlannedDeadline, PlanRequest
from bot.domain.escaping import escape_md
from bot.domain.lifecycle import (
    Action,
    ActionRequest,
    CycleKind,
    Evaluation,
    ExtensionLimits,
    TicketSnapshot,
    TicketState,
    Transition,
    TransitionRefused,
    decide,
)
from bot.domain.nags import NAG_FREE, NagSchedule, period_start
from bot.domain.permissions import refusal
from bot.domain.routing import Router
from bot.domain.ticket import UPDATABLE_FIELDS, TicketInput
from bot.domain.workcal import WorkCalendar
from config.durations import Duration
from config.model import BotConfig
from config.vocabulary import DeadlineName, TicketKind
from store import audit as audit_repo
from store import deadlines as deadlines_repo
from store import inbox as inbox_repo
from store import nags as nag_store
from store import outbox as outbox_repo
from store import tickets as tickets_repo
from store.core import ConcurrentUpdate, Store

log = logging.getLogger(__name__)

HOTLINE = "hotline"
SYNC_CHANNEL = "hotline"
_RETRIES = 5


class TicketNotFound(Exception):
    def __init__(self, ticket_no: str) -> None:
        super().__init__(ticket_no)
        self.ticket_no = ticket_no
        self.message = f"没有找到工单 {ticket_no}，请核对工单编号。"


class NotPermitted(TransitionRefused):
    """The member who asks may not take this action on this ticket (:mod:`bot.domain.permissions`)."""

    def __init__(self, message: str) -> None:
        super().__init__("forbidden", message)


class UnknownUnit(TransitionRefused):
    def __init__(self, label: str) -> None:
        super().__init__("unknown_unit", f"没有名为「{escape_md(label)}」的承办单位。")


@dataclass(frozen=True, slots=True, kw_only=True)
class UpsertOutcome:
    ticket_no: str
    status: Literal["created", "updated", "unchanged"]
    state: str
    unit_code: str | None
    changed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionOutcome:
    ticket_no: str
    action: Action
    from_state: TicketState
    to_state: TicketState
    audit_id: int
    ticket: Mapping[str, Any]
    duplicate: bool = False
    # its open deadlines as the action left them (with ``with_deadlines``; new ones carry no id)
    deadlines: list[Mapping[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketChange:
    """What one change did to one ticket, for the :class:`ChangeHook` s, inside the change's transaction.

    ``action`` is ``"dispatch"`` for a ticket created from a hand-over, else the action's value (``redispatch``,
    ``visit`` …). ``ticket`` is the row as the change left it (with its ``id`` and ``cycle``). ``from_unit`` and
    ``from_handler`` are the unit and handler before the change. ``source`` is the hand-over's (``api``, ``import``)
    for changes a hand-over made (a creation, the platform's re-dispatch in an update), None for actions.
    ``deadlines`` are those a new cycle started with (creation, re-dispatch, assignment, a warning), else empty.
    ``dated``: whether the hand-over gave its dispatch time (an import row without 派单时间 is taken as dispatched
    now)."""

    action: str
    ticket: Mapping[str, Any]
    from_state: TicketState | None
    to_state: TicketState
    from_unit: str | None
    from_handler: str | None
    at: datetime
    actor: str
    audit_id: int
    source: str | None = None
    deadlines: Sequence[Mapping[str, Any]] = ()
    dated: bool = True

    @property
    def ticket_no(self) -> str:
        return str(self.ticket["ticket_no"])


class ChangeHook(Protocol):
    """Follows ticket changes in their own transaction (see the module's docstring)."""

    async def changed(self, conn: AsyncConnection, changes: Sequence[TicketChange]) -> None:
        """Writes what ``changes`` cause, on ``conn`` (the changes' transaction)."""

    def committed(self) -> None:
        """The transaction of the changes last given has committed."""


# the hooks told of changes in the transaction under way in this task (see TicketService._transaction)
_TOLD: ContextVar[set[ChangeHook] | None] = ContextVar("ticket_hooks_told", default=None)


@dataclass(frozen=True, slots=True)
class TicketDetail:
    ticket: Mapping[str, Any]
    deadlines: list[Mapping[str, Any]] = field(default_factory=list)
    history: list[Mapping[str, Any]] = field(default_factory=list)


def snapshot(row: Mapping[Any, Any]) -> TicketSnapshot:
    before = row["state_before_return"]
    return TicketSnapshot(
        ticket_no=row["ticket_no"],
        kind=TicketKind(row["kind"]),
        state=TicketState(row["state"]),
        unit_code=row["unit_code"],
        handler_userid=row["handler_userid"],
        category=row["category"],
        evaluation=Evaluation(row["evaluation"]),
        return_count=row["return_count"],
        redispatch_count=row["redispatch_count"],
        rehandle_count=row["rehandle_count"],
        cycle=row["cycle"],
        state_before_return=TicketState(before) if before else None,
        extension_days=row["extension_days"],
        extension_reason=row["extension_reason"],
        extension_requested_by=row["extension_requested_by"],
        extension_requested_at=row["extension_requested_at"],
        extension_count=row["extension_count"],
    )


class TicketService:
    def __init__(
        self,
        store: Store,
        config: BotConfig,
        calendar: WorkCalendar,
        clock: Clock,
        *,
        sync_url: str | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.router = Router(config)
        self.planner = DeadlinePlanner(config, calendar)
        self.calendar = calendar
        self.nags = NagSchedule(config.nags, calendar)
        self.sync_url = sync_url
        extension = config.deadlines.extension
        self.extension_limits = ExtensionLimits(max_days=extension.max_days, max_count=extension.max_approved)
        self.hooks: list[ChangeHook] = []

    def add_hook(self, hook: ChangeHook) -> None:
        """``hook`` follows every change from now on, in the change's transaction."""
        self.hooks.append(hook)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        """The store's transaction; once it has committed, the hooks told of its changes are told so."""
        async with self._told(), self.store.transaction() as conn:
            yield conn

    @asynccontextmanager
    async def _told(self) -> AsyncIterator[None]:
        """Collects the hooks told of changes in the transaction(s) within; once those have committed (the block
        ends without an error), tells them so. The collection travels in a context variable, which
        :meth:`store.core.Store.run_transaction` carries into the SQLite writer thread."""
        told: set[ChangeHook] = set()
        token = _TOLD.set(told)
        try:
            yield
        finally:
            _TOLD.reset(token)
        for hook in told:
            try:
                hook.committed()
            except Exception:  # the change is committed: a hook's after-thought must not turn it into an error
                log.exception("a ticket hook failed after the commit")

    async def _tell(self, conn: AsyncConnection, changes: Sequence[TicketChange]) -> None:
        if not changes:
            return
        told = _TOLD.get()
        for hook in self.hooks:
            await hook.changed(conn, changes)
            if told is not None:
                told.add(hook)

    # --- hand-overs from the hotline ---------------------------------------------------------------------

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
            except (IntegrityError, ConcurrentUpdate):
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
                statuses.append("unchanged" if row["payload_hash"] == item.payload_hash() else "updated")
        return statuses

    async def _upsert(
        self, conn: AsyncConnection, inputs: list[TicketInput], source: str, actor: str
    ) -> list[UpsertOutcome]:
        now = self.clock.now()
        existing = await tickets_repo.tickets_by_no(conn, [t.ticket_no for t in inputs])
        fresh = [t for t in inputs if t.ticket_no not in existing]
        outcomes = await self._create(conn, fresh, now, source, actor)
        for item in inputs:
            row = existing.get(item.ticket_no)
            if row is not None:
                outcomes.append(await self._update(conn, row, item, now, actor, source))
        return outcomes

    async def _create(
        self, conn: AsyncConnection, items: list[TicketInput], now: datetime, source: str, actor: str
    ) -> list[UpsertOutcome]:
        if not items:
            return []
        rows: list[dict[str, Any]] = []
        routes = []
        for item in items:
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
                    "state": TicketState.DISPATCHED.value,
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
                    "dispatched_at": item.dispatched_at or now,
                    "received_at": now,
                    "updated_at": now,
                    "closed_at": None,
                    "extension_days": None,
                    "extension_reason": None,
                    "extension_requested_by": None,
                    "extension_requested_at": None,
                    "extension_count": 0,
                    "source": source,
                    "payload_hash": item.payload_hash(),
                    "version": 1,
                    "extra": item.extra,
                }
            )
        ids = await tickets_repo.insert_tickets(conn, rows)
        plans = self.planner.plan_many(
            [
                PlanRequest(kind=i.kind, category=i.category, start=r["dispatched_at"], cycle_kind="dispatch")
                for i, r in zip(items, rows, strict=True)
            ]
        )
        deadline_rows = self._deadline_rows(
            [(ticket_id, 1, p) for ticket_id, plan in zip(ids, plans, strict=True) for p in plan], now
        )
        await deadlines_repo.insert_deadlines(conn, deadline_rows)
        audits = [
            {
                "ticket_id": ticket_id,
                "ticket_no": row["ticket_no"],
                "at": now,
                "actor": actor,
                "action": "dispatch",
                "from_state": None,
                "to_state": TicketState.DISPATCHED.value,
                "note": None,
                "data": {"unit": route.unit_code, "routed_by": route.reason, "source": source},
            }
            for ticket_id, row, route in zip(ids, rows, routes, strict=True)
        ]
        audit_ids = await audit_repo.append_audit(conn, audits)
        if self.hooks:
            planned: dict[int, list[Mapping[str, Any]]] = {}
            for d in deadline_rows:
                planned.setdefault(d["ticket_id"], []).append(d)
            await self._tell(
                conn,
                [
                    TicketChange(
                        action="dispatch",
                        ticket={**row, "id": ticket_id},
                        from_state=None,
                        to_state=TicketState.DISPATCHED,
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
            return [
                UpsertOutcome(ticket_no=r["ticket_no"], status="created", state=r["state"], unit_code=r["unit_code"])
                for r in rows
            ]
        await self._sync_back(
            conn,
            [
                (a_id, audit)
                for a_id, audit, route in zip(audit_ids, audits, routes, strict=True)
                if route.reason != "hotline"
            ],
        )
        return [
            UpsertOutcome(ticket_no=r["ticket_no"], status="created", state=r["state"], unit_code=r["unit_code"])
            for r in rows
        ]

    async def _update(
        self, conn: AsyncConnection, row: RowMapping, item: TicketInput, now: datetime, actor: str, source: str
    ) -> UpsertOutcome:
        digest = item.payload_hash()
        if digest == row["payload_hash"]:
            return UpsertOutcome(
                ticket_no=row["ticket_no"], status="unchanged", state=row["state"], unit_code=row["unit_code"]
            )
        values: dict[str, Any] = {}
        for name in UPDATABLE_FIELDS:
            new = getattr(item, name)
            new = new.value if isinstance(new, TicketKind) else new
            if new != row[name]:
                values[name] = new
        if item.dispatched_at is not None and item.dispatched_at != row["dispatched_at"] and row["cycle"] == 1:
            # a corrected 派单时间 (only the platform's own dispatch: later cycles start in the bot)
            values["dispatched_at"] = item.dispatched_at
        if item.extra != row["extra"]:
            values["extra"] = item.extra
        # the platform re-dispatches only when *its* unit changes: a later update that still names the unit
        # a ticket was returned from must not undo the office's re-dispatch
        platform_moved = item.unit_label is not None and item.unit_label != row["hotline_unit"]
        if item.unit_label is not None and item.unit_label != row["hotline_unit"]:
            values["hotline_unit"] = item.unit_label
        changed = tuple(sorted(values))
        values.update(payload_hash=digest, updated_at=now)
        await tickets_repo.update_ticket(conn, row["id"], row["version"], values)
        version = row["version"] + 1
        state = row["state"]
        if changed:
            await audit_repo.append_audit(
                conn,
                [
                    {
                        "ticket_id": row["id"],
                        "ticket_no": row["ticket_no"],
                        "at": now,
                        "actor": actor,
                        "action": "update",
                        "from_state": state,
                        "to_state": state,
                        "note": None,
                        "data": {"changed": list(changed)},
                    }
                ],
            )
        if {"kind", "category", "dispatched_at"} & set(changed) and TicketState(state).is_open:
            start = values.get("dispatched_at")
            await self._reschedule(conn, row["id"], TicketKind(item.kind), item.category, now, start)
        unit = row["unit_code"]
        target = self.config.unit_for_label(item.unit_label) if platform_moved else None
        if target is not None and target.code != row["unit_code"] and TicketState(state).is_open:
            fresh = await tickets_repo.ticket_by_no(conn, row["ticket_no"])
            if fresh is None or fresh["version"] != version:
                raise ConcurrentUpdate(row["id"])
            req = ActionRequest(action=Action.REDISPATCH, actor=HOTLINE, at=now, unit=target.code, by_hotline=True)
            outcome = await self._apply(conn, fresh, req, source=source)
            state, unit = outcome.to_state.value, target.code
            changed = (*changed, "unit")
        return UpsertOutcome(
            ticket_no=row["ticket_no"],
            status="updated" if changed else "unchanged",
            state=state,
            unit_code=unit,
            changed=changed,
        )

    async def _reschedule(
        self,
        conn: AsyncConnection,
        ticket_id: int,
        kind: TicketKind,
        category: str | None,
        now: datetime,
        start: datetime | None = None,
    ) -> None:
        """The kind, category or dispatch time changed: open deadlines follow the new policy from their start
        (``start`` when the dispatch time itself was corrected). A moved deadline's reminders start over."""
        open_rows = await deadlines_repo.open_deadlines(conn, ticket_id)
        if not open_rows:
            return
        cycle = max(r["cycle"] for r in open_rows)
        current = [r for r in open_rows if r["cycle"] == cycle]
        cycle_kind: CycleKind = "rehandle" if any(r["name"] == DeadlineName.REHANDLE for r in current) else "dispatch"
        start = start or min(r["started_at"] for r in current)
        wanted = {
            p.name: p
            for p in self.planner.plan(PlanRequest(kind=kind, category=category, start=start, cycle_kind=cycle_kind))
        }
        obsolete = []
        for r in current:
            planned = wanted.pop(DeadlineName(r["name"]), None)
            if planned is None:
                obsolete.append(r["id"])
                continue
            # approved extensions (延期) still apply to the new due time
            due = self.calendar.add_working_days(planned.due_at, r["extended_days"]) if r["extended_days"] else None
            due = due or planned.due_at
            if due != r["due_at"] or planned.started_at != r["started_at"]:
                policy = str(planned.policy)
                stage, next_due_at = self.nag_point(r["name"], policy, planned.started_at, due, now)
                await deadlines_repo.reschedule_deadline(
                    conn,
                    r["id"],
                    policy=policy,
                    started_at=planned.started_at,
                    due_at=due,
                    stage=stage,
                    next_due_at=next_due_at,
                )
        await deadlines_repo.close_deadlines(conn, obsolete, status="cancelled", at=None)
        # names the new policy adds, unless they were already met or cancelled in this cycle
        closed = {r["name"] for r in await deadlines_repo.deadlines_of(conn, ticket_id) if r["cycle"] == cycle}
        await deadlines_repo.insert_deadlines(
            conn, self._deadline_rows([(ticket_id, cycle, p) for n, p in wanted.items() if n.value not in closed], now)
        )

    def nag_point(
        self, name: str, policy: str, started_at: datetime, due_at: datetime, now: datetime
    ) -> tuple[int, datetime | None]:
        """The ``stage`` and ``next_due_at`` of a deadline planned or moved at ``now``: its first step for the deadline
        engine (reminders already past skipped), or (0, None) when it has none: a window (the return window) is not
        an obligation, nothing reminds of it. Whatever moves a deadline's due time writes these with it
        (:func:`store.deadlines.reschedule_deadline`), so that its reminders start over."""
        if name in NAG_FREE:
            return 0, None
        step = self.nags.next_point(policy, started_at, due_at, 0, now=now)
        return (0, None) if step is None else (step.index, step.at)

    def _deadline_rows(
        self, planned: Sequence[tuple[int, int, PlannedDeadline]], now: datetime
    ) -> list[dict[str, Any]]:
        """Rows for new deadlines (ticket id, cycle, plan), each with its first step for the engine (as
        :meth:`nag_point` gives it, computed for all at once: an import plans hundreds of thousands)."""
        policies: dict[Duration, str] = {}
        texts = [policies.get(p.policy) or policies.setdefault(p.policy, str(p.policy)) for _, _, p in planned]
        nagged = [(text, p) for text, (_, _, p) in zip(texts, planned, strict=True) if p.name not in NAG_FREE]
        points = iter(
            self.nags.first_points(
                [t for t, _ in nagged], [p.started_at for _, p in nagged], [p.due_at for _, p in nagged], now=now
            )
        )
        rows = []
        for text, (ticket_id, cycle, p) in zip(texts, planned, strict=True):
            stage, next_due_at = (0, None) if p.name in NAG_FREE else next(points)
            rows.append(
                {
                    "ticket_id": ticket_id,
                    "name": p.name.value,
                    "cycle": cycle,
                    "policy": text,
                    "started_at": p.started_at,
                    "due_at": p.due_at,
                    "status": "open",
                    "met_at": None,
                    "next_due_at": next_due_at,
                    "stage": stage,
                }
            )
        return rows

    # --- actions on tickets ------------------------------------------------------------------------------

    async def act(
        self,
        ticket_no: str,
        req: ActionRequest,
        *,
        dedup: tuple[str, str, str] | None = None,
        with_deadlines: bool = False,
        viewed: str | None = None,
        row: Mapping[Any, Any] | None = None,
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
        one transaction, in one round trip on SQLite (:meth:`store.core.Store.run_transaction`).
        """

        known = [row] if row is not None and row["ticket_no"] == ticket_no else []  # used on the first try only

        async def transaction(conn: AsyncConnection) -> ActionOutcome:
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
                outcome = await self._apply(conn, current, req)
                if viewed is not None:
                    await audit_repo.append_audit(
                        conn, [_access_audit(outcome.ticket, actor=req.actor, at=self.clock.now(), via=viewed)]
                    )
            if not with_deadlines:
                return dataclasses.replace(outcome, deadlines=[])
            if outcome.duplicate:  # a retry: nothing was worked out, read them
                found = await deadlines_repo.open_deadlines(conn, outcome.ticket["id"])
                outcome = dataclasses.replace(outcome, deadlines=[dict(r) for r in found])
            return outcome

        for attempt in range(_RETRIES):
            try:
                async with self._told():
                    return await self.store.run_transaction(transaction)
            except ConcurrentUpdate:
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    async def _duplicate(self, conn: AsyncConnection, ticket_no: str, req: ActionRequest) -> ActionOutcome:
        row = await tickets_repo.ticket_by_no(conn, ticket_no)
        if row is None:
            raise TicketNotFound(ticket_no)
        state = TicketState(row["state"])
        return ActionOutcome(
            ticket_no=ticket_no,
            action=req.action,
            from_state=state,
            to_state=state,
            audit_id=0,
            ticket=dict(row),
            duplicate=True,
        )

    async def _apply(
        self, conn: AsyncConnection, row: Mapping[Any, Any], req: ActionRequest, *, source: str | None = None
    ) -> ActionOutcome:
        if req.unit and req.action in (Action.REDISPATCH, Action.ASSIGN):
            unit = self.config.unit_for_label(req.unit)
            if unit is None:
                raise UnknownUnit(req.unit)
            req = _replace(req, unit=unit.code)
        if req.action is Action.REQUEST_EXTENSION:
            req = _replace(req, extension_limits=self.extension_limits)
        ticket = snapshot(row)
        open_rows = await deadlines_repo.open_deadlines(conn, row["id"])
        current = [r for r in open_rows if r["cycle"] == ticket.cycle]
        transition = decide(ticket, req, {DeadlineName(r["name"]): r["due_at"] for r in current})
        values: dict[str, Any] = {"state": transition.to_state.value, "updated_at": req.at, **transition.changes}
        if transition.new_cycle is not None:
            values["cycle"] = ticket.cycle + 1
        await tickets_repo.update_ticket(conn, row["id"], row["version"], values)
        started, closed = await self._apply_deadlines(conn, row, ticket, transition, open_rows, req.at)
        data = dict(transition.data)
        moved: dict[str, dict[str, str]] = {}
        if transition.extend:
            moved = data["deadlines"] = await self._extend(conn, current, transition, req.at)
        # the open deadlines as the action leaves them (what an answer shows), worked out rather than read again
        still_open = [
            {**r, "due_at": datetime.fromisoformat(moved[r["name"]]["to"])}
            if r["cycle"] == ticket.cycle and r["name"] in moved
            else dict(r)
            for r in open_rows
            if r["id"] not in closed
        ]
        audit = {
            "ticket_id": row["id"],
            "ticket_no": ticket.ticket_no,
            "at": req.at,
            "actor": req.actor,
            "action": req.action.value,
            "from_state": ticket.state.value,
            "to_state": transition.to_state.value,
            "note": req.note,
            "data": {k: v for k, v in data.items() if v is not None},
        }
        (audit_id,) = await audit_repo.append_audit(conn, [audit])
        if not req.by_hotline:
            await self._sync_back(conn, [(audit_id, audit)])
        merged = {**dict(row), **values, "version": row["version"] + 1}
        if self.hooks:
            change = TicketChange(
                action=req.action.value,
                ticket=merged,
                from_state=ticket.state,
                to_state=transition.to_state,
                from_unit=row["unit_code"],
                from_handler=row["handler_userid"],
                at=req.at,
                actor=req.actor,
                audit_id=audit_id,
                source=source,
                deadlines=started,
            )
            await self._tell(conn, [change])
        return ActionOutcome(
            ticket_no=ticket.ticket_no,
            action=req.action,
            from_state=ticket.state,
            to_state=transition.to_state,
            audit_id=audit_id,
            ticket=merged,
            deadlines=still_open + [dict(d) for d in started],
        )

    async def _apply_deadlines(
        self,
        conn: AsyncConnection,
        row: Mapping[Any, Any],
        ticket: TicketSnapshot,
        transition: Transition,
        open_rows: list[RowMapping],
        at: datetime,
    ) -> tuple[list[dict[str, Any]], set[int]]:
        """Closes what the transition meets or cancels; (the deadlines of the new cycle it starts, if any, the ids of
        those it closed)."""
        met = [r["id"] for r in open_rows if r["cycle"] == ticket.cycle and r["name"] in transition.meet]
        # a new cycle supersedes whatever the previous one left open
        closed = [
            r
            for r in open_rows
            if r["id"] not in met
            and (transition.new_cycle is not None or r["cycle"] != ticket.cycle or r["name"] in transition.cancel)
        ]
        # an obligation already overdue when it stops mattering was missed, and counts so in the rates;
        # a window (the return window) that passes is not a miss
        missed = [r["id"] for r in closed if r["due_at"] < at and r["name"] != DeadlineName.RETURN_WINDOW]
        cancelled = [r["id"] for r in closed if r["id"] not in missed]
        await deadlines_repo.close_deadlines(conn, met, status="met", at=at)
        await deadlines_repo.close_deadlines(conn, missed, status="missed", at=at)
        await deadlines_repo.close_deadlines(conn, cancelled, status="cancelled", at=None)
        # an accept deadline that passed unmet counts against the unit that had the ticket (three misses); the
        # deadline engine counts it when it finds it open after its due time, this when a late claim is first
        closing = set(met) | {r["id"] for r in closed}
        late = [r for r in open_rows if r["id"] in closing and r["name"] == DeadlineName.ACCEPT and r["due_at"] < at]
        if late and row["unit_code"]:
            months = self.config.nags.three_misses.period_months
            await nag_store.record_misses(
                conn,
                [
                    {
                        "deadline_id": r["id"],
                        "ticket_id": row["id"],
                        "unit_code": row["unit_code"],
                        "period_start": period_start(r["due_at"], months),
                        "missed_at": r["due_at"],
                    }
                    for r in late
                ],
                threshold=self.config.nags.three_misses.count,
                at=at,
            )
        if transition.new_cycle is None:
            return [], closing
        plan = self.planner.plan(
            PlanRequest(kind=ticket.kind, category=ticket.category, start=at, cycle_kind=transition.new_cycle)
        )
        started = self._deadline_rows([(row["id"], ticket.cycle + 1, p) for p in plan], at)
        await deadlines_repo.insert_deadlines(conn, started)
        return started, closing

    async def _extend(
        self, conn: AsyncConnection, current: list[RowMapping], transition: Transition, at: datetime
    ) -> dict[str, dict[str, str]]:
        """An approved extension: each deadline of ``transition.extend`` moves ``extend_days`` working days later,
        counted from its own due time on the working-day calendar. Returns {name: {"from": …, "to": …}} (ISO) for
        the audit log."""
        moved: dict[str, dict[str, str]] = {}
        for r in current:
            if r["name"] not in transition.extend:
                continue
            due = self.calendar.add_working_days(r["due_at"], transition.extend_days)
            stage, next_due_at = self.nag_point(r["name"], r["policy"], r["started_at"], due, at)  # reminders anew
            await deadlines_repo.reschedule_deadline(
                conn,
                r["id"],
                policy=r["policy"],
                started_at=r["started_at"],
                due_at=due,
                stage=stage,
                next_due_at=next_due_at,
                extended_days=r["extended_days"] + transition.extend_days,
            )
            moved[r["name"]] = {"from": r["due_at"].isoformat(), "to": due.isoformat()}
        return moved

    async def _sync_back(self, conn: AsyncConnection, audits: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Queues each state change for the hotline platform (when a sync URL is configured)."""
        if not self.sync_url or not audits:
            return
        rows = []
        for audit_id, audit in audits:
            at: datetime = audit["at"]
            rows.append(
                {
                    "channel": SYNC_CHANNEL,
                    "destination": self.sync_url,
                    "idempotency_key": f"hotline-sync:{audit_id}",
                    "ordering_key": audit["ticket_no"],
                    "priority": 5,
                    "payload": {
                        "event_id": audit_id,
                        "ticket_no": audit["ticket_no"],
                        "action": audit["action"],
                        "from_state": audit["from_state"],
                        "to_state": audit["to_state"],
                        "actor": audit["actor"],
                        "at": at.isoformat(),
                        "note": audit["note"],
                        "data": _jsonable(audit["data"]),
                    },
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": at,
                    "created_at": at,
                }
            )
        await outbox_repo.enqueue(conn, rows)

    # --- reading -----------------------------------------------------------------------------------------

    async def record_access(self, ticket: Mapping[str, Any], *, actor: str, what: str) -> None:
        """Who saw a citizen's full contact details, and when: an audit entry (the state does not change)."""
        entry = _access_audit(ticket, actor=actor, at=self.clock.now(), via=what)
        await self.store.run_transaction(lambda conn: audit_repo.append_audit(conn, [entry]))

    async def deadlines_of(self, ticket_id: int) -> list[Mapping[str, Any]]:
        """A ticket's deadlines, every cycle's, as :meth:`get` gives them."""
        return [
            dict(r)
            for r in await self.store.read(lambda conn: deadlines_repo.deadlines_of(conn, ticket_id), snapshot=False)
        ]

    async def get(self, ticket_no: str, *, history: bool = True, deadlines: bool = True) -> TicketDetail:
        """The ticket with its deadlines and history (each can be left out when not needed, e.g. in a chat reply)."""

        async def query(conn: AsyncConnection) -> TicketDetail:
            row = await tickets_repo.ticket_by_no(conn, ticket_no)
            if row is None:
                raise TicketNotFound(ticket_no)
            return TicketDetail(
                ticket=dict(row),
                deadlines=[dict(r) for r in await deadlines_repo.deadlines_of(conn, row["id"])] if deadlines else [],
                history=[dict(r) for r in await audit_repo.history_of(conn, row["id"])] if history else [],
            )

        return await self.store.read(query)


def _access_audit(ticket: Mapping[str, Any], *, actor: str, at: datetime, via: str) -> dict[str, Any]:
    return {
        "ticket_id": ticket["id"],
        "ticket_no": ticket["ticket_no"],
        "at": at,
        "actor": actor,
        "action": "view_contact",
        "from_state": ticket["state"],
        "to_state": ticket["state"],
        "note": None,
        "data": {"via": via},
    }


def _replace(req: ActionRequest, **changes: Any) -> ActionRequest:
    from dataclasses import replace

    return replace(req, **changes)


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, timedelta):
            out[key] = value.total_seconds()
        elif isinstance(value, Duration):
            out[key] = str(value)
        else:
            out[key] = value
    return out
