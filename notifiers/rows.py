"""Outbox rows, built in one place: a command's :class:`bot.messages.reply.Reply` or a :class:`bot.messages.notice.
Notice` of the bot's own becomes the rows that deliver it, as WeCom's JSON for the channel that reaches its
audience in this deployment (:class:`bot.services.channels.Channels`).

**Replies** (keyed by the inbound event's dedup key, so a command re-run after a crash queues nothing twice):

* a message to the intelligent robot (group or 1:1, callback URL or long connection) is answered through its
  ``response_url`` (one use, an hour): channel ``aibot_response``, markdown;
* a message in the 1:1 chat with the self-built app is answered by an app message to the sender;
* private details (to the sender, or to another member because of the event) go by app message when the app is
  configured, else over the robot's long connection to the member's 1:1 chat; with neither, nothing is queued;
* a clicked card changes for everyone: an app card by ``message/update_template_card`` with the click's
  ``response_code`` (channel ``wecom_card_update``), a robot card over the long connection with the click's req_id
  (channel ``aibot_card_update``); a robot card in callback mode cannot be changed (nothing is queued).

**Notices** (keyed ``{notice.key}:{audience}``, so the same notice queued twice is sent once):

* a unit's group by ``units[].group.transport``: ``aibot`` (the robot's long connection: markdown, or the notice's
  card with its buttons), ``webhook`` (markdown), ``app`` (``appchat/send``: markdown); ``auto`` takes the first the
  deployment and the group allow. Mentions are ``<@userid>`` in the markdown. A card goes only where buttons work
  (the robot); a card cannot @-mention, so with mentions it is followed by a short markdown line that carries them
  (same ordering key: it arrives after the card);
* a member privately through the self-built app (text or markdown, or the card) or, without the app, the robot's
  1:1 chat over the long connection.

**Attachments** (:class:`bot.messages.notice.Attachment`) follow the text to the same audience, one row each, keyed
``{notice.key}:{audience}:attachment:{i}``, under the notice's ordering key (or, without one, a key of the notice and
audience), so they arrive after the text and in order. Their bytes travel in the row, base64 in its JSON: the outbox
holds everything it must send before the notice's transaction commits. The payload is the channel's usual one with
an ``upload`` in place of the message's section (the sender uploads it, then sends the media_id it gets)::

    {"msgtype": "image" | "file", "upload": {"filename": "通报.png", "data": "<base64>"}, "touser"/"chatid": ...}

A group reached over the robot's long connection gets its attachments through the group's webhook robot when it has
one (the long connection cannot upload media here; docs/delivery.md); without one they are queued on ``aibot_ws``
all the same, where the sender dead-letters them with that reason, for an operator to see.

``not_before`` holds a routine notice back (outside the service window, in quiet hours): its rows are due from then.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.domain.events import CardClick
from bot.messages.cards import Card
from bot.messages.nags import MissFlag, Reminder, flag_notice, reminder_notice
from bot.messages.notice import Attachment, Notice
from bot.messages.reply import Command, Reply
from bot.services.channels import Channels
from config.model import BotConfig, Unit
from notifiers.aibot_ws import AIBOT_WS
from notifiers.wecom import (
    AIBOT_CARD_UPDATE,
    AIBOT_RESPONSE,
    WECOM_APP,
    WECOM_APPCHAT,
    WECOM_CARD_UPDATE,
    WECOM_WEBHOOK,
)

log = logging.getLogger(__name__)

Row = dict[str, Any]

KEY_MAX = 200  # outbox.idempotency_key is VARCHAR(200)
MARKDOWN_LIMIT = 2000  # bytes: the app's markdown limit is 2048, the webhook's 4096; the smaller, with room
URGENT_PRIORITY = 0  # before replies and routine messages
REPLY_PRIORITY = 2  # answers to people waiting in the chat go before routine pushes
ROUTINE_PRIORITY = 5
CARD_TYPE = "button_interaction"


def row(
    channel: str,
    destination: str,
    key: str,
    payload: Mapping[str, Any],
    *,
    at: datetime,
    priority: int,
    ordering_key: str | None = None,
    due: datetime | None = None,
) -> Row:
    """One outbox row, pending, due at ``due`` (default: ``at``)."""
    return {
        "channel": channel,
        "destination": destination,
        "idempotency_key": key,
        "ordering_key": ordering_key,
        "priority": priority,
        "payload": dict(payload),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": due or at,
        "created_at": at,
    }


def template_card(card: Card) -> dict[str, Any]:
    """WeCom's ``template_card`` (``button_interaction``) for ``card``."""
    return {
        "card_type": CARD_TYPE,
        "source": {"desc": card.source},
        "main_title": {"title": card.title, "desc": card.title_desc},
        "sub_title_text": card.subtitle,
        "horizontal_content_list": [{"keyname": k, "value": v} for k, v in card.fields]
        + ([{"keyname": "看板", "value": "打开工单页", "type": 1, "url": card.link}] if card.link else []),
        "button_list": [{"text": b.text, "style": b.style, "key": b.key} for b in card.buttons],
        "task_id": card.task_id,
    }


