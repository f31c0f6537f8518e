"""The long connection's transport against the fake: subscribe, refusals, heartbeats both ways, reconnect backoff,
being kicked by a newer connection, frames it cannot read, replies and pushes acknowledged by req_id."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from bot.domain.events import CardClick, EnterChat, TextMessage
from bot.sandbox.fake import FakeWeCom
from bot.wecom.errors import RateLimited, WeComError
from bot.wecom.longconn import AckTimeout, NotConnected
from bot.wecom.parse import AIBOT_SOURCE
from tests.wecom.longconn.conftest import BOT, SECRET, Connect, RecordingInbox, Sleeper, Ticks

CARD = {
    "card_type": "button_interaction",
    "main_title": {"title": "工单 2026112300123"},
    "task_id": "ticket-123",
    "button_list": [{"text": "接单", "key": "accept"}, {"text": "退回", "key": "return"}],
}


async def test_subscribes_with_its_credentials_and_keeps_the_heartbeat(fake: FakeWeCom, connect: Connect) -> None:
    connection = connect(heartbeat_interval=0.02)
    await connection.wait_subscribed()
    link = await fake.aibot.wait_subscribed(BOT)
    subscribe = link.received[0]
    assert subscribe["cmd"] == "aibot_subscribe"
    assert subscribe["body"] == {"bot_id": BOT, "secret": SECRET}
    assert subscribe["headers"]["req_id"].startswith("aibot_subscribe_")
    await fake.aibot.wait_until(lambda: fake.aibot.pings[BOT] >= 3)
    pings = [frame for frame in link.received if frame.get("cmd") == "ping"]
    assert len({frame["headers"]["req_id"] for frame in pings}) == len(pings)  # a fresh req_id each
    assert connection.subscribed
    assert fake.aibot.subscribes[BOT] == 1  # every ping answered: never reconnected
    assert SECRET not in repr(connection)


async def test_a_refused_subscribe_is_logged_and_retried_with_a_long_backoff(
    fake: FakeWeCom, connect: Connect, sleeper: Sleeper, caplog: pytest.LogCaptureFixture
) -> None:
    sleeper.hold()
    connection = connect(secret="not-the-secret")
    await sleeper.wait_calls(1)
    assert connection.state == "refused"
    assert sleeper.delays == [300.0]  # not the 1 s of a dropped connection: nothing changes until someone acts
    assert fake.aibot.refusals[BOT] == 1
    assert fake.aibot.connections == []  # the socket is gone
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "853000" in record.getMessage()
    assert "WECOM_AIBOT_SECRET" in record.getMessage()
    assert "not-the-secret" not in caplog.text

    fake.aibot.robots[BOT] = "not-the-secret"  # the admin resets the secret to what the bot has
    sleeper.release()
    await connection.wait_subscribed()
    assert sleeper.delays == [300.0]


async def test_a_refused_socket_left_open_by_wecom_is_closed_by_the_bot(
    fake: FakeWeCom, connect: Connect, sleeper: Sleeper
) -> None:
    fake.aibot.close_on_refused = False  # what the live service was seen doing
    sleeper.hold()
    connect(secret="wrong")
    await sleeper.wait_calls(1)
    await fake.aibot.wait_until(lambda: fake.aibot.connections == [])
    assert fake.aibot.refusals[BOT] == 1


async def test_a_busy_subscribe_is_retried_like_a_drop(fake: FakeWeCom, connect: Connect, sleeper: Sleeper) -> None:
    fake.aibot.refuse_next(errcode=-1)
    connection = connect()
    await connection.wait_subscribed()
    assert sleeper.delays == [1.0]


async def test_a_subscribe_left_unanswered_is_given_up_and_retried(
    fake: FakeWeCom, connect: Connect, sleeper: Sleeper, caplog: pytest.LogCaptureFixture
) -> None:
    fake.aibot.omit_acks("aibot_subscribe")
    connection = connect(subscribe_timeout=0.05)
    await connection.wait_subscribed()
    assert sleeper.delays == [1.0]
    assert "no answer to the subscription" in caplog.text
    assert fake.aibot.subscribes[BOT] == 1


async def test_a_dropped_connection_reconnects_with_exponential_backoff_reset_once_stable(
    fake: FakeWeCom, connect: Connect, sleeper: Sleeper, ticks: Ticks
) -> None:
    connection = connect()
    for n in range(1, 5):
        await connection.wait_subscribed(n)
        await fake.aibot.drop(BOT)
    await connection.wait_subscribed(5)
    assert sleeper.delays == [1.0, 2.0, 4.0, 8.0]

    ticks.now += 61  # up for a minute: healthy, the count starts again
    await fake.aibot.drop(BOT)
    await connection.wait_subscribed(6)
    assert sleeper.delays[-1] == 1.0


async def test_backoff_is_capped_and_jittered(connect: Connect) -> None:
    connection = connect(random=lambda: 1.0)
    assert [round(connection._backoff(n), 3) for n in (1, 2, 7, 8, 30)] == [1.2, 2.4, 60.0, 60.0, 60.0]
    connection.jitter = 0.0
    assert [connection._backoff(n) for n in (1, 2, 3, 6, 7, 8)] == [1.0, 2.0, 4.0, 32.0, 60.0, 60.0]


async def test_a_link_without_heartbeat_answers_is_taken_for_dead(
    fake: FakeWeCom, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    fake.aibot.omit_acks("ping", times=2)  # the link is up, but nothing comes back
    connection = connect(heartbeat_interval=0.02)
    await connection.wait_subscribed(2)
    assert "no heartbeat answer to 2 pings, connection considered dead" in caplog.text
    assert fake.aibot.subscribes[BOT] == 2


async def test_wecom_closes_a_connection_that_sends_no_heartbeat(fake: FakeWeCom, connect: Connect) -> None:
    fake.aibot.heartbeat_timeout = 0.05
    connection = connect(heartbeat_interval=3600.0)
    await connection.wait_subscribed(2)  # closed by the fake, and back


async def test_kicked_by_a_newer_connection_it_stays_down(
    fake: FakeWeCom, connect: Connect, sleeper: Sleeper, inbox: RecordingInbox, caplog: pytest.LogCaptureFixture
) -> None:
    first = connect()
    await first.wait_subscribed()
    second = connect()
    await second.wait_subscribed()
    assert await first.wait_for_state("kicked") == "kicked"
    assert fake.aibot.kicks[BOT] == 1
    assert sleeper.delays == []  # no reconnect that would kick the newer one in turn
    assert "another connection subscribed" in caplog.text
    assert inbox.calls == []  # the disconnected_event is the transport's business, not the inbox's
    await fake.aibot.push_message(BOT, "还在吗", userid="wuhao")
    await inbox.wait(1)
    assert fake.aibot.subscribes[BOT] == 2
    with pytest.raises(NotConnected):
        await first.send("wuhao", {"msgtype": "markdown", "markdown": {"content": "x"}})


async def test_a_kicked_connection_may_come_back_when_told_to(
    fake: FakeWeCom, connect: Connect, sleeper: Sleeper
) -> None:
    first = connect(kicked_retry=600.0)
    await first.wait_subscribed()
    sleeper.hold()
    second = connect()
    await second.wait_subscribed()
    await sleeper.wait_calls(1)
    assert sleeper.delays == [600.0]


async def test_unreadable_frames_are_logged_and_ignored(
    fake: FakeWeCom, connect: Connect, inbox: RecordingInbox, caplog: pytest.LogCaptureFixture
) -> None:
    connection = connect()
    await connection.wait_subscribed()
    await fake.aibot.push_raw(BOT, "{not json")
    await fake.aibot.push_raw(BOT, "[1, 2]")
    await fake.aibot.push_raw(BOT, json.dumps({"cmd": "aibot_future_cmd", "headers": {"req_id": "r1"}, "body": {}}))
    await fake.aibot.push_raw(BOT, json.dumps({"cmd": "aibot_msg_callback", "headers": {"req_id": "r2"}}))
    await fake.aibot.push_raw(
        BOT,
        json.dumps({"cmd": "aibot_msg_callback", "headers": {"req_id": "r3"}, "body": {"msgtype": "text"}}),
    )
    await fake.aibot.push_raw(BOT, '{"cmd": "aibot_msg_callback", "cmd": "twice"}')
    await fake.aibot.push_raw(BOT, json.dumps({"headers": {"req_id": "nobody-asked"}, "errcode": 0}))
    await fake.aibot.push_message(BOT, "查一下 123", userid="wuhao")
    await inbox.wait(1)  # the next good frame still arrives, on the same connection
    assert [type(e) for e in inbox.events] == [TextMessage]
    assert connection.subscribed
    assert fake.aibot.subscribes[BOT] == 1
    for expected in ("not a JSON object", "unknown cmd 'aibot_future_cmd'", "without a body", '"msgid" is missing'):
        assert expected in caplog.text


async def test_a_slow_store_blocks_neither_heartbeats_nor_replies(
    fake: FakeWeCom, connect: Connect, inbox: RecordingInbox
) -> None:
    connection = connect(heartbeat_interval=0.02)
    await connection.wait_subscribed()
    inbox.gate.clear()  # the store hangs
    first = await fake.aibot.push_message(BOT, "一", userid="wuhao")
    await fake.aibot.push_message(BOT, "二", userid="wuhao")
    pings = fake.aibot.pings[BOT]
    await fake.aibot.wait_until(lambda: fake.aibot.pings[BOT] >= pings + 4)
    await connection.respond(first, {"msgtype": "stream", "stream": {"id": "s1", "finish": True, "content": "收到"}})
    assert fake.aibot.subscribes[BOT] == 1
    assert inbox.calls == []
    inbox.gate.set()
    await inbox.wait(2)
    assert [e.text for e in inbox.events if isinstance(e, TextMessage)] == ["一", "二"]  # in order


async def test_a_failing_store_is_retried_until_the_frame_is_stored(
    fake: FakeWeCom, connect: Connect, inbox: RecordingInbox, sleeper: Sleeper
) -> None:
    # WeCom does not send a frame twice: while the process lives, a frame is never given up
    failures = 12

    class FlakyInbox(RecordingInbox):
        async def accept(self, *args: Any, **kwargs: Any) -> bool:
            nonlocal failures
            if failures:
                failures -= 1
                raise ConnectionError("the database is restarting")
            return await super().accept(*args, **kwargs)

    flaky = FlakyInbox()
    connection = connect(inbound=flaky)
    await connection.wait_subscribed()
    await fake.aibot.push_message(BOT, "一", userid="wuhao")
    await fake.aibot.push_message(BOT, "二", userid="wuhao")
    await flaky.wait(2)
    assert [e.text for e in flaky.events if isinstance(e, TextMessage)] == ["一", "二"]  # in order, none lost
    assert sleeper.delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0]  # capped backoff


async def test_events_become_typed_events_with_their_req_id(
    fake: FakeWeCom, connect: Connect, inbox: RecordingInbox
) -> None:
    connection = connect()
    await connection.wait_subscribed()
    entered = await fake.aibot.push_event(BOT, "enter_chat", userid="wuhao")
    clicked = await fake.aibot.push_event(
        BOT, "template_card_event", userid="wuhao", chatid="grp01", event_key="accept", task_id="ticket-123"
    )
    await fake.aibot.push_event(BOT, "feedback_event", userid="wuhao")
    await inbox.wait(3)
    enter, click, feedback = inbox.events
    assert isinstance(enter, EnterChat)
    assert isinstance(click, CardClick)
    assert (click.event_key, click.task_id, click.chat_id, click.chat_type) == (
        "accept",
        "ticket-123",
        "grp01",
        "group",
    )
    assert click.response_url is not None
    assert feedback.dedup_key.startswith("aibot:msg:")
    assert connection.req_id_for(enter) == entered
    assert connection.req_id_for(click) == clicked
    assert all(source == AIBOT_SOURCE for source, *_ in inbox.calls)


async def test_replies_welcomes_card_updates_and_pushes_are_acknowledged(
    fake: FakeWeCom, connect: Connect, inbox: RecordingInbox
) -> None:
    connection = connect()
    await connection.wait_subscribed()
    asked = await fake.aibot.push_message(BOT, "进度", userid="wuhao", chatid="grp01")
    entered = await fake.aibot.push_event(BOT, "enter_chat", userid="lina")
    clicked = await fake.aibot.push_event(
        BOT, "template_card_event", userid="wuhao", chatid="grp01", event_key="accept", task_id="ticket-123"
    )

    answer = await connection.respond(asked, {"msgtype": "stream", "stream": {"id": "s1", "content": "处理中"}})
    assert answer["errcode"] == 0
    assert answer["headers"]["req_id"] == asked
    await connection.respond(asked, {"msgtype": "stream", "stream": {"id": "s1", "finish": True, "content": "已办结"}})
    await connection.respond_welcome(entered, {"msgtype": "text", "text": {"content": "您好"}})
    await connection.update_card(clicked, {"template_card": {**CARD, "main_title": {"title": "已接单"}}})
    await connection.send("grp01", {"msgtype": "markdown", "markdown": {"content": "**新工单** 2026112300124"}})

    kinds = [(d.kind, d.to["chatid"], d.msgtype) for d in fake.aibot.deliveries(BOT)]
    assert kinds == [
        ("aibot_respond", "grp01", "stream"),
        ("aibot_respond", "grp01", "stream"),
        ("aibot_welcome", "lina", "text"),
        ("aibot_update_card", "grp01", "template_card"),
        ("aibot_send", "grp01", "markdown"),
    ]
    assert len(fake.messages_to(chatid="grp01")) == 4
    sent = fake.aibot.current(BOT).received[-1]  # type: ignore[union-attr]
    assert sent["cmd"] == "aibot_send_msg"
    assert sent["headers"]["req_id"].startswith("aibot_send_msg_")
    assert sent["body"]["chatid"] == "grp01"


async def test_replies_that_wecom_refuses_raise_typed_errors(fake: FakeWeCom, connect: Connect) -> None:
    connection = connect(ack_timeout=0.1)
    await connection.wait_subscribed()
    entered = await fake.aibot.push_event(BOT, "enter_chat", userid="lina")

    with pytest.raises(WeComError) as refused:  # a stream reply to an event (observed: 846605)
        await connection.respond(entered, {"msgtype": "stream", "stream": {"id": "s", "content": "x"}})
    assert refused.value.errcode == 846605
    assert refused.value.permanent
    assert refused.value.path == "aibot_respond_msg"

    fake.aibot.fail_next("aibot_send_msg", 45009)
    with pytest.raises(RateLimited):
        await connection.send("grp01", {"msgtype": "markdown", "markdown": {"content": "x"}})

    fake.aibot.omit_acks("aibot_send_msg")
    with pytest.raises(AckTimeout) as timeout:
        await connection.send("grp01", {"msgtype": "markdown", "markdown": {"content": "y"}})
    assert timeout.value.retryable
    assert timeout.value.request_sent

    with pytest.raises(ValueError, match="msgtype 'text'"):
        await connection.send("grp01", {"msgtype": "text", "text": {"content": "z"}})
    with pytest.raises(ValueError, match="chatid"):
        await connection.send(" ", {"msgtype": "markdown", "markdown": {"content": "z"}})
    assert connection.subscribed  # none of it costs the connection


async def test_replies_sharing_a_req_id_go_one_at_a_time(fake: FakeWeCom, connect: Connect) -> None:
    connection = connect()
    await connection.wait_subscribed()
    asked = await fake.aibot.push_message(BOT, "进度", userid="wuhao")
    fake.aibot.delay_acks(0.05, "aibot_respond_msg")
    frames = [{"msgtype": "stream", "stream": {"id": "s", "content": "一" * n}} for n in range(1, 6)]
    await asyncio.gather(*(connection.respond(asked, frame) for frame in frames))
    contents = [d.body["stream"]["content"] for d in fake.aibot.deliveries(BOT)]
    assert contents == ["一" * n for n in range(1, 6)]


async def test_a_request_cut_off_by_a_drop_fails_as_transient(
    fake: FakeWeCom, connect: Connect, sleeper: Sleeper
) -> None:
    connection = connect()
    await connection.wait_subscribed()
    sleeper.hold()
    fake.aibot.omit_acks("aibot_send_msg")
    sending = asyncio.create_task(connection.send("grp01", {"msgtype": "markdown", "markdown": {"content": "x"}}))
    await fake.aibot.wait_until(lambda: any(f.get("cmd") == "aibot_send_msg" for f in fake.aibot.current(BOT).received))  # type: ignore[union-attr]
    await fake.aibot.drop(BOT)
    with pytest.raises(NotConnected) as cut:
        await sending
    assert cut.value.retryable
    assert cut.value.request_sent  # it may have arrived
    with pytest.raises(NotConnected) as down:
        await connection.send("grp01", {"msgtype": "markdown", "markdown": {"content": "y"}})
    assert not down.value.request_sent
