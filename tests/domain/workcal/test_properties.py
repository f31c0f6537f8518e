"""bot/domain/workcal/calendar.py: properties against the day-by-day reference."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.clock import TZ
from bot.domain.workcal import WorkCalendar
from tests.domain.workcal.support import (
    _HI_US,
    _LO_US,
    CAL,
    DAY,
    at,
    counts,
    in_working_time,
    instants,
    midnight,
    ref_add_working_days,
)


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
