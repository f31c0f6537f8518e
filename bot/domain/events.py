"""Protocol-neutral inbound events: what handlers see instead of the app's XML or the robot's JSON.

Every event carries a ``dedup_key`` (a field, or for :class:`TextMessage` a property) built per WECOM.md: the message
id (``MsgId`` / ``msgid``) where there is one, else ``FromUserName + CreateTime + event`` for app events. Keys are
prefixed with the source, so an app and a robot id can never collide. WeCom retries a callback with the same
payload, so a retry always yields the same key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

Source = Literal["app", "aibot"]
ChatType = Literal["single", "group"]


@dataclass(frozen=True, slots=True)
class Sender:
    """Who acted. ``corpid`` is set only by the robot, and only for a user of *another* corp (page 101027: "若为企业内部
    智能机器人不返回"); treat such a sender as external, whatever its ``userid``."""

    userid: str
    corpid: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TextMessage:
    """A text (or the text parts of a mixed text/image) message. ``text`` has the robot's ``@Name`` mention removed
    and surrounding whitespace trimmed. ``quoted_text`` is the text of a quoted (引用) message, robot only."""

    source: Source
    msg_id: str
    sender: Sender
    chat_type: ChatType
    chat_id: str | None
    text: str
    quoted_text: str | None
    at: datetime
    response_url: str | None = None
    agent_id: str | None = None

    @property
    def dedup_key(self) -> str:
        return f"{self.source}:msg:{self.msg_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CardClick:
    """A template-card button click. App: ``response_code`` (for ``message/update_template_card``, 72 h, one use).
    Robot: ``response_url`` (1 h, one use); the click is delivered once and must be answered within 5 s."""

    source: Source
    event_key: str
    task_id: str
    sender: Sender
    chat_type: ChatType
    chat_id: str | None
    response_code: str | None
    response_url: str | None
    at: datetime
    dedup_key: str
    card_type: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EnterChat:
    """The user opened the 1:1 chat: app ``enter_agent``, robot ``enter_chat`` (first time that day)."""

    source: Source
    sender: Sender
    at: datetime
    dedup_key: str
    response_url: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OtherEvent:
    """Anything else, kept for logging: ``kind`` is the message type (``image``, ``voice``, ``file``, ``stream`` …)
    or ``event.<name>`` for an event. ``raw`` is the decoded payload, read-only."""

    source: Source
    kind: str
    sender: Sender | None
    at: datetime
    dedup_key: str
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False)


InboundEvent: TypeAlias = TextMessage | CardClick | EnterChat | OtherEvent


def dedup_key(event: InboundEvent) -> str:
    """The key under which a handled callback is remembered, so WeCom's retries are answered but not re-run."""
    return event.dedup_key
