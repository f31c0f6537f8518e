"""Tests for bot.domain.workcal: the working-day calendar and the working-time model."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import chinese_calendar
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.clock import TZ
from bot.domain.workcal import CalendarOverrides, Coverage, WorkCalendar, default_calendar
from config.durations import Duration

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


# --------------------------------------------------------------------------------------------------
# Independent reference: walk one calendar day at a time using only is_workday().
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# The official data the concrete cases rely on (checked, so a data change fails loudly here).
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Concrete cases
# --------------------------------------------------------------------------------------------------


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
    assert cal.coverage(date(2026, 11, 1), 30) == Coverage(start=date(2026, 11, 1), days=30, fallback_days=[], years_in_fallback=[])
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


# --------------------------------------------------------------------------------------------------
# Override files
# --------------------------------------------------------------------------------------------------


def test_load_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "holidays.yaml"
    path.write_text(
        "# fictional\n"
        "2027:\n"
        "  complete: true\n"
        '  holidays: ["2027-01-01", "2027-02-06..2027-02-08", 2027-05-01]\n'
        '  workdays: ["2027-02-14"]\n'
        "2028:\n"
        '  holidays: ["2028-01-01"]\n',
        encoding="utf-8",
    )
    ov = CalendarOverrides.load(path)
    assert ov.years == frozenset({2027})
    assert ov.holidays == frozenset(
        {date(2027, 1, 1), date(2027, 2, 6), date(2027, 2, 7), date(2027, 2, 8), date(2027, 5, 1)}
        | {date(2028, 1, 1)}
    )
    assert ov.workdays == frozenset({date(2027, 2, 14)})


def test_load_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "holidays.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    assert CalendarOverrides.load(path) == CalendarOverrides.empty()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('2027:\n  holidays: ["2027-02-30"]\n', "2027-02-30"),
        ('2027:\n  holidays: ["2027-13-01"]\n', "2027-13-01"),
        ('2027:\n  holidays: ["next friday"]\n', "next friday"),
        ('2027:\n  holidays: ["2027-02-12..2027-02-06"]\n', "before its start"),
        ('2027:\n  holidays: ["2028-01-01"]\n', "outside year 2027"),
        ('2027:\n  holidays: ["2026-12-31..2027-01-02"]\n', "outside year 2027"),
        ('2027:\n  holidays: ["2027-02-06..2027-02-08"]\n  workdays: ["2027-02-07"]\n', "both"),
        ("2027:\n  complete: yes-please\n", "complete"),
        ("2027:\n  holiday: []\n", "unknown key"),
        ('2027:\n  holidays: "2027-01-01"\n', "list"),
        ('next-year:\n  holidays: ["2027-01-01"]\n', "not a year"),
        ("- 2027-01-01\n", "mapping"),
        ("2027: [1, 2]\n", "mapping"),
        ("2027:\n  holidays: [2027-01-01 10:00:00]\n", "date-time"),
        ('2027: {holidays: ["2027-01-01"\n', "not valid YAML"),
    ],
)
def test_malformed_override_files(tmp_path: Path, body: str, fragment: str) -> None:
    path = tmp_path / "holidays.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ValueError, match="holidays.yaml") as excinfo:
        CalendarOverrides.load(path)
    assert fragment in str(excinfo.value)


# --------------------------------------------------------------------------------------------------
# Properties against the day-by-day reference
# --------------------------------------------------------------------------------------------------

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


@settings(max_examples=300, deadline=None)
@given(start=instants, n=counts)
def test_matches_reference(start: datetime, n: int) -> None:
    assert CAL.add_working_days(start, n) == ref_add_working_days(CAL, start, n)


@settings(max_examples=150, deadline=None)
@given(a=instants, b=instants, n=counts)
def test_monotonic_in_start(a: datetime, b: datetime, n: int) -> None:
    a, b = min(a, b), max(a, b)
    assert CAL.add_working_days(a, n) <= CAL.add_working_days(b, n)


@settings(max_examples=150, deadline=None)
@given(start=instants, n=counts)
def test_monotonic_in_n(start: datetime, n: int) -> None:
    assert CAL.add_working_days(start, n) < CAL.add_working_days(start, n + 1)


@settings(max_examples=200, deadline=None)
@given(start=instants, n=counts)
def test_result_never_inside_a_day_off(start: datetime, n: int) -> None:
    result = CAL.add_working_days(start, n)
    assert result >= start
    assert result.tzinfo == TZ
    if not CAL.is_workday(result.date()):
        assert result == midnight(result.date())
        assert n == 0 or CAL.is_workday(result.date() - DAY)


@settings(max_examples=100, deadline=None)
@given(
    starts=st.lists(st.integers(_LO_US // 1_000_000, _HI_US // 1_000_000), min_size=1, max_size=40),
    n=counts,
)
def test_vectorised_equals_scalar(starts: list[int], n: int) -> None:
    result = CAL.add_working_days_many(np.array(starts, dtype=np.int64), n)
    assert result.dtype == np.int64
    expected = [int(CAL.add_working_days(datetime.fromtimestamp(s, TZ), n).timestamp()) for s in starts]
    assert result.tolist() == expected


@settings(max_examples=200, deadline=None)
@given(start=instants, n=counts)
def test_working_seconds_round_trip(start: datetime, n: int) -> None:
    if not in_working_time(CAL, start):
        start = CAL.add_working_days(start, 0)
    assert CAL.working_seconds_between(start, CAL.add_working_days(start, n)) == n * 86_400


def test_datetimes_as_days_and_custom_span() -> None:
    # 2026-11-20 20:00 UTC is already Saturday 04:00 in Shanghai.
    assert not CAL.is_workday(datetime(2026, 11, 20, 20, tzinfo=UTC))
    with pytest.raises(ValueError, match="naive"):
        CAL.is_workday(datetime(2026, 11, 20, 12))
    small = WorkCalendar(first_year=2020, last_year=2030)
    assert small.add_working_days(at(2026, 9, 30, 15), 1) == at(2026, 10, 8, 15)
    with pytest.raises(ValueError, match="outside the working calendar span"):
        small.is_workday(date(2031, 1, 1))
    with pytest.raises(ValueError, match="calendar span"):
        WorkCalendar(first_year=1990)


def test_working_seconds_and_back_land_on_working_days_the_latest_instant() -> None:
    cal = CAL

    def w(dt: datetime) -> int:
        return cal.working_seconds_at(int(dt.timestamp()))

    def back(seconds: int) -> datetime:
        return datetime.fromtimestamp(cal.instant_at_working_seconds(seconds), TZ)

    friday = datetime(2026, 11, 27, 22, tzinfo=TZ)
    assert back(w(friday)) == friday
    assert back(w(friday) + 2 * 3600) == datetime(2026, 11, 30, tzinfo=TZ)  # Monday 00:00, not Saturday 00:00
    assert back(w(friday) + 4 * 3600) == datetime(2026, 11, 30, 2, tzinfo=TZ)
    assert w(datetime(2026, 11, 28, 15, tzinfo=TZ)) == w(datetime(2026, 11, 30, tzinfo=TZ))  # still over the weekend
    assert back(w(datetime(2026, 11, 30, 1, tzinfo=TZ)) - 2 * 3600) == datetime(2026, 11, 27, 23, tzinfo=TZ)
    epochs = np.array([int(friday.timestamp()), int(datetime(2026, 10, 1, 12, tzinfo=TZ).timestamp())])
    ws = cal.working_seconds_at_many(epochs)
    assert ws.tolist() == [w(friday), w(datetime(2026, 10, 8, tzinfo=TZ))]  # National Day: nothing counts
    assert cal.instant_at_working_seconds_many(ws + 3600).tolist() == [
        cal.instant_at_working_seconds(int(x) + 3600) for x in ws
    ]
