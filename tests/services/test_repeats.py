"""Repeat complaints (重复诉求) through the ticket service's hand-overs, on SQLite and on PostgreSQL: what a new ticket
is found to repeat, in what order history may arrive, what an update changes, and what the configuration switches."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from bot.domain.clock import FrozenClock
from bot.domain.lifecycle import Action, ActionRequest, TicketState, VisitResult
from bot.domain.records import Ticket
from bot.domain.ticket import TicketInput
from bot.services.tickets import TicketService
from config.model import BotConfig

GARBAGE = "小区门口垃圾桶满溢，垃圾清运不及时，气味很大"
GARBAGE_AGAIN = "小区门口垃圾桶又满溢了，三天没人清运，气味很大"
CLUTTER = "楼道内有人堆放杂物，影响消防通道"


def ticket(no: str, at: datetime, **fields: object) -> TicketInput:
    base: dict[str, object] = {
        "ticket_no": no,
        "content": GARBAGE,
        "category": "环卫",
        "citizen_name": "张先生",
        "dispatched_at": at,
    }
    base.update(fields)
    return TicketInput(**base)  # type: ignore[arg-type]


async def stored(service: TicketService, no: str) -> Ticket:
    return (await service.get(no, history=False, deadlines=False)).ticket


async def numbers(service: TicketService, no: str) -> tuple[list[str], list[str]]:
    earlier, later = await service.repeats_of(await stored(service, no))
    return [link.ticket_no for link in earlier], [link.ticket_no for link in later]


async def test_the_same_phone_written_otherwise_is_a_repeat_linked_both_ways(
    service: TicketService, clock: FrozenClock
) -> None:
    now = clock.now()
    await service.upsert([ticket("R0001", now - timedelta(days=5), citizen_phone="13812345678", address="甲路1号")])
    await service.upsert(
        [ticket("R0002", now, citizen_phone="+86 138-1234-5678", address="乙路2号", content=CLUTTER, category="市容")]
    )
    second = await stored(service, "R0002")
    assert (second.repeat_count, second.repeat_of, second.repeat_reason) == (2, "R0001", "phone")
    assert second.is_repeat is False  # the platform's own flag, as it gave it
    assert second.citizen_phone == "+86 138-1234-5678"  # stored as written; the key is a hash beside it
    assert second.repeat_phone is not None
    assert "5678" not in second.repeat_phone
    assert await numbers(service, "R0002") == (["R0001"], [])
    assert await numbers(service, "R0001") == ([], ["R0002"])
    assert (await stored(service, "R0001")).repeat_count == 1


async def test_the_same_place_with_a_similar_text_is_a_repeat_and_a_different_matter_is_not(
    service: TicketService, clock: FrozenClock
) -> None:
    now = clock.now()
    await service.upsert(
        [ticket("R0101", now - timedelta(days=2), citizen_phone="13800000001", address="幸福里小区3号楼1203室")]
    )
    await service.upsert(
        [
            ticket("R0102", now, citizen_phone="13900000002", address="幸福里小区３号502室", content=GARBAGE_AGAIN),
            ticket("R0103", now, citizen_phone="13700000003", address="幸福里小区3号", content=CLUTTER),
            ticket("R0104", now, citizen_phone="13600000004", address="幸福里小区4号1203室", content=GARBAGE),
        ]
    )
    neighbour = await stored(service, "R0102")
    assert (neighbour.repeat_count, neighbour.repeat_of, neighbour.repeat_reason) == (2, "R0101", "address")
    assert (await stored(service, "R0103")).repeat_count == 1  # the same building, another matter
    assert (await stored(service, "R0104")).repeat_count == 1  # the same matter, the next building


async def test_outside_the_window_is_no_repeat_and_the_third_counts_both_before_it(
    service: TicketService, clock: FrozenClock
) -> None:
    now = clock.now()
    phone = "13812345678"
    await service.upsert([ticket("R0201", now - timedelta(days=45), citizen_phone=phone)])
    await service.upsert([ticket("R0202", now - timedelta(days=10), citizen_phone=phone)])
    await service.upsert([ticket("R0203", now, citizen_phone="138 1234 5678")])
    assert (await stored(service, "R0202")).repeat_count == 1  # 35 days after the first: outside 30
    third = await stored(service, "R0203")
    assert (third.repeat_count, third.repeat_of) == (2, "R0202")  # the first is 45 days before it
    await service.upsert([ticket("R0204", now + timedelta(hours=1), citizen_phone=phone)])
    fourth = await stored(service, "R0204")
    assert (fourth.repeat_count, fourth.repeat_of) == (3, "R0203")
    assert (await numbers(service, "R0204"))[0] == ["R0203", "R0202"]  # the latest first


async def test_the_earlier_tickets_come_with_their_state_and_satisfaction(
    service: TicketService, clock: FrozenClock
) -> None:
    now = clock.now()
    await service.upsert([ticket("R0301", now - timedelta(days=3), citizen_phone="13812345678")])
    for action, actor, extra in (
        (Action.CLAIM, "wuhao", {}),
        (Action.SUBMIT, "wuhao", {"note": "已清运"}),
        (Action.VISIT, "zhangwei", {"result": VisitResult.SATISFIED}),
    ):
        clock.advance(minutes=10)
        await service.act("R0301", ActionRequest(action=action, actor=actor, at=clock.now(), **extra))  # type: ignore[arg-type]
    await service.upsert([ticket("R0302", clock.now(), citizen_phone="13812345678")])
    [link], _ = await service.repeats_of(await stored(service, "R0302"))
    assert (link.ticket_no, link.state, link.satisfaction, link.reason) == (
        "R0301",
        TicketState.CLOSED,
        "satisfied",
        "phone",
    )


async def test_the_platforms_own_flag_is_kept_as_given(service: TicketService, clock: FrozenClock) -> None:
    now = clock.now()
    await service.upsert([ticket("R0401", now, citizen_phone="13812345678", is_repeat=True)])
    first = await stored(service, "R0401")
    assert (first.is_repeat, first.repeat_count) == (True, 1)  # the platform knows of one the bot never saw
    await service.upsert([ticket("R0402", now + timedelta(minutes=5), citizen_phone="13812345678")])
    second = await stored(service, "R0402")
    assert (second.is_repeat, second.repeat_count) == (False, 2)  # found by the bot, not flagged by the platform


async def test_history_arriving_newest_first_is_marked_as_in_time_order(
    service: TicketService, clock: FrozenClock
) -> None:
    now = clock.now()
    phone = "13812345678"
    # one batch, newest first, and then an older row in a later batch
    await service.upsert(
        [
            ticket("R0503", now - timedelta(days=1), citizen_phone=phone),
            ticket("R0502", now - timedelta(days=5), citizen_phone=phone),
        ],
        source="import",
    )
    await service.upsert([ticket("R0501", now - timedelta(days=10), citizen_phone=phone)], source="import")
    marks = {no: await stored(service, no) for no in ("R0501", "R0502", "R0503")}
    assert {no: (t.repeat_count, t.repeat_of) for no, t in marks.items()} == {
        "R0501": (1, None),
        "R0502": (2, "R0501"),
        "R0503": (3, "R0502"),
    }
    assert await numbers(service, "R0501") == ([], ["R0503", "R0502"])
    # imported again, nothing changes
    await service.upsert([ticket("R0501", now - timedelta(days=10), citizen_phone=phone)], source="import")
    assert (await stored(service, "R0503")).repeat_count == 3


async def test_an_update_of_the_phone_matches_the_ticket_again(service: TicketService, clock: FrozenClock) -> None:
    now = clock.now()
    await service.upsert([ticket("R0601", now - timedelta(days=1), citizen_phone="13812345678")])
    await service.upsert([ticket("R0602", now, citizen_phone="13900000000", content=CLUTTER, address=None)])
    assert (await stored(service, "R0602")).repeat_count == 1
    [outcome] = await service.upsert([ticket("R0602", now, citizen_phone="138 1234 5678", content=CLUTTER)])
    assert outcome.changed == ("citizen_phone",)  # the repeat is derived: not listed as changed
    updated = await stored(service, "R0602")
    assert (updated.repeat_count, updated.repeat_of) == (2, "R0601")
    await service.upsert([ticket("R0602", now, citizen_phone="13900000000", content=CLUTTER)])
    again = await stored(service, "R0602")
    assert (again.repeat_count, again.repeat_of) == (1, None)
    assert await numbers(service, "R0601") == ([], [])


async def test_switched_off_nothing_is_marked_but_the_keys_are_kept(
    make_service: Callable[..., TicketService], sandbox_config: BotConfig, clock: FrozenClock
) -> None:
    off = sandbox_config.model_copy(update={"repeats": sandbox_config.repeats.model_copy(update={"enabled": False})})
    now = clock.now()
    await make_service(off).upsert([ticket("R0701", now - timedelta(days=1), citizen_phone="13812345678")])
    await make_service(off).upsert([ticket("R0702", now, citizen_phone="13812345678")])
    assert (await stored(make_service(), "R0702")).repeat_count == 1
    # switched on again: the next ticket finds both
    await make_service().upsert([ticket("R0703", now + timedelta(hours=1), citizen_phone="13812345678")])
    third = await stored(make_service(), "R0703")
    assert (third.repeat_count, third.repeat_of) == (3, "R0702")


async def test_an_ignored_number_matches_nothing(
    make_service: Callable[..., TicketService], sandbox_config: BotConfig, clock: FrozenClock
) -> None:
    settings = sandbox_config.repeats.model_copy(update={"ignore_phones": ["12345678900"]})
    service = make_service(sandbox_config.model_copy(update={"repeats": settings}))
    now = clock.now()
    await service.upsert([ticket("R0801", now - timedelta(days=1), citizen_phone="12345678900", address=None)])
    await service.upsert(
        [ticket("R0802", now, citizen_phone="123-4567-8900", address=None, content=CLUTTER, category=None)]
    )
    assert (await stored(service, "R0802")).repeat_count == 1
