"""Malformed requests and clients that go away, against the app served as ``run_bot.py serve`` serves it (an
``AppRunner``: a handler is not cancelled when its client disconnects), over raw sockets.

Each such request is one WARNING line without a traceback, never an ERROR; a client that closes its connection
mid-body is counted in ``/metrics`` as 499 (nginx's "client closed request"), not as a 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.app import create_app
from bot.domain.clock import FrozenClock
from bot.hotline.signing import signed_headers
from config.model import BotConfig
from config.settings import Settings
from tests.conftest import INGEST_SECRET
from tests.wecom.callbacks.test_callbacks import APP, WECOM_ENV, query

Send = Callable[..., Awaitable[bytes]]


@pytest.fixture
async def served(
    sqlite_url: str, settings_for: Callable[..., Settings], sandbox_config: BotConfig, clock: FrozenClock
) -> AsyncIterator[tuple[str, int]]:
    settings = settings_for(sqlite_url, HTTP_BODY_TIMEOUT="0.5", **WECOM_ENV)
    app = create_app(settings, sandbox_config, clock=clock, run_workers=False)
    runner = web.AppRunner(app, access_log=None)  # as web.run_app sets it up
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield "127.0.0.1", sock.getsockname()[1]
    finally:
        await runner.cleanup()


async def send(address: tuple[str, int], data: bytes, *, then: str = "read") -> bytes:
    """Writes ``data`` on a fresh connection; ``then`` = "read" (the answer, until the server closes), "eof" (a
    half-close, then the answer) or "abort" (the connection reset at once, nothing read)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(data)
        await writer.drain()
        if then == "abort":
            writer.transport.abort()
            return b""
        if then == "eof":
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def callback_head(length: int) -> bytes:
    return (
        f"POST /wecom/callback?{query(APP, 'x')} HTTP/1.1\r\nHost: bot\r\nContent-Type: text/xml\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def hand_over_head(length: int, clock: FrozenClock) -> bytes:
    headers = signed_headers(INGEST_SECRET, int(clock.now().timestamp()), b"{}")  # signed, but never complete
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST /api/tickets HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n{lines}"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


MALFORMED = {
    "bad request line": b"GET / HTTP/1.1 trailing\r\n\r\n",
    "bad header": b"GET /healthz HTTP/1.1\r\nHost: bot\r\nNo Colon Here\r\n\r\n",
    "bad content-length": b"POST /api/tickets HTTP/1.1\r\nHost: bot\r\nContent-Length: ten\r\n\r\n",
    "two content-lengths": b"POST /api/tickets HTTP/1.1\r\nHost: bot\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    "bad chunk": b"POST /wecom/callback HTTP/1.1\r\nHost: bot\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}


async def _settled(records: list[logging.LogRecord], count: int) -> None:
    """Waits (at most 10 s) until the server has logged ``count`` records."""
    for _ in range(1000):
        if len(records) >= count:
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_a_malformed_request_is_one_warning_line(
    served: tuple[str, int], caplog: pytest.LogCaptureFixture, name: str
) -> None:
    caplog.set_level(logging.WARNING)
    answer = await send(served, MALFORMED[name])
    status_line = answer.split(b"\r\n")[0]
    assert status_line.startswith(b"HTTP/1.")
    assert b" 400 " in status_line, answer[:200]
    await _settled(caplog.records, 1)
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.levelname, r.exc_info, r.exc_text) for r in records] == [("WARNING", None, None)], caplog.text
    assert "malformed HTTP request" in records[0].getMessage()
    assert "Traceback" not in caplog.text


async def metrics(address: tuple[str, int]) -> dict[tuple[str, str], float]:
    """``hotline_http_requests_total`` by (route, status)."""
    async with aiohttp.ClientSession() as session, session.get(f"http://{address[0]}:{address[1]}/metrics") as r:
        text = await r.text()
    found: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("hotline_http_requests_total{"):
            labels = dict(part.split("=") for part in line[line.index("{") + 1 : line.index("}")].split(","))
            found[(json.loads(labels["route"]), json.loads(labels["status"]))] = float(line.rsplit(" ", 1)[1])
    return found


async def _counted(address: tuple[str, int], route: str, status: str) -> dict[tuple[str, str], float]:
    """The metrics once ``route`` has a request of ``status`` (waiting at most 10 s: the server counts it after the
    client has gone)."""
    for _ in range(1000):
        found = await metrics(address)
        if (route, status) in found:
            break
        await asyncio.sleep(0.01)
    return found


@pytest.mark.parametrize("then", ["abort", "eof"])
async def test_a_client_gone_mid_body_is_a_499_and_one_warning(
    served: tuple[str, int], caplog: pytest.LogCaptureFixture, clock: FrozenClock, then: str
) -> None:
    """The body stops short of its Content-Length: the connection reset, or half-closed (nothing more will come)."""
    caplog.set_level(logging.WARNING)
    answer = await send(served, callback_head(500) + b"<xml><Encrypt>", then=then)
    assert answer == b""  # nothing to answer to
    found = await _counted(served, "/wecom/callback", "499")
    await send(served, hand_over_head(500, clock) + b'{"ticket_no": ', then=then)
    found = await _counted(served, "/api/tickets", "499")
    assert found[("/wecom/callback", "499")] == 1
    assert found[("/api/tickets", "499")] == 1
    assert not [key for key in found if key[1] == "500"], found
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in records] == ["WARNING", "WARNING"], caplog.text
    assert all("client closed the connection" in r.getMessage() for r in records)
    assert "Traceback" not in caplog.text


async def test_a_cancelled_handler_of_a_client_gone_is_a_499_too(
    aiohttp_client: Callable[..., Awaitable[Any]],
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> None:
    """A server that cancels the handler when its client disconnects (aiohttp's test server does) counts it the same."""
    app = create_app(settings_for(sqlite_url, **WECOM_ENV), sandbox_config, clock=clock, run_workers=False)
    client = await aiohttp_client(app)
    address = (client.host, client.port)
    await send(address, callback_head(500) + b"<xml>", then="abort")
    found = await _counted(address, "/wecom/callback", "499")
    assert found[("/wecom/callback", "499")] == 1
    assert not [key for key in found if key[1] == "500"], found


async def test_a_trickled_hand_over_is_cut_off_by_the_body_timeout(served: tuple[str, int], clock: FrozenClock) -> None:
    """The hand-over API reads its body within the same timeout as the callbacks (here 0.5 s): 408, one WARNING."""
    reader, writer = await asyncio.open_connection(*served)

    async def trickle() -> None:
        writer.write(hand_over_head(60 * 1024, clock))
        while True:
            writer.write(b" " * 100)
            await writer.drain()
            await asyncio.sleep(0.05)  # the sender's pace

    sender = asyncio.create_task(trickle())
    try:
        status_line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        sender.cancel()
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 408"), status_line
    found = await _counted(served, "/api/tickets", "408")
    assert found[("/api/tickets", "408")] == 1
