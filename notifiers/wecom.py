"""Outbox senders for WeCom, one per channel, each keeping to WeCom's limits before it sends.

WeCom drops an app message past 30 a minute or 1000 an hour to one member, and an app-chat message past 200 a
minute to one member, **silently** (errcode 0, nothing delivered). So a sender takes a slot from the shared
``RateLimiter`` before every send; without one it does not send but raises ``Deferred(retry_after=...)``, and
the outbox tries again when the slot frees (not counted as a failed attempt): nothing is lost and nothing is sent
to be dropped. The robot webhook answers 45009 past 20 a minute; it is paced the same way, so the error stays the
exception.

Windows are WeCom's plus ``slack`` seconds (1 s by default): a send is counted when it starts, WeCom counts it when
it arrives, and the two differ by the network's jitter and the hosts' clock skew. A send that takes longer than the
slack (the client's own retries, a slow answer) is counted again when it ends, as it may have arrived that late.

Failures map onto the outbox's: typed WeCom errors that are ``permanent`` (81013 no valid recipient, 93000 bad
robot key, 60020 IP not trusted, 42045 bad card, a payload the client refuses) dead-letter the message with the
reason; 45009/45033 retry after WeCom's hint or a whole minute window; -1 busy, transport failures and tokens still
rejected after the client's own retries are transient (the outbox's backoff). A transport failure after the
request went out (no answer: it may have arrived) is an unsure send: it is resent unchanged on ``wecom_app`` with
WeCom's duplicate check, and marked ``【补发】`` into group chats, which have none (:mod:`notifiers.resend`).

Not done: WeCom asks callers to avoid sending exactly at :00 and :30. That concerns scheduled pushes (whoever plans
a daily digest should pick :07, not :00); this outbox sends events as they happen, and holding every message due in
those seconds would cost a retry each for little.

Card updates (a clicked card changed for everyone, :mod:`handlers.cards`) are not paced: WeCom documents no limit
for them, and each needs a one-use code of its own. ``wecom_card_update`` calls ``message/update_template_card``
with the click's ``response_code`` (72 h); ``aibot_card_update`` answers the robot's ``template_card_event`` over the
long connection (``aibot_respond_update_msg``, within 5 s of the click, in the process that received it). A code or
req_id WeCom no longer takes is a permanent failure: the update is dead-lettered, never retried into a loop.

Attachments (an image, a file: payload ``{"msgtype": "image"|"file", "upload": {"filename", "data": base64}}``, built
by :mod:`notifiers.rows`) are uploaded and then sent, both inside the message's rate-limit slot, so a deferred message
uploads nothing: ``wecom_app`` and ``wecom_appchat`` by ``media/upload`` (page 90253; a media_id valid 3 days) and an
image or file message with its media_id; ``wecom_webhook`` sends an image inline (base64 and md5, at most 2 MB) and
a file by ``webhook/upload_media``. Every attempt uploads afresh: the media_id of a failed attempt is not kept, so a
retry never sends one that expired, at the cost of an unused upload. An attachment the client or WeCom refuses (too
large, not a JPG/PNG, a bad type) is dead-lettered with the reason. An image or a file carries no ``【补发】`` mark:
after an unsure send it is sent again unchanged, and may arrive twice (docs/delivery.md).

Senders see the WeCom clients through small protocols (``bot.wecom.client`` provides them); ``wecom_senders`` wires
the ones configured.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from bot.domain.clock import Clock
from bot.domain.events import InboundEvent, OtherEvent
from bot.services.ratelimit import Limit, LimiterUnavailable, RateLimiter
from bot.wecom.errors import RateLimited, TransportError, WeComError
from notifiers.outbox import Deferred, DeliveryError, OutboundMessage, Sender
from notifiers.resend import marked

log = logging.getLogger(__name__)

# WeCom's duplicate check for app messages: a message sent again after a crash between sending and recording it
# (the outbox's lease, 5 minutes, must run out first) is dropped by WeCom. Just above the lease, so that the same
# text sent again on purpose a little later (a repeated reply, a nag) still arrives.
DUPLICATE_CHECK_INTERVAL = 600

T = TypeVar("T")

WECOM_APP = "wecom_app"
WECOM_WEBHOOK = "wecom_webhook"
WECOM_APPCHAT = "wecom_appchat"
AIBOT_RESPONSE = "aibot_response"
WECOM_CARD_UPDATE = "wecom_card_update"  # message/update_template_card (an app card, after a click)
AIBOT_CARD_UPDATE = "aibot_card_update"  # aibot_respond_update_msg (a robot card, after a click; long connection)

# WeCom's documented limits (pages 90236/90248/91770); the senders widen each window by their slack
APP_MEMBER_LIMITS = (Limit(30, 60), Limit(1000, 3600))  # one app → one member; excess dropped silently
WEBHOOK_LIMITS = (Limit(20, 60),)  # one robot; excess answered with 45009
# WeCom counts app-chat messages per *member*, across all the app's chats; we count per chat (a chat's members are
# not known here). Exact while each member is in one of the bot's chats; someone in k of them may be sent up to k
# times the rate. The bot's chats carry tickets, far below 200 a minute; pace per app if that ever changes.
APPCHAT_LIMITS = (Limit(200, 60), Limit(10_000, 86_400))

RATE_LIMITED_WAIT = 60.0  # 45009 without a Retry-After: the minute window WeCom counts in
DEFAULT_SLACK = 1.0


class MediaUploads(Protocol):
    """``WeComClient``'s ``media/upload``: the media_id of the bytes uploaded."""

    async def upload_media(self, media_type: str, filename: str, data: bytes) -> str: ...


