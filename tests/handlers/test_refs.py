"""Naming a ticket in chat: quoted pushes, full numbers and last digits (the look-ups on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from bot.domain.clock import FrozenClock
from bot.domain.lifecycle import Action, ActionRequest, VisitResult
from bot.domain.ticket import TicketInput
from bot.services.tickets import TicketService
from handlers.errors import CommandError
from handlers.refs import find_ticket, ticket_ref_in
from store.core import Store


def ticket(no: str, category: str = "环卫", title: str | None = None, content: str = "垃圾桶满溢") -> TicketInput:
    return TicketInput(ticket_no=no, content=content, category=category, title=title)


# --- quoted messages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("【新工单】工单 2026112200123 · 环卫 · 垃圾桶满溢", "2026112200123"),
        ("工单号：2026112200123\n内容：小区门口垃圾桶满溢", "2026112200123"),
        ("工单编号: YS20261122093000001「夜间烧烤店噪音扰民」", "YS20261122093000001"),
        ("工单２０２６１１２２００１２３已由 吴昊 接单", "2026112200123"),  # full-width digits, no space
        ("工单号＃2026112200123", "2026112200123"),
        ("单号 SH-2026-1122-00123，请尽快处理", "SH-2026-1122-00123"),
        # labelled wins over an earlier bare number; the first labelled one wins
        ("来电 2026112200999 转来，工单 2026112200123 / 工单 2026112200456", "2026112200123"),
        # fallbacks: a bare 10-20 digit run, or the hotline's letters-and-digits form; the first one wins
        ("@吴昊 2026112200123 这张请跟进", "2026112200123"),
        ("请看 YS20261122093000001 和 2026112200123", "YS20261122093000001"),
        ("市民 138****1234，编号 ZX2026112200123", "ZX2026112200123"),
        # a mobile number (a private full ticket shows it unmasked) is not a ticket
        ("联系电话 13812345678，工单见 2026112200123", "2026112200123"),
    ],
)
def test_ticket_ref_in_finds_the_number(text: str, expected: str) -> None:
    assert ticket_ref_in(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "工单已由 吴昊 接单",
        "工单 OK，已处理",
        "联系电话 13812345678",
        "今天 2026-11-22 09:00 到场，门牌 100 号",
        "热线 12345 来电",
        "编号 123456789",  # nine digits: too short for a bare number
        "a" * 30 + "2026112200123",  # part of a longer word
        "2026112200123456789012345",  # longer than any ticket number
    ],
)
def test_ticket_ref_in_finds_none(text: str) -> None:
    assert ticket_ref_in(text) is None


# --- resolving ------------------------------------------------------------------------------------------


async def test_exact_number_is_found_in_any_unit(service: TicketService, store: Store) -> None:
    await service.upsert([ticket("2026112300123", category="市容景观")])  # SRJG
    # a member of HW names an SRJG ticket in full: found, the router then says whose it is
    assert (await find_ticket(store, "2026112300123", units=["HW"])).ticket_no == "2026112300123"
    assert (await find_ticket(store, " #２０２６１１２３００１２３ ", units=[])).ticket_no == "2026112300123"


async def test_unique_suffix(service: TicketService, store: Store) -> None:
    await service.upsert([ticket("2026112300123"), ticket("2026112300456")])
    assert (await find_ticket(store, "123", units=["HW"])).ticket_no == "2026112300123"
    assert (await find_ticket(store, "00456", units=None)).ticket_no == "2026112300456"


async def test_suffix_ignores_case_and_takes_wildcards_literally(service: TicketService, store: Store) -> None:
    await service.upsert([ticket("YS20261123001"), ticket("2026112300123")])
    assert (await find_ticket(store, "ys20261123001", units=None)).ticket_no == "YS20261123001"
    assert (await find_ticket(store, "s20261123001", units=None)).ticket_no == "YS20261123001"
    assert (await find_ticket(store, "3001", units=["HW"])).ticket_no == "YS20261123001"
    with pytest.raises(CommandError) as missing:
        await find_ticket(store, "1_3", units=None)  # "_" is a character, not LIKE's any-character
    assert missing.value.code == "ticket_not_found"


async def test_ambiguous_suffix_lists_at_most_five(service: TicketService, store: Store) -> None:
    await service.upsert(
        [ticket(f"202611230{i}0777", title=f"第{i}号道路保洁不到位，垃圾堆积多日无人清理") for i in range(7)]
        + [ticket("2026112300999")]
    )
    with pytest.raises(CommandError) as ambiguous:
        await find_ticket(store, "777", units=["HW"])
    error = ambiguous.value
    assert error.code == "ticket_ambiguous"
    lines = error.message.splitlines()
    assert "777" in lines[0]
    assert "多输入几位" in lines[0]
    listed = [line for line in lines if line.startswith("· ")]
    assert len(listed) == 5
    # newest first, each with its short title
    assert listed[0] == "· 20261123060777「第6号道路保洁不到位，垃圾堆积…」"
    assert lines[-1] == "……（还有更多）"
    # two candidates: both listed, nothing more
    await service.upsert([ticket("2026112300888"), ticket("2026112301888", content="公厕  很脏\n无人打扫")])
    with pytest.raises(CommandError) as two:
        await find_ticket(store, "888", units=None)
    assert two.value.message.splitlines()[1:] == [
        "· 2026112301888「公厕 很脏 无人打扫」",
        "· 2026112300888「垃圾桶满溢」",
    ]
    # more digits settle it
    assert (await find_ticket(store, "30777", units=["HW"])).ticket_no == "20261123030777"


async def test_suffix_of_another_units_ticket(service: TicketService, store: Store) -> None:
    await service.upsert([ticket("2026112300123", category="市容景观")])  # SRJG
    with pytest.raises(CommandError) as missing:
        await find_ticket(store, "0123", units=["HW"])  # a handler of HW
    assert missing.value.code == "ticket_not_found"
    assert "0123" in missing.value.message
    assert "本单位" in missing.value.message
    with pytest.raises(CommandError) as nowhere:
        await find_ticket(store, "0123", units=[])  # a member of no unit
    assert nowhere.value.code == "ticket_not_found"
    # a dispatcher sees every unit
    assert (await find_ticket(store, "0123", units=None)).ticket_no == "2026112300123"
    assert (await find_ticket(store, "0123", units=["SRJG", "HW"])).ticket_no == "2026112300123"


async def test_open_tickets_win_over_closed_ones(service: TicketService, store: Store, clock: FrozenClock) -> None:
    await service.upsert([ticket("2026112300123"), ticket("2026112201123"), ticket("2026112202123")])
    # the newest one closed (submitted, then a satisfied return visit), an older one cancelled
    await service.act(
        "2026112300123", ActionRequest(action=Action.SUBMIT, actor="wuhao", at=clock.now(), note="已清运")
    )
    await service.act(
        "2026112300123",
        ActionRequest(action=Action.VISIT, actor="zhangwei", at=clock.now(), result=VisitResult.SATISFIED),
    )
    await service.act("2026112202123", ActionRequest(action=Action.CANCEL, actor="zhangwei", at=clock.now()))
    assert (await find_ticket(store, "123", units=["HW"])).ticket_no == "2026112201123"
    # once none is open, the closed and cancelled ones compete again
    await service.act("2026112201123", ActionRequest(action=Action.CANCEL, actor="zhangwei", at=clock.now()))
    with pytest.raises(CommandError) as ambiguous:
        await find_ticket(store, "123", units=["HW"])
    assert ambiguous.value.code == "ticket_ambiguous"
    assert (await find_ticket(store, "00123", units=["HW"])).ticket_no == "2026112300123"  # closed, and the only one


@pytest.mark.parametrize("ref", ["", "  ", "12", "#1", "１２"])
async def test_too_short(store: Store, ref: str) -> None:
    with pytest.raises(CommandError) as bad:
        await find_ticket(store, ref, units=None)
    assert bad.value.code == "bad_ticket_ref"
    assert "至少 3 位" in bad.value.message


@pytest.mark.parametrize("ref", ["12 34", "工单0123", "%%%", "_123", "1" * 65, "0123;drop"])
async def test_not_a_number(store: Store, ref: str) -> None:
    with pytest.raises(CommandError) as bad:
        await find_ticket(store, ref, units=None)
    assert bad.value.code == "bad_ticket_ref"


def test_ticket_refs_in_lists_each_number_once_labelled_first() -> None:
    from handlers.refs import ticket_refs_in

    text = "汇总：2026112300999 另见 工单 2026112300123、工单号：ys20261123001 与 2026112300123；电话 13800000013"
    assert ticket_refs_in(text) == ["2026112300123", "ys20261123001", "2026112300999"]
    assert ticket_refs_in("【新工单】工单 2026112300123 店招破损 2026112300123") == ["2026112300123"]
    assert ticket_refs_in("没有工单号") == []
