"""bot/domain/workcal/calendar.py: concrete cases of the working-time model."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from bot.domain.clock import TZ
from bot.domain.workcal import CalendarOverrides, Coverage, WorkCalendar, default_calendar
from config.durations import Duration
from tests.domain.workcal.support import CAL, LOGGER_NAME, at, fallback_warnings, fresh


def test_across_a_weekend() -> None:
    assert CAL.add_working_days(at(2026, 11, 20, 15), 1) == at(2026, 11, 23, 15)  # Fri -> Mon
    assert CAL.add_working_days(at(2026, 11, 20, 15), 3) == at(2026, 11, 25, 15)


def test_dispatch_on_a_saturday_ends_at_end_of_monday() -> None:
    assert CAL.add_working_days(at(2026, 11, 21, 10), 1) == at(2026, 11, 24)  # Sat -> Mon 24:00
    assert CAL.add_working_days(at(2026, 11, 21, 10), 0) == at(2026, 11, 23)  # clock starts Monday


def test_end_of_a_working_day_is_next_midnight() -> None:
    assert CAL.add_working_days(at(2026, 11, 23), 1) == at(2026, 11, 24)  # Mon 00:00 -> Tue 00:00
    assert CAL.add_working_days(at(2026, 11, 20), 1) == at(2026, 11, 21)  # Fri 00:00 -> Sat 00:00


def test_across_national_day_2026() -> None:
    # Wed 2026-09-30 is the last working day before 2026-10-01..07; Thu 10-08 the first after.
    assert CAL.add_working_days(at(2026, 9, 30, 15), 1) == at(2026, 10, 8, 15)
    # Sat 2026-10-10 is a make-up working day (调休).
    assert CAL.add_working_days(at(2026, 9, 30, 15), 3) == at(2026, 10, 10, 15)
    assert CAL.add_working_days(at(2026, 9, 30, 15), 4) == at(2026, 10, 12, 15)


def test_across_spring_festival_2026() -> None:
    # Sat 2026-02-14 is a make-up working day and the last before 2026-02-15..23.
    assert CAL.add_working_days(at(2026, 2, 13, 15), 1) == at(2026, 2, 14, 15)
    assert CAL.add_working_days(at(2026, 2, 14, 15), 1) == at(2026, 2, 24, 15)
    assert CAL.add_working_days(at(2026, 2, 13, 9, 30), 5) == at(2026, 2, 27, 9, 30)


def test_make_up_working_day_2025() -> None:
    # Sun 2025-04-27 is a make-up working day before Labour Day 2025.
    assert CAL.is_workday(date(2025, 4, 27))
    assert not CAL.is_workday(date(2025, 4, 26))
    assert CAL.add_working_days(at(2025, 4, 25, 15), 1) == at(2025, 4, 27, 15)


def test_dispatch_on_a_holiday() -> None:
    assert CAL.add_working_days(at(2026, 10, 3, 12), 1) == at(2026, 10, 9)  # end of Thu 10-08
    assert CAL.add_working_days(at(2026, 10, 3, 12), 0) == at(2026, 10, 8)
    assert CAL.next_workday(date(2026, 10, 3)) == date(2026, 10, 8)
    assert CAL.next_workday(date(2026, 10, 8)) == date(2026, 10, 8)


def test_n_zero_in_working_time_is_start() -> None:
    start = at(2026, 11, 20, 15, 1, 2, 345)
    assert CAL.add_working_days(start, 0) == start


def test_year_boundary_into_uncovered_year_uses_fallback_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cal = fresh()
    assert cal.official_last_year == 2026, "this test assumes chinesecalendar ends in 2026"
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        # Mon 12-28 10:00: Mon, Tue, Wed, Thu (3 wd), Fri 2027-01-01 off, weekend, Mon 4th, Tue 5th.
        assert cal.add_working_days(at(2026, 12, 28, 10), 5) == at(2027, 1, 5, 10)
        assert cal.add_working_days(at(2026, 12, 28, 11), 5) == at(2027, 1, 5, 11)
        assert not cal.is_workday(date(2027, 1, 1))
        assert cal.source(date(2027, 1, 1)) == "fallback"
        assert cal.source(date(2027, 3, 3)) == "fallback"
        assert cal.is_workday(date(2027, 5, 3))  # Monday; only May 1-2 are fixed
        assert not cal.is_workday(date(2027, 10, 1))
    records = fallback_warnings(caplog)
    assert len(records) == 1
    assert "2027" in records[0].getMessage()


def test_no_warning_while_staying_in_official_years(caplog: pytest.LogCaptureFixture) -> None:
    cal = fresh()
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        cal.add_working_days(at(2026, 12, 21, 10), 3)
        cal.add_working_days_many(np.array([int(at(2026, 12, 21, 10).timestamp())]), 3)
    assert fallback_warnings(caplog) == []


def test_vectorised_path_warns_once_per_year(caplog: pytest.LogCaptureFixture) -> None:
    cal = fresh()
    starts = np.array([int(at(2026, 12, 28, 10).timestamp()), int(at(2028, 3, 1).timestamp())])
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        cal.add_working_days_many(starts, 5)
        cal.add_working_days_many(starts, 5)
        cal.add_working_days(at(2027, 6, 1), 1)
    messages = [r.getMessage() for r in fallback_warnings(caplog)]
    assert len(messages) == 2
    assert "2027" in messages[0]
    assert "2028" in messages[1]


def test_override_declaring_2027_complete(caplog: pytest.LogCaptureFixture) -> None:
    # Fictional schedule, for the test only: Jan 1 off and Sat 2027-01-02 a make-up working day.
    overrides = CalendarOverrides.from_mapping(
        {2027: {"complete": True, "holidays": ["2027-01-01"], "workdays": ["2027-01-02"]}}
    )
    cal = fresh(overrides)
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        assert cal.add_working_days(at(2026, 12, 28, 10), 5) == at(2027, 1, 4, 10)
        assert cal.source(date(2027, 1, 1)) == "override"
        assert cal.source(date(2027, 3, 3)) == "override"  # weekday of a complete year
        assert cal.is_workday(date(2027, 5, 3))
        assert cal.is_workday(date(2027, 10, 1))  # not in the (fictional) list: a plain Friday
        assert not cal.is_workday(date(2027, 10, 2))  # Saturday
        assert cal.coverage(date(2026, 12, 20), 30).ok
    assert fallback_warnings(caplog) == []


def test_overrides_beat_official_data() -> None:
    overrides = CalendarOverrides.from_mapping(
        {2026: {"holidays": ["2026-11-23"], "workdays": ["2026-10-05", "2026-11-21"]}}
    )
    cal = fresh(overrides)
    assert not cal.is_workday(date(2026, 11, 23))
    assert cal.source(date(2026, 11, 23)) == "override"
    assert cal.is_workday(date(2026, 10, 5))
    assert cal.source(date(2026, 10, 5)) == "override"
    assert cal.source(date(2026, 10, 6)) == "official"
    # Fri 15:00: Sat 11-21 now works, Sun off, Mon 11-23 off.
    assert cal.add_working_days(at(2026, 11, 20, 15), 1) == at(2026, 11, 21, 15)
    assert cal.add_working_days(at(2026, 11, 20, 15), 2) == at(2026, 11, 24, 15)


def test_overrides_in_an_incomplete_year_keep_the_rest_fallback() -> None:
    cal = fresh(CalendarOverrides.from_mapping({2027: {"holidays": ["2027-02-10"]}}))
    assert cal.source(date(2027, 2, 10)) == "override"
    assert not cal.is_workday(date(2027, 2, 10))
    assert cal.source(date(2027, 2, 11)) == "fallback"
    cov = cal.coverage(date(2027, 2, 9), 3)
    assert cov.fallback_days == [date(2027, 2, 9), date(2027, 2, 11)]


def test_add_with_durations() -> None:
    start = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)  # Fri 15:00 in Shanghai
    result = CAL.add(start, Duration.parse("1wd"))
    assert result == at(2026, 11, 23, 15)
    assert result.tzinfo == TZ
    assert CAL.add(start, Duration.parse("3d")) == at(2026, 11, 23, 15)
    assert CAL.add(start, Duration.parse("2h")) == at(2026, 11, 20, 17)
    assert CAL.add(start, Duration.parse("20m")).tzinfo == TZ
    assert CAL.add(start, Duration.parse("20m")) == at(2026, 11, 20, 15, 20)
    # natural units ignore the calendar entirely, even outside its span
    assert CAL.add(at(2100, 1, 1), Duration(1, "h")) == at(2100, 1, 1, 1)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="naive"):
        CAL.add_working_days(datetime(2026, 11, 20, 15), 1)
    with pytest.raises(ValueError, match="naive"):
        CAL.add(datetime(2026, 11, 20, 15), Duration(2, "h"))
    with pytest.raises(ValueError, match=">= 0"):
        CAL.add_working_days(at(2026, 11, 20, 15), -1)
    with pytest.raises(ValueError, match=">= 0"):
        CAL.add_working_days_many(np.array([0]), -1)
    with pytest.raises(ValueError, match="outside the working calendar span"):
        CAL.is_workday(date(2003, 12, 31))
    with pytest.raises(ValueError, match="outside the working calendar span"):
        CAL.add_working_days(at(2100, 1, 2), 1)
    with pytest.raises(ValueError, match="outside the working calendar span"):
        CAL.add_working_days_many(np.array([0]), 1)  # 1970
    with pytest.raises(ValueError, match="after the working calendar span"):
        CAL.add_working_days(at(2099, 12, 30), 5)
    with pytest.raises(TypeError):
        CAL.add_working_days_many(np.array([1.5]), 1)
    with pytest.raises(ValueError, match="calendar span"):
        WorkCalendar(first_year=2030, last_year=2029)


def test_never_raises_inside_the_span() -> None:
    for y in (2004, 2026, 2027, 2050, 2099):
        for d in (date(y, 1, 1), date(y, 12, 31)):
            CAL.is_workday(d)
            CAL.source(d)
    assert CAL.add_working_days(at(2099, 12, 31, 12), 0) == at(2099, 12, 31, 12)  # a Thursday
    assert CAL.add_working_days(at(2099, 12, 31), 1) == at(2100, 1, 1)  # exactly the end of the span
    with pytest.raises(ValueError, match="after the working calendar span"):
        CAL.add_working_days(at(2099, 12, 31, 12), 1)  # needs working time of 2100
    assert CAL.working_seconds_between(at(2099, 12, 31), at(2100, 1, 1)) == 86_400


def test_working_seconds_between() -> None:
    fri = at(2026, 11, 20, 15)
    mon = at(2026, 11, 23, 15)
    assert CAL.working_seconds_between(fri, mon) == 86_400
    assert CAL.working_seconds_between(mon, fri) == -86_400
    assert CAL.working_seconds_between(at(2026, 11, 21, 1), at(2026, 11, 22, 23)) == 0  # weekend
    assert CAL.working_seconds_between(fri, fri + timedelta(minutes=30)) == 1800


def test_coverage() -> None:
    cal = fresh()
    assert cal.coverage(date(2026, 11, 1), 30) == Coverage(
        start=date(2026, 11, 1), days=30, fallback_days=[], years_in_fallback=[]
    )
    assert cal.coverage(date(2026, 11, 1)).ok
    assert cal.coverage(date(2026, 11, 1)).warning() is None
    cov = cal.coverage(date(2026, 12, 20), 30)
    assert not cov.ok
    assert cov.fallback_days[0] == date(2027, 1, 1)
    assert cov.fallback_days[-1] == date(2027, 1, 18)
    assert len(cov.fallback_days) == 18
    assert cov.years_in_fallback == [2027]
    warning = cov.warning()
    assert warning is not None
    assert "2027" in warning
    assert "fallback" in warning


def test_default_calendar_is_cached() -> None:
    assert default_calendar() is default_calendar()
