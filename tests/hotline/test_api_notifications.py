"""The read API shows who was told of a ticket's deadlines (the notifications record) beside its history, in the
masked view as in the full one: recipients and channels, nothing of the citizen. Over real HTTP, on both
databases."""

from __future__ import annotations

import json
from datetime import datetime

from bot.domain.clock import TZ, FrozenClock
from bot.services.channels import Channels
from bot.services.deadline_engine import DeadlineEngine
from bot.web.keys import CALENDAR, CONFIG, DUTY, STORE
from notifiers.rows import EngineRows
from tests.conftest import API_TOKEN
from tests.hotline.conftest import Client
from tests.hotline.test_api import post_json

TICKET = {
    "ticket_no": "2026112300321",
    "content": "店招松动，请联系王建国 13912345678",
    "citizen_name": "王建国",
    "citizen_phone": "13912345678",
    "address": "某区某路 8 号 3 室",
    "dispatched_at": "2026-11-23T09:00:00",
}
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def test_the_ticket_shows_who_was_told_when_masked_or_not(client: Client, clock: FrozenClock) -> None:
    clock.set(datetime(2026, 11, 23, 9, 0, tzinfo=TZ))
    assert (await post_json(client, clock, "/api/tickets", TICKET)).status == 201
    app = client.app
    config = app[CONFIG]
    engine = DeadlineEngine(
        app[STORE], config, app[CALENDAR], clock, duty=app[DUTY], rows=EngineRows(config, Channels(app=True))
    )
    # the reminder at half the accept deadline, then the overdue notice at it
    for when in (datetime(2026, 11, 23, 21, 0, tzinfo=TZ), datetime(2026, 11, 24, 9, 0, tzinfo=TZ)):
        clock.set(when)
        await engine.tick()
    path = f"/api/tickets/{TICKET['ticket_no']}"
    masked = await (await client.get(path, headers=AUTH)).json()
    told = masked["notifications"]
    assert told[:2] == [
        {
            "at": "2026-11-23T21:00:00+08:00",
            "kind": "reminder",
            "level": None,
            "deadline": name,
            "due_at": "2026-11-24T09:00:00+08:00",
            "unit": "SRJG",
            "recipient_kind": "group",
            "recipient": "SRJG",
            "channel": "wecom_appchat",
            "outbox_id": told[0]["outbox_id"],
        }
        for name in ("accept", "first_contact")
    ]
    overdue = {(n["kind"], n["level"], n["recipient"]) for n in told[2:]}
    assert overdue == {("overdue", 1, "SRJG"), ("overdue", 1, "sunlei"), ("overdue", 1, "zhouting")}
    assert len(told) == 2 + 6
    body = json.dumps(masked, ensure_ascii=False)
    assert "13912345678" not in body and "王建国" not in body  # noqa: PT018
    full = await (await client.get(path + "?contact=full", headers=AUTH)).json()
    assert full["notifications"] == told
