"""Outbox sender for the intelligent robot's proactive pushes (``aibot_send_msg``) over its long connection.

Channel ``aibot_ws``: the payload is ``{"chatid": ..., "msgtype": t, t: {...}}`` (or ``"content": {...}``, as the
other WeCom channels take it); without ``chatid`` the destination is the chat. ``chatid`` is a group's chatid, or a
userid for the robot's 1:1 chat with that user. WeCom takes ``markdown``, ``template_card`` and media here; another
msgtype is dead-lettered at once, without taking a rate-limit slot.

While the connection is down nothing is sent and nothing is lost: the sender is not :attr:`AibotWsSender.ready`, so
the outbox does not claim its messages at all (a process that is not the connection's leader never does), and one
claimed just before a drop is deferred, without taking a rate-limit slot or using up an attempt. So is one whose
connection dropped between that check and the send (it takes a slot then, but is not an attempt): nothing went
out. A send cut off by a drop (no answer from WeCom) is an unsure attempt: it may have arrived, and
``aibot_send_msg`` has no idempotency key, so it is retried with backoff marked as a resend (``【补发】``,
:mod:`notifiers.resend`).

Attachments (a payload with an ``upload``, :mod:`notifiers.rows`) are dead-lettered at once, with the reason:
``aibot_send_msg`` takes an image or a file only by a media_id, and WeCom's documentation of the long connection
(page 101463) and the official SDKs this bot follows (``aibot-node-sdk``, ``wecom-aibot-python-sdk`` 1.0.2) name no
way to upload one; a media_id from the app's ``media/upload`` belongs to the app (?). Later SDKs are reported to
upload over the connection in chunks (``aibot_upload_media_init``/``_chunk``/``_finish``), unconfirmed by
Tencent's text. :mod:`notifiers.rows` therefore sends a group's attachments by its webhook robot where it has one,
and a member's by the app where it is configured; only what neither reaches lands here.

Pacing: WeCom documents no limit for ``aibot_send_msg`` (page 101463 and the SDK name none), so each chat is held
to the group robot webhook's documented 20 messages a minute, through the shared :class:`RateLimiter` as the other
senders do. Errcodes map as for the HTTP API (:func:`notifiers.wecom.delivery_error`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from bot.domain.clock import Clock
from bot.services.ratelimit import Limit, RateLimiter
from bot.wecom.longconn import SEND_MSGTYPES, NotConnected
from notifiers.outbox import Deferred, DeliveryError, OutboundMessage
from notifiers.wecom import DEFAULT_SLACK, Pacer, group_body

AIBOT_WS = "aibot_ws"


def welcome_body(text: str) -> dict[str, Any]:
    """The robot's welcome on entering a chat (``aibot_respond_welcome_msg``): plain text."""
    return {"msgtype": "text", "text": {"content": text}}


AIBOT_SEND_LIMITS = (Limit(20, 60),)  # assumed: the webhook's 20 a minute, per chat
RECONNECT_WAIT = 5.0  # seconds a message claimed while the connection is down waits before it is looked at again


class AibotPushes(Protocol):
    """:class:`bot.wecom.longconn.AibotLongConnection`'s proactive send."""

    bot_id: str

    @property
    def subscribed(self) -> bool: ...

    @property
    def state(self) -> str: ...

    async def send(self, chatid: str, body: Mapping[str, Any]) -> Mapping[str, Any]: ...


class AibotWsSender:
    """Channel ``aibot_ws``: one ``aibot_send_msg`` per message, paced per chat."""

    def __init__(
        self, connection: AibotPushes, limiter: RateLimiter, clock: Clock, *, slack: float = DEFAULT_SLACK
    ) -> None:
        self.connection = connection
        self.pacer = Pacer(limiter, AIBOT_SEND_LIMITS, clock, slack)

    @property
    def ready(self) -> bool:
        """Whether the connection is up: the outbox claims this channel's messages only then."""
        return self.connection.subscribed

    async def send(self, message: OutboundMessage) -> None:
        chatid = message.payload.get("chatid") or message.destination
        if not isinstance(chatid, str) or not chatid.strip():
            raise DeliveryError(f"malformed {AIBOT_WS} payload: no chatid", permanent=True, code="malformed")
        if "upload" in message.payload:
            raise DeliveryError(
                f"{AIBOT_WS} cannot send an attachment: aibot_send_msg needs a media_id and the robot's long "
                "connection has no documented upload; configure the app (for members) or the group's webhook_key",
                permanent=True,
                code="malformed",
            )
        msgtype, content = group_body(message)  # no duplicate check: a resend is marked
        # before the pacer: a send that cannot happen takes no slot
        if msgtype not in SEND_MSGTYPES:
            takes = ", ".join(sorted(SEND_MSGTYPES))
            raise DeliveryError(
                f"malformed {AIBOT_WS} payload: aibot_send_msg does not take msgtype {msgtype!r} (only {takes})",
                permanent=True,
                code="malformed",
            )
        if not self.connection.subscribed:
            raise self._down()
        body = {"msgtype": msgtype, msgtype: dict(content)}

        async def push() -> Mapping[str, Any]:
            try:
                return await self.connection.send(chatid, body)
            except NotConnected as exc:
                if exc.request_sent:
                    raise  # it may have arrived: a failed attempt, retried with backoff
                raise self._down() from None  # the link dropped after the check above: nothing went out

        await self.pacer.send([f"{AIBOT_WS}:{self.connection.bot_id}:{chatid}"], f"chat {chatid}", push)

    def _down(self) -> Deferred:
        return Deferred(
            f"the robot's long connection is down ({self.connection.state}); waiting for it",
            retry_after=RECONNECT_WAIT,
        )
