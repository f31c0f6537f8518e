"""The ticket service's base: its collaborators, the hooks that follow each change in its transaction (told once the
transaction has committed), and the deadline rows a plan becomes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from bot.domain.clock import Clock
from bot.domain.deadlines import DeadlinePlanner, PlannedDeadline
from bot.domain.lifecycle import (
    ExtensionLimits,
    ReturnLimits,
    VisitResult,
)
from bot.domain.nags import NAG_FREE, NagSchedule
from bot.domain.records import HistoryEntry, Ticket
from bot.domain.routing import Router
from bot.domain.workcal import WorkCalendar
from bot.services.repeats import RepeatMatcher
from bot.services.ticket_model import ChangeHook, TicketChange
from config.durations import Duration
from config.model import BotConfig
from store import outbox as outbox_repo
from store import settled as settled_repo
from store.core import Conn, Store

log = logging.getLogger(__name__)

# a change's history entries as outbox rows for the hotline platform (notifiers.hotline.HotlineSync)
SyncBack = Callable[[Sequence[HistoryEntry]], list[dict[str, Any]]]

# the hooks told of changes in the transaction under way in this task (see TicketCore._transaction)
_TOLD: ContextVar[set[ChangeHook] | None] = ContextVar("ticket_hooks_told", default=None)


class TicketCore:
    def __init__(
        self,
        store: Store,
        config: BotConfig,
        calendar: WorkCalendar,
        clock: Clock,
        *,
        sync_back: SyncBack | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.router = Router(config)
        self.planner = DeadlinePlanner(config, calendar)
        self.calendar = calendar
        self.nags = NagSchedule(config.nags, calendar)
        self.sync_back = sync_back
        extension = config.deadlines.extension
        self.extension_limits = ExtensionLimits(max_days=extension.max_days, max_count=extension.max_approved)
        returns = config.returns
        self.warning_results = frozenset(VisitResult(r) for r in config.visits.warning_results)
        self.return_limits = ReturnLimits(
            assignment_after=returns.assignment_after_returns, max_redispatches=returns.max_redispatches
        )
        self.hooks: list[ChangeHook] = []
        self.repeats = RepeatMatcher(config)

    def add_hook(self, hook: ChangeHook) -> None:
        """``hook`` follows every change from now on, in the change's transaction."""
        self.hooks.append(hook)

    async def _touched(self, conn: Conn, row: Ticket, touched: list[datetime]) -> None:
        """Notes that ``row`` changed: the kept counts of the settled periods it counts in are cleared when the
        transaction ends (:meth:`_unsettle`). Every fact of a ticket comes after its first dispatch; one dispatched
        again (a later cycle) says when only in its deadlines."""
        since = row.dispatched_at
        if row.cycle > 1:
            since = min(since, await settled_repo.first_fact(conn, row.id) or since)
        touched.append(since)

    async def _unsettle(self, conn: Conn, touched: list[datetime]) -> None:
        """The last statement of a transaction that changed tickets: see :func:`store.settled.unsettle`."""
        if touched:
            await settled_repo.unsettle(conn, min(touched), self.clock.now())

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        """The store's transaction; once it has committed, the hooks told of its changes are told so."""
        async with self._told(), self.store.transaction() as conn:
            yield conn

    @asynccontextmanager
    async def _told(self) -> AsyncIterator[None]:
        """Collects the hooks told of changes in the transaction(s) within; once those have committed (the block
        ends without an error), tells them so. The collection travels in a context variable."""
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

    async def _tell(self, conn: Conn, changes: Sequence[TicketChange]) -> None:
        if not changes:
            return
        told = _TOLD.get()
        for hook in self.hooks:
            await hook.changed(conn, changes)
            if told is not None:
                told.add(hook)

    def nag_point(
        self,
        name: str,
        policy: str,
        started_at: datetime,
        due_at: datetime,
        now: datetime,
        *,
        quiet_until: datetime | None = None,
    ) -> tuple[int, datetime | None]:
        """The ``stage`` and ``next_due_at`` of a deadline planned or moved at ``now``: its first step for the deadline
        engine (reminders already past skipped), or (0, None) when it has none: a window (the return window) is not
        an obligation, nothing reminds of it, and a deadline of an imported ticket due by the import (``quiet_until``:
        :func:`bot.domain.history.imported_until`) was the platform's business. Whatever moves a deadline's due time
        writes these with it (:func:`store.deadlines.reschedule_deadline`), so that its reminders start over."""
        if name in NAG_FREE:
            return 0, None
        if quiet_until is not None and due_at <= quiet_until:
            return 0, None
        step = self.nags.next_point(policy, started_at, due_at, 0, now=now)
        return (0, None) if step is None else (step.index, step.at)

    def _deadline_rows(
        self, planned: Sequence[tuple[int, int, PlannedDeadline, str | None]], now: datetime, *, history: bool = False
    ) -> list[dict[str, Any]]:
        """Rows for new deadlines (ticket id, cycle, plan, the unit that has the ticket: whose rates it counts in),
        each with its first step for the engine (as :meth:`nag_point` gives it, computed for all at once: an import
        plans hundreds of thousands). ``history``: the tickets come from the platform's past (an import): a deadline
        already due at ``now`` is never nagged (no step at all: no reminder, overdue notice or escalation for what was
        due before the import)."""
        policies: dict[Duration, str] = {}
        texts = [policies.get(p.policy) or policies.setdefault(p.policy, str(p.policy)) for _, _, p, _ in planned]
        quiet = [p.name in NAG_FREE or (history and p.due_at <= now) for _, _, p, _ in planned]
        nagged = [(text, p) for text, (_, _, p, _), q in zip(texts, planned, quiet, strict=True) if not q]
        points = iter(
            self.nags.first_points(
                [t for t, _ in nagged], [p.started_at for _, p in nagged], [p.due_at for _, p in nagged], now=now
            )
        )
        rows = []
        for text, (ticket_id, cycle, p, unit), q in zip(texts, planned, quiet, strict=True):
            stage, next_due_at = (0, None) if q else next(points)
            rows.append(
                {
                    "ticket_id": ticket_id,
                    "name": p.name.value,
                    "cycle": cycle,
                    "policy": text,
                    "started_at": p.started_at,
                    "due_at": p.due_at,
                    "unit_code": unit,
                    "status": "open",
                    "met_at": None,
                    "next_due_at": next_due_at,
                    "stage": stage,
                }
            )
        return rows

    async def _sync_back(self, conn: Conn, audits: Sequence[HistoryEntry]) -> None:
        """Queues each state change for the hotline platform (when a sync-back is configured)."""
        if self.sync_back is None or not audits:
            return
        await outbox_repo.enqueue(conn, self.sync_back(audits))
