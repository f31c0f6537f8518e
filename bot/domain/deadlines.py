"""Which deadlines a ticket carries, and when each falls due, from the configured policies."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from bot.clock import TZ
from bot.domain.lifecycle import CycleKind
from bot.domain.workcal import WorkCalendar
from config.durations import Duration
from config.model import BotConfig
from config.vocabulary import DeadlineName, TicketKind


@dataclass(frozen=True, slots=True)
class PlannedDeadline:
    name: DeadlineName
    policy: Duration
    started_at: datetime
    due_at: datetime


@dataclass(frozen=True, slots=True)
class PlanRequest:
    kind: TicketKind
    category: str | None
    start: datetime
    cycle_kind: CycleKind


class DeadlinePlanner:
    def __init__(self, config: BotConfig, calendar: WorkCalendar) -> None:
        self.config = config
        self.calendar = calendar

    def durations(self, kind: TicketKind, category: str | None, cycle_kind: CycleKind) -> dict[DeadlineName, Duration]:
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
        return [
            PlannedDeadline(name, d, req.start, self.calendar.add(req.start, d))
            for name, d in self.durations(req.kind, req.category, req.cycle_kind).items()
        ]

    def plan_many(self, reqs: Sequence[PlanRequest]) -> list[list[PlannedDeadline]]:
        """The same as ``plan`` for each request; working-day sums are computed in vectorised batches."""
        wanted = [self.durations(r.kind, r.category, r.cycle_kind) for r in reqs]
        # working-day additions grouped by n: one numpy call per distinct n
        by_days: dict[int, list[int]] = defaultdict(list)
        for i, durations in enumerate(wanted):
            for d in durations.values():
                if d.working_days:
                    by_days[d.value].append(i)
        due: dict[tuple[int, int], datetime] = {}
        epochs = [int(r.start.timestamp()) for r in reqs]
        for n, indexes in by_days.items():
            starts = np.fromiter((epochs[i] for i in indexes), dtype=np.int64, count=len(indexes))
            results = self.calendar.add_working_days_many(starts, n)
            for i, value in zip(indexes, results.tolist(), strict=True):
                due[(i, n)] = datetime.fromtimestamp(value, TZ)
        plans: list[list[PlannedDeadline]] = []
        for i, (req, durations) in enumerate(zip(reqs, wanted, strict=True)):
            plan = []
            for name, d in durations.items():
                if d.working_days:
                    # sub-second parts of the start survive the epoch round trip
                    when = due[(i, d.value)].replace(microsecond=req.start.microsecond)
                else:
                    when = req.start + d.natural()
                plan.append(PlannedDeadline(name, d, req.start, when))
            plans.append(plan)
        return plans