class AppMessages(MediaUploads, Protocol):
    """``WeComClient``'s ``message/send`` (and ``media/upload`` for attachments)."""

    agent_id: int | None

    async def send_message(
        self,
        *,
        touser: Sequence[str] | str,
        msgtype: str,
        content: Mapping[str, Any],
        safe: int,
        enable_duplicate_check: int,
        duplicate_check_interval: int,
    ) -> _Sent: ...


class _Sent(Protocol):
    @property
    def invalid_users(self) -> tuple[str, ...]: ...


class AppChats(MediaUploads, Protocol):
    """``WeComClient``'s ``appchat/send`` (and ``media/upload`` for attachments)."""

    agent_id: int | None

    async def appchat_send(self, chatid: str, msgtype: str, content: Mapping[str, Any], *, safe: int) -> None: ...


class Webhooks(Protocol):
    """``WebhookClient``."""

    async def send(self, key: str, msgtype: str, content: Mapping[str, Any]) -> None: ...

    async def send_image(self, key: str, data: bytes) -> None: ...

    async def send_file(self, key: str, data: bytes, filename: str) -> None: ...


class ResponseUrls(Protocol):
    """``ResponseUrlClient``."""

    async def reply(self, response_url: str, payload: Mapping[str, Any]) -> None: ...


@runtime_checkable
class CardUpdates(Protocol):
    """``WeComClient``'s ``message/update_template_card``."""

    async def update_template_card(
        self,
        *,
        response_code: str,
        card: Mapping[str, Any] | None = None,
        replace_name: str | None = None,
        userids: Sequence[str] = (),
        partyids: Sequence[int] = (),
        tagids: Sequence[int] = (),
        atall: bool = False,
    ) -> None: ...


class CardReplies(Protocol):
    """``AibotLongConnection``: the req_id of a frame it received, and ``aibot_respond_update_msg`` on it."""

    @property
    def subscribed(self) -> bool: ...

    def req_id_for(self, event: InboundEvent) -> str | None: ...

    async def update_card(self, req_id: str, body: Mapping[str, Any]) -> Mapping[str, Any]: ...


