"""The figures of one unit (or the whole office) over one period: the rates, each a numerator over a denominator, and
the counts; the unit score; the comparison with another period in percentage points.

The definitions (docs/reports.md, in Chinese and English; the same words):

* 按时接单率 (``accept``): accept deadlines met on time ÷ accept deadlines due.
* 先行联系率 (``first_contact``): first-contact deadlines met on time ÷ due; beside it, for "三个二" units, the
  20-minute contact rate (``contact_20m``).
* 按时办结率 (``handle``): handling and re-handling deadlines met on time ÷ due.
* 及时回复率 (``reply``): tickets first submitted by the platform's own 办理时限 ÷ tickets whose 办理时限 falls due.
* 实际解决率 (``solved``): visits whose citizen says solved ÷ visits with an answer on it.
* 满意率 (``satisfaction``): weighted (满意, 基本满意, 不满意) ÷ (满意 + 基本满意 + 不满意); 联系不上 left out.

Deadlines count in the period they fall **due** in, under the unit that had the ticket when they started. A deadline
met after its due time, missed, or still open past its due time is not on time; one still open and not yet due is not
counted yet. Cancelled deadlines (no longer due in time), the office's own (退单审核) and the return window are never
counted, nor are cancelled tickets or tickets approved 不纳入测评 (in any rate or count but the tickets received).

Visits count in the period they were made in, under the unit that had the ticket then, a ticket by its latest visit;
returns and warnings when they happened, under the unit that had the ticket then. Tickets received count by their
(latest) dispatch time under the unit that has them; the 及时回复率 by the platform's deadline, under the ticket's unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum

from config.vocabulary import DeadlineName


class Rate(StrEnum):
    ACCEPT = "accept"
    FIRST_CONTACT = "first_contact"
    CONTACT_20M = "contact_20m"
    HANDLE = "handle"
    REPLY = "reply"
    SOLVED = "solved"
    SATISFACTION = "satisfaction"

    @property
    def label(self) -> str:
        return RATE_LABELS[self]


RATE_LABELS: dict[Rate, str] = {
    Rate.ACCEPT: "按时接单率",
    Rate.FIRST_CONTACT: "先行联系率",
    Rate.CONTACT_20M: "20分钟联系率",
    Rate.HANDLE: "按时办结率",
    Rate.REPLY: "及时回复率",
    Rate.SOLVED: "实际解决率",
    Rate.SATISFACTION: "满意率",
}

# the deadlines each deadline rate counts
DEADLINE_RATES: dict[DeadlineName, Rate] = {
    DeadlineName.ACCEPT: Rate.ACCEPT,
    DeadlineName.FIRST_CONTACT: Rate.FIRST_CONTACT,
    DeadlineName.CONTACT_20M: Rate.CONTACT_20M,
    DeadlineName.HANDLE: Rate.HANDLE,
    DeadlineName.REHANDLE: Rate.HANDLE,
}
COUNTED_DEADLINES: tuple[str, ...] = tuple(n.value for n in DEADLINE_RATES)


@dataclass(frozen=True, slots=True)
class Ratio:
    """A rate as its numerator over its denominator (never a bare percentage). ``num`` is a float only for the
    weighted satisfaction rate."""

    num: float = 0
    den: int = 0

    @property
    def value(self) -> float | None:
        return self.num / self.den if self.den else None

    def __add__(self, other: Ratio) -> Ratio:
        return Ratio(self.num + other.num, self.den + other.den)

    def points_over(self, other: Ratio | None) -> float | None:
        """The change from ``other`` in percentage points (None when either has no denominator)."""
        if other is None or self.value is None or other.value is None:
            return None
        return (self.value - other.value) * 100


@dataclass(slots=True)
class Counts:
    """What happened in the period, for one unit or the office."""

    received: int = 0  # tickets dispatched to it in the period (all, cancelled and excluded too)
    by_kind: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)
    repeats: int = 0  # received tickets that repeat an earlier one (重复诉求)
    media: int = 0  # received media-exposure tickets (媒体曝光)
    returns_asked: int = 0
    returns_approved: int = 0
    returns_rejected: int = 0
    warnings: int = 0  # visits that made a warning ticket (预警)
    dissatisfied: int = 0  # visits answered 不满意
    unreachable: int = 0  # visits answered 联系不上 (left out of the satisfaction rate)
    accept_misses: int = 0  # accept deadlines due in the period and not met on time

    def add(self, other: Counts) -> None:
        for name in _TALLIES:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for mine, theirs in ((self.by_kind, other.by_kind), (self.by_category, other.by_category)):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n


# the counts that add up as numbers (the others are the by-kind and by-category tallies)
_TALLIES = tuple(f.name for f in fields(Counts) if f.type == "int")


@dataclass(slots=True)
class Figures:
    rates: dict[Rate, Ratio] = field(default_factory=lambda: {r: Ratio() for r in Rate})
    counts: Counts = field(default_factory=Counts)
    rehandled: Ratio = field(default_factory=Ratio)  # re-handling deadlines met on time ÷ due (the warnings')

    def add(self, other: Figures) -> None:
        for rate, ratio in other.rates.items():
            self.rates[rate] = self.rates[rate] + ratio
        self.counts.add(other.counts)
        self.rehandled = self.rehandled + other.rehandled

    def score(self, weights: Mapping[Rate, float]) -> float | None:
        """The unit score: 100 × the weighted mean of the rates that have a denominator (a rate without one is left
        out and the others' weights scaled up); None when none has."""
        total = weight = 0.0
        for rate, w in weights.items():
            value = self.rates[rate].value
            if value is not None and w > 0:
                total += w * value
                weight += w
        return 100 * total / weight if weight else None


def total(figures: Iterable[Figures]) -> Figures:
    out = Figures()
    for f in figures:
        out.add(f)
    return out
