"""A shared calendar, a day-by-day reference walk and the instants where off-by-one errors live, for the workcal tests."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import strategies as st

from bot.domain.clock import TZ
from bot.domain.workcal import CalendarOverrides, WorkCalendar

DAY = timedelta(days=1)


LOGGER_NAME = "test.workcal"


# One shared calendar for the property tests (hypothesis does not mix with function-scoped fixtures).
CAL = WorkCalendar(logger=logging.getLogger(LOGGER_NAME + ".shared"))


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0, us: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, us, tzinfo=TZ)


def midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=TZ)


def fresh(overrides: CalendarOverrides | None = None) -> WorkCalendar:
    return WorkCalendar(overrides, logger=logging.getLogger(LOGGER_NAME))


def fallback_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == LOGGER_NAME and r.levelno == logging.WARNING and "fallback" in r.getMessage()
    ]


def ref_add_working_days(cal: WorkCalendar, start: datetime, n: int) -> datetime:
    loc = start.astimezone(TZ)
    d = loc.date()
    if n == 0:
        if cal.is_workday(d):
            return loc
        d += DAY
        while not cal.is_workday(d):
            d += DAY
        return midnight(d)
    remaining = n * DAY
    if cal.is_workday(d):
        left_today = midnight(d + DAY) - loc
        if remaining <= left_today:
            return loc + remaining
        remaining -= left_today
    d += DAY
    while True:
        if cal.is_workday(d):
            if remaining <= DAY:
                return midnight(d) + remaining
            remaining -= DAY
        d += DAY


def in_working_time(cal: WorkCalendar, t: datetime) -> bool:
    return cal.is_workday(t.astimezone(TZ).date())


_LO_US = int(at(2005, 1, 1).timestamp()) * 1_000_000


_HI_US = int(at(2030, 12, 31, 23, 59, 59).timestamp()) * 1_000_000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _from_us(us: int) -> datetime:
    return (_EPOCH + timedelta(microseconds=us)).astimezone(TZ)


_DAY_US = 86_400 * 1_000_000


_any_instant = st.integers(_LO_US, _HI_US).map(_from_us)


# Instants at or right next to a local midnight, where off-by-one errors live.
_edge_instant = st.builds(
    lambda day, delta: _from_us((day * _DAY_US - 8 * 3600 * 1_000_000) + delta),
    st.integers(_LO_US // _DAY_US + 1, _HI_US // _DAY_US - 1),
    st.sampled_from([0, 1, -1, 1_000_000, -1_000_000]),
)


instants = st.one_of(_any_instant, _edge_instant)


counts = st.integers(0, 30)
