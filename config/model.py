"""The YAML operators edit: office, members, units, routing, deadlines, duty roster.

Every model is frozen and forbids unknown keys, so a typo is an error with its line (see loader.py).
Cross-references (a unit head who is not a member, a rule to an unknown unit, ...) are checked by
:func:`cross_check` over plain data, so the loader can also report them when some fields are invalid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    StringConstraints,
    ValidationInfo,
    model_validator,
)

from config.durations import Duration
from config.vocabulary import DeadlineName, PushAudience, PushKind, Role, TicketKind

Loc = tuple[str | int, ...]

# --------------------------------------------------------------------------------------------------
# Defaults (DOMAIN.md's numbers; see seed 004 and 001)
# --------------------------------------------------------------------------------------------------

_D = Duration.parse

_SPECIAL_POLICY: dict[DeadlineName, Duration] = {
    DeadlineName.ACCEPT: _D("1wd"),
    DeadlineName.FIRST_CONTACT: _D("1wd"),
    DeadlineName.RETURN_WINDOW: _D("2wd"),
    DeadlineName.HANDLE: _D("3wd"),
    DeadlineName.HANDLE_INTERNAL: _D("2wd"),
    DeadlineName.REHANDLE: _D("3wd"),
}

DEFAULT_POLICIES: dict[TicketKind, dict[DeadlineName, Duration]] = {
    TicketKind.REGULAR: {
        DeadlineName.ACCEPT: _D("1wd"),
        DeadlineName.FIRST_CONTACT: _D("1wd"),
        DeadlineName.RETURN_WINDOW: _D("2wd"),
        DeadlineName.HANDLE: _D("5wd"),
        DeadlineName.REHANDLE: _D("3wd"),
    },
    TicketKind.URGENT: dict(_SPECIAL_POLICY),
    TicketKind.SEMI_URGENT: dict(_SPECIAL_POLICY),
    TicketKind.CITY_REVIEW: dict(_SPECIAL_POLICY),
    TicketKind.PHOTO: {**_SPECIAL_POLICY, DeadlineName.HANDLE: _D("3d")},
}

DEFAULT_THREE_TWOS: dict[DeadlineName, Duration] = {
    DeadlineName.CONTACT_20M: _D("20m"),
    DeadlineName.ON_SITE_2H: _D("2h"),
    DeadlineName.SOLVE_24H: _D("24h"),
    DeadlineName.OPINION_5D: _D("5d"),
}

# 延期 (extension): working days when a request names none, at most per request, approved extensions per ticket
DEFAULT_EXTENSION_DAYS = 3
MAX_EXTENSION_DAYS = 10
MAX_EXTENSIONS = 1

# Chinese export headers of the hotline platform -> ticket field.
DEFAULT_IMPORT_COLUMNS: dict[str, str] = {
    "工单编号": "ticket_no",
    "诉求内容": "content",
    "诉求地址": "address",
    "联系人": "citizen_name",
    "联系电话": "citizen_phone",
    "紧急程度": "urgency",
    "工单类型": "ticket_type",
    "诉求类别": "category",
    "诉求类型": "request_type",
    "所属街镇": "area",
    "承办单位": "unit",
    "派单时间": "dispatched_at",
    "标题": "title",
    "办理时限": "hotline_deadline",
    "重复工单": "is_repeat",
    "舆论监督": "is_media",
}

# every ticket field a column may feed (the defaults above, plus the kind written directly)
IMPORT_FIELDS: frozenset[str] = frozenset(DEFAULT_IMPORT_COLUMNS.values()) | {"kind"}

DEFAULT_KIND_LABELS: dict[str, TicketKind] = {
    "常规": TicketKind.REGULAR,
    "一般": TicketKind.REGULAR,
    "普通": TicketKind.REGULAR,
    "紧急": TicketKind.URGENT,
    "次紧急": TicketKind.SEMI_URGENT,
    "随身拍": TicketKind.PHOTO,
    "市级复核": TicketKind.CITY_REVIEW,
    "市级复核单": TicketKind.CITY_REVIEW,
}

# Roles that hold everywhere, taken from members[].roles.
GLOBAL_ROLES: frozenset[Role] = frozenset({Role.DISPATCHER, Role.CENTER_LEAD, Role.ADMIN})

TIMEZONE: Final = "Asia/Shanghai"

# --------------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------------

_USERID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_UNIT_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_MOBILE = re.compile(r"^1\d{10}$")
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


def _check_userid(value: str) -> str:
    if not _USERID.match(value):
        raise ValueError(f'invalid userid "{value}": 1-64 letters, digits or _ . @ - (the WeCom account, not the name)')
    return value


def _check_unit_code(value: str) -> str:
    if not _UNIT_CODE.match(value):
        raise ValueError(f'invalid unit code "{value}": 1-32 letters, digits, _ or -')
    return value


def _check_mobile(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and not _MOBILE.match(value.strip()):
        raise ValueError(f'invalid mobile "{value}": 11 digits starting with 1')
    return value


def _blank_to_none(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _check_import_field(value: str) -> str:
    if value not in IMPORT_FIELDS:
        raise ValueError(f'unknown ticket field "{value}"; expected one of: {", ".join(sorted(IMPORT_FIELDS))}')
    return value


def _check_http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f'invalid URL "{value}": must start with http:// or https://')
    return value


def _parse_duration(value: object) -> Duration:
    if isinstance(value, Duration):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"invalid duration {value!r}: write e.g. 1wd (working days), 3d, 2h, 20m")
    return Duration.parse(str(value))


def _parse_natural_duration(value: object) -> Duration:
    duration = _parse_duration(value)
    if duration.working_days:
        raise ValueError(f'invalid duration "{duration}": write natural time here, e.g. 12h or 1d, not working days')
    return duration


def _parse_clock(value: object) -> str:
    """'HH:MM' (00:00 .. 24:00), normalised to two-digit hours."""
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if not isinstance(value, str):
        raise ValueError(f'invalid time {value!r}: write "HH:MM" in quotes, e.g. "09:00"')
    match = _HHMM.match(value.strip())
    if not match:
        raise ValueError(f'invalid time "{value}": write "HH:MM", e.g. "09:00"')
    hour, minute = int(match.group(1)), int(match.group(2))
    if minute > 59 or hour > 24 or (hour == 24 and minute):
        raise ValueError(f'invalid time "{value}": hours 00-23, minutes 00-59 (24:00 = end of day)')
    return f"{hour:02d}:{minute:02d}"


def minute_of_day(hhmm: str) -> int:
    """'17:30' -> 1050; '24:00' -> 1440."""
    hour, minute = hhmm.split(":")
    return int(hour) * 60 + int(minute)


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
UserId = Annotated[str, AfterValidator(_check_userid)]
UnitCode = Annotated[str, AfterValidator(_check_unit_code)]
Mobile = Annotated[str, BeforeValidator(_check_mobile)]
OptionalText = Annotated[str | None, BeforeValidator(_blank_to_none)]
ImportField = Annotated[str, AfterValidator(_check_import_field)]
HttpUrlText = Annotated[str, AfterValidator(_check_http_url)]
DurationField = Annotated[Duration, PlainValidator(_parse_duration), PlainSerializer(str, return_type=str)]
# natural time only (3d, 12h, 20m): a span on the wall clock, not working days
NaturalDuration = Annotated[Duration, PlainValidator(_parse_natural_duration), PlainSerializer(str, return_type=str)]
ClockTime = Annotated[str, PlainValidator(_parse_clock)]
Weekday = Annotated[int, Field(ge=1, le=7)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def _seconds_of_day(at: time | datetime) -> int:
    return at.hour * 3600 + at.minute * 60 + at.second


def _in_window(start: str, end: str, at: time | datetime) -> bool:
    """Whether ``at`` falls in [start, end); wraps midnight when end <= start."""
    now = _seconds_of_day(at)
    lo, hi = minute_of_day(start) * 60, minute_of_day(end) * 60
    if lo < hi:
        return lo <= now < hi
    return now >= lo or now < hi


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


class Office(_Model):
    """The hotline office (热线办 / 城运中心 / 投诉质监中心)."""

    name: Text
    unit: UnitCode  # the dispatcher unit: fallback target of routing
    # the robot's answer when someone opens a chat with it ({office} is the name above); blank: no answer
    welcome: OptionalText = "您好，这里是{office}工单助手：新工单和临期提醒会推送到工作群，发送“帮助”查看可用命令。"

    @property
    def welcome_text(self) -> str | None:
        return self.welcome.replace("{office}", self.name) if self.welcome else None


class ServiceWindow(_Model):
    """When tickets are pushed and worked on (受理时段); end may be 24:00, no wrap."""

    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if minute_of_day(self.start) >= minute_of_day(self.end):
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self

    def contains(self, at: time | datetime) -> bool:
        return _in_window(self.start, self.end, at)


class QuietHours(_Model):
    """No non-urgent pushes or reminders (免打扰); may wrap midnight."""

    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.start == "24:00":
            raise ValueError('start may not be 24:00; write "00:00"')
        if minute_of_day(self.start) == minute_of_day(self.end) % 1440:
            raise ValueError("start and end are the same time")
        return self

    def contains(self, at: time | datetime) -> bool:
        return _in_window(self.start, self.end, at)


class Member(_Model):
    userid: UserId
    name: Text
    mobile: Mobile | None = None
    roles: list[Role] = []


class UnitGroup(_Model):
    """The unit's WeCom work group."""

    chatid: OptionalText = None
    webhook_key: OptionalText = Field(default=None, repr=False)
    transport: Literal["auto", "app", "webhook", "aibot"] = "auto"

    @model_validator(mode="after")
    def _transport_has_target(self) -> Self:
        if self.transport == "webhook" and not self.webhook_key:
            raise ValueError('transport "webhook" needs webhook_key')
        if self.transport in ("app", "aibot") and not self.chatid:
            raise ValueError(f'transport "{self.transport}" needs chatid')
        return self


