"""The YAML operators edit: office, members, units, routing, deadlines, duty roster, pushes, import.

A module per topic; :class:`BotConfig` gathers them. Every model is frozen and forbids unknown keys, so a typo is an
error with its line (see config/loader.py). Cross-references (a unit head who is not a member, a rule to an unknown
unit, ...) are checked by :func:`cross_check` over plain data, so the loader can also report them when some fields
are invalid.
"""

from config.model.bot_config import BotConfig
from config.model.checks import CrossReferenceError, cross_check, format_path
from config.model.deadlines import (
    DEFAULT_EXTENSION_DAYS,
    DEFAULT_POLICIES,
    DEFAULT_THREE_TWOS,
    MAX_EXTENSION_DAYS,
    MAX_EXTENSIONS,
    Deadlines,
    Extension,
    ThreeTwos,
)
from config.model.duty import DutySettings, DutyShift
from config.model.fields import Loc, minute_of_day
from config.model.imports import (
    DEFAULT_IMPORT_COLUMNS,
    DEFAULT_KIND_LABELS,
    IMPORT_FIELDS,
    HotlineSettings,
    ImportSettings,
)
from config.model.nags import ESCALATION_ROLES, Nags, ReminderPoint, ThreeMisses
from config.model.org import GLOBAL_ROLES, Member, Office, Permissions, RoutingRule, Unit, UnitGroup
from config.model.pushes import DEFAULT_PUSH_RULES, DigestSettings, ImportPushSettings, Pushes, PushRule
from config.model.repeats import Repeats, RepeatSignal
from config.model.retention import Retention
from config.model.returns import Returns
from config.model.visits import Visits
from config.model.windows import TIMEZONE, CalendarSettings, QuietHours, ServiceWindow

__all__ = [
    "DEFAULT_EXTENSION_DAYS",
    "DEFAULT_IMPORT_COLUMNS",
    "DEFAULT_KIND_LABELS",
    "DEFAULT_POLICIES",
    "DEFAULT_PUSH_RULES",
    "DEFAULT_THREE_TWOS",
    "ESCALATION_ROLES",
    "GLOBAL_ROLES",
    "IMPORT_FIELDS",
    "MAX_EXTENSIONS",
    "MAX_EXTENSION_DAYS",
    "TIMEZONE",
    "BotConfig",
    "CalendarSettings",
    "CrossReferenceError",
    "Deadlines",
    "DigestSettings",
    "DutySettings",
    "DutyShift",
    "Extension",
    "HotlineSettings",
    "ImportPushSettings",
    "ImportSettings",
    "Loc",
    "Member",
    "Nags",
    "Office",
    "Permissions",
    "PushRule",
    "Pushes",
    "QuietHours",
    "ReminderPoint",
    "RepeatSignal",
    "Repeats",
    "Retention",
    "Returns",
    "Visits",
    "RoutingRule",
    "ServiceWindow",
    "ThreeMisses",
    "ThreeTwos",
    "Unit",
    "UnitGroup",
    "cross_check",
    "format_path",
    "minute_of_day",
]
