"""What the fake's intelligent robots may send over the long connection, and what a reply needs from the frame it
answers: the bodies page 101463 and the SDKs describe, checked with :mod:`bot.sandbox.fake.validate`'s rules, and
recorded through the host's ``deliver`` (kinds ``aibot_respond``, ``aibot_welcome``, ``aibot_update_card``,
``aibot_send``; ``to`` has ``bot_id`` and ``chatid``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from bot.sandbox.fake import errors as E
from bot.sandbox.fake import validate
from bot.sandbox.fake.errors import ApiError
from bot.sandbox.fake.model import Delivered


class Host(Protocol):
    """What the robots' requests need of :class:`bot.sandbox.fake.FakeWeCom`."""

    base_url: str | None
    delivered: list[Delivered]

    def now(self) -> datetime: ...

    def response_url(self, payload: Mapping[str, Any] | None = None) -> str: ...

    def admit(self, key: tuple[Any, ...], limits: tuple[tuple[float, int], ...]) -> bool: ...

    def deliver(
        self, kind: str, to: dict[str, Any], msgtype: str, body: dict[str, Any], msgid: str | None = None
    ) -> Delivered: ...


AUTH_FAILED = 853000
INVALID_REQ_ID = 846605
ERRMSG = {AUTH_FAILED: "invalid bot_id or secret", INVALID_REQ_ID: "invalid req_id"}

REPLY_WINDOW = timedelta(seconds=5)  # welcome and card update: within 5 s of the event
RESPOND_WINDOW = timedelta(hours=1)  # (?) a message's req_id for aibot_respond_msg; observed alive after 8.5 min
STREAM_MAX = 20480  # stream content, bytes

KINDS = ("aibot_respond", "aibot_welcome", "aibot_update_card", "aibot_send")


def _stream(section: dict[str, Any]) -> None:
    if not isinstance(section.get("id"), str) or not section["id"]:
        raise ApiError(E.INVALID_PARAMETER, "stream.id missing")
    content = section.get("content", "")
    if not isinstance(content, str):
        raise ApiError(E.INVALID_PARAMETER, "stream.content must be a string")
    if len(content.encode("utf-8")) > STREAM_MAX:
        raise ApiError(E.CONTENT_TOO_LONG, f"stream content over {STREAM_MAX} bytes")


def _card(section: dict[str, Any]) -> None:
    validate.template_card(section)


STREAM_WITH_CARD = "stream_with_template_card"


def _stream_with_card(body: dict[str, Any]) -> None:
    """``{"msgtype": "stream_with_template_card", "stream": {...}, "template_card"?: {...}}``: the stream as a
    ``stream`` reply's, the card (optional: it may come with any reply of the stream) as any card."""
    stream = body.get("stream")
    if not isinstance(stream, dict):
        raise ApiError(E.INVALID_PARAMETER, "stream missing")
    _stream(stream)
    card = body.get("template_card")
    if card is not None:
        if not isinstance(card, dict):
            raise ApiError(E.INVALID_PARAMETER, "template_card must be an object")
        _card(card)


# aibot_respond_msg: what page 101463 and the SDKs' reply methods send (no markdown: that is aibot_send_msg's and
# the response_url's); ``stream_with_template_card`` has no section of its own and is checked by _respond
RESPOND_RULES: Mapping[str, validate.Rule] = {
    "stream": _stream,
    "template_card": _card,
    "file": validate.media_id,
    "image": validate.media_id,
    "voice": validate.media_id,
    "video": validate.media_id,
}
WELCOME_RULES: Mapping[str, validate.Rule] = {
    "text": partial(validate.content, limit=validate.TEXT_MAX),
    "template_card": _card,
}
SEND_RULES: Mapping[str, validate.Rule] = {
    "markdown": partial(validate.content, limit=STREAM_MAX),
    "template_card": _card,
    "file": validate.media_id,
    "image": validate.media_id,
    "voice": validate.media_id,
    "video": validate.media_id,
}


