"""BotConfig: the whole YAML as one validated object, and the lookups the bot makes on it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Literal, Self
from zoneinfo import ZoneInfo

from pydantic import Field, PrivateAttr, ValidationInfo, model_validator

from config.durations import Duration
from config.model.checks import CrossReferenceError, cross_check
from config.model.deadlines import DEFAULT_POLICIES, Deadlines
from config.model.duty import DutySettings, DutyShift
from config.model.fields import Model, minute_of_day
from config.model.imports import DEFAULT_IMPORT_COLUMNS, DEFAULT_KIND_LABELS, HotlineSettings, ImportSettings
from config.model.nags import Nags
from config.model.org import GLOBAL_ROLES, Member, Office, Permissions, RoutingRule, Unit
from config.model.pushes import DEFAULT_PUSH_RULES, Pushes, PushRule
from config.model.repeats import Repeats
from config.model.reports import Reports
from config.model.retention import Retention
from config.model.returns import Returns
from config.model.visits import Visits
from config.model.windows import TIMEZONE, CalendarSettings, QuietHours, ServiceWindow
from config.vocabulary import DeadlineName, PushKind, Role, TicketKind


class BotConfig(Model):
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
    repeats: Repeats = Field(default_factory=Repeats)
    reports: Reports = Field(default_factory=Reports)
    retention: Retention = Field(default_factory=Retention)
    returns: Returns = Field(default_factory=Returns)
    visits: Visits = Field(default_factory=Visits)
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