class Unit(_Model):
    """A 承办部门: a section, a sub-unit or a contractor, with its work group."""

    code: UnitCode
    name: Text
    aliases: list[Text] = []  # further names the hotline export may use for this unit
    categories: list[Text] = []  # informational; routing decides
    head: UserId
    deputies: list[UserId] = []
    members: list[UserId] = Field(min_length=1)
    emergency_team: list[UserId] = []
    group: UnitGroup = Field(default_factory=UnitGroup)

    @property
    def heads(self) -> list[str]:
        """The head first, then the deputies."""
        return list(dict.fromkeys([self.head, *self.deputies]))

    def is_member(self, userid: str) -> bool:
        return userid in self.members


class RoutingRule(_Model):
    """A rule matches when every condition it names matches; a rule without conditions matches all."""

    unit: UnitCode
    categories: list[Text] = []
    areas: list[Text] = []
    keywords: list[Text] = []
    kinds: list[TicketKind] = []

    @property
    def is_catch_all(self) -> bool:
        return not (self.categories or self.areas or self.keywords or self.kinds)

    def matches(
        self,
        *,
        category: str | None = None,
        area: str | None = None,
        content: str | None = None,
        kind: TicketKind | None = None,
    ) -> bool:
        if self.categories and (category or "").strip() not in self.categories:
            return False
        if self.areas and (area or "").strip() not in self.areas:
            return False
        if self.keywords:
            text = (content or "").casefold()
            if not any(word.casefold() in text for word in self.keywords):
                return False
        return not self.kinds or kind in self.kinds


