"""Where the bot's own messages go: a :class:`Notice` (a push, a reminder, an escalation, a digest) becomes outbox
rows for the channels this deployment has.

A notice names its audience by role, not by channel: a unit's work group (with the members to @-mention there) and
members privately. :func:`notice_rows` picks the channel for each:

* **a unit's group** by ``units[].group.transport``: ``aibot`` (the intelligent robot's long connection,
  ``aibot_send_msg`` to the chatid: markdown, or the notice's template card with its buttons), ``webhook`` (the group
  robot's webhook key: markdown), ``app`` (``appchat/send`` to a chat the app created: markdown); ``auto`` takes the
  first of these the deployment and the group allow. Mentions are ``<@userid>`` in the markdown (the webhook's and the
  robot's markdown render them as @-mentions). A card goes only where buttons work (the robot); elsewhere the
  markdown stands in for it. A card cannot @-mention anyone, so with mentions the card is followed by a short
  markdown line that carries them (``mention_text``, same ordering key: it arrives after the card).
* **a member privately** through the self-built app (``message/send``: text, or the card, whose buttons work there)
  or, without the app, the robot's 1:1 chat over the long connection.

A group message shows what a handler needs to act and no more: the caller masks the citizen's details
(:mod:`bot.domain.masking`) in ``text`` and ``card``; ``private_text`` may carry them, for the members only.

Each row's idempotency key is ``{notice.key}:{audience}``: the same notice queued twice (a tick re-run after a
crash, a retried hand-over) is sent once. ``not_before`` holds a routine notice back (outside the service window,
in quiet hours): its rows are due from then.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from config.model import BotConfig, Unit
from notifiers.aibot_ws import AIBOT_WS
from notifiers.wecom import WECOM_APP, WECOM_APPCHAT, WECOM_WEBHOOK

log = logging.getLogger(__name__)

Row = dict[str, Any]

KEY_MAX = 200  # outbox.idempotency_key is VARCHAR(200)
MARKDOWN_LIMIT = 2000  # bytes: the app's markdown limit is 2048, the webhook's 4096; the smaller, with room
URGENT_PRIORITY = 0  # before replies (2) and routine messages (5)
ROUTINE_PRIORITY = 5


@dataclass(frozen=True, slots=True)
class Channels:
    """What this deployment can send through (see :mod:`handlers.replies`, whose Channels this mirrors)."""

    app: bool = False  # the self-built app: private messages to any member, appchat groups
    aibot_ws: bool = False  # the robot's long connection: proactive messages to a group or a member
    webhook: bool = True  # group robot webhooks (a key per group in the config; nothing else needed)


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """One message of the bot's own, to a unit's group and/or members privately."""

    key: str  # unique for this message: the idempotency keys derive from it
    text: str  # markdown for the group (masked); also the private text unless ``private_text`` is given
    unit: str | None = None  # the unit code whose work group gets it
    mention: Sequence[str] = ()  # userids @-mentioned in the group message
    members: Sequence[str] = ()  # userids who get it privately
    private_text: str | None = None  # for ``members`` only (may carry unmasked details)
    card: Mapping[str, Any] | None = None  # a template card for the group, where the transport takes cards
    private_card: Mapping[str, Any] | None = None  # a template card for ``members``, where the channel takes cards
    urgent: bool = False
    ordering_key: str | None = None  # messages with the same key arrive in the order queued (a ticket's number)
    extra: Mapping[str, Any] = field(default_factory=dict)  # payload fields passed through (e.g. "safe": 1)
    mention_text: str | None = None  # with a card and mentions: the line they go with (default: text's first line)
    not_before: datetime | None = None  # due from then (a routine notice waiting for the service window)


def group_channel(unit: Unit, channels: Channels) -> tuple[str, str] | None:
    """(channel, destination) of ``unit``'s work group, or None when it cannot be reached from this deployment."""
    group = unit.group
    transport = group.transport
    if transport in ("auto", "aibot") and channels.aibot_ws and group.chatid:
        return AIBOT_WS, group.chatid
    if transport in ("auto", "webhook") and channels.webhook and group.webhook_key:
        return WECOM_WEBHOOK, group.webhook_key
    if transport in ("auto", "app") and channels.app and group.chatid:
        return WECOM_APPCHAT, group.chatid
    return None


