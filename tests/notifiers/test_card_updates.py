"""The card-update channels through the real outbox, on both databases: ``wecom_card_update`` over loopback HTTP
against the fake WeCom (which takes a response_code once), ``aibot_card_update`` against a connection double (the
long connection itself is exercised end to end in ``tests/handlers/test_cards.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.domain.clock import FrozenClock
from bot.domain.events import InboundEvent
from bot.sandbox.fake import FakeWeCom
from bot.services.ratelimit import MemoryRateLimiter
from bot.wecom.client import WeComClient
from bot.wecom.longconn import NotConnected
from bot.wecom.tokens import MemoryTokenStore
from notifiers.outbox import DeliveryError, OutboundMessage, OutboxWorker
from notifiers.wecom import (
    AIBOT_CARD_UPDATE,
    WECOM_APP,
    WECOM_CARD_UPDATE,
    AibotCardUpdateSender,
    wecom_senders,
)
from store import outbox as outbox_repo
from store.core import Store
from store.models import outbox
from tests.notifiers.conftest import AGENT, CORP, SECRET

RECIPIENTS = ["zhouting", "sunlei", "chenjing"]  # the members a card goes to


def card(task_id: str, title: str = "待接单") -> dict[str, Any]:
    return {
        "card_type": "button_interaction",
        "main_title": {"title": title},
        "button_list": [{"text": "接单", "key": "claim:0123"}],
        "task_id": task_id,
    }


@pytest.fixture
def client(fake: FakeWeCom, session: aiohttp.ClientSession, clock: FrozenClock) -> WeComClient:
    assert fake.base_url is not None
    return WeComClient(
        session,
        base_url=fake.base_url,
        corp_id=CORP,
        secret=SECRET,
        agent_id=AGENT,
        tokens=MemoryTokenStore(),
        clock=lambda: clock.now().timestamp(),
    )


async def enqueue(store: Store, clock: FrozenClock, channel: str, destination: str, payload: Mapping[str, Any]) -> None:
    row = {
        "channel": channel,
        "destination": destination,
        "idempotency_key": f"{channel}:{uuid.uuid4().hex}",
        "ordering_key": None,
        "priority": 2,
        "payload": dict(payload),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": clock.now(),
        "created_at": clock.now(),
    }
    async with store.transaction() as conn:
        await outbox_repo.enqueue(conn, [row])


async def outcomes(store: Store) -> list[tuple[str, str | None]]:
    async with store.reading() as conn:
        rows = (await conn.execute(select(outbox).order_by(outbox.c.id))).mappings()
        return [(r["status"], r["last_error"]) for r in rows]


async def test_a_card_update_goes_out_once_per_code_and_a_used_code_is_dead_lettered(
    store: Store, fake: FakeWeCom, client: WeComClient, clock: FrozenClock
) -> None:
    senders = wecom_senders(limiter=MemoryRateLimiter(), clock=clock, app=client)
    assert set(senders) == {WECOM_APP, WECOM_CARD_UPDATE}  # the app client serves card updates too
    worker = OutboxWorker(store, senders, clock, owner="w1")
    await client.send_template_card(card("t@0123@0@a"), touser=RECIPIENTS)
    code = fake.card_response_code(task_id="t@0123@0@a", userid="zhouting")  # zhouting clicked

    new = card("t@0123@0@a", "周婷 已接单")
    await enqueue(
        store, clock, WECOM_CARD_UPDATE, "t@0123@0@a", {"response_code": code, "atall": 1, "template_card": new}
    )
    await enqueue(
        store, clock, WECOM_CARD_UPDATE, "t@0123@0@a", {"response_code": code, "button": {"replace_name": "x"}}
    )
    assert await worker.run_once() == 2

    [update] = [d for d in fake.delivered if d.kind == "update_card"]
    assert (update.msgtype, update.to["atall"], update.to["task_id"]) == ("template_card", 1, "t@0123@0@a")
    assert update.body["template_card"] == new
    (first, _), (second, error) = await outcomes(store)
    assert (first, second) == ("sent", "dead")  # WeCom takes a code once: the second use is not retried
    assert error is not None and "42022" in error  # noqa: PT018
    assert code not in error


async def test_greying_out_the_buttons_and_malformed_updates(
    store: Store, fake: FakeWeCom, client: WeComClient, clock: FrozenClock
) -> None:
    worker = OutboxWorker(store, wecom_senders(limiter=MemoryRateLimiter(), clock=clock, app=client), clock, owner="w1")
    await client.send_template_card(card("t@0123@0@b"), touser=RECIPIENTS)
    code = fake.card_response_code(task_id="t@0123@0@b", userid="sunlei")
    payloads: list[dict[str, Any]] = [
        {"response_code": code, "button": {"replace_name": "孙磊 已接单"}, "userids": ["sunlei"]},
        {"template_card": card("t@0123@0@b")},  # no code
        {"response_code": "c", "template_card": card("t@0123@0@b"), "button": {"replace_name": "x"}},  # both
        {"response_code": "c"},  # neither
        {"response_code": "c", "template_card": card("t@0123@0@b"), "userids": "sunlei"},
    ]
    for payload in payloads:
        await enqueue(store, clock, WECOM_CARD_UPDATE, "t@0123@0@b", payload)
    calls = fake.stats["/cgi-bin/message/update_template_card"].requests
    assert await worker.run_once() == len(payloads)

    [update] = [d for d in fake.delivered if d.kind == "update_card"]
    assert (update.msgtype, update.to["userids"], update.to["atall"]) == ("update_button", ["sunlei"], 0)
    assert update.body["button"] == {"replace_name": "孙磊 已接单"}
    statuses = [status for status, _ in await outcomes(store)]
    assert statuses == ["sent", "dead", "dead", "dead", "dead"]
    assert fake.stats["/cgi-bin/message/update_template_card"].requests == calls + 1  # malformed ones never sent


class Connection:
    """A long connection double: the req_ids of the frames it received, by the event's dedup key."""

    def __init__(self, req_ids: Mapping[str, str], *, subscribed: bool = True, fail: Exception | None = None) -> None:
        self.req_ids = dict(req_ids)
        self._subscribed = subscribed
        self.fail = fail
        self.updates: list[tuple[str, Mapping[str, Any]]] = []

    @property
    def subscribed(self) -> bool:
        return self._subscribed

    def req_id_for(self, event: InboundEvent) -> str | None:
        return self.req_ids.get(event.dedup_key)

    async def update_card(self, req_id: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        if self.fail is not None:
            raise self.fail
        self.updates.append((req_id, body))
        return {"errcode": 0}


def message(payload: Mapping[str, Any], destination: str = "aibot:msg:click-1") -> OutboundMessage:
    return OutboundMessage(
        id=1, channel=AIBOT_CARD_UPDATE, destination=destination, idempotency_key="k", payload=payload, attempts=0
    )


async def test_the_robots_update_answers_the_click_it_belongs_to() -> None:
    connection = Connection({"aibot:msg:click-1": "req-1"})
    sender = AibotCardUpdateSender(connection)
    assert sender.ready
    await sender.send(message({"template_card": card("t@0123@0@c")}))
    await sender.send(message({"template_card": card("t@0123@0@c"), "userids": ["zhouting"]}))
    assert connection.updates == [
        ("req-1", {"template_card": card("t@0123@0@c")}),
        ("req-1", {"template_card": card("t@0123@0@c"), "userids": ["zhouting"]}),
    ]


async def test_the_robots_update_is_dead_lettered_where_it_can_no_longer_be_sent() -> None:
    sender = AibotCardUpdateSender(Connection({}))
    with pytest.raises(DeliveryError, match="req_id is not known") as unknown:  # another process, or a restart
        await sender.send(message({"template_card": card("t@0123@0@d")}))
    assert unknown.value.permanent
    with pytest.raises(DeliveryError, match="no template_card") as malformed:
        await sender.send(message({"card": {}}))
    assert malformed.value.permanent
    assert not AibotCardUpdateSender(Connection({}, subscribed=False)).ready  # left to the connection's process
    down = AibotCardUpdateSender(Connection({"aibot:msg:click-1": "r"}, fail=NotConnected("gone", "x")))
    with pytest.raises(DeliveryError) as transient:
        await down.send(message({"template_card": card("t@0123@0@d")}))
    assert not transient.value.permanent  # retried (WeCom refuses it once the 5 s have passed: then permanent)