class ThreeTwos(_Model):
    """三个二: 20 minutes contact, 2 hours on site, 24 hours solved, 5 days opinion for hard cases."""

    categories: list[Text] = []  # empty = off
    contact_20m: DurationField = DEFAULT_THREE_TWOS[DeadlineName.CONTACT_20M]
    on_site_2h: DurationField = DEFAULT_THREE_TWOS[DeadlineName.ON_SITE_2H]
    solve_24h: DurationField = DEFAULT_THREE_TWOS[DeadlineName.SOLVE_24H]
    opinion_5d: DurationField = DEFAULT_THREE_TWOS[DeadlineName.OPINION_5D]

    def durations(self) -> dict[DeadlineName, Duration]:
        return {
            DeadlineName.CONTACT_20M: self.contact_20m,
            DeadlineName.ON_SITE_2H: self.on_site_2h,
            DeadlineName.SOLVE_24H: self.solve_24h,
            DeadlineName.OPINION_5D: self.opinion_5d,
        }


class Extension(_Model):
    """延期: a unit asks for more working days on a ticket's handling deadline; its head or the office decides."""

    default_days: int = Field(default=DEFAULT_EXTENSION_DAYS, ge=1)  # when the request names no number
    max_days: int = Field(default=MAX_EXTENSION_DAYS, ge=1, le=60)  # at most, per request
    max_approved: int = Field(default=MAX_EXTENSIONS, ge=0)  # approved extensions per ticket; 0: no extensions

    @model_validator(mode="after")
    def _default_within_max(self) -> Self:
        if self.default_days > self.max_days:
            raise ValueError(f"default_days ({self.default_days}) is more than max_days ({self.max_days})")
        return self


class Deadlines(_Model):
    # per kind: merged over DEFAULT_POLICIES; a name set to null removes that deadline
    policies: dict[TicketKind, dict[DeadlineName, DurationField | None]] = {}
    three_twos: ThreeTwos = Field(default_factory=ThreeTwos)
    extension: Extension = Field(default_factory=Extension)


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
        return ReminderPoint(before=_parse_natural_duration(value))
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


class ThreeMisses(_Model):
    """A unit whose accept deadline passes unmet ``count`` times in a reporting period is flagged to the dispatchers
    (and the office's group), once per period. Periods of ``period_months`` months start in January (2: Jan-Feb,
    Mar-Apr ... as the sub-district's bi-monthly report)."""

    count: int = Field(default=3, ge=1)
    period_months: Literal[1, 2, 3, 4, 6, 12] = 2