def clip(text: str, limit: int = MARKDOWN_LIMIT) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes at a character boundary, with an ellipsis when cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def key(base: str, audience: str) -> str:
    """An idempotency key that fits the column: hashed when too long, never cut (two keys never become one)."""
    whole = f"{base}:{audience}"
    if len(whole) <= KEY_MAX:
        return whole
    return f"sha256:{hashlib.sha256(whole.encode('utf-8', 'surrogatepass')).hexdigest()}"


# -- replies ----------------------------------------------------------------------------------------------------


def outbox_key(part: str, event: Command) -> str:
    """The idempotency key of one of ``event``'s outbox rows: hashed when it would not fit the column (a card's
    task id and button key are chosen by whoever built the card), never cut, so two events never share one."""
    whole = f"{part}:{event.dedup_key}"
    if len(whole) <= KEY_MAX:
        return whole
    return f"{part}:sha256:{hashlib.sha256(whole.encode('utf-8', 'surrogatepass')).hexdigest()}"


def reply_rows(reply: Reply, channels: Channels, *, at: datetime) -> list[Row]:
    """The rows that deliver ``reply`` (empty where no channel of this deployment reaches its audience)."""
    event = reply.event
    if reply.to == "card":
        return _card_update(reply, channels, at)
    if reply.to == "sender":
        return _private(event.sender.userid, outbox_key("private", event), reply.text, channels, at)
    if reply.to == "member":
        userid = reply.userid or ""
        return _private(userid, outbox_key(f"notice:{userid}", event), reply.text, channels, at)
    part = outbox_key(reply.part, event)
    body = clip(reply.text)
    if event.source == "aibot" and event.response_url:
        payload: dict[str, Any] = {"msgtype": "markdown", "markdown": {"content": body}}
        return [row(AIBOT_RESPONSE, event.response_url, part, payload, at=at, priority=REPLY_PRIORITY)]
    if event.source == "app":
        userid = event.sender.userid
        # markdown, as the notices members get privately through the app: the answers are written in it
        payload = {"touser": [userid], "msgtype": "markdown", "markdown": {"content": body}}
        return [row(WECOM_APP, userid, part, payload, at=at, priority=REPLY_PRIORITY)]
    # a robot event without a response_url: over the long connection, into the chat it came from
    chat = event.chat_id if event.chat_type == "group" and event.chat_id else event.sender.userid
    payload = {"chatid": chat, "msgtype": "markdown", "markdown": {"content": body}}
    return [row(AIBOT_WS, chat, part, payload, at=at, priority=REPLY_PRIORITY)]


def _private(userid: str, part: str, text: str, channels: Channels, at: datetime) -> list[Row]:
    body = clip(text)
    if channels.app:
        payload: dict[str, Any] = {"touser": [userid], "msgtype": "markdown", "markdown": {"content": body}}
        return [row(WECOM_APP, userid, part, payload, at=at, priority=REPLY_PRIORITY)]
    if channels.aibot_ws:
        payload = {"chatid": userid, "msgtype": "markdown", "markdown": {"content": body}}
        return [row(AIBOT_WS, userid, part, payload, at=at, priority=REPLY_PRIORITY)]
    return []


def _card_update(reply: Reply, channels: Channels, at: datetime) -> list[Row]:
    """The clicked card replaced for everyone who has it: by the app's ``response_code`` (one use, 72 h; ``atall``:
    every recipient; the destination is the card's task id, since the code is a credential kept out of logs), or the
    robot's long connection on the click's req_id (the destination is the click's dedup key, under which the
    connection remembers the req_id); a robot in callback mode: nothing."""
    event = reply.event
    if reply.card is None or not isinstance(event, CardClick):
        return []
    part = outbox_key("card", event)
    card = template_card(reply.card)
    if event.source == "app":
        if not event.response_code:
            return []
        payload = {"response_code": event.response_code, "atall": 1, "template_card": card}
        return [row(WECOM_CARD_UPDATE, event.task_id, part, payload, at=at, priority=REPLY_PRIORITY)]
    if channels.aibot_ws:
        return [row(AIBOT_CARD_UPDATE, event.dedup_key, part, {"template_card": card}, at=at, priority=REPLY_PRIORITY)]
    return []


