"""The steps of one deadline as the deadline engine takes them: reminders before it, the overdue notice at it, the
escalation after it; and when a routine message may be sent at all (the service window, quiet hours).

Pure: a deadline's steps follow from its policy, start and due time and the config's ``nags`` section alone. A
deadline row keeps ``stage`` (the index of its next step) and ``next_due_at`` (when the engine must look at it next);
:meth:`NagSchedule.next_point` is the one function that gives both, when a deadline is planned, rescheduled or
advanced.

Steps, in order (defaults in brackets):

* **reminders** at the configured points [50 %, 80 % of the time, 1 h before due]; points at or before the start,
  at or after the due time, or at the same instant as another are dropped, so no two reminders share a point;
* the **overdue notice** at the due time, with escalation level 1 [the handler];
* **escalation** levels 2 … n, one ``interval`` apart [2 h: the unit head and deputies, then the center lead];
* **repeats** to every level, ``interval`` apart, ``repeats`` times [3]; then nothing more.

Points are measured on the deadline's own clock: working time for a deadline in working days (a reminder at 50 % of
"1wd" is half a working day in; weekends and holidays do not count, and a point never falls on one: where working
time stands still, the point is 00:00 of the next working day), natural time for one in days, hours or minutes. The
overdue notice is at the due time itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

from bot.domain.clock import local
from bot.domain.workcal import WorkCalendar
from config.durations import Duration
from config.model import BotConfig, Nags, minute_of_day
from config.vocabulary import DeadlineName

StepKind = Literal["reminder", "overdue", "escalation", "repeat"]

# deadlines the engine never acts on: windows, not obligations (nothing to remind of, nothing missed)
NAG_FREE: frozenset[str] = frozenset({DeadlineName.RETURN_WINDOW.value})


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    index: int  # the deadline's ``stage`` while this step is the next one
    kind: StepKind
    at: datetime
    level: int = 0  # overdue/escalation: the escalation level (1-based; 0: no escalation); repeat: its number

    @property
    def after_due(self) -> bool:
        return self.kind != "reminder"


@lru_cache(maxsize=256)
def _is_working(policy: str) -> bool:
    try:
        return Duration.parse(policy).working_days
    except ValueError:
        return False


def _epoch(at: datetime) -> int:
    """Whole Unix seconds (points are computed to the second)."""
    return math.floor(at.timestamp())


def _epochs(values: Sequence[datetime]) -> npt.NDArray[np.int64]:
    """:func:`_epoch` of each; a ticket's deadlines share their start (the same object): converted once."""
    seen: dict[int, int] = {}
    out = []
    for value in values:
        epoch = seen.get(id(value))
        if epoch is None:
            epoch = seen[id(value)] = math.floor(value.timestamp())
        out.append(epoch)
    return np.array(out, dtype=np.int64)


# a fixed +08:00 for the points (ZoneInfo lookups cost several times more per value), as the planner's due times:
# exact, China has had no daylight saving since 1991
_BEIJING = timezone(timedelta(hours=8))


def _instant(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, _BEIJING)