class Nags(_Model):
    """Reminders before a deadline, the overdue notice at it, and escalation after it (the deadline engine).

    Points are measured on the deadline's own clock: working time for a deadline in working days (so no point falls
    on a weekend or a holiday), natural time otherwise. Outside the service window and in quiet hours a routine step
    waits until they allow it; for ``urgent_kinds`` outside the window it goes to the duty officer instead.
    """

    reminders: list[Reminder] = Field(
        default_factory=lambda: [ReminderPoint(percent=50), ReminderPoint(percent=80), ReminderPoint(before=_D("1h"))]
    )
    # level 1 comes with the overdue notice at the due time, each further level ``interval`` later
    escalation: list[EscalationRole] = Field(
        default_factory=lambda: [Role.HANDLER, Role.UNIT_HEAD, Role.CENTER_LEAD]
    )
    interval: NaturalDuration = _D("2h")
    repeats: int = Field(default=3, ge=0, le=50)  # after the last level, to every level, ``interval`` apart
    urgent_kinds: list[TicketKind] = Field(default_factory=lambda: [TicketKind.URGENT, TicketKind.SEMI_URGENT])
    three_misses: ThreeMisses = Field(default_factory=ThreeMisses)
    tick_seconds: float = Field(default=15, gt=0, le=3600)  # how often the engine looks for what is due
    batch: int = Field(default=500, ge=1, le=10_000)  # deadlines per transaction


class DutyShift(_Model):
    """One line of the 24-hour duty roster. A shift whose end is not after its start runs into the next
    day (17:00-09:00); start == end is a full 24-hour shift. It belongs to the day it starts on."""

    userid: UserId
    weekdays: list[Weekday] = []  # ISO: 1 = Monday .. 7 = Sunday
    dates: list[date] = []
    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _has_days(self) -> Self:
        if not self.weekdays and not self.dates:
            raise ValueError("give weekdays (1 = Monday .. 7 = Sunday) or dates")
        if self.start == "24:00":
            raise ValueError('start may not be 24:00; write "00:00"')
        return self

    def _starts_on(self, day: date) -> bool:
        return day.isoweekday() in self.weekdays or day in self.dates

    def covers(self, at: datetime) -> bool:
        """Whether the shift is on at ``at`` (a local, Asia/Shanghai wall-clock time)."""
        now = _seconds_of_day(at)
        lo, hi = minute_of_day(self.start) * 60, minute_of_day(self.end) * 60
        today = at.date()
        if lo < hi:
            return self._starts_on(today) and lo <= now < hi
        return (self._starts_on(today) and now >= lo) or (self._starts_on(today - timedelta(days=1)) and now < hi)

    def period_on(self, day: date) -> tuple[datetime, datetime] | None:
        """The shift's start and end (naive local wall-clock times) when it starts on ``day``, else None.
        Consistent with :meth:`covers`: ``start <= at < end`` exactly when the shift of that day covers ``at``."""
        if not self._starts_on(day):
            return None
        midnight = datetime.combine(day, time())
        lo, hi = minute_of_day(self.start), minute_of_day(self.end)
        if hi <= lo:
            hi += 1440  # into the next day; start == end: 24 hours
        return midnight + timedelta(minutes=lo), midnight + timedelta(minutes=hi)


class DutySettings(_Model):
    """Takeovers of the roster (/值班 接班). A takeover lasts until the roster shift on at the time ends, or, when
    none is on, until the next one starts; never longer than ``takeover_max``. When no roster shift is on or due
    within a week (or the roster is empty), it lasts ``takeover_default``."""

    takeover_max: NaturalDuration = _D("24h")
    takeover_default: NaturalDuration = _D("12h")

    @model_validator(mode="after")
    def _default_within_max(self) -> Self:
        if self.takeover_default.natural() > self.takeover_max.natural():
            raise ValueError(
                f"takeover_default {self.takeover_default} is longer than takeover_max {self.takeover_max}"
            )
        return self


class CalendarSettings(_Model):
    overrides_file: Path | None = None  # relative to the YAML file's folder


class HotlineSettings(_Model):
    sync_url: Annotated[HttpUrlText | None, BeforeValidator(_blank_to_none)] = None
    sync_timeout_seconds: float = Field(default=10, gt=0)
    ingest_window_seconds: int = Field(default=300, gt=0)
    max_body_bytes: int = Field(default=1_048_576, gt=0)


class ImportSettings(_Model):
    columns: dict[Text, ImportField | None] = {}  # header -> field; null removes a default header
    kind_labels: dict[Text, TicketKind | None] = {}  # label -> kind; null removes a default label


class PushRule(_Model):
    """How a new ticket of one kind (or a warning ticket) reaches its unit's work group (``pushes.rules``).

    ``mode``: ``at_once`` (a card with buttons where the group's transport takes cards, markdown elsewhere),
    ``digest`` (gathered with the unit's other waiting tickets into one message per digest period), ``off``.
    ``urgent``: sent at once even outside the service window or in quiet hours, and then also privately to the duty
    officer; a rule that is not urgent waits for the window. ``mention``: who is @-mentioned in the group message.
    ``private``: who also gets it privately (the app's or the robot's 1:1 chat)."""

    mode: Literal["at_once", "digest", "off"] = "at_once"
    urgent: bool = True
    mention: list[PushAudience] = [PushAudience.TEAM, PushAudience.HEAD]
    private: list[PushAudience] = []