def mentions(userids: Sequence[str]) -> str:
    """``<@a> <@b>``: @-mentions in a group markdown message."""
    return " ".join(f"<@{u}>" for u in dict.fromkeys(userids))


def notice_rows(notice: Notice, config: BotConfig, channels: Channels, *, at: datetime) -> list[Row]:
    """The outbox rows that deliver ``notice`` (empty where nothing reaches its audience; that is logged)."""
    rows: list[Row] = []
    priority = URGENT_PRIORITY if notice.urgent else ROUTINE_PRIORITY
    if notice.unit is not None:
        unit = config.unit(notice.unit)
        target = group_channel(unit, channels) if unit is not None else None
        if target is None:
            log.warning(
                "no channel reaches the work group of unit %s; notice %s not sent there", notice.unit, notice.key
            )
        else:
            channel, destination = target
            text = notice.text
            if notice.mention:
                text = f"{text}\n{mentions(notice.mention)}"
            card = channel == AIBOT_WS and notice.card is not None
            if card:
                payload: dict[str, Any] = {"msgtype": "template_card", "template_card": dict(notice.card or {})}
            else:
                payload = {"msgtype": "markdown", "markdown": {"content": clip(text)}}
            if channel == AIBOT_WS:
                payload["chatid"] = destination
            rows.append(
                _row(channel, destination, key(notice.key, f"group:{notice.unit}"), payload, priority, notice, at)
            )
            if card and notice.mention:
                line = notice.mention_text if notice.mention_text is not None else notice.text.split("\n", 1)[0]
                tagged = {
                    "chatid": destination,
                    "msgtype": "markdown",
                    "markdown": {"content": clip(f"{line}\n{mentions(notice.mention)}")},
                }
                audience = f"group:{notice.unit}:mention"
                rows.append(_row(channel, destination, key(notice.key, audience), tagged, priority, notice, at))
    private = notice.private_text if notice.private_text is not None else notice.text
    for userid in dict.fromkeys(notice.members):
        if channels.app:
            if notice.private_card is not None:
                payload = {"touser": [userid], "msgtype": "template_card", "template_card": dict(notice.private_card)}
            else:
                payload = {"touser": [userid], "msgtype": "markdown", "markdown": {"content": clip(private)}}
            rows.append(_row(WECOM_APP, userid, key(notice.key, f"to:{userid}"), payload, priority, notice, at))
        elif channels.aibot_ws:
            payload = {"chatid": userid, "msgtype": "markdown", "markdown": {"content": clip(private)}}
            rows.append(_row(AIBOT_WS, userid, key(notice.key, f"to:{userid}"), payload, priority, notice, at))
        else:
            log.warning("no private channel (app or robot long connection); notice %s not sent to a member", notice.key)
    return rows


def key(base: str, audience: str) -> str:
    """An idempotency key that fits the column: hashed when too long, never cut (two keys never become one)."""
    whole = f"{base}:{audience}"
    if len(whole) <= KEY_MAX:
        return whole
    return f"sha256:{hashlib.sha256(whole.encode('utf-8', 'surrogatepass')).hexdigest()}"


def clip(text: str, limit: int = MARKDOWN_LIMIT) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes at a character boundary, with an ellipsis when cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def _row(
    channel: str,
    destination: str,
    idempotency_key: str,
    payload: dict[str, Any],
    priority: int,
    notice: Notice,
    at: datetime,
) -> Row:
    payload.update(notice.extra)
    return {
        "channel": channel,
        "destination": destination,
        "idempotency_key": idempotency_key,
        "ordering_key": notice.ordering_key,
        "priority": priority,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": max(at, notice.not_before) if notice.not_before is not None else at,
        "created_at": at,
    }
