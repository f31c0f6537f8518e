"""The long connection with the real inbox and outbox, on both databases: frames persisted before they are
processed, WeCom's duplicates applied once, proactive pushes that survive a lost connection and arrive once, and
the app wiring it all from the environment."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import AIBOT_KICKED_RETRY, OUTBOX, create_app
from bot.app.inbound import aibot_welcome
from bot.domain.clock import FrozenClock
from bot.domain.events import CardClick, InboundEvent, TextMessage
from bot.sandbox.fake import FakeWeCom
from bot.services.inbox import InboundProcessor
from bot.services.ratelimit import Limit, MemoryRateLimiter
from bot.services.sinks import RecordingSink
from bot.web.keys import AIBOT_LEADER, AIBOT_LEADER_TASK, STORE, WECOM_INBOUND
from bot.wecom.callbacks import WECOM_CALLBACKS
from bot.wecom.longconn import AIBOT_CONNECTION, NotConnected
from bot.wecom.parse import AIBOT_SOURCE, read_stored
from config.model import BotConfig
from config.settings import Settings
from notifiers.aibot_ws import AIBOT_WS, RECONNECT_WAIT, AibotWsSender
from notifiers.outbox import Deferred, DeliveryError, OutboundMessage, OutboxWorker
from store import inbox as inbox_repo
from store import outbox as outbox_repo
from store.core import Store
from store.leader import Leader
from store.models import inbox as inbox_table
from store.models import outbox
from tests.wecom.conftest import Sleeper
from tests.wecom.longconn.conftest import BOT, SECRET, Connect, RecordingInbox

Client = TestClient[Any, Any]


@pytest.fixture
async def processor(store: Store, clock: FrozenClock) -> AsyncIterator[InboundProcessor]:
    processor = InboundProcessor(store, RecordingSink(), clock, sources=[AIBOT_SOURCE], read=read_stored)
    yield processor
    await processor.close()


@pytest.fixture
def inbox(processor: InboundProcessor) -> RecordingInbox:
    return RecordingInbox(processor)


async def inbox_rows(store: Store) -> list[dict[str, Any]]:
    async with store.reading() as conn:
        result = await conn.execute(select(inbox_table).order_by(inbox_table.c.id))
        return [dict(row) for row in result.mappings()]


def sink_of(processor: InboundProcessor) -> RecordingSink:
    assert isinstance(processor.sink, RecordingSink)
    return processor.sink


async def test_messages_are_persisted_then_processed_with_the_mention_removed(
    fake: FakeWeCom, connect: Connect, inbox: RecordingInbox, processor: InboundProcessor, store: Store
) -> None:
    connection = connect()
    await connection.wait_subscribed()
    in_group = await fake.aibot.push_message(
        BOT, "查询 2026112300123", userid="wuhao", chatid="grp01", robot_name="热线助手", msgid="m-group"
    )
    in_private = await fake.aibot.push_message(BOT, "我的工单", userid="lina", msgid="m-single")
    await inbox.wait(2)
    await processor.drain()

    rows = await inbox_rows(store)
    assert [(r["source"], r["dedup_key"], r["status"]) for r in rows] == [
        (AIBOT_SOURCE, "aibot:msg:m-group", "done"),
        (AIBOT_SOURCE, "aibot:msg:m-single", "done"),
    ]
    # the stored payload is the callback mode's plaintext: recovery re-parses it the same way
    assert read_stored(AIBOT_SOURCE, rows[0]["payload"], rows[0]["received_at"]) == sink_of(processor).events[0]

    group, single = sink_of(processor).events
    assert isinstance(group, TextMessage)
    assert isinstance(single, TextMessage)
    assert (group.text, group.chat_type, group.chat_id, group.sender.userid) == (
        "查询 2026112300123",
        "group",
        "grp01",
        "wuhao",
    )
    assert (single.text, single.chat_type, single.chat_id) == ("我的工单", "single", None)
    assert group.response_url is not None
    assert connection.req_id_for(group) == in_group
    assert connection.req_id_for(single) == in_private


async def test_a_frame_delivered_twice_is_processed_once(
    fake: FakeWeCom, connect: Connect, inbox: RecordingInbox, processor: InboundProcessor, store: Store
) -> None:
    connection = connect()
    await connection.wait_subscribed()
    req_id = await fake.aibot.push_message(BOT, "催办", userid="wuhao", msgid="m-1")
    await fake.aibot.redeliver(req_id)  # the very same frame
    await fake.aibot.push_message(BOT, "催办", userid="wuhao", msgid="m-1")  # the same msgid, another frame
    await inbox.wait(3)
    await processor.drain()
    assert [fresh for *_, fresh in inbox.calls] == [True, False, False]
    assert len(await inbox_rows(store)) == 1
    assert len(sink_of(processor).events) == 1


async def test_a_card_click_reaches_the_sink_and_the_card_is_updated(
    fake: FakeWeCom, connect: Connect, inbox: RecordingInbox, processor: InboundProcessor
) -> None:
    connection = connect()
    await connection.wait_subscribed()
    await fake.aibot.push_event(
        BOT, "template_card_event", userid="wuhao", chatid="grp01", event_key="accept", task_id="ticket-123"
    )
    await inbox.wait(1)
    await processor.drain()
    [click] = sink_of(processor).events
    assert isinstance(click, CardClick)
    assert (click.event_key, click.task_id, click.sender.userid) == ("accept", "ticket-123", "wuhao")
    req_id = connection.req_id_for(click)
    assert req_id is not None
    card = {
        "card_type": "button_interaction",
        "main_title": {"title": "已接单"},
        "task_id": "ticket-123",
        "button_list": [{"text": "已接单", "key": "done"}],
    }
    await connection.update_card(req_id, {"template_card": card, "userids": ["wuhao"]})
    [updated] = fake.aibot.deliveries(BOT)
    assert updated.kind == "aibot_update_card"
    assert updated.to["userids"] == ["wuhao"]


async def enqueue(store: Store, clock: FrozenClock, payload: Mapping[str, Any], destination: str = "grp01") -> None:
    async with store.transaction() as conn:
        await outbox_repo.enqueue(
            conn,
            [
                {
                    "channel": AIBOT_WS,
                    "destination": destination,
                    "idempotency_key": f"{AIBOT_WS}:{uuid.uuid4().hex}",
                    "ordering_key": None,
                    "priority": 5,
                    "payload": dict(payload),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": clock.now(),
                    "created_at": clock.now(),
                }
            ],
        )


async def outbox_rows(store: Store) -> list[dict[str, Any]]:
    async with store.reading() as conn:
        result = await conn.execute(select(outbox).order_by(outbox.c.id))
        return [dict(row) for row in result.mappings()]


async def test_a_push_while_disconnected_waits_in_the_outbox_and_arrives_once(
    fake: FakeWeCom, connect: Connect, sleeper: Sleeper, store: Store, clock: FrozenClock
) -> None:
    connection = connect()
    await connection.wait_subscribed()
    worker = OutboxWorker(store, {AIBOT_WS: AibotWsSender(connection, MemoryRateLimiter(), clock)}, clock, owner="t")
    sleeper.hold()
    await fake.aibot.drop(BOT)  # the link is gone and the reconnect waits
    await sleeper.wait_calls(1)
    await enqueue(store, clock, {"chatid": "grp01", "msgtype": "markdown", "markdown": {"content": "新工单 124"}})

    assert await worker.run_once() == 0  # not claimed while the connection is down
    [row] = await outbox_rows(store)
    assert (row["status"], row["attempts"], row["lease_owner"]) == ("pending", 0, None)
    assert fake.aibot.deliveries(BOT) == []

    # claimed just before the link dropped: deferred, not a failed attempt
    sender = worker.senders[AIBOT_WS]
    with pytest.raises(Deferred, match="long connection is down"):
        await sender.send(
            OutboundMessage(
                id=row["id"],
                channel=AIBOT_WS,
                destination="grp01",
                idempotency_key="k",
                payload=row["payload"],
                attempts=0,
            )
        )

    sleeper.release()
    await connection.wait_subscribed(2)
    assert await worker.run_once() == 1  # sent as soon as the connection is back
    clock.advance(seconds=600)
    assert await worker.run_once() == 0
    [row] = await outbox_rows(store)
    assert row["status"] == "sent"
    [delivered] = fake.messages_to(chatid="grp01")
    assert delivered.kind == "aibot_send"
    assert delivered.body["markdown"]["content"] == "新工单 124"


async def test_the_sender_paces_each_chat_and_dead_letters_what_wecom_cannot_take(
    fake: FakeWeCom, connect: Connect, clock: FrozenClock
) -> None:
    connection = connect()
    await connection.wait_subscribed()
    sender = AibotWsSender(connection, MemoryRateLimiter(), clock)

    def message(payload: Mapping[str, Any], destination: str = "grp01") -> OutboundMessage:
        return OutboundMessage(
            id=1, channel=AIBOT_WS, destination=destination, idempotency_key="k", payload=payload, attempts=0
        )

    for i in range(20):
        await sender.send(message({"msgtype": "markdown", "content": {"content": f"第{i}条"}}))
    with pytest.raises(DeliveryError) as paced:
        await sender.send(message({"msgtype": "markdown", "content": {"content": "第21条"}}))
    assert not paced.value.permanent
    assert paced.value.retry_after is not None
    assert 59 < paced.value.retry_after <= 61
    await sender.send(message({"msgtype": "markdown", "markdown": {"content": "另一个群"}}, destination="grp02"))
    await sender.send(message({"chatid": "wuhao", "msgtype": "markdown", "markdown": {"content": "单聊"}}))
    assert len(fake.messages_to(chatid="grp01")) == 20
    assert len(fake.messages_to(chatid="grp02")) == 1
    assert len(fake.messages_to(chatid="wuhao")) == 1

    for bad in (
        {"msgtype": "text", "text": {"content": "x"}},  # not a type aibot_send_msg takes
        {"msgtype": "markdown"},  # no content
        {"chatid": 5, "msgtype": "markdown", "markdown": {"content": "x"}},
    ):
        with pytest.raises(DeliveryError) as refused:
            await sender.send(message(bad, destination="grp03"))
        assert refused.value.permanent
    fake.aibot.fail_next("aibot_send_msg", 40008)
    with pytest.raises(DeliveryError) as rejected:  # WeCom's own refusal, mapped as the HTTP API's
        await sender.send(message({"msgtype": "markdown", "markdown": {"content": "x"}}, destination="grp03"))
    assert rejected.value.permanent


@pytest.fixture
def settings(database_url: str, settings_for: Callable[..., Settings], fake: FakeWeCom) -> Settings:
    """A bot configured for the robot's long connection only, against the fake."""
    return settings_for(
        database_url,
        WECOM_AIBOT_BOT_ID=BOT,
        WECOM_AIBOT_SECRET=SECRET,
        WECOM_AIBOT_WS_URL=fake.aibot.url,
        WECOM_API_BASE=fake.base_url or "",
    )


