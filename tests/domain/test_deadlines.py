"""Which deadlines a ticket carries and when they fall due (bot.domain.deadlines), with example.yaml.

The numbers are seed 004's (and 001's for 三个二); the holiday dates are the State Council's 2026 schedule as
shipped in chinesecalendar's data (checked below, so a changed package shows up here first).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from bot.domain.clock import TZ
from bot.domain.deadlines import DeadlinePlanner, PlannedDeadline, PlanRequest
from bot.domain.lifecycle import CycleKind
from bot.domain.workcal import WorkCalendar
from config.durations import Duration
from config.loader import load_config, load_config_text
from config.model import BotConfig
from config.vocabulary import DeadlineName, TicketKind

D = DeadlineName
K = TicketKind
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = load_config(ROOT / "config" / "example.yaml")
CALENDAR = WorkCalendar()
PLANNER = DeadlinePlanner(EXAMPLE, CALENDAR)

THREE_TWOS_CATEGORY = "环卫"  # one of example.yaml's 三个二 categories
PLAIN_CATEGORY = "噪音"  # not one of them


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0, us: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, us, tzinfo=TZ)


def p(text: str) -> Duration:
    return Duration.parse(text)


def due(kind: K, category: str | None, start: datetime, cycle: CycleKind = "dispatch") -> dict[DeadlineName, datetime]:
    plan = PLANNER.plan(PlanRequest(kind=kind, category=category, start=start, cycle_kind=cycle))
    assert all(item.started_at == start for item in plan)
    return {item.name: item.due_at for item in plan}


# --------------------------------------------------------------------------------------------------
# Which deadlines, how long
# --------------------------------------------------------------------------------------------------

REGULAR = {D.ACCEPT: p("1wd"), D.FIRST_CONTACT: p("1wd"), D.RETURN_WINDOW: p("2wd"), D.HANDLE: p("5wd")}
SPECIAL = {
    D.ACCEPT: p("1wd"),
    D.FIRST_CONTACT: p("1wd"),
    D.RETURN_WINDOW: p("2wd"),
    D.HANDLE: p("3wd"),  # 紧急, 次紧急, 市级复核: 3 working days
    D.HANDLE_INTERNAL: p("2wd"),  # the unit itself: 2 working days
}
PHOTO = {**SPECIAL, D.HANDLE: p("3d")}  # 随身拍: 3 natural days
THREE_TWOS = {D.CONTACT_20M: p("20m"), D.ON_SITE_2H: p("2h"), D.SOLVE_24H: p("24h"), D.OPINION_5D: p("5d")}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (K.REGULAR, REGULAR),
        (K.URGENT, SPECIAL),
        (K.SEMI_URGENT, SPECIAL),
        (K.CITY_REVIEW, SPECIAL),
        (K.PHOTO, PHOTO),
    ],
)
@pytest.mark.parametrize("category", [None, PLAIN_CATEGORY])
def test_dispatch_cycle_durations(kind: K, expected: dict[DeadlineName, Duration], category: str | None) -> None:
    assert PLANNER.durations(kind, category, "dispatch") == expected  # no rehandle in a dispatch cycle


@pytest.mark.parametrize("kind", list(K))
@pytest.mark.parametrize("category", ["市容景观", "环卫", "社区绿化", "公园", "工地渣土", "废油脂", " 公园 "])
def test_three_twos_categories_add_their_four_deadlines(kind: K, category: str) -> None:
    durations = PLANNER.durations(kind, category, "dispatch")
    assert {name: durations[name] for name in THREE_TWOS} == THREE_TWOS
    assert set(durations) - set(THREE_TWOS) == set(PLANNER.durations(kind, None, "dispatch"))


@pytest.mark.parametrize("kind", list(K))
@pytest.mark.parametrize("category", [None, PLAIN_CATEGORY, THREE_TWOS_CATEGORY])
def test_rehandle_cycle_has_only_the_rehandle_deadline(kind: K, category: str | None) -> None:
    assert PLANNER.durations(kind, category, "rehandle") == {D.REHANDLE: p("3wd")}


BASE_YAML = """
office: {name: 测试热线办, unit: OFFICE}
members: [{userid: u1, name: 甲}]
units: [{code: OFFICE, name: 热线办, head: u1, members: [u1]}]
"""


def planner_for(deadlines_yaml: str) -> DeadlinePlanner:
    config: BotConfig = load_config_text(BASE_YAML + deadlines_yaml)
    return DeadlinePlanner(config, CALENDAR)


def test_defaults_without_a_deadlines_section() -> None:
    planner = planner_for("")
    assert planner.durations(K.REGULAR, "环卫", "dispatch") == REGULAR  # 三个二 is off by default
    assert planner.durations(K.PHOTO, None, "dispatch") == PHOTO
    assert planner.durations(K.URGENT, None, "rehandle") == {D.REHANDLE: p("3wd")}


def test_configured_policies_merge_over_the_defaults() -> None:
    planner = planner_for(
        """
