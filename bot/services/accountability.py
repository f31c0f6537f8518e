"""Who was told of which deadline: the deadline engine's notices as the rows of the append-only ``notifications``
record (:mod:`store.notifications`), one per deadline (or, for a three-misses flag, per ticket) and recipient.

The engine's messages are digests: one per work group and one per member, each covering the deadlines that came due
in a tick. The record unfolds them: a group's reminder covering three deadlines is three rows, each naming the group,
the channel its outbox row went on, and that row's key and id. A row is made only for a message the outbox took in
this transaction (its idempotency key came back with an id): recorded if and only if queued.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.domain.records import Notification, NotificationKind
from bot.messages.nags import MissFlag, Reminder
from config.vocabulary import DeadlineName

Audience = tuple[str, str]  # ("group", unit code) or ("member", userid)
Told = Mapping[Audience, tuple[NotificationKind, int | None]]  # what each recipient of one deadline's step heard
Row = Mapping[str, Any]


def group(code: str) -> Audience:
    return ("group", code)


def member(userid: str) -> Audience:
    return ("member", userid)


def _queued(rows: Sequence[Row], queued: Mapping[str, int]) -> tuple[Row, int] | None:
    """The message's main outbox row and its id, when the outbox took it now (None: nothing reached the audience, or
    the same message was queued and recorded before)."""
    if not rows:
        return None
    first = rows[0]
    outbox_id = queued.get(first["idempotency_key"])
    return None if outbox_id is None else (first, outbox_id)


def reminders_told(
    sent: Sequence[tuple[Reminder, Sequence[Row]]],
    told: Mapping[str, Told],
    queued: Mapping[str, int],
    at: datetime,
) -> list[Notification]:
    """The record of the reminders ``sent`` (each with the outbox rows it became): one row per deadline in each and
    its recipient. ``told``: by a deadline item's key, what each recipient heard of it; ``queued``: the outbox ids
    by idempotency key of what the outbox took."""
    out: list[Notification] = []
    for reminder, rows in sent:
        taken = _queued(rows, queued)
        if taken is None:
            continue
        row, outbox_id = taken
        audience = group(reminder.unit or "") if reminder.member is None else member(reminder.member)
        seen: set[str] = set()
        for items in reminder.sections.values():
            for item in items:
                if item.key in seen:
                    continue
                seen.add(item.key)
                fallback = (NotificationKind.OVERDUE if item.overdue else NotificationKind.REMINDER, None)
                kind, level = told.get(item.key, {}).get(audience, fallback)
                out.append(
                    Notification(
                        at=at,
                        kind=kind,
                        level=level,
                        ticket_id=item.ticket_id,
                        ticket_no=item.ticket_no,
                        deadline_id=item.deadline_id,
                        deadline_name=item.name,
                        due_at=item.due_at,
                        unit_code=item.unit_code,
                        recipient_kind=audience[0],
                        recipient=audience[1],
                        channel=row["channel"],
                        outbox_key=row["idempotency_key"],
                        outbox_id=outbox_id,
                    )
                )
    return out


def flag_told(
    flag: MissFlag, audience: Audience, rows: Sequence[Row], queued: Mapping[str, int], at: datetime
) -> list[Notification]:
    """The record of a three-misses flag sent to ``audience`` (as ``rows``): one row per missed deadline it lists."""
    taken = _queued(rows, queued)
    if taken is None:
        return []
    row, outbox_id = taken
    return [
        Notification(
            at=at,
            kind=NotificationKind.THREE_MISSES,
            level=flag.count,
            ticket_id=miss["ticket_id"],
            ticket_no=miss["ticket_no"],
            deadline_id=miss["deadline_id"],
            deadline_name=DeadlineName.ACCEPT.value,
            due_at=miss["missed_at"],
            unit_code=flag.unit_code,
            recipient_kind=audience[0],
            recipient=audience[1],
            channel=row["channel"],
            outbox_key=row["idempotency_key"],
            outbox_id=outbox_id,
        )
        for miss in flag.misses
    ]
