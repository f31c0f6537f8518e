"""The duty roster's rules, pure (bot.domain.duty): roster shifts as periods, who is on and until when, the next
shift, how long a takeover lasts, and takeovers replacing the roster. The example config's roster: weekday nights
17:00-09:00 (zhenghao Mon/Thu, wujiayi Tue/Fri, fengxiaowen Wed), weekend 24 h shifts from 09:00 (fengxiaowen Sat,
zhenghao Sun), sunhaiyan 09:00-17:00 on weekends; 2026-11-20 is a Friday."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bot.domain.clock import TZ
from bot.domain.duty import DutyRoster, Takeover, Watch
from config.loader import load_config_text
from config.model import BotConfig
from tests.conftest import ROOT


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


def with_roster(roster: str, duty: str = "") -> BotConfig:
    """The sandbox config with another roster (YAML lines under ``duty_roster:``) and duty settings."""
    text = (ROOT / "config" / "sandbox.yaml").read_text(encoding="utf-8")
    text = text[: text.index("duty_roster:")] + "duty_roster:" + (f"\n{roster}" if roster else " []") + "\n" + duty
    return load_config_text(text)


@pytest.fixture(scope="module")
def example(example_config: BotConfig) -> DutyRoster:
    return DutyRoster(example_config)


def test_shift_periods_match_covers(example_config: BotConfig) -> None:
    night = example_config.duty_roster[1]  # wujiayi, Tue and Fri 17:00-09:00
    assert night.period_on(at(20, 0).date()) == (datetime(2026, 11, 20, 17, 0), datetime(2026, 11, 21, 9, 0))
    assert night.period_on(at(19, 0).date()) is None  # a Thursday
    full = example_config.duty_roster[3]  # fengxiaowen, Saturday 09:00-09:00: 24 hours
    assert full.period_on(at(21, 0).date()) == (datetime(2026, 11, 21, 9, 0), datetime(2026, 11, 22, 9, 0))
    roster = DutyRoster(example_config)
    for hour in range(0, 24 * 7, 1):  # a week, hour by hour: the periods and the config's own covers() agree
        when = at(16, 0) + timedelta(hours=hour, minutes=30)
        by_period = {w.userid for w in roster.shifts(when, when + timedelta(microseconds=1))}
        assert by_period == set(example_config.on_duty(when)), when


def test_who_is_on_and_until_when(example: DutyRoster) -> None:
    assert example.watches(at(20, 12)) == []  # Friday noon: nobody
    assert example.watches(at(20, 20)) == [Watch(userid="wujiayi", starts_at=at(20, 17), ends_at=at(21, 9))]
    saturday = example.watches(at(21, 12))
    assert saturday == [
        Watch(userid="fengxiaowen", starts_at=at(21, 9), ends_at=at(22, 9)),
        Watch(userid="sunhaiyan", starts_at=at(21, 9), ends_at=at(21, 17)),
    ]
    assert example.on_duty(at(21, 12)) == ["fengxiaowen", "sunhaiyan"]


def test_a_members_touching_shifts_are_one_stretch() -> None:
    # zhaomin: weekday nights and the weekend's 24 h shifts: from Friday 17:00 to Monday 09:00 without a break
    roster = DutyRoster(with_roster(
        '  - {userid: zhaomin, weekdays: [1, 2, 3, 4, 5], start: "17:00", end: "09:00"}\n'
        '  - {userid: zhaomin, weekdays: [6, 7], start: "09:00", end: "09:00"}'
    ))  # fmt: skip
    assert roster.watches(at(28, 3)) == [Watch(userid="zhaomin", starts_at=at(27, 17), ends_at=at(30, 9))]
    # the next shift is past that stretch, although it is the same member
    assert roster.next_watches(at(28, 3)) == (
        at(30, 17),
        [Watch(userid="zhaomin", starts_at=at(30, 17), ends_at=at(1, 9, month=12))],
    )


def test_the_next_shift_is_the_next_one_to_come_on(example: DutyRoster) -> None:
    # Saturday noon: sunhaiyan going off at 17:00 is not a new shift; Sunday 09:00 is
    upcoming = example.next_watches(at(21, 12))
    assert upcoming == (
        at(22, 9),
        [
            Watch(userid="zhenghao", starts_at=at(22, 9), ends_at=at(23, 9)),
            Watch(userid="sunhaiyan", starts_at=at(22, 9), ends_at=at(22, 17)),
        ],
    )
    assert example.next_watches(at(20, 12)) == (
        at(20, 17),
        [Watch(userid="wujiayi", starts_at=at(20, 17), ends_at=at(21, 9))],
    )
    assert DutyRoster(with_roster("")).next_watches(at(20, 12)) is None


def test_how_long_a_takeover_lasts(example: DutyRoster) -> None:
    assert example.takeover_end(at(20, 20)) == at(21, 9)  # the night shift on ends
    assert example.takeover_end(at(20, 12)) == at(20, 17)  # nobody on: until the next shift starts
    assert example.takeover_end(at(21, 12)) == at(22, 9)  # two shifts on: the later end
    empty = DutyRoster(with_roster(""))
    assert empty.takeover_end(at(20, 12)) == at(21, 0)  # an empty roster: 12 hours
    # the next shift more than a day away: 24 hours at most
    saturdays = DutyRoster(with_roster('  - {userid: zhaomin, weekdays: [6], start: "09:00", end: "17:00"}'))
    assert saturdays.takeover_end(at(16, 10)) == at(17, 10)
    # only holiday dates long past: as good as empty
    past = DutyRoster(with_roster('  - {userid: zhaomin, dates: ["2026-10-01"], start: "09:00", end: "09:00"}'))
    assert past.takeover_end(at(20, 12)) == at(21, 0)


def test_takeover_lengths_are_configurable() -> None:
    config = with_roster(
        '  - {userid: zhaomin, weekdays: [6], start: "09:00", end: "17:00"}',
        "duty: {takeover_max: 16h, takeover_default: 8h}\n",
    )
    roster = DutyRoster(config)
    assert roster.takeover_end(at(20, 20)) == at(21, 9)  # 13 hours to Saturday's shift: within 16 h
    assert roster.takeover_end(at(20, 12)) == at(21, 4)  # 21 hours away: 16 h
    assert DutyRoster(with_roster("", "duty: {takeover_default: 8h}\n")).takeover_end(at(20, 12)) == at(20, 20)


def test_a_takeover_replaces_the_roster_for_its_period(example_config: BotConfig) -> None:
    takeover = Takeover(id=1, userid="zhangwei", starts_at=at(21, 12), ends_at=at(22, 9))
    roster = DutyRoster(example_config, [takeover])
    assert roster.on_duty(at(21, 11)) == ["fengxiaowen", "sunhaiyan"]
    assert roster.on_duty(at(21, 12)) == ["zhangwei"]
    assert roster.on_duty(at(22, 3)) == ["zhangwei"]  # overnight
    assert roster.on_duty(at(22, 9)) == ["zhenghao", "sunhaiyan"]  # over: the roster again
    assert roster.watches(at(21, 20)) == [
        Watch(userid="zhangwei", starts_at=at(21, 12), ends_at=at(22, 9), takeover_id=1)
    ]
    # before it, the roster's stretch is shown cut where the takeover begins
    assert roster.watches(at(21, 10))[0] == Watch(userid="fengxiaowen", starts_at=at(21, 9), ends_at=at(21, 12))
    assert roster.next_watches(at(21, 10)) == (
        at(21, 12),
        [Watch(userid="zhangwei", starts_at=at(21, 12), ends_at=at(22, 9), takeover_id=1)],
    )


def test_a_takeover_handed_back_gives_the_roster_back(example_config: BotConfig) -> None:
    takeover = Takeover(id=1, userid="zhangwei", starts_at=at(21, 12), ends_at=at(22, 9), ended_at=at(21, 18))
    roster = DutyRoster(example_config, [takeover])
    assert takeover.until == at(21, 18)
    assert not takeover.active(at(21, 18))
    assert roster.on_duty(at(21, 17, 59)) == ["zhangwei"]
    assert roster.on_duty(at(21, 18)) == ["fengxiaowen"]
    assert roster.watches(at(21, 20)) == [
        Watch(userid="fengxiaowen", starts_at=at(21, 18), ends_at=at(22, 9))
    ]  # back on since 18:00


def test_naive_times_are_taken_as_shanghai_time(example: DutyRoster) -> None:
    assert example.on_duty(datetime(2026, 11, 20, 20, 0)) == ["wujiayi"]
    assert example.takeover_end(datetime(2026, 11, 20, 20, 0)) == at(21, 9)
