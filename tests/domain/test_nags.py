"""A deadline's steps (reminders, overdue notice, escalation, repeats) on the working-day calendar, the service window
and quiet hours, and the reporting periods: pure, no database."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.clock import TZ
from bot.domain.nags import NagSchedule, next_routine_moment, period_label, period_start, routine_allowed
from bot.domain.workcal import WorkCalendar
from config.model import BotConfig, Nags


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


def plan(
    calendar: WorkCalendar, policy: str, start: datetime, due: datetime, nags: Nags | None = None
) -> list[tuple[str, int, datetime]]:
    schedule = NagSchedule(nags or Nags(), calendar)
    return [(s.kind, s.level, s.at) for s in schedule.steps(policy, start, due)]


def test_defaults_remind_at_half_eighty_percent_and_an_hour_before_then_escalate(calendar: WorkCalendar) -> None:
    start = at(11, 23, 9)  # a working Monday
    assert plan(calendar, "1wd", start, calendar.add_working_days(start, 1)) == [
        ("reminder", 0, at(11, 23, 21)),  # 12 of 24 working hours
        ("reminder", 0, at(11, 24, 4, 12)),  # 80 %
        ("reminder", 0, at(11, 24, 8)),  # one hour before
        ("overdue", 1, at(11, 24, 9)),  # with level 1: the handler
        ("escalation", 2, at(11, 24, 11)),  # the unit's heads
        ("escalation", 3, at(11, 24, 13)),  # the center leads
        ("repeat", 1, at(11, 24, 15)),
        ("repeat", 2, at(11, 24, 17)),
        ("repeat", 3, at(11, 24, 19)),
    ]


def test_working_day_deadlines_are_measured_in_working_time_no_point_on_a_weekend(calendar: WorkCalendar) -> None:
    start = at(11, 27, 15)  # Friday 15:00 + 1wd = Monday 15:00
    steps = plan(calendar, "1wd", start, calendar.add_working_days(start, 1))
    assert [s[2] for s in steps[:4]] == [at(11, 30, 3), at(11, 30, 10, 12), at(11, 30, 14), at(11, 30, 15)]
    # the last repeat would fall on... Monday 23:00 + 2 h of working time = Tuesday 01:00
    assert steps[-1][2] == at(12, 1, 1)
    assert all(calendar.is_workday(s[2].date()) for s in steps)


def test_a_holiday_counts_for_nothing_and_a_make_up_saturday_counts(calendar: WorkCalendar) -> None:
    # Wednesday 30 September 15:00, before the National Day holiday (1-7 October): due Thursday 8 October 15:00
    start = at(9, 30, 15)
    steps = plan(calendar, "1wd", start, calendar.add_working_days(start, 1))
    assert steps[0][2] == at(10, 8, 3)  # 9 hours on the 30th, 3 on the 8th
    assert not any(date(2026, 10, 1) <= s[2].date() <= date(2026, 10, 7) for s in steps)
    # Friday 9 October 15:00: Saturday the 10th is a make-up working day (调休)
    start = at(10, 9, 15)
    steps = plan(calendar, "1wd", start, calendar.add_working_days(start, 1))
    assert [s[2] for s in steps[:4]] == [at(10, 10, 3), at(10, 10, 10, 12), at(10, 10, 14), at(10, 10, 15)]
    assert steps[-1][2] == at(10, 12, 1)  # Saturday 23:00 + 2 h of working time: Sunday is off


def test_natural_time_deadlines_run_through_weekends(calendar: WorkCalendar) -> None:
    start = at(11, 27, 15)  # 随身拍: 3 natural days
    steps = plan(calendar, "3d", start, start + timedelta(days=3))
    assert [s[2] for s in steps[:3]] == [at(11, 29, 3), at(11, 30, 0, 36), at(11, 30, 14)]


def test_no_two_reminders_at_one_point_and_none_outside_the_deadline(calendar: WorkCalendar) -> None:
    start = at(11, 27, 15)
    # two hours: 50 % and "1h before" are the same instant, one reminder
    steps = plan(calendar, "2h", start, start + timedelta(hours=2))
    assert steps[:3] == [
        ("reminder", 0, at(11, 27, 16)),
        ("reminder", 0, at(11, 27, 16, 36)),
        ("overdue", 1, at(11, 27, 17)),
    ]
    # twenty minutes: "1h before" would be before the start
    steps = plan(calendar, "20m", start, start + timedelta(minutes=20))
    assert [s[0] for s in steps[:3]] == ["reminder", "reminder", "overdue"]


def test_the_configuration_shapes_the_steps(calendar: WorkCalendar) -> None:
    nags = Nags.model_validate(
        {"reminders": ["1d", "25%"], "escalation": ["unit_head"], "interval": "30m", "repeats": 1}
    )
    start = at(11, 23, 9)
    due = calendar.add_working_days(start, 2)
    assert plan(calendar, "2wd", start, due, nags) == [
        ("reminder", 0, at(11, 23, 21)),  # 25 % of two working days
        ("reminder", 0, at(11, 24, 9)),  # a day (of working time) before
        ("overdue", 1, at(11, 25, 9)),
        ("repeat", 1, at(11, 25, 9, 30)),
    ]
    silent = Nags.model_validate({"reminders": [], "escalation": [], "repeats": 5})
    assert plan(calendar, "2wd", start, due, silent) == [("overdue", 0, at(11, 25, 9))]


def test_next_point_skips_reminders_gone_by_never_the_overdue_notice(calendar: WorkCalendar) -> None:
    schedule = NagSchedule(Nags(), calendar)
    start = at(11, 23, 9)
    due = calendar.add_working_days(start, 1)
    first = schedule.next_point("1wd", start, due, 0, now=start)
    assert first is not None
    assert (first.index, first.at) == (0, at(11, 23, 21))
    late = schedule.next_point("1wd", start, due, 0, now=at(11, 24, 5))  # planned after two points passed
    assert late is not None
    assert (late.index, late.at) == (2, at(11, 24, 8))
    overdue = schedule.next_point("1wd", start, due, 0, now=at(11, 25, 12))  # imported long after: still noticed
    assert overdue is not None
    assert (overdue.kind, overdue.at) == ("overdue", due)
    assert schedule.next_point("1wd", start, due, 9, now=start) is None


@pytest.mark.parametrize(
    ("local", "allowed", "opens"),
    [
        (at(11, 23, 9), True, at(11, 23, 9)),
        (at(11, 23, 22, 30), False, at(11, 24, 7)),  # quiet hours from 22:00 until 07:00
        (at(11, 24, 3), False, at(11, 24, 7)),  # outside the window too
        (at(11, 24, 6, 30), False, at(11, 24, 7)),  # the window is open, quiet hours are not over
    ],
)
def test_routine_messages_wait_for_the_window_and_the_end_of_quiet_hours(
    sandbox_config: BotConfig, local: datetime, allowed: bool, opens: datetime
) -> None:
    assert routine_allowed(sandbox_config, local) is allowed
    assert next_routine_moment(sandbox_config, local) == opens


def test_without_quiet_hours_the_window_alone_decides(sandbox_config: BotConfig) -> None:
    data = sandbox_config.model_dump(by_alias=True)
    data.update(quiet_hours=None, service_window={"start": "08:30", "end": "17:30"})
    config = BotConfig.model_validate(data)
    assert next_routine_moment(config, at(11, 23, 18)) == at(11, 24, 8, 30)
    assert next_routine_moment(config, at(11, 23, 7)) == at(11, 23, 8, 30)


def test_reporting_periods_are_bi_monthly_by_default() -> None:
    assert period_start(at(11, 23, 9), 2) == date(2026, 11, 1)
    assert period_start(at(2, 28, 23), 2) == date(2026, 1, 1)
    assert period_start(date(2026, 3, 1), 2) == date(2026, 3, 1)
    assert period_start(at(8, 1), 3) == date(2026, 7, 1)
    assert period_label(date(2026, 11, 1), 2) == "2026年11–12月"
    assert period_label(date(2026, 11, 1), 1) == "2026年11月"
    assert period_label(date(2026, 1, 1), 12) == "2026年"


@settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2025, 12, 20), max_value=datetime(2026, 12, 20)),
    policy=st.sampled_from(["1wd", "2wd", "3wd", "5wd", "3d", "24h", "2h", "20m"]),
    later=st.integers(min_value=0, max_value=12 * 86_400),
    reminders=st.lists(st.sampled_from(["50%", "80%", "25%", "1h", "30m", "1d"]), max_size=4),
)
def test_the_vectorised_first_points_are_the_scalar_ones(
    calendar: WorkCalendar, start: datetime, policy: str, later: int, reminders: list[str]
) -> None:
    from config.durations import Duration

    schedule = NagSchedule(Nags.model_validate({"reminders": reminders}), calendar)
    begin = start.replace(tzinfo=TZ)
    due = calendar.add(begin, Duration.parse(policy))
    now = begin + timedelta(seconds=later)
    step = schedule.next_point(policy, begin, due, 0, now=now)
    assert step is not None
    assert schedule.first_points([policy], [begin], [due], now=now) == [(step.index, step.at)]
    steps = schedule.steps(policy, begin, due)
    assert [s.at for s in steps] == sorted(s.at for s in steps)  # in time order
    assert all(calendar.is_workday(s.at.date()) for s in steps if s.kind != "overdue" and policy.endswith("wd"))


def test_first_points_of_many_mixed_deadlines_at_once(calendar: WorkCalendar) -> None:
    from config.durations import Duration

    schedule = NagSchedule(Nags(), calendar)
    now = at(11, 27, 15)
    cases = [
        (policy, now - timedelta(hours=hours))
        for policy in ("1wd", "5wd", "3d", "20m", "2h")
        for hours in (0, 1, 5, 30, 80)
    ]
    dues = [calendar.add(start, Duration.parse(policy)) for policy, start in cases]
    batch = schedule.first_points([p for p, _ in cases], [s for _, s in cases], dues, now=now)
    one_by_one = []
    for (policy, start), due in zip(cases, dues, strict=True):
        step = schedule.next_point(policy, start, due, 0, now=now)
        assert step is not None
        one_by_one.append((step.index, step.at))
    assert batch == one_by_one