@dataclass(kw_only=True)
class Pushed:
    """A frame the fake sent a robot, and what its req_id may be used for."""

    req_id: str
    bot_id: str
    kind: str  # "message" or the event type
    text: str  # the frame as sent, for redelivery
    at: datetime
    chatid: str | None
    userid: str
    chattype: str
    task_id: str | None = None
    answered: set[str] = field(default_factory=set)  # commands already used on it (welcome/update: once)


def recipient(pushed: Pushed) -> dict[str, Any]:
    """The ``to`` of a reply to ``pushed``: the robot, the chat (a userid for the 1:1 chat) and the sender."""
    return {
        "bot_id": pushed.bot_id,
        "req_id": pushed.req_id,
        "chatid": pushed.chatid or pushed.userid,
        "userid": pushed.userid,
        "chattype": pushed.chattype,
    }


def respond(host: Host, pushed: Pushed, body: dict[str, Any]) -> None:
    """``aibot_respond_msg`` on a message's req_id, within :data:`RESPOND_WINDOW`."""
    if pushed.kind != "message" or host.now() - pushed.at > RESPOND_WINDOW:
        raise ApiError(INVALID_REQ_ID)
    if body.get("msgtype") == STREAM_WITH_CARD:
        msgtype = STREAM_WITH_CARD
        _stream_with_card(body)
    else:
        msgtype, _ = validate.message(body, RESPOND_RULES)
    host.deliver("aibot_respond", recipient(pushed), msgtype, body)


def welcome(host: Host, pushed: Pushed, body: dict[str, Any]) -> None:
    """``aibot_respond_welcome_msg`` on an ``enter_chat``'s req_id, once, within :data:`REPLY_WINDOW`."""
    if pushed.kind != "enter_chat" or "welcome" in pushed.answered or host.now() - pushed.at > REPLY_WINDOW:
        raise ApiError(INVALID_REQ_ID)
    msgtype, _ = validate.message(body, WELCOME_RULES)
    pushed.answered.add("welcome")
    host.deliver("aibot_welcome", recipient(pushed), msgtype, body)


def update(host: Host, pushed: Pushed, body: dict[str, Any]) -> None:
    """``aibot_respond_update_msg`` on a ``template_card_event``'s req_id, once, within :data:`REPLY_WINDOW`."""
    if pushed.kind != "template_card_event" or "update" in pushed.answered:
        raise ApiError(INVALID_REQ_ID)
    if host.now() - pushed.at > REPLY_WINDOW:
        raise ApiError(INVALID_REQ_ID)
    if body.get("response_type") != "update_template_card":
        raise ApiError(E.INVALID_PARAMETER, "response_type must be update_template_card")
    card = body.get("template_card")
    if not isinstance(card, dict):
        raise ApiError(E.INVALID_PARAMETER, "template_card missing")
    _card(card)
    if pushed.task_id is not None and card.get("task_id") not in (None, pushed.task_id):
        raise ApiError(E.TASK_ID_INVALID, "task_id differs from the clicked card's")
    userids = body.get("userids")
    if userids is not None and (not isinstance(userids, list) or not all(isinstance(u, str) for u in userids)):
        raise ApiError(E.INVALID_PARAMETER, "userids must be a list of userids")
    pushed.answered.add("update")
    host.deliver("aibot_update_card", {**recipient(pushed), "userids": userids}, "template_card", body)


def send(host: Host, bot_id: str, body: dict[str, Any], *, per_minute: int) -> None:
    """``aibot_send_msg``: a message of the robot's own into ``chatid``, at most ``per_minute`` a minute per chat."""
    chatid = body.get("chatid")
    if not isinstance(chatid, str) or not chatid.strip():
        raise ApiError(E.CHATID_REQUIRED)
    msgtype, _ = validate.message(body, SEND_RULES)
    if not host.admit(("aibot_send", bot_id, chatid), ((60, per_minute),)):
        raise ApiError(E.FREQUENCY_LIMIT)
    host.deliver("aibot_send", {"bot_id": bot_id, "chatid": chatid}, msgtype, body)