async def test_the_app_runs_the_long_connection_from_the_environment(
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    sandbox_config: BotConfig,
    clock: FrozenClock,
    fake: FakeWeCom,
) -> None:
    assert settings.aibot_long_connection
    assert settings.wecom_configured  # no corp id needed
    assert SECRET not in repr(settings)
    client = await aiohttp_client(create_app(settings, sandbox_config, clock=clock))
    app = client.app
    assert WECOM_CALLBACKS not in app  # no callback URL: nothing inbound is open
    assert app[WECOM_INBOUND].sources == (AIBOT_SOURCE,)
    assert AIBOT_WS in app[OUTBOX].senders
    connection = app[AIBOT_CONNECTION]
    await connection.wait_subscribed()
    await fake.aibot.push_message(BOT, "在吗", userid="wuhao", msgid="m-app")
    await connection.wait_taken(1)
    processor = app[WECOM_INBOUND]
    await processor.drain()
    [event] = sink_of(processor).events
    assert isinstance(event, TextMessage)
    async with app[STORE].reading() as conn:
        row = await inbox_repo.inbound(conn, AIBOT_SOURCE, "aibot:msg:m-app")
    assert row is not None


async def test_of_two_processes_only_the_leader_holds_the_connection(
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    sandbox_config: BotConfig,
    clock: FrozenClock,
    fake: FakeWeCom,
) -> None:
    first = await aiohttp_client(create_app(settings, sandbox_config, clock=clock, run_workers=False))
    await first.app[AIBOT_CONNECTION].wait_subscribed()
    assert first.app[AIBOT_LEADER].leading.is_set()
    health = await (await first.get("/healthz")).json()
    assert health["checks"]["wecom_aibot"] == {"status": "ok", "state": "subscribed"}
    if first.app[STORE].backend == "sqlite":
        return  # the embedded default runs one process: it is the leader

    second = await aiohttp_client(create_app(settings, sandbox_config, clock=clock, run_workers=False))
    health = await (await second.get("/healthz")).json()  # served as soon as it runs; the election runs beside
    assert health["checks"]["wecom_aibot"]["status"] == "standby"
    assert not second.app[AIBOT_LEADER].leading.is_set()
    assert fake.aibot.subscribes[BOT] == 1  # the second never connected, so it kicked nobody
    # and it leaves the robot's pushes to the leader: it does not claim them
    await enqueue(store_of(second), clock, {"chatid": "grp01", "msgtype": "markdown", "markdown": {"content": "x"}})
    workers = [
        OutboxWorker(
            store_of(c),
            {AIBOT_WS: AibotWsSender(c.app[AIBOT_CONNECTION], MemoryRateLimiter(), clock)},
            clock,
            owner=name,
        )
        for c, name in ((first, "first"), (second, "second"))
    ]
    assert await workers[1].run_once() == 0
    assert await workers[0].run_once() == 1
    assert len(fake.messages_to(chatid="grp01")) == 1


