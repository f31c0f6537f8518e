"""The organisation: the office, its members, the units with their work groups, the routing rules and who may act."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from config.model.fields import Mobile, Model, OptionalText, Text, UnitCode, UserId
from config.vocabulary import Role, TicketKind

# Roles that hold everywhere, taken from members[].roles.
GLOBAL_ROLES: frozenset[Role] = frozenset({Role.DISPATCHER, Role.CENTER_LEAD, Role.ADMIN})


class Office(Model):
    """The hotline office (热线办 / 城运中心 / 投诉质监中心)."""

    name: Text
    unit: UnitCode  # the dispatcher unit: fallback target of routing
    # the robot's answer when someone opens a chat with it ({office} is the name above); blank: no answer
    welcome: OptionalText = "您好，这里是{office}工单助手：新工单和临期提醒会推送到工作群，发送“帮助”查看可用命令。"

    @property
    def welcome_text(self) -> str | None:
        return self.welcome.replace("{office}", self.name) if self.welcome else None


class Member(Model):
    userid: UserId
    name: Text
    mobile: Mobile | None = None
    roles: list[Role] = []


class UnitGroup(Model):
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


class Unit(Model):
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
    # the unit heads' group (负责人微信群), where warning tickets are announced at once (seed 004); may be shared
    heads_group: UnitGroup | None = None

    @property
    def heads(self) -> list[str]:
        """The head first, then the deputies."""
        return list(dict.fromkeys([self.head, *self.deputies]))

    def is_member(self, userid: str) -> bool:
        return userid in self.members


class RoutingRule(Model):
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


class Permissions(Model):
    """Who may act on which unit's tickets beyond the default rule (docs/roles.md): by default the unit's work (接单,
    联系, 到场, 办结, 退单, 转派, 申请延期) is done by the members of the ticket's unit only; the office roles
    (dispatcher, center lead, admin) see every unit's tickets and take the office's decisions on them."""

    # true: dispatchers, center leads and admins may also do the unit's work on every unit's tickets
    office_may_do_unit_work: bool = False