def delivery_error(exc: WeComError) -> DeliveryError:
    """The outbox's view of a WeCom error the client did not retry away."""
    if isinstance(exc, RateLimited):
        wait = exc.retry_after if exc.retry_after is not None else RATE_LIMITED_WAIT
        return DeliveryError(f"RateLimited: {exc}", retry_after=wait, code=_errcode(exc.errcode))
    # no answer although the request went out: WeCom may have carried it out
    maybe_sent = isinstance(exc, TransportError) and exc.may_have_taken_effect
    code = "transport" if isinstance(exc, TransportError) else _errcode(exc.errcode)
    return DeliveryError(f"{type(exc).__name__}: {exc}", permanent=exc.permanent, maybe_sent=maybe_sent, code=code)


def _errcode(errcode: int) -> str:
    """The metric's code of a WeCom errcode: the code itself, as WeCom's table has them (-1, four to six digits);
    anything else an endpoint might answer is ``other`` (a new series per value would be without end)."""
    return str(errcode) if errcode == -1 or 1_000 <= errcode <= 999_999 else "other"


def _malformed(message: OutboundMessage, why: str) -> DeliveryError:
    return DeliveryError(f"malformed {message.channel} payload: {why}", permanent=True, code="malformed")


def message_body(message: OutboundMessage) -> tuple[str, Mapping[str, Any]]:
    """``msgtype`` and its section, from ``{"msgtype": t, "content": {...}}`` or ``{"msgtype": t, t: {...}}``."""
    msgtype = message.payload.get("msgtype")
    if not isinstance(msgtype, str) or not msgtype:
        raise _malformed(message, "no msgtype")
    content = message.payload.get("content")
    if not isinstance(content, Mapping):
        content = message.payload.get(msgtype)
    if not isinstance(content, Mapping):
        raise _malformed(message, f"no {msgtype} content")
    return msgtype, content


ATTACHMENT_TYPES = frozenset({"image", "file"})


def attachment(message: OutboundMessage) -> tuple[str, str, bytes] | None:
    """The attachment a message carries, as ``(msgtype, filename, bytes)``, or None for a message without one."""
    upload = message.payload.get("upload")
    if upload is None:
        return None
    msgtype = message.payload.get("msgtype")
    if msgtype not in ATTACHMENT_TYPES:
        raise _malformed(message, f"an upload is an image or a file, not {msgtype!r}")
    if not isinstance(upload, Mapping):
        raise _malformed(message, "upload is not an object")
    filename, encoded = upload.get("filename"), upload.get("data")
    if not isinstance(filename, str) or not filename or not isinstance(encoded, str):
        raise _malformed(message, "upload needs a filename and its data")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(message, "upload data is not base64") from None
    return str(msgtype), filename, data


def group_body(message: OutboundMessage) -> tuple[str, Mapping[str, Any]]:
    """:func:`message_body` for a chat without a duplicate check: marked ``【补发】`` when it is a resend."""
    msgtype, content = message_body(message)
    return msgtype, marked(msgtype, content) if message.resend else content


def _retry_after(wait: float) -> float:
    # to the next millisecond: a wait that rounds to zero in a timestamp would come straight back here
    return max(0.001, math.ceil(wait * 1000) / 1000)