_AT_ONCE = PushRule()
DEFAULT_PUSH_RULES: dict[PushKind, PushRule] = {
    PushKind.REGULAR: PushRule(mode="digest", urgent=False, mention=[]),
    PushKind.URGENT: _AT_ONCE,
    PushKind.SEMI_URGENT: _AT_ONCE,
    PushKind.PHOTO: _AT_ONCE,
    PushKind.CITY_REVIEW: _AT_ONCE,
    PushKind.WARNING: PushRule(
        mention=[PushAudience.HANDLER, PushAudience.HEAD], private=[PushAudience.HEAD, PushAudience.DEPUTIES]
    ),
}


class DigestSettings(_Model):
    """The per-unit digest of waiting tickets: one message per unit and period. Periods start at ``offset`` past
    local midnight and every ``every`` after it (by default :07 and :37, away from the :00 and :30 WeCom asks
    senders to avoid); a ticket queued in one period goes out at the start of the next, inside the service window
    and outside quiet hours. At most ``max_items`` tickets are listed; a digest of one ticket is that ticket's card."""

    every: NaturalDuration = _D("30m")
    offset: NaturalDuration | None = _D("7m")
    max_items: int = Field(default=20, ge=1, le=50)

    @model_validator(mode="after")
    def _sensible(self) -> Self:
        every = self.every.natural()
        if every < timedelta(minutes=5) or every > timedelta(days=1):
            raise ValueError(f"every {self.every}: between 5m and 24h")
        if self.offset is not None and self.offset.natural() >= every:
            raise ValueError(f"offset {self.offset} must be shorter than every {self.every}")
        return self


class ImportPushSettings(_Model):
    """Which tickets an import (``run_bot.py import``) pushes: only those new to the bot, with a 派单时间 within
    ``recent`` before the import (an export of the platform's history pushes nothing); of those, at most
    ``at_once_max`` per import batch (1,000 rows) at once, the rest join their unit's digest."""

    recent: NaturalDuration = _D("24h")
    at_once_max: int = Field(default=20, ge=0)


class Pushes(_Model):
    """New, re-dispatched and warning tickets pushed into the work groups (see README, *Pushes*)."""

    rules: dict[PushKind, PushRule] = {}  # per kind, merged field by field over DEFAULT_PUSH_RULES
    digest: DigestSettings = Field(default_factory=DigestSettings)
    imports: ImportPushSettings = Field(default_factory=ImportPushSettings, alias="import")

    @model_validator(mode="after")
    def _warnings_not_digested(self) -> Self:
        warning = self.rules.get(PushKind.WARNING)
        if warning is not None and warning.mode == "digest":
            raise ValueError('rules.warning.mode: a warning ticket is pushed "at_once" or not at all ("off")')
        return self


class Retention(_Model):
    """How long the bot keeps what it no longer needs: inbound messages it has handled (WeCom callbacks, the hotline's
    hand-overs and events, kept to recognise a late retry) and outbound messages it has sent. The process running
    the deadline engine deletes older ones every hour. Dead letters are kept until an operator replays them.
    Tickets, their deadlines and the audit log are never deleted by this."""

    inbox_days: int = Field(default=90, ge=7, le=3650)
    outbox_days: int = Field(default=90, ge=7, le=3650)


class Permissions(_Model):
    """Who may act on which unit's tickets beyond the default rule (docs/roles.md): by default the unit's work (接单,
    联系, 到场, 办结, 退单, 转派, 申请延期) is done by the members of the ticket's unit only; the office roles
    (dispatcher, center lead, admin) see every unit's tickets and take the office's decisions on them."""

    # true: dispatchers, center leads and admins may also do the unit's work on every unit's tickets
    office_may_do_unit_work: bool = False


class CrossReferenceError(ValueError):
    """Raised from BotConfig's validator with every cross-reference problem found."""

    def __init__(self, issues: Sequence[tuple[Loc, str]]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(f"{format_path(loc)}: {message}" for loc, message in self.issues))


