"""A report as every rendering reads it (the chat's markdown, the chart, the workbook, CSV and JSON): the period, each
unit's figures beside the period before (环比) and the same period a year earlier (同比), the office's total, the
trend of the chart's rate, and the tickets behind the figures that need explaining. Ticket lines carry no citizen's
details: their titles and reasons are masked when they are read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.domain.reports.figures import Figures, Rate, Ratio
from bot.domain.reports.periods import Period
from config.vocabulary import DeadlineName


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitLine:
    """One unit's figures (``code`` None: the office's total)."""

    code: str | None
    name: str
    figures: Figures
    previous: Figures
    year_ago: Figures
    score: float | None
    previous_score: float | None
    year_ago_score: float | None
    rank: int | None = None  # by score among the units that have one, 1 the highest

    def change(self, rate: Rate, *, year: bool = False) -> float | None:
        """环比 (or 同比, ``year``) of ``rate`` in percentage points."""
        other = self.year_ago if year else self.previous
        return self.figures.rates[rate].points_over(other.rates[rate])

    def score_change(self, *, year: bool = False) -> float | None:
        other = self.year_ago_score if year else self.previous_score
        return None if self.score is None or other is None else self.score - other


@dataclass(frozen=True, slots=True, kw_only=True)
class LateItem:
    """A deadline due in the period and not met on time (未按时接单, 未先行联系, 逾期)."""

    ticket_no: str
    unit: str | None
    kind: str
    category: str | None
    title: str  # masked
    deadline: DeadlineName
    due_at: datetime
    met_at: datetime | None  # None: still open (or closed without it), past due
    stopped_at: datetime | None = None  # closed without being met: when it stopped being due (None: met or open)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReturnItem:
    """A return asked for in the period and what became of it."""

    ticket_no: str
    unit: str | None  # the unit that returned it
    asked_at: datetime
    reason: str  # masked
    suggested: str | None  # the unit it suggested: its code, else the member's text masked
    outcome: str  # pending | approved | rejected | declined (by its own head)
    decided_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class VisitItem:
    """A ticket visited in the period that was not satisfied, or made a warning ticket."""

    ticket_no: str
    unit: str | None
    category: str | None
    title: str  # masked
    visited_at: datetime | None
    result: str | None  # the VisitResult value of its latest visit
    solved: str | None  # the citizen's view (Solved value)
    warning: bool  # a visit in the period made it a warning ticket
    rehandle_due: datetime | None
    rehandle_met: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RepeatItem:
    ticket_no: str
    unit: str | None
    category: str | None
    title: str  # masked
    dispatched_at: datetime
    count: int  # its place among the tickets of the same matter (2: one came before)
    repeat_of: str | None
    reason: str | None  # phone | address | phone+address | platform


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    period: Period
    at: datetime  # when it was made (the figures are as of then)
    office: str  # the office's name
    scope: tuple[str, ...] | None  # the units asked for (None: all)
    total: UnitLine
    units: Sequence[UnitLine]  # in rank order (units without a score last, in the configuration's order)
    ranked: int  # how many units have a rank (among all units, whatever the scope)
    chart_rate: Rate
    trend: Sequence[tuple[Period, Ratio]]  # the chart rate over up to 12 periods, oldest first, this one last
    targets: Mapping[Rate, float]
    # accept misses in a period that get a unit summoned (three misses); None: the report's period is not the one the
    # limit counts in (nags.three_misses.period_months), so no unit is marked as at it
    miss_limit: int | None
    late: Sequence[LateItem] = ()
    returns: Sequence[ReturnItem] = ()
    visits: Sequence[VisitItem] = ()
    repeats: Sequence[RepeatItem] = ()
    unit_names: Mapping[str, str] = field(default_factory=dict)

    def unit_name(self, code: str | None) -> str:
        if code is None:
            return "（无单位）"
        return self.unit_names.get(code, code)
