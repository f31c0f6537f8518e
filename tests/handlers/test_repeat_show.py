"""/查 of a repeat complaint in a work group, on both databases: the facts say which time it is and the ticket before
it, masked."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain.clock import TZ
from bot.domain.ticket import TicketInput
from bot.services.tickets import TicketService
from tests.handlers.conftest import MakeRouter
from tests.handlers.test_router import message, replies, texts

BEFORE, NOW = "2026112000123", "2026112300123"


async def test_show_in_the_group_says_it_is_a_repeat_and_of_which_ticket(
    service: TicketService, make_router: MakeRouter
) -> None:
    at = datetime(2026, 11, 23, 8, 0, tzinfo=TZ)
    common = {"category": "市容景观", "citizen_name": "王秀英", "address": "演示街道光明路1号"}
    await service.upsert(
        [
            TicketInput(ticket_no=BEFORE, content="光明路店招破损", citizen_phone="13800000013",
                        dispatched_at=at - timedelta(days=3), **common),  # type: ignore[arg-type]
            TicketInput(ticket_no=NOW, content="光明路店招又松动了，电话13800000013", citizen_phone="138 0000 0013",
                        dispatched_at=at, **common),  # type: ignore[arg-type]
        ]
    )  # fmt: skip
    router = make_router()
    await router.handle(message(f"查 {NOW}", msgid="show"))
    [answer] = texts(await replies(router))
    assert f"重复诉求：30天内第2次（同一来电号码、同一地址），前次 {BEFORE}" in answer
    assert "13800000013" not in answer
    assert "王秀英" not in answer
