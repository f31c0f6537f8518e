"""The long connection across a change of leader: frames received are stored whatever happens to the socket or the
leadership, an old leader does not come back and kick the new one (``may_connect``), and a kicked connection comes
back after ``kicked_retry``. Nothing sleeps: the backoff's and the store retries' sleep is the :class:`Sleeper`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import pytest

from bot.domain.events import TextMessage
from bot.sandbox.fake import FakeWeCom
from tests.wecom.conftest import Sleeper
from tests.wecom.longconn.conftest import BOT, Connect, RecordingInbox


class StoreDown(RecordingInbox):
    """An inbox whose store fails while ``down`` (each failed accept is counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.failures = 0

    async def accept(self, *args: Any, **kwargs: Any) -> bool:
        if self.down:
            self.failures += 1
            raise ConnectionError("the database is unreachable")
        return await super().accept(*args, **kwargs)


class Guard:
    """``may_connect``: answers from ``answers`` in turn, then ``then``; counts the questions."""

    def __init__(self, answers: Iterable[bool] = (), *, then: bool = True) -> None:
        self.answers = list(answers)
        self.then = then
        self.asked = 0

    async def __call__(self) -> bool:
        self.asked += 1
        return self.answers.pop(0) if self.answers else self.then


def texts(inbox: RecordingInbox) -> list[str]:
    return [e.text for e in inbox.events if isinstance(e, TextMessage)]


# -- 1. frames received are stored ----------------------------------------------------------------------------------


async def test_a_frame_whose_store_is_cut_off_by_close_is_kept_and_stored_first_on_the_next_start(
    fake: FakeWeCom, connect: Connect, sleeper: Sleeper, caplog: pytest.LogCaptureFixture
) -> None:
    store = StoreDown()
    connection = connect(inbound=store)
    await connection.wait_subscribed()
    store.down = True
    sleeper.hold()  # the store's retry waits
    await fake.aibot.push_message(BOT, "一", userid="wuhao", msgid="m-1")
    await fake.aibot.push_message(BOT, "二", userid="wuhao", msgid="m-2")
    await sleeper.wait_calls(1)  # "一" is being retried
    assert store.failures == 1

    await connection.close(grace=0)  # shutdown while the store is down
    assert connection.state == "stopped"
    assert connection.unstored == 2  # the one being stored included
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "closed with 2 frames not persisted" in record.getMessage()
    assert record.msgids == ["m-1", "m-2"]  # type: ignore[attr-defined]

    store.down = False
    sleeper.release()
    connection.start()
    await store.wait(2)
    assert texts(store) == ["一", "二"]  # the cut-off frame first, none lost
    assert connection.unstored == 0
    await connection.wait_subscribed(2)


async def test_losing_the_leadership_closes_the_socket_but_what_was_received_is_still_stored(
    fake: FakeWeCom, connect: Connect, sleeper: Sleeper
) -> None:
    store = StoreDown()
    connection = connect(inbound=store)
    leading = asyncio.create_task(connection.run())  # the work a Leader holds
    await connection.wait_subscribed()
    store.down = True  # a database outage: the leader loses its lock's session ...
    sleeper.hold()
    await fake.aibot.push_message(BOT, "一", userid="wuhao")
    await sleeper.wait_calls(1)

    leading.cancel()  # ... and cancels the work
    with pytest.raises(asyncio.CancelledError):
        await leading
    assert connection.state == "stopped"
    await fake.aibot.wait_until(lambda: fake.aibot.connections == [])  # another process may connect now
    assert connection.unstored == 1

    store.down = False  # the database is back: the frame this process received is stored, no start() needed
    sleeper.release()
    await store.wait(1)
    assert texts(store) == ["一"]
    assert connection.unstored == 0
    assert fake.aibot.subscribes[BOT] == 1  # and the socket stayed closed


# -- 2. no kick from an old leader; a kicked connection comes back -------------------------------------------------


async def test_the_guard_is_asked_before_every_connect_and_subscribe(
    fake: FakeWeCom, connect: Connect, sleeper: Sleeper, caplog: pytest.LogCaptureFixture
) -> None:
    guard = Guard()
    connection = connect(may_connect=guard)
    await connection.wait_subscribed()
    assert guard.asked == 2  # connect, subscribe

    guard.then = False  # the lock is gone (the leader's watch has not noticed yet)
    await fake.aibot.drop(BOT)
    assert await connection.wait_for_state("standby") == "standby"
    assert guard.asked == 3
    assert sleeper.delays == [1.0]
    assert fake.aibot.subscribes[BOT] == 1  # it did not reconnect
    assert "not allowed to connect" in caplog.text


async def test_a_guard_that_says_no_after_the_connect_keeps_the_socket_from_subscribing(
    fake: FakeWeCom, connect: Connect
) -> None:
    guard = Guard([True, False])
    connection = connect(may_connect=guard)
    assert await connection.wait_for_state("standby") == "standby"
    await fake.aibot.wait_until(lambda: fake.aibot.connections == [])
    assert fake.aibot.subscribes[BOT] == 0


async def test_a_guard_that_fails_says_no(connect: Connect, caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> bool:
        raise TimeoutError

    connection = connect(may_connect=broken)
    assert await connection.wait_for_state("standby") == "standby"
    assert "could not ask whether to connect" in caplog.text


async def test_run_asks_the_guard_again_while_it_is_not_cancelled(
    fake: FakeWeCom, connect: Connect, sleeper: Sleeper
) -> None:
    # the guard said no, but the leader kept the lock (its session only answered late): run() must not stay down
    guard = Guard([False, False])
    connection = connect(may_connect=guard, guard_retry=7.0)
    assert await connection.wait_for_state("standby") == "standby"
    leading = asyncio.create_task(connection.run())
    await connection.wait_subscribed()
    assert sleeper.delays == [7.0]
    assert guard.asked == 4  # no, no; then connect, subscribe
    assert not leading.done()
    leading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leading
    assert connection.state == "stopped"


async def test_an_old_leader_that_kicked_the_new_one_is_kicked_back_and_stays_away(
    fake: FakeWeCom, connect: Connect, sleeper: Sleeper, caplog: pytest.LogCaptureFixture
) -> None:
    # the old leader lost its lock, but its link broke and it reconnected before its watch noticed: it kicks the new
    # leader. The new one comes back after kicked_retry and kicks it in turn; the old one's guard now says no.
    old_guard = Guard([True, True, True, True], then=False)
    sleeper.hold()
    old = connect(kicked_retry=60.0, may_connect=old_guard)
    await old.wait_subscribed()
    await fake.aibot.drop(BOT)
    await sleeper.wait_calls(1)  # the old one waits to reconnect ...
    new = connect(kicked_retry=60.0, may_connect=Guard())
    await new.wait_subscribed()  # ... while the new leader subscribes

    sleeper.release()  # the old one reconnects and kicks the new one, which comes back and kicks it
    assert await old.wait_for_state("standby") == "standby"
    await new.wait_subscribed(2)
    assert new.subscribed
    assert fake.aibot.subscribes[BOT] == 4
    assert fake.aibot.kicks[BOT] == 2
    assert sleeper.delays == [1.0, 60.0, 60.0]
    turns = [r for r in caplog.records if r.levelno == logging.ERROR and "take turns" in r.getMessage()]
    assert len(turns) == 2  # each kick is an error in the log
    assert old.state == "standby"  # and the old one stays away


async def test_a_kicked_connection_under_run_tries_again_instead_of_staying_down(
    fake: FakeWeCom, connect: Connect, sleeper: Sleeper, caplog: pytest.LogCaptureFixture
) -> None:
    first = connect(kicked_retry=60.0)
    leading = asyncio.create_task(first.run())
    await first.wait_subscribed()
    sleeper.hold()
    second = connect()  # an outsider with the same credentials
    await second.wait_subscribed()
    await sleeper.wait_calls(1)
    assert first.state == "kicked"
    assert sleeper.delays == [60.0]
    assert "take turns about every 60 s" in caplog.text
    sleeper.release()
    await first.wait_subscribed(2)  # back, and the outsider is kicked in turn
    assert await second.wait_for_state("kicked") == "kicked"
    assert not leading.done()
    leading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leading
