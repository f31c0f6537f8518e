"""The intelligent robot's long connection, faked: a WebSocket endpoint (``/`` on the fake's app, as WeCom's
``wss://openws.work.weixin.qq.com`` has no path) that behaves like WeCom's (page 101463, ``aibot-node-sdk``).

* ``aibot_subscribe`` checks ``bot_id``/``secret`` against the robots registered on :class:`FakeWeCom`; a wrong one
  is answered errcode 853000 "invalid bot_id or secret" and, by default, the socket is closed (the live service was
  observed leaving it open: ``close_on_refused=False``).
* One connection per robot: a newer subscribe sends the older connection a ``disconnected_event`` and closes it.
* ``ping`` is required: a connection that sends none for ``heartbeat_timeout`` seconds is closed (WeCom's own timeout
  is not published (?); tests set a short one).
* ``aibot_respond_msg`` / ``aibot_respond_welcome_msg`` / ``aibot_respond_update_msg`` take the req_id of a frame
  the fake pushed to that robot (welcome: an ``enter_chat``, within 5 s; update: a ``template_card_event``, within
  5 s; a reply to an event's req_id: 846605 "invalid req_id", as observed). A reply is ``stream``,
  ``template_card``, ``stream_with_template_card`` (``stream`` and an optional ``template_card`` beside it) or
  media; a welcome ``text`` or ``template_card``; ``aibot_send_msg`` takes a ``chatid`` and
  ``markdown``/``template_card``/media, at most ``send_per_minute`` a minute per chat (45009 beyond; WeCom
  documents no limit (?): the webhook's 20 is assumed). Anything else is 40008. The official Python SDK
  (``wecom-aibot-python-sdk``) runs against this endpoint in the tests. Bodies are checked with
  :mod:`bot.sandbox.fake.validate`'s rules; accepted ones are recorded through :meth:`FakeWeCom.deliver` (kinds
  ``aibot_respond``, ``aibot_welcome``, ``aibot_update_card``, ``aibot_send``; ``to`` has ``bot_id`` and
  ``chatid``).

Answers carry no ``cmd``, as the SDKs document them; ``answers_carry_cmd=True`` echoes the request's ``cmd`` in
them, as other servers do. Tests drive it through :class:`AibotHub` (``fake.aibot``): :meth:`~AibotHub.push_message`,
:meth:`~AibotHub.push_event`, :meth:`~AibotHub.push_raw` and :meth:`~AibotHub.redeliver` send frames to the robot's
connection and return the req_id; :meth:`~AibotHub.wait_subscribed` waits for a subscribe without sleeping; faults:
:meth:`~AibotHub.drop`, :meth:`~AibotHub.refuse_next`, :meth:`~AibotHub.fail_next`, :meth:`~AibotHub.omit_acks`,
:meth:`~AibotHub.delay_acks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from secrets import token_hex
from typing import Any

from aiohttp import WSMsgType, web

from bot.sandbox.fake import aibot_rules as rules
from bot.sandbox.fake import errors as E
from bot.sandbox.fake.aibot_rules import AUTH_FAILED, ERRMSG, INVALID_REQ_ID, KINDS, Host, Pushed
from bot.sandbox.fake.errors import ApiError
from bot.sandbox.fake.model import take_fault

log = logging.getLogger(__name__)


@dataclass(eq=False, kw_only=True)
class Connection:
    ws: web.WebSocketResponse
    request: web.Request
    bot_id: str | None = None  # once subscribed
    last_ping: float = 0.0
    kicked: bool = False
    received: list[dict[str, Any]] = field(default_factory=list)


@dataclass(kw_only=True)
class _AckFault:
    cmd: str | None
    kind: str  # "error" | "omit" | "delay"
    remaining: int
    errcode: int = 0
    delay: float = 0.0


class AibotHub:
    """The robots' long connections (``fake.aibot``)."""

    def __init__(
        self,
        fake: Host,
        robots: Mapping[str, str],
        *,
        heartbeat_timeout: float = 90.0,
        close_on_refused: bool = True,
        send_per_minute: int = 20,
        answers_carry_cmd: bool = False,
    ) -> None:
        self.fake = fake
        self.robots = dict(robots)  # bot_id -> secret
        self.heartbeat_timeout = heartbeat_timeout
        self.close_on_refused = close_on_refused
        self.send_per_minute = send_per_minute
        self.answers_carry_cmd = answers_carry_cmd
        self.subscribes: Counter[str] = Counter()  # successful subscribes per robot
        self.refusals: Counter[str] = Counter()
        self.kicks: Counter[str] = Counter()
        self.pings: Counter[str] = Counter()
        self.connections: list[Connection] = []  # open ones
        self.pushed: dict[str, Pushed] = {}
        self._current: dict[str, Connection] = {}
        self._refuse: deque[tuple[str | None, int]] = deque()
        self._ack_faults: list[_AckFault] = []
        self._changed = asyncio.Event()

    # ---- what tests use ---------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The endpoint's ws:// URL, once ``serve`` has set the fake's ``base_url``."""
        if self.fake.base_url is None:
            raise RuntimeError("serve() the fake first")
        return "ws" + self.fake.base_url.removeprefix("http") + "/"

    def current(self, bot_id: str) -> Connection | None:
        """The robot's subscribed connection."""
        return self._current.get(bot_id)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Returns once ``predicate()`` holds; checked after every frame, subscribe and closed connection."""
        while not predicate():
            await self._changed.wait()

    async def wait_subscribed(self, bot_id: str, count: int = 1) -> Connection:
        """Returns the robot's connection once it has subscribed ``count`` times in all."""
        await self.wait_until(lambda: self.subscribes[bot_id] >= count and bot_id in self._current)
        return self._current[bot_id]

    async def wait_closed(self, connection: Connection) -> None:
        await self.wait_until(lambda: connection not in self.connections)

    async def push_message(
        self,
        bot_id: str,
        text: str,
        *,
        userid: str,
        chatid: str | None = None,
        robot_name: str | None = "HotlineBot",
        msgid: str | None = None,
    ) -> str:
        """A text message from ``userid``: in group ``chatid`` (with the robot's ``@name`` first, as WeCom writes
        it), else in the 1:1 chat. Returns the frame's req_id."""
        chattype = "group" if chatid else "single"
        content = f"@{robot_name} {text}" if chatid and robot_name else text
        body: dict[str, Any] = {
            "msgid": msgid or token_hex(16),
            "aibotid": bot_id,
            "chattype": chattype,
            "from": {"userid": userid},
            "response_url": self.fake.response_url({"bot_id": bot_id, "chatid": chatid, "userid": userid}),
            "msgtype": "text",
            "text": {"content": content},
        }
        if chatid:
            body["chatid"] = chatid
        return await self._push(bot_id, "aibot_msg_callback", body, kind="message", chatid=chatid, userid=userid)

    async def push_event(
        self,
        bot_id: str,
        eventtype: str,
        *,
        userid: str,
        chatid: str | None = None,
        event_key: str | None = None,
        task_id: str | None = None,
        card_type: str = "button_interaction",
        msgid: str | None = None,
    ) -> str:
        """An event (``enter_chat``, ``template_card_event`` with ``event_key``/``task_id``, ``feedback_event`` …)
        by ``userid``. Returns the frame's req_id."""
        event: dict[str, Any] = {"eventtype": eventtype}
        if eventtype == "template_card_event":
            # nested, as observed on the live service (the SDK's types put the fields on ``event`` itself)
            event["template_card_event"] = {"card_type": card_type, "event_key": event_key, "task_id": task_id}
        body: dict[str, Any] = {
            "msgid": msgid or token_hex(16),
            "create_time": int(self.fake.now().timestamp()),
            "aibotid": bot_id,
            "chattype": "group" if chatid else "single",
            "from": {"userid": userid},
            "msgtype": "event",
            "event": event,
        }
        if chatid:
            body["chatid"] = chatid
        if eventtype == "template_card_event":
            body["response_url"] = self.fake.response_url({"bot_id": bot_id, "chatid": chatid, "userid": userid})
        return await self._push(
            bot_id, "aibot_event_callback", body, kind=eventtype, chatid=chatid, userid=userid, task_id=task_id
        )

    async def push_raw(self, bot_id: str, text: str) -> None:
        """Any text frame, as is (malformed JSON, unknown commands)."""
        await self._subscribed(bot_id).ws.send_str(text)

    async def redeliver(self, req_id: str) -> None:
        """Sends a pushed frame again, unchanged (WeCom delivering the same callback twice)."""
        pushed = self.pushed[req_id]
        await self._subscribed(pushed.bot_id).ws.send_str(pushed.text)

    async def drop(self, bot_id: str) -> None:
        """The robot's connection breaks: the socket is aborted, no close frame."""
        connection = self._subscribed(bot_id)
        if connection.request.transport is not None:
            connection.request.transport.abort()
        await self.wait_closed(connection)

    def refuse_next(self, *, times: int = 1, errcode: int = AUTH_FAILED, bot_id: str | None = None) -> None:
        """The next ``times`` subscribes (of ``bot_id``, or any) are refused with ``errcode``, whatever the secret."""
        self._refuse.extend([(bot_id, errcode)] * times)

    def fail_next(self, cmd: str, errcode: int, *, times: int = 1) -> None:
        """The next ``times`` requests ``cmd`` are answered ``errcode`` and not carried out."""
        self._ack_faults.append(_AckFault(cmd=cmd, kind="error", remaining=times, errcode=errcode))

    def omit_acks(self, cmd: str | None = None, *, times: int = 1) -> None:
        """The next ``times`` requests (``cmd``, or any; ``ping`` and ``aibot_subscribe`` included) are carried out
        but never answered (a subscribe is then not carried out either)."""
        self._ack_faults.append(_AckFault(cmd=cmd, kind="omit", remaining=times))

    def delay_acks(self, seconds: float, cmd: str | None = None, *, times: int = 1) -> None:
        """The next ``times`` answers come ``seconds`` late."""
        self._ack_faults.append(_AckFault(cmd=cmd, kind="delay", remaining=times, delay=seconds))

    def deliveries(self, bot_id: str | None = None, chatid: str | None = None) -> list[Any]:
        """What the robots sent (replies, welcomes, card updates, pushes)."""
        found = [d for d in self.fake.delivered if d.kind in KINDS]
        if bot_id is not None:
            found = [d for d in found if d.to.get("bot_id") == bot_id]
        if chatid is not None:
            found = [d for d in found if d.to.get("chatid") == chatid]
        return found

    async def close_all(self, _app: web.Application | None = None) -> None:
        """Closes every connection (the server's shutdown)."""
        for connection in list(self.connections):
            with contextlib.suppress(Exception):
                await connection.ws.close(code=1001, message=b"server shutdown")

    # ---- the endpoint -----------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        connection = Connection(ws=ws, request=request, last_ping=loop.time())
        self.connections.append(connection)
        watchdog = asyncio.create_task(self._watch(connection))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_frame(connection, message.data)
        finally:
            watchdog.cancel()
            self.connections.remove(connection)
            if connection.bot_id is not None and self._current.get(connection.bot_id) is connection:
                del self._current[connection.bot_id]
            self._notify()
        return ws

    async def _watch(self, connection: Connection) -> None:
        """No ping for ``heartbeat_timeout`` seconds: the connection is closed."""
        loop = asyncio.get_running_loop()
        while not connection.ws.closed:
            left = connection.last_ping + self.heartbeat_timeout - loop.time()
            if left <= 0:
                log.debug("fake aibot: no heartbeat for %.1f s, closing", self.heartbeat_timeout)
                await connection.ws.close(code=1000, message=b"heartbeat timeout")
                return
            await asyncio.sleep(left)

    async def _on_frame(self, connection: Connection, data: str) -> None:
        try:
            frame = json.loads(data)
        except ValueError:
            log.debug("fake aibot: a frame that is not JSON ignored")
            return
        if not isinstance(frame, dict):
            return
        connection.received.append(frame)
        self._notify()
        cmd = frame.get("cmd")
        headers = frame.get("headers")
        req_id = headers.get("req_id") if isinstance(headers, dict) else None
        raw_body = frame.get("body")
        body: dict[str, Any] = raw_body if isinstance(raw_body, dict) else {}
        if not isinstance(req_id, str) or not req_id:
            return  # nothing to answer to
        if cmd == "aibot_subscribe":
            await self._subscribe(connection, req_id, body)
            return
        if cmd == "ping":
            connection.last_ping = asyncio.get_running_loop().time()
            if connection.bot_id is not None:
                self.pings[connection.bot_id] += 1
            await self._answer(connection, "ping", req_id, lambda: None)
            return
        handler = {
            "aibot_respond_msg": self._respond,
            "aibot_respond_welcome_msg": self._welcome,
            "aibot_respond_update_msg": self._update,
            "aibot_send_msg": self._send,
        }.get(cmd if isinstance(cmd, str) else "")
        if handler is None or not isinstance(cmd, str):
            await self._ack(connection, cmd, req_id, E.INVALID_PARAMETER, f"unknown cmd {cmd!r}")  # (?)
            return
        bot_id = connection.bot_id
        if bot_id is None or self._current.get(bot_id) is not connection:
            await self._ack(connection, cmd, req_id, E.INVALID_PARAMETER, "not subscribed")  # (?)
            return
        await self._answer(connection, cmd, req_id, partial(handler, bot_id, req_id, body))

    async def _subscribe(self, connection: Connection, req_id: str, body: dict[str, Any]) -> None:
        fault = self._take_fault("aibot_subscribe")
        if fault is not None and fault.kind == "omit":
            return  # left hanging, unsubscribed
        bot_id, secret = body.get("bot_id"), body.get("secret")
        refusal = self._take_refusal(bot_id)
        if refusal is None and (not isinstance(bot_id, str) or self.robots.get(bot_id) != secret):
            refusal = AUTH_FAILED
        if refusal is not None:
            self.refusals[str(bot_id)] += 1
            await self._ack(connection, "aibot_subscribe", req_id, refusal)
            if self.close_on_refused:
                await connection.ws.close(code=1000, message=b"subscribe refused")
            return
        assert isinstance(bot_id, str)
        old = self._current.get(bot_id)
        connection.bot_id = bot_id
        self._current[bot_id] = connection
        if old is not None and old is not connection:
            await self._kick(old, bot_id)
        self.subscribes[bot_id] += 1
        await self._ack(connection, "aibot_subscribe", req_id, E.OK)
        self._notify()

    async def _kick(self, old: Connection, bot_id: str) -> None:
        old.kicked = True
        self.kicks[bot_id] += 1
        body = {
            "msgid": token_hex(16),
            "create_time": int(self.fake.now().timestamp()),
            "aibotid": bot_id,
            "msgtype": "event",
            "event": {"eventtype": "disconnected_event"},
        }
        with contextlib.suppress(Exception):
            await old.ws.send_str(
                _dump({"cmd": "aibot_event_callback", "headers": {"req_id": token_hex(16)}, "body": body})
            )
            await old.ws.close(code=1000, message=b"replaced by a newer connection")

    def _take_refusal(self, bot_id: object) -> int | None:
        for item in list(self._refuse):
            if item[0] is None or item[0] == bot_id:
                self._refuse.remove(item)
                return item[1]
        return None

    async def _answer(self, connection: Connection, cmd: str, req_id: str, carry_out: Any) -> None:
        fault = self._take_fault(cmd)
        if fault is not None and fault.kind == "error":
            await self._ack(connection, cmd, req_id, fault.errcode)
            return
        try:
            carry_out()
            errcode, detail = E.OK, ""
        except ApiError as error:
            errcode, detail = error.errcode, error.detail
        if fault is not None and fault.kind == "omit":
            return
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.delay)
        await self._ack(connection, cmd, req_id, errcode, detail)

    def _take_fault(self, cmd: str) -> _AckFault | None:
        return take_fault(self._ack_faults, lambda fault: fault.cmd in (None, cmd))

    async def _ack(self, connection: Connection, cmd: object, req_id: str, errcode: int, detail: str = "") -> None:
        if errcode == E.OK:
            errmsg = "ok"
        elif errcode in ERRMSG:
            errmsg = f"{ERRMSG[errcode]}: {detail}" if detail else ERRMSG[errcode]
        else:
            errmsg = E.errmsg(errcode, connection.request.remote, detail)
        answer: dict[str, Any] = {"headers": {"req_id": req_id}, "errcode": errcode, "errmsg": errmsg}
        if self.answers_carry_cmd and isinstance(cmd, str):
            answer = {"cmd": cmd, **answer}
        with contextlib.suppress(ConnectionError, RuntimeError):
            await connection.ws.send_str(_dump(answer))

    # ---- the robot's requests ---------------------------------------------------------------------------------

    def _frame_for(self, bot_id: str, req_id: str) -> Pushed:
        pushed = self.pushed.get(req_id)
        if pushed is None or pushed.bot_id != bot_id:
            raise ApiError(INVALID_REQ_ID)
        return pushed

    def _respond(self, bot_id: str, req_id: str, body: dict[str, Any]) -> None:
        rules.respond(self.fake, self._frame_for(bot_id, req_id), body)

    def _welcome(self, bot_id: str, req_id: str, body: dict[str, Any]) -> None:
        rules.welcome(self.fake, self._frame_for(bot_id, req_id), body)

    def _update(self, bot_id: str, req_id: str, body: dict[str, Any]) -> None:
        rules.update(self.fake, self._frame_for(bot_id, req_id), body)

    def _send(self, bot_id: str, req_id: str, body: dict[str, Any]) -> None:
        rules.send(self.fake, bot_id, body, per_minute=self.send_per_minute)

    # ---- helpers ----------------------------------------------------------------------------------------------

    def _subscribed(self, bot_id: str) -> Connection:
        connection = self._current.get(bot_id)
        if connection is None:
            raise LookupError(f"robot {bot_id!r} has no subscribed connection")
        return connection

    async def _push(
        self,
        bot_id: str,
        cmd: str,
        body: dict[str, Any],
        *,
        kind: str,
        chatid: str | None,
        userid: str,
        task_id: str | None = None,
    ) -> str:
        connection = self._subscribed(bot_id)
        req_id = token_hex(16)
        text = _dump({"cmd": cmd, "headers": {"req_id": req_id}, "body": body})
        self.pushed[req_id] = Pushed(
            req_id=req_id,
            bot_id=bot_id,
            kind=kind,
            text=text,
            at=self.fake.now(),
            chatid=chatid,
            userid=userid,
            chattype=body["chattype"],
            task_id=task_id,
        )
        await connection.ws.send_str(text)
        return req_id

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


def _dump(frame: Mapping[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
