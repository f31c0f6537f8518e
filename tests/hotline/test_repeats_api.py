"""The read API's repeat fields over real HTTP, on both databases: what the bot found (``repeat``) beside the
platform's own flag (``is_repeat``), the same whether the contact details are masked or not."""

from __future__ import annotations

from bot.domain.clock import FrozenClock
from tests.conftest import API_TOKEN
from tests.hotline.conftest import Client
from tests.hotline.test_api import TICKET, post_json

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def read(client: Client, no: str, query: str = "") -> dict[str, object]:
    response = await client.get(f"/api/tickets/{no}{query}", headers=AUTH)
    assert response.status == 200
    return (await response.json())["ticket"]  # type: ignore[no-any-return]


async def test_the_ticket_view_carries_the_repeat_and_the_platforms_flag(client: Client, clock: FrozenClock) -> None:
    first = {**TICKET, "ticket_no": "2026112300301", "dispatched_at": "2026-11-20T08:30:00", "is_repeat": True}
    second = {
        **TICKET,
        "ticket_no": "2026112300302",
        "citizen_phone": "139 1234 5678",
        "content": "又是那块店招，还是没修好",
        "dispatched_at": "2026-11-23T08:30:00",
    }
    assert (await post_json(client, clock, "/api/tickets", first)).status == 201
    assert (await post_json(client, clock, "/api/tickets", second)).status == 201
    masked = await read(client, "2026112300302")
    assert masked["is_repeat"] is False  # the platform did not flag it
    assert masked["repeat"] == {
        "found": True,
        "nth": 2,
        "previous": "2026112300301",
        "reason": "phone",
        "window": "30d",
        "earlier": [
            {
                "ticket_no": "2026112300301",
                "dispatched_at": "2026-11-20T08:30:00+08:00",
                "state": "dispatched",
                "satisfaction": None,
                "reason": "phone",
            }
        ],
        "later": [],
    }
    assert (await read(client, "2026112300302", "?contact=full"))["repeat"] == masked["repeat"]
    earlier = await read(client, "2026112300301")
    assert earlier["is_repeat"] is True  # as the platform gave it, though the bot knows of nothing before it
    repeat = earlier["repeat"]
    assert isinstance(repeat, dict)
    assert (repeat["found"], repeat["nth"], repeat["previous"], repeat["earlier"]) == (False, 1, None, [])
    assert [link["ticket_no"] for link in repeat["later"]] == ["2026112300302"]
    assert "5678" not in str(masked["repeat"])
