"""A message of the bot's own (a push, a reminder, an escalation, a digest), addressed by role, not by channel: a
unit's work group (with the members to @-mention there) and members privately. :mod:`notifiers.rows` picks the
channel for each part.

A group message shows what a handler needs to act and no more: whoever builds the notice masks the citizen's
details (:mod:`bot.domain.masking`) in ``text`` and ``card``; ``private_text`` may carry them, for the members only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.messages.cards import Card


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """One message of the bot's own, to a unit's group and/or members privately."""

    key: str  # unique for this message: the idempotency keys derive from it
    text: str  # markdown for the group (masked); also the private text unless ``private_text`` is given
    unit: str | None = None  # the unit code whose work group gets it
    heads: bool = False  # the unit's heads' group (units[].heads_group) gets it instead of its work group
    mention: Sequence[str] = ()  # userids @-mentioned in the group message
    members: Sequence[str] = ()  # userids who get it privately
    private_text: str | None = None  # for ``members`` only (may carry unmasked details)
    card: Card | None = None  # a card for the group, where the transport takes cards
    private_card: Card | None = None  # a card for ``members``, where the channel takes cards
    urgent: bool = False
    ordering_key: str | None = None  # messages with the same key arrive in the order queued (a ticket's number)
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields passed through to the channel (e.g. "safe": 1)
    mention_text: str | None = None  # with a card and mentions: the line they go with (default: text's first line)
    not_before: datetime | None = None  # due from then (a routine notice waiting for the service window)