# -- notices ----------------------------------------------------------------------------------------------------


def group_channel(unit: Unit, channels: Channels, *, heads: bool = False) -> tuple[str, str] | None:
    """(channel, destination) of ``unit``'s work group (``heads``: its heads' group), or None when it has none or it
    cannot be reached from this deployment."""
    group = unit.heads_group if heads else unit.group
    if group is None:
        return None
    transport = group.transport
    if transport in ("auto", "aibot") and channels.aibot_ws and group.chatid:
        return AIBOT_WS, group.chatid
    if transport in ("auto", "webhook") and channels.webhook and group.webhook_key:
        return WECOM_WEBHOOK, group.webhook_key
    if transport in ("auto", "app") and channels.app and group.chatid:
        return WECOM_APPCHAT, group.chatid
    return None


def takes_files(unit: Unit, channels: Channels) -> bool:
    """Whether a notice's attachments (an image, a file) reach ``unit``'s group: the robot's long connection sends none,
    so there they go by the group's webhook robot, where it has one."""
    target = group_channel(unit, channels)
    if target is None:
        return False
    return target[0] != AIBOT_WS or bool(channels.webhook and unit.group is not None and unit.group.webhook_key)


def takes_cards(unit: Unit, channels: Channels) -> bool:
    """Whether ``unit``'s group is reached where a card's buttons work (the robot's long connection)."""
    target = group_channel(unit, channels)
    return target is not None and target[0] == AIBOT_WS


def mentions(userids: Sequence[str]) -> str:
    """``<@a> <@b>``: @-mentions in a group markdown message."""
    return " ".join(f"<@{u}>" for u in dict.fromkeys(userids))


def upload_payload(attachment: Attachment) -> dict[str, Any]:
    """An attachment as an outbox payload: its msgtype and the bytes the sender uploads (base64 in the JSON)."""
    data = base64.b64encode(attachment.data).decode("ascii")
    return {"msgtype": attachment.kind, "upload": {"filename": attachment.filename, "data": data}}


def _ordering(notice: Notice, audience: str) -> str | None:
    """The ordering key of one audience's rows: the notice's own; without one, when attachments follow the text, a
    key of the notice and the audience (so they arrive after it, and other audiences need not wait)."""
    if notice.ordering_key is not None or not notice.attachments:
        return notice.ordering_key
    # 71 characters: outbox.ordering_key is VARCHAR(100)
    return "attach:" + hashlib.sha256(f"{notice.key}:{audience}".encode("utf-8", "surrogatepass")).hexdigest()


def notice_rows(notice: Notice, config: BotConfig, channels: Channels, *, at: datetime) -> list[Row]:
    """The outbox rows that deliver ``notice`` (empty where nothing reaches its audience; that is logged)."""
    rows: list[Row] = []
    if notice.unit is not None:
        unit = config.unit(notice.unit)
        target = group_channel(unit, channels, heads=notice.heads) if unit is not None else None
        if unit is None or target is None:
            which = "heads' group" if notice.heads else "work group"
            log.warning(
                "no channel reaches the %s of unit %s; notice %s not sent there", which, notice.unit, notice.key
            )
        else:
            rows += _group_rows(notice, *target, at)
            rows += _group_attachments(notice, unit, channels, target, at)
    private = notice.private_text if notice.private_text is not None else notice.text
    for userid in dict.fromkeys(notice.members):
        audience = key(notice.key, f"to:{userid}")
        order = _ordering(notice, f"to:{userid}") if notice.attachments_private else notice.ordering_key
        if channels.app:
            channel = WECOM_APP
            if notice.private_card is not None:
                card = template_card(notice.private_card)
                payload: dict[str, Any] = {"touser": [userid], "msgtype": "template_card", "template_card": card}
            else:
                payload = {"touser": [userid], "msgtype": "markdown", "markdown": {"content": clip(private)}}
            rows.append(_notice_row(WECOM_APP, userid, audience, payload, notice, at, order))
        elif channels.aibot_ws:
            channel = AIBOT_WS
            payload = {"chatid": userid, "msgtype": "markdown", "markdown": {"content": clip(private)}}
            rows.append(_notice_row(AIBOT_WS, userid, audience, payload, notice, at, order))
        else:
            log.warning("no private channel (app or robot long connection); notice %s not sent to a member", notice.key)
            continue
        if not notice.attachments_private:
            continue
        if channel == AIBOT_WS and notice.attachments:
            log.warning(
                "notice %s: the robot's long connection cannot send attachments; without the app they are "
                "dead-lettered for a member",
                notice.key,
            )
        for i, attachment in enumerate(notice.attachments):
            payload = upload_payload(attachment)
            if channel == WECOM_APP:
                payload["touser"] = [userid]
            else:
                payload["chatid"] = userid
            part = key(notice.key, f"to:{userid}:attachment:{i}")
            rows.append(_notice_row(channel, userid, part, payload, notice, at, order))
    return rows