class NagSchedule:
    """The steps of a deadline under ``nags`` (see the module's docstring). Computed in whole seconds: on the working
    clock (``W``, :meth:`WorkCalendar.working_seconds_at`) for a deadline in working days, else on the natural one."""

    def __init__(self, nags: Nags, calendar: WorkCalendar) -> None:
        self.nags = nags
        self.calendar = calendar
        self._interval = int(nags.interval.natural().total_seconds())
        self._levels = len(nags.escalation)
        self._points = [
            (p.percent, None if p.before is None else int(p.before.natural().total_seconds())) for p in nags.reminders
        ]

    # --- the steps -----------------------------------------------------------------------------------------------

    def iter_steps(self, policy: str, started_at: datetime, due_at: datetime) -> Iterator[Step]:
        """The steps in order; computed as they are asked for (planning needs only the first)."""
        working = _is_working(policy)
        start, due = _epoch(started_at), _epoch(due_at)
        index = 0
        for at in self._reminders(start, due, working):
            yield Step(index=index, kind="reminder", at=_instant(at))
            index += 1
        # at the due time itself, even where it is the end of a working day before days off: it was missed then
        yield Step(index=index, kind="overdue", at=due_at, level=1 if self._levels else 0)
        index += 1
        if not self._levels:
            return
        after = (self._levels - 1) + self.nags.repeats
        base = self.calendar.working_seconds_at(due) if working else due
        for n in range(1, after + 1):
            at = base + n * self._interval
            if working:
                at = self.calendar.instant_at_working_seconds(at)
            if n < self._levels:
                yield Step(index=index, kind="escalation", at=_instant(at), level=n + 1)
            else:
                yield Step(index=index, kind="repeat", at=_instant(at), level=n - self._levels + 1)
            index += 1

    def steps(self, policy: str, started_at: datetime, due_at: datetime) -> list[Step]:
        return list(self.iter_steps(policy, started_at, due_at))

    def next_point(
        self, policy: str, started_at: datetime, due_at: datetime, stage: int, *, now: datetime
    ) -> Step | None:
        """The deadline's next step from ``stage`` on (its ``stage`` and ``next_due_at``), None when nothing more is
        due. Reminders already past at ``now`` are skipped (a deadline planned late, or rescheduled, does not get
        reminders for points gone by); the overdue notice and the escalation are never skipped: when they are past,
        the next tick takes them (together)."""
        for step in self.iter_steps(policy, started_at, due_at):
            if step.index < stage:
                continue
            if step.kind == "reminder" and step.at <= now:
                continue
            return step
        return None

    def first_points(
        self, policies: Sequence[str], starts: Sequence[datetime], dues: Sequence[datetime], *, now: datetime
    ) -> list[tuple[int, datetime]]:
        """``next_point(policy, start, due, 0, now=now)`` of many deadlines at once (index and time; every deadline
        has a first point: its overdue notice at least), vectorised: a bulk import plans hundreds of thousands."""
        n = len(policies)
        if n == 0:
            return []
        start = _epochs(starts)
        due = _epochs(dues)
        working = np.fromiter((_is_working(p) for p in policies), dtype=np.bool_, count=n)
        if not self._points:
            return [(0, t) for t in dues]
        w_start, w_due = start.copy(), due.copy()
        if working.any():
            w_start[working] = self.calendar.working_seconds_at_many(start[working])
            w_due[working] = self.calendar.working_seconds_at_many(due[working])
        points = np.empty((len(self._points), n), dtype=np.int64)
        for row, (percent, before) in enumerate(self._points):
            if percent is not None:
                points[row] = w_start + (w_due - w_start) * percent // 100
            else:
                points[row] = w_due - int(before or 0)
        if working.any():
            points[:, working] = self.calendar.instant_at_working_seconds_many(points[:, working])
        valid = (points > start) & (points < due)
        for row in range(1, len(self._points)):  # no two reminders at one point: the first of equals counts
            for earlier in range(row):
                valid[row] &= ~(valid[earlier] & (points[earlier] == points[row]))
        future = valid & (points > _epoch(now))
        chosen = np.where(future, points, np.iinfo(np.int64).max).min(axis=0)
        index = (valid & (points < chosen)).sum(axis=0)
        has: npt.NDArray[np.bool_] = np.asarray(future.any(axis=0))
        return [
            (int(i), _instant(int(c)) if h else d)
            for i, c, h, d in zip(index.tolist(), chosen.tolist(), has.tolist(), dues, strict=True)
        ]

    # --- internals -----------------------------------------------------------------------------------------------

    def _reminders(self, start: int, due: int, working: bool) -> list[int]:
        if not self._points:
            return []
        w_start, w_due = start, due
        if working:
            w_start, w_due = self.calendar.working_seconds_at(start), self.calendar.working_seconds_at(due)
        points = set()
        for percent, before in self._points:
            w = w_start + (w_due - w_start) * percent // 100 if percent is not None else w_due - int(before or 0)
            at = self.calendar.instant_at_working_seconds(w) if working else w
            if start < at < due:
                points.add(at)
        return sorted(points)


# --- the service window and quiet hours ----------------------------------------------------------------------------


def routine_allowed(config: BotConfig, at: datetime) -> bool:
    """Whether a routine message may go out at ``at``: inside the service window and outside quiet hours."""
    return config.in_service_window(at) and not config.in_quiet_hours(at)


def next_routine_moment(config: BotConfig, at: datetime) -> datetime:
    """The first moment from ``at`` on when a routine message may go out (``at`` itself when it may now)."""
    if routine_allowed(config, at):
        return at
    local = config.local(at)
    starts = [config.service_window.start]
    if config.quiet_hours is not None:
        starts.append(config.quiet_hours.end)
    candidates = []
    for days in range(-1, 3):
        day = local.date() + timedelta(days=days)
        for hhmm in starts:
            moment = datetime.combine(day, time(), tzinfo=local.tzinfo) + timedelta(minutes=minute_of_day(hhmm))
            if moment > local:
                candidates.append(moment)
    for moment in sorted(candidates):
        if routine_allowed(config, moment):
            return moment
    # quiet hours cover the whole window: the window's next start, so that the step is not lost
    return min(candidates)


# --- reporting periods (three misses) ------------------------------------------------------------------------------


def period_start(at: datetime | date, months: int) -> date:
    """The first day of the reporting period of ``months`` months (periods start in January) that ``at`` falls in
    (a datetime is taken at its local date): with 2, 2026-11-23 is in the period from 2026-11-01."""
    day = local(at).date() if isinstance(at, datetime) else at
    return date(day.year, (day.month - 1) // months * months + 1, 1)


def period_label(start: date, months: int) -> str:
    """``2026年11–12月``, ``2026年11月``, ``2026年``."""
    if months == 12:
        return f"{start.year}年"
    if months == 1:
        return f"{start.year}年{start.month}月"
    return f"{start.year}年{start.month}–{start.month + months - 1}月"
