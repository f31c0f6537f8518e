"""Reporting periods in Beijing time: a week (Monday to Sunday), a month, two months (January–February …), a quarter,
a year. A period is ``[start, end)``: a deadline due at 23:59:59 on its last day belongs to it. Each has the period
before it (环比) and the same period a year earlier (同比)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from bot.domain.clock import TZ


class PeriodKind(StrEnum):
    WEEK = "week"
    MONTH = "month"
    BIMONTH = "bimonth"
    QUARTER = "quarter"
    YEAR = "year"


_MONTHS = {PeriodKind.MONTH: 1, PeriodKind.BIMONTH: 2, PeriodKind.QUARTER: 3, PeriodKind.YEAR: 12}

# the words /报表 takes (and the API's period=), each a kind and whether it means the period before the current one
WORDS: dict[str, tuple[PeriodKind, bool]] = {
    "周": (PeriodKind.WEEK, False),
    "本周": (PeriodKind.WEEK, False),
    "上周": (PeriodKind.WEEK, True),
    "月": (PeriodKind.MONTH, False),
    "本月": (PeriodKind.MONTH, False),
    "上月": (PeriodKind.MONTH, True),
    "双月": (PeriodKind.BIMONTH, False),
    "本双月": (PeriodKind.BIMONTH, False),
    "上双月": (PeriodKind.BIMONTH, True),
    "季": (PeriodKind.QUARTER, False),
    "本季": (PeriodKind.QUARTER, False),
    "上季": (PeriodKind.QUARTER, True),
    "年": (PeriodKind.YEAR, False),
    "本年": (PeriodKind.YEAR, False),
    "今年": (PeriodKind.YEAR, False),
    "去年": (PeriodKind.YEAR, True),
    **{k.value: (k, False) for k in PeriodKind},
    **{f"last_{k.value}": (k, True) for k in PeriodKind},
}
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")


@dataclass(frozen=True, slots=True)
class Period:
    kind: PeriodKind
    start: date  # its first day
    end: date  # the day after its last

    @property
    def months(self) -> int | None:
        """How many calendar months it spans (None: a week)."""
        return _MONTHS.get(self.kind)

    @property
    def starts(self) -> datetime:
        return datetime.combine(self.start, time(), TZ)

    @property
    def ends(self) -> datetime:
        return datetime.combine(self.end, time(), TZ)

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    @property
    def label(self) -> str:
        """How the reports name it: 2026年第49周（11-30至12-06）, 2026年11月, 2026年11-12月, 2026年第4季度, 2026年."""
        s, last = self.start, self.last_day
        if self.kind is PeriodKind.WEEK:
            year, week, _ = s.isocalendar()
            return f"{year}年第{week}周（{s:%m-%d}至{last:%m-%d}）"
        if self.kind is PeriodKind.MONTH:
            return f"{s.year}年{s.month}月"
        if self.kind is PeriodKind.BIMONTH:
            return f"{s.year}年{s.month}-{last.month}月"
        if self.kind is PeriodKind.QUARTER:
            return f"{s.year}年第{(s.month - 1) // 3 + 1}季度"
        return f"{s.year}年"

    @property
    def short_label(self) -> str:
        """For a chart's axis: 第49周, 11月, 11-12月, Q4, 2026."""
        s, last = self.start, self.last_day
        if self.kind is PeriodKind.WEEK:
            return f"第{s.isocalendar()[1]}周"
        if self.kind is PeriodKind.MONTH:
            return f"{s.year % 100:02d}/{s.month}月"
        if self.kind is PeriodKind.BIMONTH:
            return f"{s.year % 100:02d}/{s.month}-{last.month}月"
        if self.kind is PeriodKind.QUARTER:
            return f"{s.year % 100:02d}Q{(s.month - 1) // 3 + 1}"
        return str(s.year)

    @property
    def key(self) -> str:
        """For message keys and file names: week-2026-11-30, month-2026-11 …"""
        day = self.start.isoformat() if self.kind is PeriodKind.WEEK else f"{self.start:%Y-%m}"
        return f"{self.kind.value}-{day}"

    def previous(self) -> Period:
        """The period before (环比)."""
        return containing(self.kind, self.start - timedelta(days=1))

    def year_earlier(self) -> Period:
        """The same period a year earlier (同比); for a week, the ISO week of the same number."""
        if self.kind is PeriodKind.WEEK:
            year, week, _ = self.start.isocalendar()
            try:
                monday = date.fromisocalendar(year - 1, week, 1)
            except ValueError:  # week 53 in a year that has 52
                monday = date.fromisocalendar(year - 1, 52, 1)
            return containing(self.kind, monday)
        return containing(self.kind, self.start.replace(year=self.start.year - 1))

    def back(self, n: int) -> list[Period]:
        """The ``n`` periods ending with this one, oldest first (a trend)."""
        out = [self]
        while len(out) < n:
            out.append(out[-1].previous())
        return out[::-1]


def containing(kind: PeriodKind, day: date) -> Period:
    """The period of ``kind`` that ``day`` falls in."""
    if kind is PeriodKind.WEEK:
        start = day - timedelta(days=day.weekday())
        return Period(kind, start, start + timedelta(days=7))
    months = _MONTHS[kind]
    first = (day.month - 1) // months * months + 1
    start = date(day.year, first, 1)
    after = first + months
    end = date(day.year + 1, 1, 1) if after > 12 else date(day.year, after, 1)
    return Period(kind, start, end)


def current(kind: PeriodKind, now: datetime) -> Period:
    return containing(kind, now.astimezone(TZ).date())


def last_complete(kind: PeriodKind, now: datetime) -> Period:
    """The latest period of ``kind`` that has ended by ``now`` (what a scheduled report reports)."""
    return current(kind, now).previous()


def parse(word: str, now: datetime) -> Period | None:
    """A period from /报表's or the API's word: 周 月 双月 季 年 (the current period, to date), 上周 上月 上双月 上季
    去年 (the one before), ``YYYY-MM`` (a month); the API also takes week, month, bimonth, quarter, year and
    last_week … None when the word is none of these."""
    word = word.strip()
    found = WORDS.get(word) or WORDS.get(word.lower())
    if found is not None:
        kind, before = found
        period = current(kind, now)
        return period.previous() if before else period
    m = _MONTH.match(word)
    if m is None:
        return None
    year, month = int(m.group(1)), int(m.group(2))
    if not (1 <= month <= 12 and 2000 <= year <= 2100):
        return None
    return containing(PeriodKind.MONTH, date(year, month, 1))
