"""The intelligent robot's long connection (智能机器人长连接): WeCom callbacks over a WebSocket the bot opens itself,
so an office needs no inbound port.

Sources: Tencent's page 101463 (智能机器人长连接, its table of contents and overview: only those are in the search
index), Tencent's SDK ``WecomTeam/aibot-node-sdk`` (``src/ws.ts``, ``src/client.ts``, ``src/types/*.ts``, README),
its PyPI twin ``wecom-aibot-sdk`` (description), and ``WecomTeam/wecom-openclaw-plugin`` (``src/const.ts``).
Observations on the live service by a third party (``tangnie001-stack/corporate_rag``,
``docs/agents/wecom-sdk-facts.md``) are marked (obs).

Confirmed by the SDK and page 101463:

* One URL, ``wss://openws.work.weixin.qq.com`` (private deployments have their own). Every frame is JSON text
  ``{"cmd", "headers": {"req_id"}, "body"}``; answers to the bot's frames carry no ``cmd``:
  ``{"headers": {"req_id"}, "errcode", "errmsg"}``, matched to the request by ``req_id``. Like the SDKs, this
  client matches an answer by its ``req_id`` before it looks at a ``cmd``, so an answer that echoes the request's
  ``cmd`` (as some servers send) is an answer all the same.
* Subscribe first: ``{"cmd": "aibot_subscribe", "headers": {"req_id"}, "body": {"bot_id", "secret"}}``; errcode 0 in
  the answer means subscribed. No encryption in this mode (the page's comparison table).
* Heartbeat: ``{"cmd": "ping", "headers": {"req_id"}}`` every 30 s (SDK default, also the plugin's), answered like
  any request; the SDK counts a link dead after 2 unanswered pings (checked before sending the third) and
  reconnects with exponential backoff 1 s → 30 s. Here: 1 s → 60 s with jitter, reset once a connection has stayed
  up ``stable_after`` seconds.
* WeCom → bot: ``aibot_msg_callback`` (body = the callback mode's decrypted JSON: ``msgid``, ``aibotid``,
  ``chatid``, ``chattype``, ``from.userid``, ``response_url``, ``msgtype`` …) and ``aibot_event_callback`` (events
  ``enter_chat``, ``template_card_event``, ``feedback_event``, ``disconnected_event``). The bot does not acknowledge
  them.
* Bot → WeCom, each answered by req_id: ``aibot_respond_msg`` (the callback's req_id; ``stream``,
  ``template_card``, ``stream_with_template_card``, media), ``aibot_respond_welcome_msg`` (an ``enter_chat``'s
  req_id, within 5 s; ``text`` or ``template_card``), ``aibot_respond_update_msg`` (a ``template_card_event``'s
  req_id, within 5 s; ``{"response_type": "update_template_card", "userids"?, "template_card"}``) and
  ``aibot_send_msg`` (a req_id of the bot's own; ``{"chatid", "msgtype", ...}``: ``chatid`` is the group's chatid
  or, for a 1:1 chat, the user's userid; ``markdown``, ``template_card``, ``file``, ``image``, ``voice``,
  ``video``). The SDK sends replies that share a req_id one at a time, each after the previous one's answer, and
  gives up on an answer after 5 s; so does this client.
* One connection per robot: when a new connection subscribes, WeCom sends the old one a ``disconnected_event`` and
  closes it (SDK ``types/event.ts``; the Python SDK "blocks useless reconnects" after it). It is recognised by
  ``event.eventtype`` alone, as the Node SDK does: a body without ``msgtype`` is a kick too. Reconnecting at once
  would only kick the newer connection in turn (obs: endlessly, every 2 s to 5 min), so a kicked connection either
  stays down (``kicked_retry=None``, until a restart) or, as the app runs it, tries again after ``kicked_retry``
  seconds (60), logging an error each time. Of several processes of ours only the leader connects, and every
  (re)connect and subscribe first asks ``may_connect`` (the app's: :meth:`store.leader.Leader.holds`), so an old
  leader that lost its lock does not come back and kick the new one; if it did in the moment before it noticed,
  the new leader is back within a minute. Someone outside (another deployment with the same credentials) would
  take turns with it once a minute, with an error in the log each time.

Observed only (obs), handled without relying on them: a refused subscribe answers errcode 853000 "invalid bot_id or
secret" and the server leaves the socket open (this client closes it); an ``aibot_respond_msg`` on an event's
req_id answers 846605 "invalid req_id"; the kicked connection is closed 2 s to 5 min after the event; event frames
carry ``msgid`` (our dedup key, as in callback mode).

Not confirmed: the server's own heartbeat timeout, whether WeCom redelivers a callback the bot missed while
disconnected (this client only ever sees what WeCom sends; the inbox ignores a redelivered ``msgid``), a rate limit
for ``aibot_send_msg`` (the sender paces it as the webhook's 20 a minute per chat), and how long a message's req_id
stays valid for ``aibot_respond_msg`` (obs: more than 8 minutes).

Inbound frames are parsed exactly as callback-mode plaintext and persisted through
:meth:`bot.services.inbox.InboundProcessor.accept` (source ``wecom_aibot``, key ``aibot:msg:<msgid>``) before
anything else happens. Reading frames never waits for the store or a handler: they queue for a separate task (the
intake), so heartbeats and answers flow while a message is slow. A frame leaves the intake's queue only once it is
stored: one whose store was cut off stays at the head and is stored first by the next :meth:`start`. Losing the
leadership (:meth:`AibotLongConnection.run` cancelled) closes the socket but not the intake, so what was received
is still stored while the process runs; only :meth:`AibotLongConnection.close`, at shutdown, stops it (after a
grace period, logging what it leaves). A frame's req_id is remembered (by the event's dedup key) for replies:
:meth:`AibotLongConnection.req_id_for`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random as _random
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import aiohttp
from aiohttp import web

from bot.domain.clock import Clock
from bot.domain.events import InboundEvent
from bot.services.inbox import describe
from bot.wecom.errors import TransportError, error_for
from bot.wecom.parse import AIBOT_SOURCE, MalformedCallback, no_duplicate_keys, parse_aibot_json

log = logging.getLogger(__name__)

AIBOT_WS_URL = "wss://openws.work.weixin.qq.com"

CMD_SUBSCRIBE = "aibot_subscribe"
CMD_PING = "ping"
CMD_MSG_CALLBACK = "aibot_msg_callback"
CMD_EVENT_CALLBACK = "aibot_event_callback"
CMD_RESPOND = "aibot_respond_msg"
CMD_RESPOND_WELCOME = "aibot_respond_welcome_msg"
CMD_RESPOND_UPDATE = "aibot_respond_update_msg"
CMD_SEND = "aibot_send_msg"
EVENT_DISCONNECTED = "disconnected_event"

SEND_MSGTYPES = frozenset({"markdown", "template_card", "file", "image", "voice", "video"})
AUTH_FAILED = 853000  # (obs) "invalid bot_id or secret"
INVALID_REQ_ID = 846605  # (obs) "invalid req_id"
_TRANSIENT_SUBSCRIBE = frozenset({-1, 45009, 45033})  # busy / limits: not a credentials problem

HEARTBEAT_INTERVAL = 30.0
MAX_MISSED_PONGS = 2
ACK_TIMEOUT = 5.0
_REQ_IDS_KEPT = 2000

State = Literal["idle", "connecting", "subscribing", "subscribed", "backoff", "refused", "kicked", "standby", "stopped"]


class NotConnected(TransportError):
    """No subscribed connection to send on, or it closed before WeCom answered: transient, retry later."""


class AckTimeout(TransportError):
    """WeCom did not answer within the ack timeout: transient (the frame may have arrived)."""


class Inbox(Protocol):
    """:class:`bot.services.inbox.InboundProcessor`'s request path."""

    async def accept(
        self, source: str, event: InboundEvent, raw: str, *, received_at: datetime | None = None
    ) -> bool: ...


