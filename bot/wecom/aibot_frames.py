"""The protocol of the intelligent robot's long connection (智能机器人长连接): WeCom callbacks over a WebSocket the
bot opens itself, so an office needs no inbound port. Its frames, commands and errors; the connection itself is
:class:`bot.wecom.longconn.AibotLongConnection`.

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
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from bot.wecom.errors import TransportError
from bot.wecom.parse import no_duplicate_keys

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
TRANSIENT_SUBSCRIBE = frozenset({-1, 45009, 45033})  # busy / limits: not a credentials problem

HEARTBEAT_INTERVAL = 30.0
MAX_MISSED_PONGS = 2
ACK_TIMEOUT = 5.0

State = Literal["idle", "connecting", "subscribing", "subscribed", "backoff", "refused", "kicked", "standby", "stopped"]


class NotConnected(TransportError):
    """No subscribed connection to send on, or it closed before WeCom answered: transient, retry later."""


class AckTimeout(TransportError):
    """WeCom did not answer within the ack timeout: transient (the frame may have arrived)."""


class Changes:
    """Waiting for a condition on state that changes: :meth:`notify` after every change, :meth:`wait_until` a
    predicate holds (tests and start-up wait here, never sleep)."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()  # replaced by a fresh one at every change

    def notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()


def new_req_id(prefix: str) -> str:
    """``{prefix}_{milliseconds}_{random}``, the SDK's shape."""
    return f"{prefix}_{int(time.time() * 1000)}_{secrets.token_hex(4)}"


def load_frame(data: str) -> dict[str, Any]:
    """A frame's JSON object; ValueError for anything else (duplicate keys included)."""
    frame = json.loads(data, object_pairs_hook=no_duplicate_keys)
    if not isinstance(frame, dict):
        raise ValueError("a frame must be a JSON object")
    return frame


def dump(frame: Mapping[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def event_type(body: Mapping[str, Any]) -> str | None:
    """``event.eventtype``, with or without ``msgtype: event`` beside it (the SDKs look at the event type alone)."""
    event = body.get("event")
    if isinstance(event, dict):
        value = event.get("eventtype")
        return value if isinstance(value, str) else None
    return None


def msgid(body: Mapping[str, Any]) -> str | None:
    value = body.get("msgid")
    return value if isinstance(value, str) else None


def reason(exc: BaseException | None) -> str:
    """An exception as a log line's reason."""
    if exc is None:
        return "unknown"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
