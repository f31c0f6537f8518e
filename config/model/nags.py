"""Reminders before a deadline, the overdue notice and escalation after it, and the three-misses flag."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field, PlainSerializer, PlainValidator

from config.durations import Duration
from config.model.fields import D, Model, NaturalDuration, parse_natural_duration
from config.vocabulary import Role, TicketKind


@dataclass(frozen=True, slots=True)
class ReminderPoint:
    """A reminder before a deadline: at ``percent`` of the time from its start to its due time, or ``before`` due."""

    percent: int | None = None
    before: Duration | None = None

    def __str__(self) -> str:
        return f"{self.percent}%" if self.percent is not None else str(self.before)


def _parse_reminder(value: object) -> ReminderPoint:
    if isinstance(value, ReminderPoint):
        return value
    if isinstance(value, str) and value.strip().endswith("%"):
        number = value.strip()[:-1].strip()
        if not number.isdigit() or not 1 <= int(number) <= 99:
            raise ValueError(f'invalid reminder "{value}": a share of the time from 1% to 99%, e.g. 50%')
        return ReminderPoint(percent=int(number))
    try:
        return ReminderPoint(before=parse_natural_duration(value))
    except ValueError:
        raise ValueError(
            f'invalid reminder "{value}": a share of the time (50%) or a span before the due time (1h, 30m, 1d)'
        ) from None


Reminder = Annotated[ReminderPoint, PlainValidator(_parse_reminder), PlainSerializer(str, return_type=str)]

# who an overdue deadline escalates to, level by level
ESCALATION_ROLES: Final = (Role.HANDLER, Role.UNIT_HEAD, Role.CENTER_LEAD, Role.DISPATCHER)


def _check_escalation_role(value: Role) -> Role:
    if value not in ESCALATION_ROLES:
        raise ValueError(f'"{value}" cannot be escalated to; use {", ".join(r.value for r in ESCALATION_ROLES)}')
    return value


EscalationRole = Annotated[Role, AfterValidator(_check_escalation_role)]


class ThreeMisses(Model):
    """A unit whose accept deadline passes unmet ``count`` times in a reporting period is flagged to the dispatchers
    (and the office's group), once per period. Periods of ``period_months`` months start in January (2: Jan-Feb,
    Mar-Apr ... as the sub-district's bi-monthly report)."""

    count: int = Field(default=3, ge=1)
    period_months: Literal[1, 2, 3, 4, 6, 12] = 2


class Nags(Model):
    """Reminders before a deadline, the overdue notice at it, and escalation after it (the deadline engine).

    Points are measured on the deadline's own clock: working time for a deadline in working days (so no point falls
    on a weekend or a holiday), natural time otherwise. Outside the service window and in quiet hours a routine step
    waits until they allow it; for ``urgent_kinds`` outside the window it goes to the duty officer instead.
    """

    reminders: list[Reminder] = Field(
        default_factory=lambda: [ReminderPoint(percent=50), ReminderPoint(percent=80), ReminderPoint(before=D("1h"))]
    )
    # level 1 comes with the overdue notice at the due time, each further level ``interval`` later
    escalation: list[EscalationRole] = Field(default_factory=lambda: [Role.HANDLER, Role.UNIT_HEAD, Role.CENTER_LEAD])
    interval: NaturalDuration = D("2h")
    repeats: int = Field(default=3, ge=0, le=50)  # after the last level, to every level, ``interval`` apart
    urgent_kinds: list[TicketKind] = Field(default_factory=lambda: [TicketKind.URGENT, TicketKind.SEMI_URGENT])
    three_misses: ThreeMisses = Field(default_factory=ThreeMisses)
    tick_seconds: float = Field(default=15, gt=0, le=3600)  # how often the engine looks for what is due
    batch: int = Field(default=500, ge=1, le=10_000)  # deadlines per transaction
