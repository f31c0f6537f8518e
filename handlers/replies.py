"""Where a command's answer goes, as outbox rows: the chat it came from, and (for what must not be shown to a
group, such as a citizen's full phone number) the member privately.

Every reply is an outbox row whose idempotency key is derived from the inbound event's dedup key, so a command
re-run after a crash (its inbox row was still pending) queues nothing twice, and what was queued is sent even if
the process dies right after. A ticket change is applied with the event's key as well
(:meth:`bot.services.tickets.TicketService.act`'s ``dedup``): re-run, it finds the change made and answers as the
first run would have.

* A message to the intelligent robot (group or 1:1, callback URL or long connection) is answered through its
  ``response_url`` (one use, an hour): channel ``aibot_response``, markdown.
* A message in the 1:1 chat with the self-built app is answered by an app message to the sender.
* Private details go by app message when the app is configured, else over the robot's long connection to the
  member's 1:1 chat; with neither, the group reply says where to ask for them. Notices to other members (the
  approvers of an extension request, the requester of the decision) go the same way.
* A clicked card changes for everyone (:func:`card_update_rows`, built by :mod:`handlers.cards`): an app card by
  ``message/update_template_card`` with the click's ``response_code`` (channel ``wecom_card_update``), a robot card
  over the long connection with the click's req_id (channel ``aibot_card_update``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.events import CardClick, TextMessage
from notifiers.aibot_ws import AIBOT_WS
from notifiers.notices import clip
from notifiers.wecom import AIBOT_CARD_UPDATE, AIBOT_RESPONSE, WECOM_APP, WECOM_CARD_UPDATE

Row = dict[str, Any]
Command = TextMessage | CardClick

TEXT_LIMIT = 2000  # bytes; WeCom's limit is 2048 for app text, 4096 for markdown
KEY_MAX = 200  # outbox.idempotency_key is VARCHAR(200)
REPLY_PRIORITY = 2  # answers to people waiting in the chat go before routine pushes (5)


@dataclass(frozen=True, slots=True)
class Channels:
    """What this deployment can send through, besides the reply path of the event itself."""

    app: bool = False  # the self-built app (WECOM_APP_SECRET …): private messages to any member
    aibot_ws: bool = False  # the robot's long connection: proactive messages to a chat or a member


def _row(channel: str, destination: str, key: str, payload: Mapping[str, Any], at: datetime) -> Row:
    return {
        "channel": channel,
        "destination": destination,
        "idempotency_key": key,
        "ordering_key": None,
        "priority": REPLY_PRIORITY,
        "payload": dict(payload),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": at,
        "created_at": at,
    }


def outbox_key(part: str, event: Command) -> str:
    """The idempotency key of one of ``event``'s outbox rows: hashed when it would not fit the column (a card's
    task id and button key are chosen by whoever built the card), never cut, so two events never share one."""
    key = f"{part}:{event.dedup_key}"
    if len(key) <= KEY_MAX:
        return key
    return f"{part}:sha256:{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"


def reply_rows(event: Command, text: str, *, at: datetime, part: str = "reply") -> list[Row]:
    """The answer to ``event`` in the chat it came from."""
    key = outbox_key(part, event)
    body = clip(text)
    if event.source == "aibot" and event.response_url:
        payload = {"msgtype": "markdown", "markdown": {"content": body}}
        return [_row(AIBOT_RESPONSE, event.response_url, key, payload, at)]
    if event.source == "app":
        userid = event.sender.userid
        payload = {"touser": [userid], "msgtype": "text", "content": {"content": body}}
        return [_row(WECOM_APP, userid, key, payload, at)]
    # a robot event without a response_url: over the long connection, into the chat it came from
    chat = event.chat_id if event.chat_type == "group" and event.chat_id else event.sender.userid
    payload = {"chatid": chat, "msgtype": "markdown", "markdown": {"content": body}}
    return [_row(AIBOT_WS, chat, key, payload, at)]


def private_rows(event: Command, text: str, channels: Channels, *, at: datetime) -> list[Row]:
    """``text`` to the sender alone (empty when no channel can reach a member privately)."""
    return _private(event.sender.userid, outbox_key("private", event), text, channels, at)


def member_rows(event: Command, userid: str, text: str, channels: Channels, *, at: datetime) -> list[Row]:
    """``text`` to another member, privately, because of ``event`` (an approver told of a request, a requester of
    the decision); empty when no channel can reach a member privately. The key names the recipient, so each of
    several recipients gets one message, and a re-run queues none twice."""
    return _private(userid, outbox_key(f"notice:{userid}", event), text, channels, at)


def _private(userid: str, key: str, text: str, channels: Channels, at: datetime) -> list[Row]:
    body = clip(text)
    if channels.app:
        payload = {"touser": [userid], "msgtype": "text", "content": {"content": body}}
        return [_row(WECOM_APP, userid, key, payload, at)]
    if channels.aibot_ws:
        payload = {"chatid": userid, "msgtype": "markdown", "markdown": {"content": body}}
        return [_row(AIBOT_WS, userid, key, payload, at)]
    return []


def card_update_rows(event: CardClick, card: Mapping[str, Any], channels: Channels, *, at: datetime) -> list[Row]:
    """The clicked card replaced by ``card`` for everyone who has it; empty where no update can be sent.

    * app: ``message/update_template_card`` with the click's ``response_code`` (one use, 72 h) and ``atall`` (every
      recipient of the card). The destination is the card's task id (the code is a credential: not in logs).
    * robot over the long connection (``channels.aibot_ws``): ``aibot_respond_update_msg`` on the click's req_id,
      within 5 s; the destination is the click's dedup key, under which the connection remembers the req_id.
    * robot in callback mode: nothing (only the callback's own answer could change the card; its ``response_url``
      takes new messages, not updates).
    """
    key = outbox_key("card", event)
    if event.source == "app":
        if not event.response_code:
            return []
        payload = {"response_code": event.response_code, "atall": 1, "template_card": dict(card)}
        return [_row(WECOM_CARD_UPDATE, event.task_id, key, payload, at)]
    if channels.aibot_ws:
        return [_row(AIBOT_CARD_UPDATE, event.dedup_key, key, {"template_card": dict(card)}, at)]
    return []


def is_private(event: Command) -> bool:
    """Whether the event came from a 1:1 chat (its reply is seen by the sender alone)."""
    return event.chat_type == "single"