deadlines:
  policies:
    regular: {handle: 10wd}
    urgent: {handle_internal: null, rehandle: 1wd}
    city_review: {rehandle: null}
  three_twos:
    categories: [市容]
    contact_20m: 30m
"""
    )
    assert planner.durations(K.REGULAR, None, "dispatch") == {**REGULAR, D.HANDLE: p("10wd")}
    urgent = {k: v for k, v in SPECIAL.items() if k is not D.HANDLE_INTERNAL}
    assert planner.durations(K.URGENT, None, "dispatch") == urgent
    assert planner.durations(K.URGENT, None, "rehandle") == {D.REHANDLE: p("1wd")}
    assert planner.durations(K.CITY_REVIEW, None, "rehandle") == {}
    assert planner.durations(K.REGULAR, "市容", "dispatch")[D.CONTACT_20M] == p("30m")
    assert D.CONTACT_20M not in planner.durations(K.REGULAR, "环卫", "dispatch")


# --------------------------------------------------------------------------------------------------
# When: an ordinary week
# --------------------------------------------------------------------------------------------------

FRIDAY = at(2026, 11, 20, 15)  # a Friday 15:00, no holiday near


def test_regular_three_twos_ticket_dispatched_friday_afternoon() -> None:
    assert due(K.REGULAR, THREE_TWOS_CATEGORY, FRIDAY) == {
        D.ACCEPT: at(2026, 11, 23, 15),  # Monday 15:00
        D.FIRST_CONTACT: at(2026, 11, 23, 15),
        D.RETURN_WINDOW: at(2026, 11, 24, 15),  # Tuesday
        D.HANDLE: at(2026, 11, 27, 15),  # the next Friday
        D.CONTACT_20M: at(2026, 11, 20, 15, 20),  # 三个二 runs on natural time, weekend or not
        D.ON_SITE_2H: at(2026, 11, 20, 17),
        D.SOLVE_24H: at(2026, 11, 21, 15),  # Saturday
        D.OPINION_5D: at(2026, 11, 25, 15),
    }


def test_special_tickets_dispatched_friday_afternoon() -> None:
    assert due(K.URGENT, None, FRIDAY) == {
        D.ACCEPT: at(2026, 11, 23, 15),
        D.FIRST_CONTACT: at(2026, 11, 23, 15),
        D.RETURN_WINDOW: at(2026, 11, 24, 15),
        D.HANDLE: at(2026, 11, 25, 15),  # 3wd: Wednesday
        D.HANDLE_INTERNAL: at(2026, 11, 24, 15),  # 2wd: Tuesday
    }
    photo = due(K.PHOTO, None, FRIDAY)
    assert photo[D.HANDLE] == at(2026, 11, 23, 15)  # 3 natural days: Monday 15:00


def test_rehandle_cycle_dispatched_friday_afternoon() -> None:
    assert due(K.REGULAR, THREE_TWOS_CATEGORY, FRIDAY, "rehandle") == {D.REHANDLE: at(2026, 11, 25, 15)}


def test_dispatched_on_a_weekend_the_clock_starts_on_monday() -> None:
    saturday = at(2026, 11, 21, 10)
    got = due(K.REGULAR, None, saturday)
    assert got[D.ACCEPT] == at(2026, 11, 24)  # the end of Monday
    assert got[D.HANDLE] == at(2026, 11, 28)  # the end of Friday


def test_the_start_time_zone_does_not_matter() -> None:
    in_utc = FRIDAY.astimezone(UTC)
    assert due(K.REGULAR, THREE_TWOS_CATEGORY, in_utc) == due(K.REGULAR, THREE_TWOS_CATEGORY, FRIDAY)


# --------------------------------------------------------------------------------------------------
# When: across 2026's Mid-Autumn festival and National Day
# --------------------------------------------------------------------------------------------------


def test_chinesecalendar_has_the_2026_schedule_this_file_assumes() -> None:
    off = {date(2026, 9, 25), date(2026, 9, 26), date(2026, 9, 27)}  # 中秋节 (Fri 9-25) + weekend
    off |= {date(2026, 10, d) for d in range(1, 8)}  # 国庆节 10-01..10-07
    assert off <= chinese_calendar.holidays.keys()
    assert {date(2026, 9, 20), date(2026, 10, 10)} <= chinese_calendar.workdays.keys()  # 调休: Sun 9-20, Sat 10-10
    assert not chinese_calendar.is_workday(date(2026, 10, 11))  # the Sunday after stays off
    for d in off:
        assert not CALENDAR.is_workday(d)


NATIONAL_DAY_EVE = at(2026, 9, 30, 15)  # Wednesday, the last working day before the holiday


def test_national_day_regular() -> None:
    assert due(K.REGULAR, None, NATIONAL_DAY_EVE) == {
        D.ACCEPT: at(2026, 10, 8, 15),  # the first working day after the holiday
        D.FIRST_CONTACT: at(2026, 10, 8, 15),
        D.RETURN_WINDOW: at(2026, 10, 9, 15),
        D.HANDLE: at(2026, 10, 13, 15),  # 10-08, 10-09, 10-10 (Sat, 调休), 10-12, 10-13
    }


def test_national_day_special_and_photo() -> None:
    urgent = due(K.URGENT, None, NATIONAL_DAY_EVE)
    assert urgent[D.HANDLE] == at(2026, 10, 10, 15)  # the make-up Saturday counts
    assert urgent[D.HANDLE_INTERNAL] == at(2026, 10, 9, 15)
    assert due(K.PHOTO, None, NATIONAL_DAY_EVE)[D.HANDLE] == at(2026, 10, 3, 15)  # natural days: mid-holiday


def test_national_day_three_twos_run_through_the_holiday() -> None:
    got = due(K.REGULAR, "公园", NATIONAL_DAY_EVE)
    assert got[D.SOLVE_24H] == at(2026, 10, 1, 15)
    assert got[D.OPINION_5D] == at(2026, 10, 5, 15)


def test_dispatched_during_the_holiday() -> None:
    got = due(K.REGULAR, None, at(2026, 10, 3, 10))
    assert got[D.ACCEPT] == at(2026, 10, 9)  # the end of 10-08
    assert got[D.HANDLE] == at(2026, 10, 14)  # the end of 10-13
    assert due(K.REGULAR, None, at(2026, 10, 9, 9), "rehandle") == {D.REHANDLE: at(2026, 10, 13, 9)}


def test_mid_autumn_then_national_day() -> None:
    got = due(K.REGULAR, None, at(2026, 9, 24, 15))  # Thursday before 中秋
    assert got[D.ACCEPT] == at(2026, 9, 28, 15)
    assert got[D.RETURN_WINDOW] == at(2026, 9, 29, 15)
    assert got[D.HANDLE] == at(2026, 10, 9, 15)  # 9-28, 9-29, 9-30, 10-08, 10-09


def test_make_up_sunday_counts() -> None:
    got = due(K.REGULAR, None, at(2026, 9, 19, 15))  # Saturday; Sunday 9-20 is a working day
    assert got[D.ACCEPT] == at(2026, 9, 21)


@pytest.mark.parametrize("kind", [K.URGENT, K.SEMI_URGENT, K.CITY_REVIEW])
@pytest.mark.parametrize("start", [FRIDAY, NATIONAL_DAY_EVE, at(2026, 11, 21, 10)])
def test_internal_deadline_comes_before_the_tickets_own(kind: K, start: datetime) -> None:
    got = due(kind, None, start)
    assert got[D.HANDLE_INTERNAL] <= got[D.HANDLE]


@pytest.mark.parametrize("start", [FRIDAY, NATIONAL_DAY_EVE])
def test_photo_internal_deadline_comes_before_the_tickets_own(start: datetime) -> None:
    got = due(K.PHOTO, None, start)
    assert got[D.HANDLE_INTERNAL] <= got[D.HANDLE]


# --------------------------------------------------------------------------------------------------
# plan_many == plan, element-wise
# --------------------------------------------------------------------------------------------------

_LO = int(at(2024, 1, 1).timestamp())
_HI = int(at(2026, 12, 31, 23, 59, 59).timestamp())
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _instant(seconds: int, micro: int) -> datetime:
    return (_EPOCH + timedelta(seconds=seconds, microseconds=micro)).astimezone(TZ)


def _midnight_edge(day: int, delta_us: int) -> datetime:
    local_midnight = day * 86_400 - 8 * 3600
    return _instant(local_midnight, delta_us)


_whole_seconds = st.one_of(
    st.builds(_instant, st.integers(_LO, _HI), st.just(0)),
    st.builds(_midnight_edge, st.integers(_LO // 86_400 + 1, _HI // 86_400), st.sampled_from([0, -1_000_000])),
)
_with_microseconds = st.one_of(
    st.builds(_instant, st.integers(_LO, _HI), st.integers(0, 999_999)),
    st.builds(_midnight_edge, st.integers(_LO // 86_400 + 1, _HI // 86_400), st.sampled_from([0, 1, 500_000, -1])),
)
_categories = st.sampled_from([None, THREE_TWOS_CATEGORY, "市容景观", PLAIN_CATEGORY])
_cycles = st.sampled_from(["dispatch", "rehandle"])


def _requests(starts: st.SearchStrategy[datetime]) -> st.SearchStrategy[list[PlanRequest]]:
    one = st.builds(PlanRequest, kind=st.sampled_from(list(K)), category=_categories, start=starts, cycle_kind=_cycles)
    return st.lists(one, max_size=12)


def _same(reqs: list[PlanRequest]) -> None:
    many = PLANNER.plan_many(reqs)
    assert len(many) == len(reqs)
    for request, plan in zip(reqs, many, strict=True):
        assert plan == PLANNER.plan(request), request


@settings(max_examples=150, deadline=None)
@given(_requests(_whole_seconds))
def test_plan_many_equals_plan_whole_seconds(reqs: list[PlanRequest]) -> None:
    _same(reqs)


@settings(max_examples=150, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # no shrinking
@given(_requests(_with_microseconds))
def test_plan_many_equals_plan(reqs: list[PlanRequest]) -> None:
    _same(reqs)


def test_plan_many_weekend_start_with_microseconds() -> None:
    _same(
        [PlanRequest(kind=K.REGULAR, category=None, start=at(2026, 11, 21, 10, 0, 0, 123_456), cycle_kind="dispatch")]
    )


def test_plan_many_start_just_after_midnight() -> None:
    # deadlines are computed to the second: a start at Monday 00:00:00.5 counts from Monday 00:00:00, and five
    # whole working days end at Friday 24:00 (= Saturday 00:00), the earliest instant they have passed
    request = PlanRequest(
        kind=K.REGULAR, category=None, start=at(2026, 11, 23, 0, 0, 0, 500_000), cycle_kind="dispatch"
    )
    assert due(K.REGULAR, None, request.start)[D.HANDLE] == at(2026, 11, 28)
    _same([request])


def test_plan_many_start_in_a_dst_zone() -> None:
    start = datetime(2026, 3, 7, 12, tzinfo=ZoneInfo("America/New_York"))
    _same([PlanRequest(kind=K.REGULAR, category=THREE_TWOS_CATEGORY, start=start, cycle_kind="dispatch")])


def test_plan_many_of_nothing_and_of_one() -> None:
    assert PLANNER.plan_many([]) == []
    request = PlanRequest(kind=K.URGENT, category=THREE_TWOS_CATEGORY, start=FRIDAY, cycle_kind="dispatch")
    [plan] = PLANNER.plan_many([request])
    assert plan == PLANNER.plan(request)
    assert [item.name for item in plan] == list(PLANNER.durations(K.URGENT, THREE_TWOS_CATEGORY, "dispatch"))
    assert all(isinstance(item, PlannedDeadline) and item.started_at == FRIDAY for item in plan)
