"""A command's answer: what the bot says back to the member who sent a command (or clicked a button), in the chat it
came from, to the sender alone, to another member, or as the clicked card changed for everyone.

A :class:`Reply` names its audience relative to the inbound event; :mod:`notifiers.rows` picks the channel and keys
the outbox row by the event, so a command re-run after a crash queues nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.domain.events import CardClick, TextMessage
from bot.messages.cards import Card

Command = TextMessage | CardClick
Audience = Literal["chat", "sender", "member", "card"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """One answer to ``event``.

    * ``chat``: ``text`` in the chat the event came from (``part`` tells several such answers apart);
    * ``sender``: ``text`` to the sender alone (private details);
    * ``member``: ``text`` to ``userid``, privately, because of the event (an approver told of a request);
    * ``card``: the clicked card replaced by ``card`` for everyone who has it.
    """

    event: Command
    text: str = ""
    to: Audience = "chat"
    userid: str | None = None
    card: Card | None = None
    part: str = "reply"


def say(event: Command, text: str, *, part: str = "reply") -> Reply:
    """``text`` in the chat ``event`` came from."""
    return Reply(event=event, text=text, part=part)


def is_private(event: Command) -> bool:
    """Whether the event came from a 1:1 chat (its reply is seen by the sender alone)."""
    return event.chat_type == "single"
