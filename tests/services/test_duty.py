"""The duty service on both databases: the roster alone, takeovers replacing it (overnight too), taking again,
relieving, handing back, expiry, the caps, who may take over, once-only application and the audit log. The clock is
moved, never slept on.

The sandbox roster: zhaomin, weekday nights 17:00-09:00 and weekends 24 h from 09:00. 2026-11-23 is a Monday; the
clock starts at 09:00, when Sunday's shift has just ended. zhangwei and wangfang are dispatchers, wuhao an admin,
lilei a center lead, chenjing, sunlei and zhouting handlers."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain.clock import TZ, FrozenClock
from bot.domain.duty import Watch
from bot.services.duty import DutyRefused, DutyService
from config.model import BotConfig
from store.core import Store
from store.models import audit_log, duty_takeovers, inbox
from tests.domain.test_duty import with_roster


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=TZ)


@pytest.fixture
def duty(store: Store, sandbox_config: BotConfig, clock: FrozenClock) -> DutyService:
    return DutyService(store, sandbox_config, clock)


async def takeovers(store: Store) -> list[dict[str, Any]]:
    async with store.reading() as conn:
        return [dict(r) for r in (await conn.execute(select(duty_takeovers).order_by(duty_takeovers.c.id))).mappings()]


async def audits(store: Store) -> list[dict[str, Any]]:
    async with store.reading() as conn:
        return [dict(r) for r in (await conn.execute(select(audit_log).order_by(audit_log.c.id))).mappings()]


async def test_the_roster_alone(duty: DutyService) -> None:
    assert await duty.on_duty(at(23, 9)) == []  # Sunday's 24 h shift ended at 09:00
    assert await duty.on_duty(at(23, 20)) == ["zhaomin"]
    assert await duty.on_duty(at(24, 8, 59)) == ["zhaomin"]  # Monday's night shift, overnight
    assert await duty.on_duty() == []  # default: the clock's now
    assert await duty.current_shift(at(23, 20)) == [Watch(userid="zhaomin", starts_at=at(23, 17), ends_at=at(24, 9))]
    assert await duty.next_shift(at(23, 9)) == (
        at(23, 17),
        [Watch(userid="zhaomin", starts_at=at(23, 17), ends_at=at(24, 9))],
    )
    status = await duty.status(at(23, 12))
    assert (status.on_duty, status.next_at, status.userids) == ([], at(23, 17), [])


async def test_a_takeover_replaces_the_roster_overnight_until_the_shift_ends(
    duty: DutyService, store: Store, clock: FrozenClock
) -> None:
    clock.set(at(23, 20))
    change = await duty.take("zhangwei")
    assert (change.status, change.until, change.relieved, change.changed) == ("taken", at(24, 9), (), True)
    assert await duty.on_duty() == ["zhangwei"]
    assert await duty.on_duty(at(24, 3)) == ["zhangwei"]  # overnight
    assert await duty.on_duty(at(24, 9)) == []  # expired with the shift it replaced
    assert await duty.on_duty(at(24, 17)) == ["zhaomin"]  # the roster again
    [shift] = await duty.current_shift()
    assert (shift.userid, shift.starts_at, shift.ends_at, shift.by_takeover) == (
        "zhangwei",
        at(23, 20),
        at(24, 9),
        True,
    )
    [row] = await takeovers(store)
    assert (row["userid"], row["starts_at"], row["ends_at"], row["created_by"], row["ended_at"]) == (
        "zhangwei", at(23, 20), at(24, 9), "zhangwei", None,
    )  # fmt: skip
    [audit] = await audits(store)
    assert (audit["action"], audit["actor"], audit["ticket_id"], audit["ticket_no"]) == (
        "duty_take", "zhangwei", None, None,
    )  # fmt: skip
    assert audit["data"] == {
        "takeover_id": row["id"], "userid": "zhangwei", "until": at(24, 9).isoformat(), "replaces": ["zhaomin"],
    }  # fmt: skip


async def test_between_shifts_a_takeover_lasts_until_the_next_one(duty: DutyService, clock: FrozenClock) -> None:
    change = await duty.take("wangfang")  # Monday 09:00, nobody on until 17:00
    assert change.until == at(23, 17)
    clock.set(at(23, 16, 59))
    assert await duty.on_duty() == ["wangfang"]
    clock.set(at(23, 17))
    assert await duty.on_duty() == ["zhaomin"]


async def test_taking_again_changes_nothing_or_extends(store: Store, clock: FrozenClock) -> None:
    duty = DutyService(store, with_roster(""), clock)  # an empty roster: 12 hours
    first = await duty.take("zhangwei")
    assert (first.status, first.until) == ("taken", at(23, 21))
    clock.advance(hours=5)
    again = await duty.take("zhangwei")  # 12 hours from now end later: extended, the same takeover
    assert (again.status, again.until) == ("extended", at(24, 2))
    rows = await takeovers(store)
    assert [(r["ends_at"], r["ended_at"]) for r in rows] == [(at(24, 2), None)]
    assert [a["action"] for a in await audits(store)] == ["duty_take", "duty_extend"]
    assert (await audits(store))[-1]["data"]["from"] == at(23, 21).isoformat()
    # with the roster, the end is the shift's: taking again within it changes nothing
    roster = DutyService(
        store, with_roster('  - {userid: zhaomin, weekdays: [2], start: "00:00", end: "06:00"}'), clock
    )
    held = await roster.take("zhangwei")
    assert (held.status, held.until, held.changed) == ("held", at(24, 2), False)
    assert len(await takeovers(store)) == 1
    assert len(await audits(store)) == 2


async def test_a_member_the_roster_has_on_is_on_already(duty: DutyService, store: Store, clock: FrozenClock) -> None:
    clock.set(at(23, 20))
    change = await duty.take("zhaomin")
    assert (change.status, change.until, change.changed) == ("on_roster", at(24, 9), False)
    key = ("wecom_command", "aibot:msg:9", "/值班 接班")
    assert (await duty.take("zhaomin", dedup=key)).status == "on_roster"
    replayed = await duty.take("zhaomin", dedup=key)  # re-run: answered as the first time
    assert (replayed.status, replayed.until, replayed.duplicate) == ("on_roster", at(24, 9), True)
    assert await takeovers(store) == []
    assert await audits(store) == []


async def test_taking_over_relieves_the_member_holding_a_takeover(
    duty: DutyService, store: Store, clock: FrozenClock
) -> None:
    clock.set(at(23, 20))
    await duty.take("zhangwei")
    clock.set(at(23, 22))
    change = await duty.take("wangfang")
    assert (change.status, change.until, change.relieved) == ("taken", at(24, 9), ("zhangwei",))
    assert await duty.on_duty() == ["wangfang"]
    assert await duty.on_duty(at(23, 21)) == ["zhangwei"]  # the history stays
    first, second = await takeovers(store)
    assert (first["ended_at"], first["ended_by"], second["ended_at"]) == (at(23, 22), "wangfang", None)
    assert [a["action"] for a in await audits(store)] == ["duty_take", "duty_relieved", "duty_take"]
    # and the roster's member takes the night back from a takeover: she is not on duty while it lasts
    clock.set(at(23, 23))
    back = await duty.take("zhaomin")
    assert (back.status, back.relieved) == ("taken", ("wangfang",))
    assert await duty.on_duty() == ["zhaomin"]


async def test_handing_back(duty: DutyService, store: Store, clock: FrozenClock) -> None:
    clock.set(at(23, 20))
    await duty.take("wuhao")  # an admin
    clock.set(at(23, 22))
    change = await duty.hand_back("wuhao")
    assert (change.status, change.until, change.changed) == ("handed_back", None, True)
    assert await duty.on_duty() == ["zhaomin"]  # the roster again
    assert await duty.current_shift() == [Watch(userid="zhaomin", starts_at=at(23, 22), ends_at=at(24, 9))]
    [row] = await takeovers(store)
    assert (row["ended_at"], row["ended_by"], row["ends_at"]) == (at(23, 22), "wuhao", at(24, 9))
    hand_back = (await audits(store))[-1]
    assert (hand_back["action"], hand_back["actor"], hand_back["data"]["planned_until"]) == (
        "duty_hand_back", "wuhao", at(24, 9).isoformat(),
    )  # fmt: skip
    with pytest.raises(DutyRefused) as refused:  # nothing left to hand back
        await duty.hand_back("wuhao")
    assert refused.value.code == "no_takeover"
    assert "没有接班记录" in refused.value.message
    with pytest.raises(DutyRefused):  # the roster's member has no takeover either: her shift ends by itself
        await duty.hand_back("zhaomin")
    assert len(await audits(store)) == 2


async def test_after_expiry_a_new_takeover_is_made(duty: DutyService, store: Store, clock: FrozenClock) -> None:
    await duty.take("zhangwei")  # until 17:00
    clock.set(at(23, 17, 30))
    with pytest.raises(DutyRefused):
        await duty.hand_back("zhangwei")  # expired: nothing to hand back
    clock.set(at(24, 10))
    change = await duty.take("zhangwei")
    assert (change.status, change.until) == ("taken", at(24, 17))
    assert len(await takeovers(store)) == 2


async def test_the_caps(store: Store, clock: FrozenClock) -> None:
    saturdays = with_roster('  - {userid: zhaomin, weekdays: [6], start: "09:00", end: "17:00"}')
    change = await DutyService(store, saturdays, clock).take("zhangwei")  # Saturday is days away
    assert change.until == at(24, 9)  # 24 hours
    configured = with_roster("", "duty: {takeover_max: 10h, takeover_default: 6h}\n")
    clock.set(at(25, 9))
    assert (await DutyService(store, configured, clock).take("wangfang")).until == at(25, 15)


async def test_only_duty_members_dispatchers_and_admins_may_take_over(duty: DutyService, store: Store) -> None:
    for userid in ("chenjing", "zhouting", "lilei", "nobody"):  # handlers, a unit head, a center lead, a stranger
        assert not duty.may_take(userid)
        with pytest.raises(DutyRefused) as refused:
            await duty.take(userid)
        assert refused.value.code == "forbidden"
        assert refused.value.message == "抱歉，只有值班员（含排班表上的人员）、派单员和管理员可以接班。"
    assert await takeovers(store) == []
    for userid in ("zhaomin", "zhangwei", "wuhao"):  # on the roster, a dispatcher, an admin
        assert duty.may_take(userid)
        assert (await duty.take(userid)).status == "taken"  # Monday 09:00: nobody is on


async def test_a_message_is_applied_once(duty: DutyService, store: Store, clock: FrozenClock) -> None:
    key = ("wecom_command", "aibot:msg:1", "/值班 接班")
    first = await duty.take("zhangwei", dedup=key)
    clock.advance(minutes=1)
    again = await duty.take("zhangwei", dedup=key)  # re-delivered
    assert (first.duplicate, again.duplicate) == (False, True)
    assert (again.status, again.until, again.changed) == ("taken", first.until, False)
    assert len(await takeovers(store)) == 1
    back_key = ("wecom_command", "aibot:msg:2", "/值班 交班")
    assert (await duty.hand_back("zhangwei", dedup=back_key)).changed
    assert (await duty.hand_back("zhangwei", dedup=back_key)).duplicate  # not refused: answered as the first time
    assert [a["action"] for a in await audits(store)] == ["duty_take", "duty_hand_back"]
    async with store.reading() as conn:
        keys = [r["dedup_key"] for r in (await conn.execute(select(inbox))).mappings()]
    assert keys == ["aibot:msg:1", "aibot:msg:2"]


async def test_two_members_taking_over_at_once_leave_one_on_duty(duty: DutyService, store: Store) -> None:
    changes = await asyncio.gather(duty.take("zhangwei"), duty.take("wangfang"))
    assert sorted(c.status for c in changes) == ["taken", "taken"]
    assert len(await duty.on_duty()) == 1  # the later relieved the earlier
    assert sum(1 for r in await takeovers(store) if r["ended_at"] is None) == 1