class BotConfig(_Model):
    office: Office
    timezone: Literal["Asia/Shanghai"] = TIMEZONE
    service_window: ServiceWindow = Field(
        default_factory=lambda: ServiceWindow.model_validate({"start": "06:00", "end": "24:00"})
    )
    quiet_hours: QuietHours | None = None
    members: list[Member] = Field(min_length=1)
    units: list[Unit] = Field(min_length=1)
    routing: list[RoutingRule] = []
    deadlines: Deadlines = Field(default_factory=Deadlines)
    duty_roster: list[DutyShift] = []
    duty: DutySettings = Field(default_factory=DutySettings)
    nags: Nags = Field(default_factory=Nags)
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)
    hotline: HotlineSettings = Field(default_factory=HotlineSettings)
    imports: ImportSettings = Field(default_factory=ImportSettings, alias="import")
    pushes: Pushes = Field(default_factory=Pushes)
    retention: Retention = Field(default_factory=Retention)
    permissions: Permissions = Field(default_factory=Permissions)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _members: dict[str, Member] = PrivateAttr(default_factory=dict)
    _units: dict[str, Unit] = PrivateAttr(default_factory=dict)
    _units_of: dict[str, list[Unit]] = PrivateAttr(default_factory=dict)
    _led_by: dict[str, list[Unit]] = PrivateAttr(default_factory=dict)
    _labels: dict[str, Unit] = PrivateAttr(default_factory=dict)
    _policies: dict[TicketKind, dict[DeadlineName, Duration]] = PrivateAttr(default_factory=dict)
    _three_twos_categories: frozenset[str] = PrivateAttr(default_factory=frozenset)
    _import_columns: dict[str, str] = PrivateAttr(default_factory=dict)
    _kind_labels: dict[str, TicketKind] = PrivateAttr(default_factory=dict)
    _push_rules: dict[PushKind, PushRule] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _link(self, info: ValidationInfo) -> Self:
        context = info.context if isinstance(info.context, Mapping) else {}
        base_dir = Path(context.get("base_dir") or Path.cwd())
        issues = cross_check(self.model_dump(by_alias=True), base_dir)
        if issues:
            raise CrossReferenceError(issues)

        self._base_dir = base_dir
        self._members = {m.userid: m for m in self.members}
        self._units = {u.code: u for u in self.units}
        units_of: dict[str, list[Unit]] = {}
        led_by: dict[str, list[Unit]] = {}
        labels: dict[str, Unit] = {}
        for unit in self.units:
            for userid in unit.members:
                units_of.setdefault(userid, []).append(unit)
            for userid in unit.heads:
                led_by.setdefault(userid, []).append(unit)
            for label in (unit.code, unit.name, *unit.aliases):
                labels.setdefault(label.casefold(), unit)
        self._units_of, self._led_by, self._labels = units_of, led_by, labels

        policies: dict[TicketKind, dict[DeadlineName, Duration]] = {}
        for kind in TicketKind:
            merged: dict[DeadlineName, Duration | None] = {**DEFAULT_POLICIES.get(kind, {})}
            merged.update(self.deadlines.policies.get(kind, {}))
            policies[kind] = {name: d for name, d in merged.items() if d is not None}
        self._policies = policies
        self._three_twos_categories = frozenset(self.deadlines.three_twos.categories)

        columns: dict[str, str | None] = {**DEFAULT_IMPORT_COLUMNS, **self.imports.columns}
        self._import_columns = {header: f for header, f in columns.items() if f is not None}
        kind_labels: dict[str, TicketKind | None] = {**DEFAULT_KIND_LABELS, **self.imports.kind_labels}
        self._kind_labels = {label: k for label, k in kind_labels.items() if k is not None}
        self._push_rules = {
            kind: DEFAULT_PUSH_RULES[kind].model_copy(update=given.model_dump(exclude_unset=True))
            if (given := self.pushes.rules.get(kind)) is not None
            else DEFAULT_PUSH_RULES[kind]
            for kind in PushKind
        }
        return self

    # -- lookups -----------------------------------------------------------------------------------

    @property
    def base_dir(self) -> Path:
        """The folder of the YAML file; relative paths in it are relative to this."""
        return self._base_dir

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def member(self, userid: str) -> Member | None:
        return self._members.get(userid)

    def unit(self, code: str) -> Unit | None:
        return self._units.get(code)

    @property
    def office_unit(self) -> Unit:
        """The dispatcher unit (office.unit): where unrouted tickets go."""
        return self._units[self.office.unit]

    def units_of(self, userid: str) -> list[Unit]:
        """The units ``userid`` is a member of, in config order."""
        return list(self._units_of.get(userid, ()))

    def units_led_by(self, userid: str) -> list[Unit]:
        """The units ``userid`` heads (head or deputy)."""
        return list(self._led_by.get(userid, ()))

    def unit_for_label(self, text: str | None) -> Unit | None:
        """The unit whose code, name or alias is ``text`` (the export's 承办单位 column)."""
        if not text:
            return None
        return self._labels.get(text.strip().casefold())

    def has_role(self, userid: str, role: Role, unit_code: str | None = None) -> bool:
        """Whether ``userid`` holds ``role`` (in ``unit_code`` when given).

        dispatcher / center_lead / admin are global (members[].roles), whatever the unit.
        unit_head: head or deputy of the unit (of any unit when unit_code is None).
        handler: member of the unit (without unit_code: of any unit, or listed in roles).
        duty: listed in roles or on the duty roster.
        """
        member = self._members.get(userid)
        if member is None:
            return False
        if role in GLOBAL_ROLES:
            return role in member.roles
        if role is Role.UNIT_HEAD:
            led = self._led_by.get(userid, [])
            return any(u.code == unit_code for u in led) if unit_code is not None else bool(led)
        if role is Role.HANDLER:
            if unit_code is not None:
                unit = self._units.get(unit_code)
                return unit is not None and unit.is_member(userid)
            return userid in self._units_of or Role.HANDLER in member.roles
        # Role.DUTY
        return Role.DUTY in member.roles or any(s.userid == userid for s in self.duty_roster)

    def members_with_role(self, role: Role) -> list[Member]:
        """Members holding a global role (or duty) by members[].roles."""
        return [m for m in self.members if role in m.roles]

    # -- deadlines ---------------------------------------------------------------------------------

    def policy_for(self, kind: TicketKind) -> dict[DeadlineName, Duration]:
        """The deadlines of a ticket kind: the defaults with the YAML's changes merged in."""
        return dict(self._policies[TicketKind(kind)])

    def three_twos_for(self, category: str | None) -> dict[DeadlineName, Duration]:
        """The 三个二 deadlines when ``category`` is covered, else an empty dict."""
        if not category or category.strip() not in self._three_twos_categories:
            return {}
        return self.deadlines.three_twos.durations()

    # -- pushes ------------------------------------------------------------------------------------

    def push_rule(self, kind: PushKind | TicketKind | str) -> PushRule:
        """The push rule of a ticket kind, or of ``warning``: the default with the YAML's fields merged in."""
        return self._push_rules[PushKind(str(kind))]

    # -- import ------------------------------------------------------------------------------------

    @property
    def import_columns(self) -> dict[str, str]:
        """Export header -> ticket field (defaults merged with import.columns)."""
        return dict(self._import_columns)

    @property
    def kind_labels(self) -> dict[str, TicketKind]:
        """Urgency label in the export -> TicketKind (defaults merged with import.kind_labels)."""
        return dict(self._kind_labels)

    # -- time --------------------------------------------------------------------------------------

    def local(self, at: datetime) -> datetime:
        """``at`` in the configured timezone; naive datetimes are taken as local already."""
        return at if at.tzinfo is None else at.astimezone(self.tz)

    def in_service_window(self, at: datetime) -> bool:
        return self.service_window.contains(self.local(at))

    def in_quiet_hours(self, at: datetime) -> bool:
        return self.quiet_hours is not None and self.quiet_hours.contains(self.local(at))

    def routine_from(self, at: datetime) -> datetime:
        """When a routine (not urgent) message may go out: ``at`` itself inside the service window and outside quiet
        hours, else the next moment both hold (the window opening, or quiet hours ending inside it). Should quiet
        hours cover the whole window, they are ignored: the window opening."""
        local = self.local(at)
        if self.in_service_window(local) and not self.in_quiet_hours(local):
            return at
        tz = local.tzinfo
        starts = [self.service_window.start] + ([self.quiet_hours.end] if self.quiet_hours is not None else [])
        candidates = sorted(
            datetime.combine(local.date() + timedelta(days=d), time(), tz) + timedelta(minutes=minute_of_day(hhmm))
            for d in range(3)
            for hhmm in starts
        )
        for candidate in candidates:
            if candidate > local and self.in_service_window(candidate) and not self.in_quiet_hours(candidate):
                return candidate
        opening = minute_of_day(self.service_window.start)
        day = local.date() + timedelta(days=0 if local.hour * 60 + local.minute < opening else 1)
        return datetime.combine(day, time(), tz) + timedelta(minutes=opening)

    def on_duty(self, at: datetime) -> list[str]:
        """Userids on duty at ``at``, in roster order, without repeats."""
        local = self.local(at)
        return list(dict.fromkeys(s.userid for s in self.duty_roster if s.covers(local)))

    @property
    def calendar_overrides_path(self) -> Path | None:
        """calendar.overrides_file resolved against base_dir."""
        if self.calendar.overrides_file is None:
            return None
        return self._base_dir / self.calendar.overrides_file