def _digest(secret: str) -> str:
    """A name for a secret (a robot key) in limiter keys and logs."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class Pacer:
    """A slot from ``limiter`` for every key of a message, or :class:`Deferred` (retry_after) and no send."""

    def __init__(self, limiter: RateLimiter, limits: Sequence[Limit], clock: Clock, slack: float) -> None:
        if slack < 0:
            raise ValueError("slack must not be negative")
        self.limiter = limiter
        self.limits = [Limit(lim.count, lim.per_seconds + slack) for lim in limits]
        self.clock = clock
        self.slack = slack

    def _now(self) -> float:
        return self.clock.now().timestamp()

    async def send(self, keys: Sequence[str], what: str, send: Callable[[], Awaitable[T]]) -> T:
        started = self._now()
        try:
            wait = await self.limiter.acquire_all(keys, self.limits, started)
        except LimiterUnavailable as exc:
            raise DeliveryError(f"rate limiter unavailable, not sending unpaced: {exc}", code="limiter") from None
        if wait > 0:
            reason = f"paced: {what} is at its limit; next slot in {wait:.1f} s"
            raise Deferred(reason, retry_after=_retry_after(wait))
        try:
            return await _mapped(send)
        finally:
            ended = self._now()
            if ended - started > self.slack:
                # it may have reached WeCom only now: hold the slot from here on
                try:
                    await self.limiter.record(keys, self.limits, ended)
                except LimiterUnavailable:
                    log.warning("could not record a slow send with the rate limiter", exc_info=True)


async def _mapped(send: Callable[[], Awaitable[T]]) -> T:
    try:
        return await send()
    except WeComError as exc:
        raise delivery_error(exc) from None
    except ValueError as exc:  # the client refused the message before sending it (size, recipients, URL)
        raise DeliveryError(f"refused by the client: {exc}", permanent=True, code="refused") from None


def _int(message: OutboundMessage, name: str, default: int) -> int:
    value = message.payload.get(name, default)
    if not isinstance(value, int):  # a bool is an int: WeCom takes 0/1
        raise _malformed(message, f"{name} is not an integer")
    return int(value)


class AppMessageSender:
    """Channel ``wecom_app``: ``{"touser": [...] or "a|b", "msgtype": ..., "content": {...}}`` through
    ``message/send`` (``safe``, ``enable_duplicate_check`` (default 1: WeCom drops the same message re-sent within
    ``duplicate_check_interval``, default :data:`DUPLICATE_CHECK_INTERVAL`), ``duplicate_check_interval`` pass
    through). Without
    ``touser`` the destination names the members. Paced per member; ``@all``, parties and tags cannot be, so they
    are refused. Members WeCom does not know are logged and skipped; if none is valid, 81013 dead-letters it."""

    def __init__(
        self, client: AppMessages, limiter: RateLimiter, clock: Clock, *, slack: float = DEFAULT_SLACK
    ) -> None:
        self.client = client
        self.clock = clock
        self.pacer = Pacer(limiter, APP_MEMBER_LIMITS, clock, slack)

    def _members(self, message: OutboundMessage) -> list[str]:
        touser = message.payload.get("touser") or message.destination
        if isinstance(touser, str):
            touser = touser.split("|")
        if not isinstance(touser, list | tuple) or not all(isinstance(u, str) for u in touser):
            raise _malformed(message, "touser is not a list of userids")
        members = list(dict.fromkeys(u.strip() for u in touser if u.strip()))
        if not members:
            raise _malformed(message, "no touser")
        if "@all" in members or any(k in message.payload for k in ("toparty", "totag")):
            raise _malformed(message, "@all, toparty and totag cannot be paced per member; name the members")
        return members

    async def send(self, message: OutboundMessage) -> None:
        members = self._members(message)
        safe = _int(message, "safe", 0)
        # on unless the message says otherwise: a message sent again after a crash between sending and recording
        # it is then dropped by WeCom instead of reaching the member twice
        duplicate_check = _int(message, "enable_duplicate_check", 1)
        interval = _int(message, "duplicate_check_interval", DUPLICATE_CHECK_INTERVAL)
        # a resend goes unchanged where WeCom drops the copy, and marked where it would not: no duplicate check, or
        # one whose window (counted from the first send, no earlier than the queueing) may have passed
        queued = message.queued_at
        late = queued is None or (self.clock.now() - queued).total_seconds() >= interval
        upload = attachment(message)
        msgtype: str
        content: Mapping[str, Any]
        if upload is not None:
            msgtype, content = upload[0], {}
        else:
            msgtype, content = group_body(message) if not duplicate_check or late else message_body(message)
        # userids are case-insensitive in WeCom
        keys = [f"{WECOM_APP}:{self.client.agent_id}:{m.lower()}" for m in members]

        async def send() -> _Sent:
            nonlocal content
            if upload is not None:  # uploaded afresh on every attempt (a media_id lives 3 days)
                content = {"media_id": await self.client.upload_media(*upload)}
            return await self.client.send_message(
                touser=members,
                msgtype=msgtype,
                content=content,
                safe=safe,
                enable_duplicate_check=duplicate_check,
                duplicate_check_interval=interval,
            )

        label = members[0] if len(members) == 1 else f"one of {len(members)} members"
        result = await self.pacer.send(keys, label, send)
        if result.invalid_users:
            log.warning(
                "wecom app message: recipients unknown to WeCom were skipped",
                extra={"outbox_id": message.id, "invalid_users": list(result.invalid_users)},
            )


class WebhookSender:
    """Channel ``wecom_webhook``: the destination is the robot's key, the payload ``{"msgtype": ..., ...}``; 20 a
    minute per robot. The key is a secret: logs and limiter keys name it by a digest."""

    def __init__(self, client: Webhooks, limiter: RateLimiter, clock: Clock, *, slack: float = DEFAULT_SLACK) -> None:
        self.client = client
        self.pacer = Pacer(limiter, WEBHOOK_LIMITS, clock, slack)

    async def send(self, message: OutboundMessage) -> None:
        key = message.destination
        upload = attachment(message)
        msgtype, content = (upload[0], {}) if upload is not None else group_body(message)

        async def send() -> None:
            if upload is None:
                await self.client.send(key, msgtype, content)
            elif upload[0] == "image":  # inline: base64 and md5, at most 2 MB
                await self.client.send_image(key, upload[2])
            else:  # webhook/upload_media, then the file message
                await self.client.send_file(key, upload[2], upload[1])

        robot = _digest(key)
        await self.pacer.send([f"{WECOM_WEBHOOK}:{robot}"], f"robot {robot}", send)


class AppChatSender:
    """Channel ``wecom_appchat``: the destination is the chatid of a chat the app created; 200 a minute and 10 000
    a day per chat (see ``APPCHAT_LIMITS`` for why per chat)."""

    def __init__(self, client: AppChats, limiter: RateLimiter, clock: Clock, *, slack: float = DEFAULT_SLACK) -> None:
        self.client = client
        self.pacer = Pacer(limiter, APPCHAT_LIMITS, clock, slack)

    async def send(self, message: OutboundMessage) -> None:
        upload = attachment(message)
        msgtype, content = (upload[0], {}) if upload is not None else group_body(message)
        chatid = message.destination
        safe = _int(message, "safe", 0)

        async def send() -> None:
            nonlocal content
            if upload is not None:  # uploaded afresh on every attempt
                content = {"media_id": await self.client.upload_media(*upload)}
            await self.client.appchat_send(chatid, msgtype, content, safe=safe)

        await self.pacer.send([f"{WECOM_APPCHAT}:{self.client.agent_id}:{chatid}"], f"chat {chatid}", send)


class ResponseUrlSender:
    """Channel ``aibot_response``: the payload (``msgtype`` and its section) to the destination, a callback's
    ``response_url`` (one use, valid an hour; not paced). The URL carries a code: it is never logged."""

    def __init__(self, client: ResponseUrls) -> None:
        self.client = client

    async def send(self, message: OutboundMessage) -> None:
        await _mapped(lambda: self.client.reply(message.destination, message.payload))


class CardUpdateSender:
    """Channel ``wecom_card_update``: ``{"response_code": ..., "template_card": {...}}`` (the whole card replaced) or
    ``{"response_code": ..., "button": {"replace_name": ...}}`` (its buttons greyed out with that text), for
    ``userids`` or, with ``atall`` (default 1), everyone who has the card (page 94888). The destination only names
    the card (its task id); the code is a credential and is never logged."""

    def __init__(self, client: CardUpdates) -> None:
        self.client = client

    async def send(self, message: OutboundMessage) -> None:
        payload = message.payload
        code = payload.get("response_code")
        if not isinstance(code, str) or not code:
            raise _malformed(message, "no response_code")
        card = payload.get("template_card")
        button = payload.get("button")
        replace = button.get("replace_name") if isinstance(button, Mapping) else None
        if (card is None) == (replace is None) or (card is not None and not isinstance(card, Mapping)):
            raise _malformed(message, "give a template_card or a button.replace_name")
        userids = payload.get("userids") or []
        if not isinstance(userids, list) or not all(isinstance(u, str) for u in userids):
            raise _malformed(message, "userids is not a list of userids")
        atall = bool(_int(message, "atall", 0 if userids else 1))

        async def send() -> None:
            await self.client.update_template_card(
                response_code=code,
                card=card,
                replace_name=replace if isinstance(replace, str) else None,
                userids=userids,
                atall=atall,
            )

        await _mapped(send)


class AibotCardUpdateSender:
    """Channel ``aibot_card_update``: ``{"template_card": {...}, "userids"?: [...]}`` as the answer to a robot's
    ``template_card_event`` received over the long connection; the destination is that event's dedup key, under
    which the connection remembers the frame's req_id. WeCom takes it within 5 s of the click; a req_id this process
    does not know (another process received the click, or it restarted since) or WeCom no longer takes (846605) is
    a permanent failure. Only the connection's process sends (``ready``)."""

    def __init__(self, connection: CardReplies) -> None:
        self.connection = connection

    @property
    def ready(self) -> bool:
        return self.connection.subscribed

    async def send(self, message: OutboundMessage) -> None:
        card = message.payload.get("template_card")
        if not isinstance(card, Mapping):
            raise _malformed(message, "no template_card")
        body: dict[str, Any] = {"template_card": dict(card)}
        userids = message.payload.get("userids")
        if userids is not None:
            if not isinstance(userids, list) or not all(isinstance(u, str) for u in userids):
                raise _malformed(message, "userids is not a list of userids")
            body["userids"] = userids
        # the connection looks the req_id up by the event's dedup key, which is all it reads of the event
        clicked = OtherEvent(
            source="aibot", kind="event.template_card_event", sender=None, at=_EPOCH, dedup_key=message.destination
        )
        req_id = self.connection.req_id_for(clicked)
        if req_id is None:
            raise DeliveryError(
                "card update: the click's req_id is not known in this process (received elsewhere, or before a "
                "restart); WeCom takes the update only within 5 s of the click",
                permanent=True,
                code="no_req_id",
            )
        await _mapped(lambda: self.connection.update_card(req_id, body))


