"""Careless and hostile callbacks through the real app, on both databases: an empty body, a lone surrogate escape or
U+0000 in a robot message, a body trickled byte by byte, a captured callback replayed after its inbox row was
purged, one dated ahead of us.

Each is refused with a JSON error and leaves no inbox row; time moves on the app's clock, never by sleeping (the
trickled body is the one real-time case: a short body timeout, and an answer awaited with a bound).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from bot.app import create_app
from bot.domain.clock import FrozenClock
from bot.services.retention import purge
from bot.web.keys import STORE
from config.model import BotConfig
from config.settings import Settings
from tests.wecom.callbacks.test_callbacks import (
    APP,
    ROBOT,
    T0,
    WECOM_ENV,
    Client,
    app_envelope,
    app_xml,
    processor,
    query,
    refused,
    robot_json,
    rows,
    seen,
)

MakeClient = Callable[..., Awaitable[Client]]
FUTURE_SKEW = timedelta(hours=1)  # as docs/integrators.md says: a callback may be dated this far ahead of us


def replay_window(config: BotConfig) -> timedelta:
    """As docs/integrators.md says: a callback may be as old as the inbox's retention less a day."""
    return timedelta(days=config.retention.inbox_days - 1)


@pytest.fixture
def make_client(
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> MakeClient:
    async def make(**env: str) -> Client:
        settings = settings_for(database_url, **WECOM_ENV, **env)
        return await aiohttp_client(create_app(settings, sandbox_config, clock=clock, run_workers=False))

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


# -- an empty body, a lone surrogate ------------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [True, False])
async def test_an_empty_body_is_refused_on_both_callbacks(client: Client, signed: bool) -> None:
    for path, crypto in (("/wecom/callback", APP), ("/wecom/aibot", ROBOT)):
        q = query(crypto, "") if signed else ""
        error = await refused(await client.post(f"{path}?{q}", data=b""), 400, "malformed")
        assert error["message"] == "the body is empty"
    assert await rows(client) == []


def _with_escape(field: str, escape: str) -> bytes:
    """A robot message whose ``field`` ends in the JSON ``escape``: ``\\ud800`` (a lone surrogate: no character),
    or ``\\u0000`` (U+0000, which PostgreSQL stores in no text)."""
    plain = robot_json("text", text={"content": "查询 2026112300123"}).decode()
    value = {"msgid": "CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI=", "content": "查询 2026112300123", "userid": "lisi"}[field]
    assert plain.count(f'"{value}"') == 1
    return plain.replace(f'"{value}"', f'"{value}{escape}"').encode()


@pytest.mark.parametrize("escape", ["\\ud800", "\\u0000"])
@pytest.mark.parametrize("field", ["msgid", "content", "userid"])
async def test_a_robot_message_holding_no_text_is_refused_and_not_stored(
    client: Client, field: str, escape: str
) -> None:
    plain = _with_escape(field, escape)
    encrypt = ROBOT.encrypt(plain)
    body = json.dumps({"encrypt": encrypt}).encode()
    for _ in range(2):  # WeCom's retry of a refused callback is refused the same way, not a 5xx it retries forever
        error = await refused(await client.post(f"/wecom/aibot?{query(ROBOT, encrypt)}", data=body), 400, "malformed")
        assert ("surrogate" if escape == "\\ud800" else "U+0000") in error["message"]
    await processor(client).drain()
    assert await rows(client) == []
    assert seen(client) == []


# -- a body trickled slowly ---------------------------------------------------------------------------------------


async def test_a_trickled_body_is_cut_off_by_the_body_timeout(make_client: MakeClient) -> None:
    """60 KiB declared, 100 bytes at a time: answered 408 once the (here short) body timeout has passed, however
    steadily the bytes come, and nothing stored."""
    client = await make_client(HTTP_BODY_TIMEOUT="0.5")
    reader, writer = await asyncio.open_connection(client.host, client.port)

    async def trickle() -> None:
        while True:
            writer.write(b" " * 100)
            await writer.drain()
            await asyncio.sleep(0.05)  # the sender's pace, not the test waiting for time to pass

    head = (
        f"POST /wecom/callback?{query(APP, 'x')} HTTP/1.1\r\nHost: {client.host}\r\n"
        "Content-Type: text/xml\r\nContent-Length: 61440\r\n\r\n"
    )
    writer.write(head.encode())
    sender = asyncio.create_task(trickle())
    started = time.monotonic()
    try:
        status_line = await asyncio.wait_for(reader.readline(), 10)
        elapsed = time.monotonic() - started
        head_lines = [status_line]
        while (line := await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b""):
            head_lines.append(line)
        length = next(int(h.split(b":")[1]) for h in head_lines if h.lower().startswith(b"content-length"))
        answer = json.loads(await asyncio.wait_for(reader.readexactly(length), 5))
    finally:
        sender.cancel()
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 408"), status_line
    assert answer["error"]["code"] == "body_timeout"
    assert 0.5 <= elapsed < 5
    assert await rows(client) == []


def test_the_body_timeout_is_a_setting(settings_for: Callable[..., Settings]) -> None:
    assert settings_for("sqlite:///unused.db").body_timeout == 10
    assert settings_for("sqlite:///unused.db", HTTP_BODY_TIMEOUT="2.5").body_timeout == 2.5


# -- replays and clocks -------------------------------------------------------------------------------------------


def _captured(msg_id: str, ts: int = T0) -> tuple[str, bytes]:
    """A signed app callback as an eavesdropper would keep it: its query string and body."""
    encrypt = APP.encrypt(app_xml(MsgType="text", Content="接单 2026112300123", MsgId=msg_id))
    return query(APP, encrypt, ts=str(ts)), app_envelope(encrypt)


async def _post(client: Client, captured: tuple[str, bytes]) -> Any:
    q, body = captured
    return await client.post(f"/wecom/callback?{q}", data=body)


async def test_a_callback_replayed_after_its_inbox_row_was_purged_is_refused(
    client: Client, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    captured = _captured("9001")
    assert (await _post(client, captured)).status == 200
    await processor(client).drain()
    window = replay_window(sandbox_config)

    # still inside the window: the inbox row is there, and the repeat is answered and not run again
    clock.advance(seconds=window.total_seconds() - 60)
    assert (await _post(client, captured)).status == 200
    await processor(client).drain()
    assert len(seen(client)) == 1

    # past the retention the row is purged; the same callback, replayed, is refused instead of running again
    clock.advance(days=1, hours=1)
    assert (await purge(client.app[STORE], sandbox_config.retention, clock.now())).inbox == 1
    assert await rows(client) == []
    error = await refused(await _post(client, captured), 403, "bad_timestamp")
    assert f"{window.days} days" in error["message"]
    await processor(client).drain()
    assert await rows(client) == []
    assert len(seen(client)) == 1


async def test_a_replay_is_refused_from_the_first_second_past_the_window(
    client: Client, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    window = int(replay_window(sandbox_config).total_seconds())
    assert (await _post(client, _captured("9002", ts=T0 - window))).status == 200
    await refused(await _post(client, _captured("9003", ts=T0 - window - 1)), 403, "bad_timestamp")
    assert [r["dedup_key"] for r in await rows(client)] == ["app:msg:9002"]


async def test_a_callback_dated_ahead_of_our_clock_is_refused(client: Client) -> None:
    skew = int(FUTURE_SKEW.total_seconds())
    assert (await _post(client, _captured("9004", ts=T0 + skew))).status == 200  # clocks a little apart
    for ts in (T0 + skew + 1, T0 + 365 * 86400, 10**11):
        error = await refused(await _post(client, _captured("9005", ts=ts)), 403, "bad_timestamp")
        assert "ahead" in error["message"]
    await refused(await _post(client, _captured("9005", ts=2**70)), 403, "bad_timestamp")  # beyond any date
    assert [r["dedup_key"] for r in await rows(client)] == ["app:msg:9004"]


async def test_the_robot_callback_holds_to_the_same_window(client: Client, clock: FrozenClock) -> None:
    encrypt = ROBOT.encrypt(robot_json("text", text={"content": "帮助"}))
    body = json.dumps({"encrypt": encrypt}).encode()
    old = query(ROBOT, encrypt, ts=str(T0 - 365 * 86400))
    await refused(await client.post(f"/wecom/aibot?{old}", data=body), 403, "bad_timestamp")
    assert await rows(client) == []