# --------------------------------------------------------------------------------------------------
# Cross-reference checks over plain data (the YAML as loaded, or a model dump)
# --------------------------------------------------------------------------------------------------


def format_path(loc: Sequence[str | int]) -> str:
    """('units', 3, 'head') -> 'units[3].head'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _items(value: object) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _get(value: object, key: str) -> object:
    return value.get(key) if isinstance(value, Mapping) else None


def cross_check(data: object, base_dir: Path) -> list[tuple[Loc, str]]:
    """Every cross-reference problem in ``data`` (plain dicts/lists shaped like the YAML).

    Tolerant of malformed parts (field validation reports those), so it can run on raw YAML.
    """
    issues: list[tuple[Loc, str]] = []
    if not isinstance(data, Mapping):
        return issues

    # members: unique userids
    known: dict[str, int] = {}
    for i, member in enumerate(_items(data.get("members"))):
        userid = _text(_get(member, "userid"))
        if userid is None:
            continue
        if userid in known:
            issues.append((("members", i, "userid"), f'duplicate userid "{userid}" (see members[{known[userid]}])'))
        else:
            known[userid] = i

    # units: unique codes and labels, people known and members of the unit
    codes: dict[str, int] = {}
    labels: dict[str, str] = {}
    heads: set[str] = set()
    for i, unit in enumerate(_items(data.get("units"))):
        if not isinstance(unit, Mapping):
            continue
        code = _text(unit.get("code"))
        name = code or f"units[{i}]"
        if code is not None:
            if code in codes:
                issues.append((("units", i, "code"), f'duplicate unit code "{code}" (see units[{codes[code]}])'))
            else:
                codes[code] = i
        for loc, label in [
            (("units", i, "name"), _text(unit.get("name"))),
            *((("units", i, "aliases", k), _text(a)) for k, a in enumerate(_items(unit.get("aliases")))),
        ]:
            if label is None:
                continue
            owner = labels.setdefault(label.casefold(), name)
            if owner != name:
                issues.append((loc, f'"{label}" already names unit {owner}'))
        if code is not None and codes[code] == i:
            owner = labels.setdefault(code.casefold(), name)
            if owner != name:
                issues.append((("units", i, "code"), f'"{code}" already names unit {owner}'))

        unit_members: set[str] = set()
        for k, raw in enumerate(_items(unit.get("members"))):
            userid = _text(raw)
            if userid is None:
                continue
            if userid not in known:
                issues.append((("units", i, "members", k), f'unknown member "{userid}"'))
            elif userid in unit_members:
                issues.append((("units", i, "members", k), f'"{userid}" is listed twice'))
            unit_members.add(userid)

        def person(loc: Loc, raw: object, unit_name: str = name, in_unit: set[str] = unit_members) -> None:
            userid = _text(raw)
            if userid is None:
                return
            if userid not in known:
                issues.append((loc, f'unknown member "{userid}"'))
            elif userid not in in_unit:
                issues.append((loc, f'"{userid}" is not a member of unit {unit_name}'))

        person(("units", i, "head"), unit.get("head"))
        head = _text(unit.get("head"))
        if head:
            heads.add(head)
        for k, raw in enumerate(_items(unit.get("deputies"))):
            person(("units", i, "deputies", k), raw)
            if _text(raw):
                heads.add(str(_text(raw)))
        for k, raw in enumerate(_items(unit.get("emergency_team"))):
            person(("units", i, "emergency_team", k), raw)

    # unit_head is given by units[].head / deputies, not declared
    for i, member in enumerate(_items(data.get("members"))):
        roles = _items(_get(member, "roles"))
        userid = _text(_get(member, "userid"))
        if userid and Role.UNIT_HEAD.value in roles and userid not in heads:
            issues.append(
                (
                    ("members", i, "roles"),
                    f'"unit_head" comes from units[].head/deputies, and {userid} heads no unit',
                )
            )

    # office
    office_unit = _text(_get(data.get("office"), "unit"))
    if office_unit is not None and office_unit not in codes:
        issues.append((("office", "unit"), f'unknown unit "{office_unit}"'))

    # routing
    rules = _items(data.get("routing"))
    for i, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            continue
        target = _text(rule.get("unit"))
        if target is not None and target not in codes:
            issues.append((("routing", i, "unit"), f'unknown unit "{target}"'))
        conditions = ("categories", "areas", "keywords", "kinds")
        if i < len(rules) - 1 and not any(rule.get(c) for c in conditions):
            issues.append(
                (
                    ("routing", i),
                    "rule has no condition (categories, areas, keywords or kinds); "
                    "only the last rule may be a catch-all",
                )
            )

    # duty roster
    for i, shift in enumerate(_items(data.get("duty_roster"))):
        userid = _text(_get(shift, "userid"))
        if userid is not None and userid not in known:
            issues.append((("duty_roster", i, "userid"), f'unknown member "{userid}"'))

    # calendar overrides file
    overrides = _get(data.get("calendar"), "overrides_file")
    if isinstance(overrides, str | Path) and str(overrides).strip():
        path = base_dir / str(overrides).strip()
        if not path.is_file():
            issues.append((("calendar", "overrides_file"), f"file not found: {path}"))

    return issues
