"""bot/domain/workcal: the official data the concrete cases rely on, checked."""

from __future__ import annotations

from datetime import date

import chinese_calendar

from tests.domain.workcal.support import CAL, DAY


def test_official_2026_data_is_what_the_cases_assume() -> None:
    spring = sorted(
        d
        for d, name in chinese_calendar.holidays.items()
        if d.year == 2026 and name == chinese_calendar.Holiday.spring_festival.value
    )
    assert (spring[0], spring[-1]) == (date(2026, 2, 15), date(2026, 2, 23))
    national = sorted(
        d
        for d, name in chinese_calendar.holidays.items()
        if d.year == 2026 and name == chinese_calendar.Holiday.national_day.value
    )
    assert (national[0], national[-1]) == (date(2026, 10, 1), date(2026, 10, 7))
    # make-up working days (调休)
    assert date(2026, 2, 14) in chinese_calendar.workdays  # Saturday
    assert date(2026, 10, 10) in chinese_calendar.workdays  # Saturday
    assert date(2025, 4, 27) in chinese_calendar.workdays  # Sunday


def test_official_last_year_is_detected() -> None:
    assert CAL.official_last_year == max(chinese_calendar.holidays).year
    assert CAL.official_last_year >= 2026


def test_matches_chinesecalendar_on_every_official_day() -> None:
    d = date(2004, 1, 1)
    last = date(CAL.official_last_year, 12, 31)
    while d <= last:
        assert CAL.is_workday(d) == chinese_calendar.is_workday(d), d
        assert CAL.source(d) == "official"
        d += DAY
