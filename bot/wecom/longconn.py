"""The intelligent robot's long connection (智能机器人长连接), kept up: connect, subscribe, heartbeat, read, reconnect
with backoff, stand by when this process may not lead, and send the robot's requests, each answered by req_id.
The protocol, its sources and what is only observed: :mod:`bot.wecom.aibot_frames`; storing what arrives:
:mod:`bot.wecom.aibot_intake`; one socket and its requests: :mod:`bot.wecom.aibot_link`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import aiohttp
from aiohttp import web

from bot.domain.clock import Clock
from bot.domain.events import InboundEvent
from bot.wecom.aibot_frames import (
    ACK_TIMEOUT,
    AIBOT_WS_URL,
    CMD_RESPOND,
    CMD_RESPOND_UPDATE,
    CMD_RESPOND_WELCOME,
    CMD_SEND,
    CMD_SUBSCRIBE,
    HEARTBEAT_INTERVAL,
    MAX_MISSED_PONGS,
    SEND_MSGTYPES,
    TRANSIENT_SUBSCRIBE,
    AckTimeout,
    Changes,
    NotConnected,
    State,
    dump,
    new_req_id,
    reason,
)
from bot.wecom.aibot_intake import EventHook, Inbox, Intake
from bot.wecom.aibot_link import Link, Requests

__all__ = [
    "AIBOT_CONNECTION",
    "SEND_MSGTYPES",
    "AckTimeout",
    "AibotLongConnection",
    "EventHook",
    "Guard",
    "Inbox",
    "NotConnected",
    "State",
]

log = logging.getLogger(__name__)

Guard = Callable[[], Awaitable[bool]]


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
        self.clock = clock
        self.url = url
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
        self._sleep = sleep
        self._random = random
        self._monotonic = monotonic

        self._state: State = "idle"
        self._changes = Changes()
        self._intake = Intake(
            bot_id=bot_id,
            inbound=inbound,
            changes=self._changes,
            sleep=sleep,
            backoff_cap=accept_backoff_cap,
            on_event=on_event,
        )
        self._link: Link | None = None
        self._requests = Requests()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.subscriptions = 0  # successful subscribes so far

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
        self._changes.notify()

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        await self._changes.wait_until(predicate)

    @property
    def inbound(self) -> Inbox:
        return self._intake.inbound

    @property
    def on_event(self) -> EventHook | None:
        """Runs, in a task of its own, for each event newly stored, with the req_id of its frame."""
        return self._intake.on_event

    @on_event.setter
    def on_event(self, hook: EventHook | None) -> None:
        self._intake.on_event = hook

    @property
    def frames_taken(self) -> int:
        """Callback frames taken in so far (persisted, or found unreadable)."""
        return self._intake.taken

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
        return self._intake.req_id_for(event)

    # -- lifecycle ------------------------------------------------------------------------------------------

    @property
    def unstored(self) -> int:
        """Frames received and not yet stored (the one being stored included)."""
        return self._intake.unstored

    def start(self) -> asyncio.Task[None]:
        """Starts connecting (again, after :meth:`stop` or :meth:`close`) and storing what arrives; the frames a
        previous run left unstored are stored first."""
        self._intake.start()
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
        self._requests.fail_all("the long connection was closed")
        self._set_state("stopped")

    async def close(self, *, grace: float = 5.0) -> None:
        """At shutdown: :meth:`stop`, then lets frames already received be stored (up to ``grace`` seconds) and
        stops the intake. A frame still unstored is logged as an error and kept: a later :meth:`start` in this
        process stores it first."""
        await self.stop()
        await self._intake.close(grace)

    def _on_callback(self, req_id: str, body: dict[str, Any]) -> None:
        self._intake.put(req_id, body, self.clock.now())

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
            log.warning("aibot %s: cannot connect to %s: %s", self.bot_id, self.url, reason(exc))
            return "failed", False
        if self._closing or not await self._allowed("subscribe"):
            with contextlib.suppress(Exception):
                await ws.close()
            return ("closed" if self._closing else "standby"), False
        loop = asyncio.get_running_loop()
        link = Link(
            ws=ws, bot_id=self.bot_id, subscribe_req_id=new_req_id(CMD_SUBSCRIBE), subscribed=loop.create_future()
        )
        self._link = link
        self._set_state("subscribing")
        reader = asyncio.create_task(link.read(self._on_callback, self._requests), name="aibot-reader")
        heartbeat: asyncio.Task[None] | None = None
        up_since: float | None = None
        try:
            try:
                await ws.send_str(
                    dump(
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
                log.warning("aibot %s: connection lost while subscribing: %s", self.bot_id, reason(exc))
                return "failed", False
            errcode = answer.get("errcode")
            if errcode != 0:
                errmsg = answer.get("errmsg", "")
                if errcode in TRANSIENT_SUBSCRIBE:
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
            heartbeat = asyncio.create_task(
                link.heartbeat(self.heartbeat_interval, self.max_missed_pongs), name="aibot-heartbeat"
            )
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
            self._requests.fail_all("the long connection closed before WeCom answered")
            if link.closing is not None:
                with contextlib.suppress(Exception):
                    await link.closing
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()

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
        return await self._requests.request(
            cmd,
            req_id,
            body,
            link=lambda: self._link if self.subscribed else None,
            state=lambda: self._state,
            ack_within=self.ack_timeout,
        )


AIBOT_CONNECTION = web.AppKey("aibot_connection", AibotLongConnection)  # the robot's long connection, when configured