def store_of(client: Client) -> Store:
    return client.app[STORE]


class CountingLimiter(MemoryRateLimiter):
    """Counts the slots asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    async def acquire_all(self, keys: Sequence[str], limits: Sequence[Limit], now: float) -> float:
        self.asked += 1
        return await super().acquire_all(keys, limits, now)


async def test_a_msgtype_wecom_cannot_take_is_dead_lettered_without_taking_a_slot(
    connect: Connect, clock: FrozenClock
) -> None:
    connection = connect()
    await connection.wait_subscribed()
    limiter = CountingLimiter()
    sender = AibotWsSender(connection, limiter, clock)
    message = OutboundMessage(
        id=1,
        channel=AIBOT_WS,
        destination="grp01",
        idempotency_key="k",
        payload={"msgtype": "text", "text": {"content": "x"}},
        attempts=0,
    )
    with pytest.raises(DeliveryError, match="does not take msgtype 'text'") as refused:
        await sender.send(message)
    assert refused.value.permanent
    assert limiter.asked == 0


class DropsBeforeSending:
    """A connection that is up at the sender's check and gone when the send is tried."""

    bot_id = BOT
    subscribed = True
    state = "subscribed"

    def __init__(self, *, request_sent: bool) -> None:
        self.request_sent = request_sent

    async def send(self, chatid: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        raise NotConnected("not subscribed (backoff)", "aibot_send_msg", request_sent=self.request_sent)


async def test_a_link_lost_after_the_check_defers_a_send_that_did_not_go_out(clock: FrozenClock) -> None:
    message = OutboundMessage(
        id=1,
        channel=AIBOT_WS,
        destination="grp01",
        idempotency_key="k",
        payload={"msgtype": "markdown", "markdown": {"content": "x"}},
        attempts=0,
    )
    sender = AibotWsSender(DropsBeforeSending(request_sent=False), MemoryRateLimiter(), clock)
    with pytest.raises(Deferred, match="long connection is down") as deferred:  # not an attempt
        await sender.send(message)
    assert deferred.value.retry_after == RECONNECT_WAIT

    sender = AibotWsSender(DropsBeforeSending(request_sent=True), MemoryRateLimiter(), clock)
    with pytest.raises(DeliveryError) as failed:  # it may have arrived: an unsure attempt, resent marked
        await sender.send(message)
    assert not isinstance(failed.value, Deferred)
    assert not failed.value.permanent
    assert failed.value.maybe_sent


async def test_a_proactive_push_resent_after_an_unsure_send_is_marked(
    fake: FakeWeCom, connect: Connect, clock: FrozenClock
) -> None:
    connection = connect()
    await connection.wait_subscribed()
    sender = AibotWsSender(connection, MemoryRateLimiter(), clock)
    payload = {"chatid": "grp01", "msgtype": "markdown", "markdown": {"content": "**新工单 2026112300001**"}}
    await sender.send(
        OutboundMessage(id=1, channel=AIBOT_WS, destination="grp01", idempotency_key="k", payload=payload, attempts=0)
    )
    await sender.send(
        OutboundMessage(
            id=1, channel=AIBOT_WS, destination="grp01", idempotency_key="k", payload=payload, attempts=1, resend=True
        )
    )
    shown = [d.body["markdown"]["content"] for d in fake.messages_to(chatid="grp01")]
    assert shown == ["**新工单 2026112300001**", "**【补发】新工单 2026112300001**"]


async def test_a_welcome_too_late_for_wecom_is_logged_not_raised(
    fake: FakeWeCom, connect: Connect, inbox: RecordingInbox, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    connection = connect()
    welcome = aibot_welcome(connection, "您好")
    done = asyncio.Event()

    async def on_event(event: InboundEvent, req_id: str) -> None:
        await welcome(event, req_id)
        done.set()

    connection.on_event = on_event
    await connection.wait_subscribed()
    inbox.gate.clear()  # the store is slow ...
    await fake.aibot.push_event(BOT, "enter_chat", userid="lina")
    clock.advance(seconds=6)  # ... longer than WeCom's 5 s
    inbox.gate.set()
    await done.wait()
    assert fake.aibot.deliveries(BOT) == []
    assert "welcome not sent" in caplog.text
    assert "846605" in caplog.text
    assert connection.subscribed


async def test_the_app_welcomes_whoever_enters_the_chat_once(
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    sandbox_config: BotConfig,
    clock: FrozenClock,
    fake: FakeWeCom,
) -> None:
    welcome = sandbox_config.office.welcome_text
    assert welcome
    client = await aiohttp_client(create_app(settings, sandbox_config, clock=clock, run_workers=False))
    connection = client.app[AIBOT_CONNECTION]
    await connection.wait_subscribed()
    entered = await fake.aibot.push_event(BOT, "enter_chat", userid="lina", msgid="m-enter")
    await fake.aibot.wait_until(lambda: len(fake.aibot.deliveries(BOT)) == 1)
    [delivered] = fake.aibot.deliveries(BOT)
    assert (delivered.kind, delivered.to["req_id"], delivered.to["userid"]) == ("aibot_welcome", entered, "lina")
    assert delivered.body == {"msgtype": "text", "text": {"content": welcome}}  # callback mode's passive reply

    await fake.aibot.push_message(BOT, "你好", userid="lina")  # a message is not welcomed
    await connection.wait_taken(2)
    assert len(fake.aibot.deliveries(BOT)) == 1


async def test_the_app_guards_the_connection_with_its_leadership_and_retries_a_kick(
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> None:
    client = await aiohttp_client(create_app(settings, sandbox_config, clock=clock, run_workers=False))
    connection, leader = client.app[AIBOT_CONNECTION], client.app[AIBOT_LEADER]
    assert connection.may_connect == leader.holds
    assert connection.kicked_retry == AIBOT_KICKED_RETRY == 60.0
    await connection.wait_subscribed()
    assert await leader.holds()


async def test_healthz_reports_the_connection_down_when_the_election_stopped_in_this_process(
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    sandbox_config: BotConfig,
    clock: FrozenClock,
    fake: FakeWeCom,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(self: Leader, work: Callable[[], Awaitable[None]]) -> None:
        raise RuntimeError("the election failed")

    monkeypatch.setattr(Leader, "run", broken)
    client = await aiohttp_client(create_app(settings, sandbox_config, clock=clock, run_workers=False))
    await client.app[AIBOT_LEADER_TASK]  # _lead logged it and returned
    assert "no longer takes part in the election" in caplog.text
    response = await client.get("/healthz")
    assert response.status == 200
    health = await response.json()
    assert health["status"] == "degraded"
    check = health["checks"]["wecom_aibot"]
    assert check["status"] == "down"  # not "standby": nobody here will ever take the connection
    assert "election stopped" in check["reason"]
    assert fake.aibot.subscribes[BOT] == 0