_EPOCH = datetime.fromtimestamp(0, UTC)


def wecom_senders(
    *,
    limiter: RateLimiter,
    clock: Clock,
    app: AppMessages | None = None,
    webhook: Webhooks | None = None,
    response_url: ResponseUrls | None = None,
    appchat: AppChats | None = None,
    slack: float = DEFAULT_SLACK,
) -> dict[str, Sender]:
    """The senders for the clients given (an app client serves both ``wecom_app`` and ``wecom_appchat`` when it
    is passed as both, and ``wecom_card_update`` when it can update cards); channels without a client stay queued
    for a process that has one. ``aibot_card_update`` needs the long connection: :class:`AibotCardUpdateSender`."""
    senders: dict[str, Sender] = {}
    if app is not None:
        senders[WECOM_APP] = AppMessageSender(app, limiter, clock, slack=slack)
        if isinstance(app, CardUpdates):
            senders[WECOM_CARD_UPDATE] = CardUpdateSender(app)
    if appchat is not None:
        senders[WECOM_APPCHAT] = AppChatSender(appchat, limiter, clock, slack=slack)
    if webhook is not None:
        senders[WECOM_WEBHOOK] = WebhookSender(webhook, limiter, clock, slack=slack)
    if response_url is not None:
        senders[AIBOT_RESPONSE] = ResponseUrlSender(response_url)
    return senders