EventHook = Callable[[InboundEvent, str], Awaitable[None]]
Guard = Callable[[], Awaitable[bool]]


def new_req_id(prefix: str) -> str:
    """``{prefix}_{milliseconds}_{random}``, the SDK's shape."""
    return f"{prefix}_{int(time.time() * 1000)}_{secrets.token_hex(4)}"


def _load_frame(data: str) -> dict[str, Any]:
    frame = json.loads(data, object_pairs_hook=no_duplicate_keys)
    if not isinstance(frame, dict):
        raise ValueError("a frame must be a JSON object")
    return frame


@dataclass(frozen=True, slots=True)
class _Inbound:
    req_id: str
    body: dict[str, Any]
    received_at: datetime


@dataclass(slots=True, kw_only=True)
class _Link:
    """One WebSocket connection and what belongs to it."""

    ws: aiohttp.ClientWebSocketResponse
    subscribe_req_id: str
    subscribed: asyncio.Future[dict[str, Any]]
    missed_pongs: int = 0
    dead: bool = False
    kicked: bool = False
    closing: asyncio.Task[bool] | None = None


Outcome = Literal["failed", "dropped", "refused", "kicked", "standby", "closed"]


class AibotLongConnection:
    """One robot's long connection, kept up until :meth:`close`.

    ``start()`` runs it in the background: connect, subscribe, heartbeat, read; on any loss reconnect after
    ``backoff_base * 2**n`` seconds (± ``jitter``), at most ``backoff_cap``, counting from 1 again once a connection
    has stayed up ``stable_after`` seconds. A refused subscribe (wrong bot id or secret) is logged as an error and
    retried every ``refused_backoff`` seconds. Kicked by a newer connection, it stays down (``kicked_retry=None``)
    or tries again after ``kicked_retry`` seconds. ``may_connect``, when given, is asked before every connect and
    again before every subscribe; when it says no (or fails) the connection stops trying, in state ``standby``.
    ``sleep``/``random``/``monotonic`` serve the backoff and the store's retries and are injected by tests;
    heartbeats run on the event loop's own time.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        bot_id: str,
        secret: str,
        inbound: Inbox,
        clock: Clock,
        url: str = AIBOT_WS_URL,
        on_event: EventHook | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        max_missed_pongs: int = MAX_MISSED_PONGS,
        ack_timeout: float = ACK_TIMEOUT,
        connect_timeout: float = 10.0,
        subscribe_timeout: float = 10.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        jitter: float = 0.2,
        refused_backoff: float = 300.0,
        stable_after: float = 60.0,
        kicked_retry: float | None = None,
        may_connect: Guard | None = None,
        guard_retry: float = 5.0,
        accept_backoff_cap: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not bot_id or not secret:
            raise ValueError("the long connection needs the robot's BotID and Secret")
        if not url.startswith(("ws://", "wss://")):
            raise ValueError("the long connection URL must start with ws:// or wss://")
        self.session = session
        self.bot_id = bot_id
        self._secret = secret
        self.inbound = inbound
        self.clock = clock
        self.url = url
        self.on_event = on_event
        self.heartbeat_interval = heartbeat_interval
        self.max_missed_pongs = max_missed_pongs
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.subscribe_timeout = subscribe_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.jitter = jitter
        self.refused_backoff = refused_backoff
        self.stable_after = stable_after
        self.kicked_retry = kicked_retry
        self.may_connect = may_connect
        self.guard_retry = guard_retry
        self.accept_backoff_cap = accept_backoff_cap
        self._sleep = sleep
        self._random = random
        self._monotonic = monotonic

        self._state: State = "idle"
        self._changed = asyncio.Event()  # replaced by a fresh one at every change
        self._link: _Link | None = None
        self._pending: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = {}  # req_id -> (cmd, answer)
        self._pings: set[str] = set()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._req_ids: OrderedDict[str, str] = OrderedDict()  # event dedup key -> the frame's req_id
        # frames received and not yet stored, oldest first; the head is the one being stored, and it leaves the
        # queue only once stored (or found unreadable)
        self._intake: deque[_Inbound] = deque()
        self._intake_task: asyncio.Task[None] | None = None
        self._hooks: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.subscriptions = 0  # successful subscribes so far
        self.frames_taken = 0  # callback frames taken in so far

    def __repr__(self) -> str:
        return f"AibotLongConnection(bot_id={self.bot_id!r}, url={self.url!r}, state={self._state!r})"

    # -- state ----------------------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def subscribed(self) -> bool:
        link = self._link
        return self._state == "subscribed" and link is not None and not link.ws.closed

    def _set_state(self, state: State) -> None:
        self._state = state
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    async def wait_for_state(self, *states: State) -> State:
        """Returns once the connection is in one of ``states`` (tests and start-up wait here, never sleep)."""
        await self._wait_until(lambda: self._state in states)
        return self._state

    async def wait_subscribed(self, count: int = 1) -> None:
        """Returns once ``count`` subscribes have succeeded and the connection is up."""
        await self._wait_until(lambda: self.subscriptions >= count and self._state == "subscribed")

    async def wait_taken(self, count: int) -> None:
        """Returns once ``count`` callback frames in all have been taken in (persisted, or found unreadable)."""
        await self._wait_until(lambda: self.frames_taken >= count)

    def req_id_for(self, event: InboundEvent) -> str | None:
        """The req_id of the frame that carried ``event`` (for :meth:`respond` and friends), if this process
        received it recently; None for an event recovered from the inbox after a restart."""
        return self._req_ids.get(event.dedup_key)

    # -- lifecycle ------------------------------------------------------------------------------------------

    @property
    def unstored(self) -> int:
        """Frames received and not yet stored (the one being stored included)."""
        return len(self._intake)

    def start(self) -> asyncio.Task[None]:
        """Starts connecting (again, after :meth:`stop` or :meth:`close`) and storing what arrives; the frames a
        previous run left unstored are stored first."""
        if self._intake_task is None or self._intake_task.done():
            self._intake_task = asyncio.create_task(self._run_intake(), name="aibot-intake")
        if self._task is None or self._task.done():
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="aibot-longconn")
        return self._task

    async def run(self) -> None:
        """Connects and stays connected until cancelled: the work a :class:`store.leader.Leader` holds, so that of
        several bot processes exactly one keeps the robot's connection. Cancelled (the leadership lost), it closes
        the socket but keeps storing the frames already received; :meth:`close` stops that at shutdown.

        It returns only if :meth:`stop` or :meth:`close` is called meanwhile. When ``may_connect`` says no, it asks
        again every ``guard_retry`` seconds (the leader normally cancels it first); kicked with
        ``kicked_retry=None``, it stays down and keeps the leadership, so that no other process of ours connects
        and kicks the other party back (they would take turns forever)."""
        try:
            while True:
                await asyncio.shield(self.start())
                if self._state == "kicked":
                    await asyncio.Event().wait()  # until cancelled: an operator restarts the bot
                if self._state != "standby":
                    return  # stopped from outside
                await self._sleep(self.guard_retry)
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Closes the connection and stops reconnecting; frames already received are still stored (the intake
        runs on until :meth:`close`)."""
        self._closing = True
        link = self._link
        if link is not None:
            with contextlib.suppress(Exception):
                await link.ws.close()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail_pending("the long connection was closed")
        self._set_state("stopped")

    async def close(self, *, grace: float = 5.0) -> None:
        """At shutdown: :meth:`stop`, then lets frames already received be stored (up to ``grace`` seconds) and
        stops the intake. A frame still unstored is logged as an error and kept: a later :meth:`start` in this
        process stores it first."""
        await self.stop()
        intake, self._intake_task = self._intake_task, None  # a second close() meanwhile finds nothing to do
        if intake is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait_until(lambda: not self._intake or intake.done()), grace)
            intake.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await intake
            if self._intake:
                log.error(
                    "aibot %s: long connection closed with %d frames not persisted (WeCom does not send them again)",
                    self.bot_id,
                    len(self._intake),
                    extra={"msgids": [_msgid(item.body) for item in self._intake]},
                )
        for hook in list(self._hooks):
            hook.cancel()

    # -- the supervisor -------------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_cap, self.backoff_base * 2 ** max(0, attempt - 1))
        return self._jittered(delay, cap=self.backoff_cap)

    def _jittered(self, delay: float, *, cap: float | None = None) -> float:
        delay *= 1 + self.jitter * (2 * self._random() - 1)
        return max(0.0, min(cap, delay) if cap is not None else delay)

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            outcome, stable = await self._connect_once()
            if self._closing:
                break
            if outcome == "standby":
                self._set_state("standby")
                return
            if outcome == "kicked":
                if self.kicked_retry is None:
                    log.error(
                        "aibot %s: another connection subscribed with this robot's credentials and WeCom closed "
                        "this one; staying disconnected (restart the bot, or stop the other one)",
                        self.bot_id,
                    )
                    self._set_state("kicked")
                    return
                delay = self.kicked_retry
                log.error(
                    "aibot %s: another connection subscribed with this robot's credentials and WeCom closed this "
                    "one; connecting again in %.0f s. If it is not a bot process of ours taking over, the two "
                    "will take turns about every %.0f s: stop the other one (another deployment with the same "
                    "BotID and Secret?)",
                    self.bot_id,
                    delay,
                    delay,
                )
                self._set_state("kicked")
            elif outcome == "refused":
                delay = self._jittered(self.refused_backoff)
                self._set_state("refused")
            else:
                if stable:
                    attempt = 0
                attempt += 1
                delay = self._backoff(attempt)
                self._set_state("backoff")
            log.info("aibot %s: reconnecting in %.1f s (%s)", self.bot_id, delay, outcome)
            await self._sleep(delay)

    async def _allowed(self, step: str) -> bool:
        """Whether ``may_connect`` lets this process connect (or subscribe) now; a guard that fails says no."""
        if self.may_connect is None:
            return True
        try:
            allowed = await self.may_connect()
        except Exception:
            log.warning("aibot %s: could not ask whether to %s; not doing it", self.bot_id, step, exc_info=True)
            allowed = False
        if not allowed:
            log.warning("aibot %s: not allowed to %s (this process may no longer lead); standing by", self.bot_id, step)
        return allowed

    async def _connect_once(self) -> tuple[Outcome, bool]:
        """One connection, from connect to its end; and whether it stayed up long enough to count as stable."""
        self._set_state("connecting")
        if not await self._allowed("connect"):
            return "standby", False
        try:
            async with asyncio.timeout(self.connect_timeout):
                ws = await self.session.ws_connect(
                    self.url,
                    autoping=True,
                    heartbeat=None,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self.ack_timeout),
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("aibot %s: cannot connect to %s: %s", self.bot_id, self.url, _reason(exc))
            return "failed", False
        if self._closing or not await self._allowed("subscribe"):
            with contextlib.suppress(Exception):
                await ws.close()
            return ("closed" if self._closing else "standby"), False
        loop = asyncio.get_running_loop()
        link = _Link(ws=ws, subscribe_req_id=new_req_id(CMD_SUBSCRIBE), subscribed=loop.create_future())
        self._link = link
        self._set_state("subscribing")
        reader = asyncio.create_task(self._read(link), name="aibot-reader")
        heartbeat: asyncio.Task[None] | None = None
        up_since: float | None = None
        try:
            try:
                await ws.send_str(
                    _dump(
                        {
                            "cmd": CMD_SUBSCRIBE,
                            "headers": {"req_id": link.subscribe_req_id},
                            "body": {"bot_id": self.bot_id, "secret": self._secret},
                        }
                    )
                )
                async with asyncio.timeout(self.subscribe_timeout):
                    answer = await asyncio.shield(link.subscribed)
            except TimeoutError:
                log.warning(
                    "aibot %s: no answer to the subscription within %.0f s", self.bot_id, self.subscribe_timeout
                )
                return "failed", False
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
                log.warning("aibot %s: connection lost while subscribing: %s", self.bot_id, _reason(exc))
                return "failed", False
            errcode = answer.get("errcode")
            if errcode != 0:
                errmsg = answer.get("errmsg", "")
                if errcode in _TRANSIENT_SUBSCRIBE:
                    log.warning("aibot %s: subscription answered errcode %s: %s", self.bot_id, errcode, errmsg)
                    return "failed", False
                log.error(
                    "aibot %s: WeCom refused the subscription (errcode %s: %s): check WECOM_AIBOT_BOT_ID and "
                    "WECOM_AIBOT_SECRET; retrying every %.0f s",
                    self.bot_id,
                    errcode,
                    errmsg,
                    self.refused_backoff,
                )
                return "refused", False
            self.subscriptions += 1
            up_since = self._monotonic()
            log.info("aibot %s: subscribed on %s", self.bot_id, self.url)
            self._set_state("subscribed")
            heartbeat = asyncio.create_task(self._heartbeat(link), name="aibot-heartbeat")
            await asyncio.wait([reader])
            if self._closing:
                return "closed", False
            if link.kicked:
                return "kicked", False
            if link.dead:
                log.warning(
                    "aibot %s: no heartbeat answer to %d pings, connection considered dead",
                    self.bot_id,
                    link.missed_pongs,
                )
            else:
                log.warning("aibot %s: connection closed by WeCom (code %s)", self.bot_id, ws.close_code)
            return "dropped", self._monotonic() - up_since >= self.stable_after
        finally:
            self._link = None
            if not link.subscribed.done():
                link.subscribed.cancel()
            for task in (heartbeat, reader):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self._fail_pending("the long connection closed before WeCom answered")
            self._pings.clear()
            if link.closing is not None:
                with contextlib.suppress(Exception):
                    await link.closing
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()

    # -- reading ------------------------------------------------------------------------------------------------

    async def _read(self, link: _Link) -> None:
        try:
            async for message in link.ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self._on_text(link, message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    try:
                        self._on_text(link, message.data.decode("utf-8"))
                    except UnicodeDecodeError:
                        log.warning("aibot %s: binary frame that is not UTF-8 ignored", self.bot_id)
                elif message.type == aiohttp.WSMsgType.ERROR:
                    log.warning("aibot %s: connection error: %s", self.bot_id, _reason(link.ws.exception()))
                    break
        finally:
            if not link.subscribed.done():
                link.subscribed.set_exception(ConnectionError("closed before the subscription was answered"))

    def _on_text(self, link: _Link, data: str) -> None:
        try:
            frame = _load_frame(data)
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
            if _event_type(body) == EVENT_DISCONNECTED:
                link.kicked = True
                link.closing = asyncio.get_running_loop().create_task(link.ws.close())
                return
            self._intake.append(_Inbound(req_id, body, self.clock.now()))
            self._notify()
            return
        # an answer to one of ours, matched by req_id whatever its cmd: WeCom's answers carry none, but a server
        # that echoes the request's cmd (``{"cmd": "aibot_subscribe", "errcode": 0, ...}``) is answered all the
        # same, as Tencent's SDKs do
        if req_id and req_id == link.subscribe_req_id:
            if not link.subscribed.done():
                link.subscribed.set_result(frame)
            return
        if req_id in self._pings:
            self._pings.discard(req_id)
            if frame.get("errcode") == 0:
                link.missed_pongs = 0
            else:
                log.warning("aibot %s: heartbeat answered errcode %s", self.bot_id, frame.get("errcode"))
            return
        pending = self._pending.get(req_id)
        if pending is not None and not pending[1].done():
            pending[1].set_result(frame)
            return
        if cmd:
            log.warning("aibot %s: frame with unknown cmd %r ignored", self.bot_id, cmd)
            return
        log.info("aibot %s: answer to no pending request ignored (req_id %s)", self.bot_id, req_id)

    async def _heartbeat(self, link: _Link) -> None:
        while not link.ws.closed:
            await asyncio.sleep(self.heartbeat_interval)
            if link.missed_pongs >= self.max_missed_pongs:
                link.dead = True
                await link.ws.close()
                return
            link.missed_pongs += 1
            req_id = new_req_id(CMD_PING)
            self._pings.add(req_id)
            try:
                await link.ws.send_str(_dump({"cmd": CMD_PING, "headers": {"req_id": req_id}}))
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
                log.warning("aibot %s: heartbeat not sent: %s", self.bot_id, _reason(exc))

    # -- inbound: persisted first ---------------------------------------------------------------------------

    async def _run_intake(self) -> None:
        while True:
            await self._wait_until(lambda: bool(self._intake))
            item = self._intake[0]  # stays at the head until stored: cancelled meanwhile, it is stored first next time
            try:
                await self._take(item)
            except Exception:
                log.exception("aibot %s: inbound frame failed", self.bot_id)
            self._intake.popleft()
            self.frames_taken += 1
            self._notify()

    async def _take(self, item: _Inbound) -> None:
        raw = json.dumps(item.body, ensure_ascii=False, separators=(",", ":"))
        try:
            event = parse_aibot_json(raw.encode("utf-8"), received_at=item.received_at)
        except MalformedCallback as exc:
            log.warning("aibot %s: callback frame not readable, ignored: %s", self.bot_id, exc.message)
            return
        if item.req_id:
            self._remember(event, item.req_id)
        # WeCom does not redeliver a frame the bot took, so a frame is never given up while the process lives: the
        # store is retried with a capped backoff, and the frames behind it wait in order (heartbeats go on)
        attempt = 0
        while True:
            try:
                accepted = await self.inbound.accept(AIBOT_SOURCE, event, raw, received_at=item.received_at)
                break
            except Exception:
                attempt += 1
                log.log(
                    logging.ERROR if attempt % 10 == 0 else logging.WARNING,
                    "aibot %s: callback not stored (attempt %d), retrying: %s",
                    self.bot_id,
                    attempt,
                    describe(event),
                    exc_info=True,
                    extra={"dedup_key": event.dedup_key},
                )
                await self._sleep(min(self.accept_backoff_cap, 0.5 * 2 ** (attempt - 1)))
        if accepted and self.on_event is not None:
            hook = asyncio.create_task(self._hook(event, item.req_id))
            self._hooks.add(hook)
            hook.add_done_callback(self._hooks.discard)

    async def _hook(self, event: InboundEvent, req_id: str) -> None:
        assert self.on_event is not None
        try:
            await self.on_event(event, req_id)
        except Exception:
            log.exception("aibot %s: event hook failed for %s", self.bot_id, describe(event))

    def _remember(self, event: InboundEvent, req_id: str) -> None:
        self._req_ids[event.dedup_key] = req_id
        self._req_ids.move_to_end(event.dedup_key)
        while len(self._req_ids) > _REQ_IDS_KEPT:
            self._req_ids.popitem(last=False)

    # -- outbound: each request answered by req_id ----------------------------------------------------------

    async def respond(self, req_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``aibot_respond_msg``: a reply (``stream``, ``template_card`` …) to the message that carried ``req_id``."""
        return await self._request(CMD_RESPOND, req_id, body)

    async def respond_welcome(self, req_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``aibot_respond_welcome_msg``: the welcome (``text`` or ``template_card``) for an ``enter_chat``,
        within 5 s of it."""
        return await self._request(CMD_RESPOND_WELCOME, req_id, body)

    async def update_card(self, req_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``aibot_respond_update_msg``: replaces the clicked card, within 5 s of the ``template_card_event``.
        ``body`` is ``{"template_card": {...}, "userids"?: [...]}``; ``response_type`` is added."""
        return await self._request(CMD_RESPOND_UPDATE, req_id, {"response_type": "update_template_card", **body})

    async def send(self, chatid: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``aibot_send_msg``: a message of the bot's own into ``chatid`` (a group's chatid, or a userid for the 1:1
        chat). ``body`` is ``{"msgtype": t, t: {...}}``. ValueError for what WeCom does not take."""
        if not isinstance(chatid, str) or not chatid.strip():
            raise ValueError("aibot_send_msg needs a chatid")
        msgtype = body.get("msgtype")
        if msgtype not in SEND_MSGTYPES:
            raise ValueError(f"aibot_send_msg does not take msgtype {msgtype!r}")
        if not isinstance(body.get(msgtype), Mapping):
            raise ValueError(f"aibot_send_msg: no {msgtype} content")
        return await self._request(CMD_SEND, new_req_id(CMD_SEND), {**body, "chatid": chatid})

    async def _request(self, cmd: str, req_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(req_id, str) or not req_id:
            raise ValueError(f"{cmd} needs the req_id of a frame")
        async with self._serialized(req_id):
            link = self._link
            if link is None or not self.subscribed:
                raise NotConnected(f"not subscribed ({self._state})", cmd, request_sent=False)
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[req_id] = (cmd, future)
            try:
                try:
                    await link.ws.send_str(_dump({"cmd": cmd, "headers": {"req_id": req_id}, "body": dict(body)}))
                except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
                    raise NotConnected(f"not sent: {_reason(exc)}", cmd, request_sent=False) from None
                try:
                    async with asyncio.timeout(self.ack_timeout):
                        answer = await future
                except TimeoutError:
                    raise AckTimeout(f"no answer within {self.ack_timeout:g} s", cmd) from None
            finally:
                if self._pending.get(req_id, (cmd, None))[1] is future:
                    del self._pending[req_id]
        errcode = answer.get("errcode")
        if isinstance(errcode, bool) or not isinstance(errcode, int):
            raise TransportError(f"answer without an errcode: {answer!r}"[:300], cmd)
        if errcode != 0:
            raise error_for(errcode, str(answer.get("errmsg", "")), cmd)
        return answer

    @contextlib.asynccontextmanager
    async def _serialized(self, req_id: str) -> AsyncIterator[None]:
        """One request per req_id at a time: answers are matched by req_id alone."""
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

    def _fail_pending(self, why: str) -> None:
        for cmd, future in list(self._pending.values()):
            if not future.done():
                future.set_exception(NotConnected(why, cmd, request_sent=True))
        # each request removes its own entry


def _event_type(body: Mapping[str, Any]) -> str | None:
    """``event.eventtype``, with or without ``msgtype: event`` beside it (the SDKs look at the event type alone)."""
    event = body.get("event")
    if isinstance(event, dict):
        value = event.get("eventtype")
        return value if isinstance(value, str) else None
    return None


def _msgid(body: Mapping[str, Any]) -> str | None:
    msgid = body.get("msgid")
    return msgid if isinstance(msgid, str) else None


def _dump(frame: Mapping[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


AIBOT_CONNECTION = web.AppKey("aibot_connection", AibotLongConnection)  # the robot's long connection, when configured
