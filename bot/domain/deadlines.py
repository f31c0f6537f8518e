"""Which deadlines a ticket carries, and when each falls due, from the configured policies."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from bot.domain.clock import local
from bot.domain.lifecycle import CycleKind
from bot.domain.workcal import WorkCalendar
from config.durations import Duration
from config.model import BotConfig
from config.vocabulary import DeadlineName, TicketKind


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedDeadline:
    name: DeadlineName
    policy: Duration
    started_at: datetime
    due_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanRequest:
    kind: TicketKind
    category: str | None
    start: datetime
    cycle_kind: CycleKind


class DeadlinePlanner:
    def __init__(self, config: BotConfig, calendar: WorkCalendar) -> None:
        self.config = config
        self.calendar = calendar
        # policies are fixed for the life of a config: look each combination up once (callers must not mutate)
        self._durations: dict[tuple[TicketKind, str | None, CycleKind], dict[DeadlineName, Duration]] = {}

    def durations(self, kind: TicketKind, category: str | None, cycle_kind: CycleKind) -> dict[DeadlineName, Duration]:
        key = (kind, category, cycle_kind)
        found = self._durations.get(key)
        if found is None:
            found = self._durations[key] = self._compute_durations(kind, category, cycle_kind)
        return found

    def _compute_durations(
        self, kind: TicketKind, category: str | None, cycle_kind: CycleKind
    ) -> dict[DeadlineName, Duration]:
        policy = self.config.policy_for(kind)
        if cycle_kind == "rehandle":
            rehandle = policy.get(DeadlineName.REHANDLE)
            return {DeadlineName.REHANDLE: rehandle} if rehandle else {}
        durations: dict[DeadlineName, Duration] = {
            name: d for name, d in policy.items() if name is not DeadlineName.REHANDLE
        }
        durations.update(self.config.three_twos_for(category))
        return durations

    def plan(self, req: PlanRequest) -> list[PlannedDeadline]:
        base = _base(req.start)
        due = {
            name: self.calendar.add(base, d)
            for name, d in self.durations(req.kind, req.category, req.cycle_kind).items()
        }
        return self._finish(req, due)

    def plan_one(self, name: DeadlineName, policy: Duration, start: datetime) -> PlannedDeadline:
        """One deadline outside a ticket kind's policy (the office's review of a return), computed as ``plan``
        computes every deadline."""
        return PlannedDeadline(
            name=name, policy=policy, started_at=start, due_at=self.calendar.add(_base(start), policy)
        )

    def plan_many(self, reqs: Sequence[PlanRequest]) -> list[list[PlannedDeadline]]:
        """The same as ``plan`` for each request; working-day sums are computed in vectorised batches."""
        wanted = [self.durations(r.kind, r.category, r.cycle_kind) for r in reqs]
        bases = [_base(r.start) for r in reqs]
        # working-day additions grouped by n: one numpy call per distinct n
        by_days: dict[int, list[int]] = defaultdict(list)
        for i, durations in enumerate(wanted):
            for d in durations.values():
                if d.working_days:
                    by_days[d.value].append(i)
        sums: dict[tuple[int, int], datetime] = {}
        epochs = [int(b.timestamp()) for b in bases]
        for n, indexes in by_days.items():
            starts = np.fromiter((epochs[i] for i in indexes), dtype=np.int64, count=len(indexes))
            results = self.calendar.add_working_days_many(starts, n)
            for i, value in zip(indexes, results.tolist(), strict=True):
                sums[(i, n)] = datetime.fromtimestamp(value, _BEIJING)
        plans = []
        for i, (req, durations) in enumerate(zip(reqs, wanted, strict=True)):
            due = {
                name: sums[(i, d.value)] if d.working_days else bases[i] + d.natural() for name, d in durations.items()
            }
            plans.append(self._finish(req, due))
        return plans

    def _finish(self, req: PlanRequest, due: dict[DeadlineName, datetime]) -> list[PlannedDeadline]:
        handle = due.get(DeadlineName.HANDLE)
        internal = due.get(DeadlineName.HANDLE_INTERNAL)
        if handle is not None and internal is not None and internal > handle:
            # the unit's internal deadline exists to be earlier than the ticket's own; when the policy says
            # otherwise (随身拍: 3 natural days vs 2 working days over a weekend) it is the ticket's own
            due[DeadlineName.HANDLE_INTERNAL] = handle
        durations = self.durations(req.kind, req.category, req.cycle_kind)
        return [
            PlannedDeadline(name=name, policy=durations[name], started_at=req.start, due_at=when)
            for name, when in due.items()
        ]


# a fixed +08:00 for converting the vectorised results (ZoneInfo lookups cost several times more per value);
# exact, since China has had no daylight saving since 1991, and the calendar starts in 2004
_BEIJING = timezone(timedelta(hours=8))


def _base(start: datetime) -> datetime:
    """Deadlines are computed to the second, in Beijing time, so that every path gives the same answer."""
    return local(start).replace(microsecond=0)
