"""One WebSocket of the long connection, and the requests sent on it: reading frames (callbacks go to the intake,
answers to whoever waits for them), the heartbeat, and each request matched to its answer by req_id."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.wecom.aibot_frames import (
    CMD_EVENT_CALLBACK,
    CMD_MSG_CALLBACK,
    CMD_PING,
    EVENT_DISCONNECTED,
    AckTimeout,
    NotConnected,
    dump,
    event_type,
    load_frame,
    new_req_id,
    reason,
)
from bot.wecom.errors import TransportError, error_for

log = logging.getLogger(__name__)

OnCallback = Callable[[str, dict[str, Any]], None]  # (req_id, body)


@dataclass(slots=True, kw_only=True)
class Link:
    """One WebSocket connection and what belongs to it."""

    ws: aiohttp.ClientWebSocketResponse
    bot_id: str
    subscribe_req_id: str
    subscribed: asyncio.Future[dict[str, Any]]
    missed_pongs: int = 0
    dead: bool = False
    kicked: bool = False
    closing: asyncio.Task[bool] | None = None
    pings: set[str] = field(default_factory=set)

    async def read(self, on_callback: OnCallback, requests: Requests) -> None:
        """Reads frames until the socket closes: callbacks to ``on_callback``, answers to ``requests``."""
        try:
            async for message in self.ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self._on_text(message.data, on_callback, requests)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    try:
                        self._on_text(message.data.decode("utf-8"), on_callback, requests)
                    except UnicodeDecodeError:
                        log.warning("aibot %s: binary frame that is not UTF-8 ignored", self.bot_id)
                elif message.type == aiohttp.WSMsgType.ERROR:
                    log.warning("aibot %s: connection error: %s", self.bot_id, reason(self.ws.exception()))
                    break
        finally:
            if not self.subscribed.done():
                self.subscribed.set_exception(ConnectionError("closed before the subscription was answered"))

    def _on_text(self, data: str, on_callback: OnCallback, requests: Requests) -> None:
        try:
            frame = load_frame(data)
        except (ValueError, RecursionError) as exc:
            log.warning("aibot %s: frame that is not a JSON object ignored: %s", self.bot_id, exc)
            return
        headers = frame.get("headers")
        req_id = headers.get("req_id") if isinstance(headers, dict) else None
        if not isinstance(req_id, str):
            req_id = ""
        cmd = frame.get("cmd")
        if cmd in (CMD_MSG_CALLBACK, CMD_EVENT_CALLBACK):
            body = frame.get("body")
            if not isinstance(body, dict):
                log.warning("aibot %s: %s without a body ignored", self.bot_id, cmd)
                return
            if event_type(body) == EVENT_DISCONNECTED:
                self.kicked = True
                self.closing = asyncio.get_running_loop().create_task(self.ws.close())
                return
            on_callback(req_id, body)
            return
        # an answer to one of ours, matched by req_id whatever its cmd: WeCom's answers carry none, but a server
        # that echoes the request's cmd (``{"cmd": "aibot_subscribe", "errcode": 0, ...}``) is answered all the
        # same, as Tencent's SDKs do
        if req_id and req_id == self.subscribe_req_id:
            if not self.subscribed.done():
                self.subscribed.set_result(frame)
            return
        if req_id in self.pings:
            self.pings.discard(req_id)
            if frame.get("errcode") == 0:
                self.missed_pongs = 0
            else:
                log.warning("aibot %s: heartbeat answered errcode %s", self.bot_id, frame.get("errcode"))
            return
        if requests.answer(req_id, frame):
            return
        if cmd:
            log.warning("aibot %s: frame with unknown cmd %r ignored", self.bot_id, cmd)
            return
        log.info("aibot %s: answer to no pending request ignored (req_id %s)", self.bot_id, req_id)

    async def heartbeat(self, interval: float, max_missed: int) -> None:
        """A ping every ``interval`` seconds; after ``max_missed`` unanswered ones the link is dead and closed."""
        while not self.ws.closed:
            await asyncio.sleep(interval)
            if self.missed_pongs >= max_missed:
                self.dead = True
                await self.ws.close()
                return
            self.missed_pongs += 1
            req_id = new_req_id(CMD_PING)
            self.pings.add(req_id)
            try:
                await self.ws.send_str(dump({"cmd": CMD_PING, "headers": {"req_id": req_id}}))
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
                log.warning("aibot %s: heartbeat not sent: %s", self.bot_id, reason(exc))


class Requests:
    """The robot's requests waiting for their answers, one per req_id at a time (answers are matched by req_id
    alone)."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = {}  # req_id -> (cmd, answer)
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def request(
        self,
        cmd: str,
        req_id: str,
        body: Mapping[str, Any],
        *,
        link: Callable[[], Link | None],
        state: Callable[[], str],
        ack_within: float,
    ) -> dict[str, Any]:
        """Sends ``cmd`` on ``link()`` (None: not subscribed, in ``state()``) once no other request uses ``req_id``,
        and returns WeCom's answer; its errcode raised as the typed error."""
        async with self._serialized(req_id):
            current = link()
            if current is None:
                raise NotConnected(f"not subscribed ({state()})", cmd, request_sent=False)
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[req_id] = (cmd, future)
            try:
                try:
                    await current.ws.send_str(dump({"cmd": cmd, "headers": {"req_id": req_id}, "body": dict(body)}))
                except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
                    raise NotConnected(f"not sent: {reason(exc)}", cmd, request_sent=False) from None
                try:
                    async with asyncio.timeout(ack_within):
                        answer = await future
                except TimeoutError:
                    raise AckTimeout(f"no answer within {ack_within:g} s", cmd) from None
            finally:
                if self._pending.get(req_id, (cmd, None))[1] is future:
                    del self._pending[req_id]
        errcode = answer.get("errcode")
        if isinstance(errcode, bool) or not isinstance(errcode, int):
            raise TransportError(f"answer without an errcode: {answer!r}"[:300], cmd)
        if errcode != 0:
            raise error_for(errcode, str(answer.get("errmsg", "")), cmd)
        return answer

    def answer(self, req_id: str, frame: dict[str, Any]) -> bool:
        """Hands ``frame`` to the request waiting on ``req_id``; False if none waits."""
        pending = self._pending.get(req_id)
        if pending is None or pending[1].done():
            return False
        pending[1].set_result(frame)
        return True

    def fail_all(self, why: str) -> None:
        """Every request still waiting fails with :class:`NotConnected` (the link is gone)."""
        for cmd, future in list(self._pending.values()):
            if not future.done():
                future.set_exception(NotConnected(why, cmd, request_sent=True))
        # each request removes its own entry

    @contextlib.asynccontextmanager
    async def _serialized(self, req_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(req_id, (asyncio.Lock(), 0))
        self._locks[req_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[req_id]
            if users <= 1:
                del self._locks[req_id]
            else:
                self._locks[req_id] = (lock, users - 1)