def _group_attachments(
    notice: Notice, unit: Unit, channels: Channels, target: tuple[str, str], at: datetime
) -> list[Row]:
    """The rows of ``notice``'s attachments for the group ``target`` reaches (its webhook robot instead of the
    robot's long connection, where it has one)."""
    if not notice.attachments:
        return []
    channel, destination = target
    group = unit.heads_group if notice.heads else unit.group
    if channel == AIBOT_WS:
        if channels.webhook and group is not None and group.webhook_key:
            channel, destination = WECOM_WEBHOOK, group.webhook_key
        else:
            log.warning(
                "notice %s: the robot's long connection cannot send attachments and unit %s's group has no webhook "
                "robot; they are dead-lettered",
                notice.key,
                notice.unit,
            )
    audience = f"{'heads' if notice.heads else 'group'}:{notice.unit}"
    order = _ordering(notice, audience)
    rows = []
    for i, attachment in enumerate(notice.attachments):
        payload = upload_payload(attachment)
        if channel == AIBOT_WS:
            payload["chatid"] = destination
        part = key(notice.key, f"{audience}:attachment:{i}")
        rows.append(_notice_row(channel, destination, part, payload, notice, at, order))
    return rows


def _group_rows(notice: Notice, channel: str, destination: str, at: datetime) -> list[Row]:
    text = notice.text
    if notice.mention:
        text = f"{text}\n{mentions(notice.mention)}"
    card = channel == AIBOT_WS and notice.card is not None
    if card and notice.card is not None:
        payload: dict[str, Any] = {"msgtype": "template_card", "template_card": template_card(notice.card)}
    else:
        payload = {"msgtype": "markdown", "markdown": {"content": clip(text)}}
    if channel == AIBOT_WS:
        payload["chatid"] = destination
    audience = f"{'heads' if notice.heads else 'group'}:{notice.unit}"
    order = _ordering(notice, audience)
    rows = [_notice_row(channel, destination, key(notice.key, audience), payload, notice, at, order)]
    if card and notice.mention:
        line = notice.mention_text if notice.mention_text is not None else notice.text.split("\n", 1)[0]
        tagged = {
            "chatid": destination,
            "msgtype": "markdown",
            "markdown": {"content": clip(f"{line}\n{mentions(notice.mention)}")},
        }
        audience = f"group:{notice.unit}:mention"
        rows.append(_notice_row(channel, destination, key(notice.key, audience), tagged, notice, at, order))
    return rows


def _notice_row(
    channel: str,
    destination: str,
    idempotency_key: str,
    payload: dict[str, Any],
    notice: Notice,
    at: datetime,
    ordering_key: str | None,
) -> Row:
    payload.update(notice.extra)
    return row(
        channel,
        destination,
        idempotency_key,
        payload,
        at=at,
        priority=URGENT_PRIORITY if notice.urgent else ROUTINE_PRIORITY,
        ordering_key=ordering_key,
        due=max(at, notice.not_before) if notice.not_before is not None else at,
    )


class EngineRows:
    """The deadline engine's notices as outbox rows (its ``rows``): rendered by :mod:`bot.messages.nags`, addressed
    by :func:`notice_rows`."""

    def __init__(self, config: BotConfig, channels: Channels) -> None:
        self.config = config
        self.channels = channels

    def __call__(self, notices: Sequence[Reminder | MissFlag], at: datetime) -> list[Row]:
        rows: list[Row] = []
        for notice in notices:
            if isinstance(notice, Reminder):
                rendered = reminder_notice(notice, self.config, at)
            else:
                rendered = flag_notice(notice, self.config)
            rows += notice_rows(rendered, self.config, self.channels, at=at)
        return rows
