"""A message of the bot's own (a push, a reminder, an escalation, a digest), addressed by role, not by channel: a
unit's work group (with the members to @-mention there) and members privately. :mod:`notifiers.rows` picks the
channel for each part.

A group message shows what a handler needs to act and no more: whoever builds the notice masks the citizen's
details (:mod:`bot.domain.masking`) in ``text`` and ``card``; ``private_text`` may carry them, for the members only.

**Attachments** (a chart as a PNG, a workbook as an XLSX) follow the notice's text, in their order, to the same
audience: the unit's group, and each of ``members`` privately unless ``attachments_private`` is False (then the group
only). There is no private variant of an attachment: what the group sees, the members see, so an attachment is
masked like ``text``. Each channel's limits apply when it is sent (:mod:`notifiers.rows`, docs/delivery.md): an
image must be a JPG or PNG; the group robot takes images up to 2 MB, the app up to 10 MB; files up to 20 MB.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bot.messages.cards import Card


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent after a notice's text: ``image`` (shown inline; JPG or PNG) or ``file`` (a download with its
    ``filename``, which WeCom shows)."""

    kind: Literal["image", "file"]
    filename: str
    data: bytes

    def __post_init__(self) -> None:
        if self.kind not in ("image", "file"):
            raise ValueError(f"an attachment is an image or a file, not {self.kind!r}")
        if not self.filename.strip():
            raise ValueError("an attachment needs a filename")

    def __repr__(self) -> str:  # never the bytes
        return f"Attachment({self.kind!r}, {self.filename!r}, <{len(self.data)} bytes>)"


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
    attachments: Sequence[Attachment] = ()  # sent after the text, in order, to the group and (see below) members
    attachments_private: bool = True  # False: the attachments go to the group only, the members get the text alone
