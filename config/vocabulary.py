"""The words operators use in the YAML: ticket kinds, deadline names, roles.

The domain imports these; config/ imports nothing of ours.
"""

from __future__ import annotations

from enum import StrEnum


class TicketKind(StrEnum):
    """Urgency / special kind of a ticket: selects its deadline policy."""

    REGULAR = "regular"  # 常规
    URGENT = "urgent"  # 紧急
    SEMI_URGENT = "semi_urgent"  # 次紧急
    PHOTO = "photo"  # 随身拍
    CITY_REVIEW = "city_review"  # 市级复核单


KIND_LABELS: dict[TicketKind, str] = {
    TicketKind.REGULAR: "常规",
    TicketKind.URGENT: "紧急",
    TicketKind.SEMI_URGENT: "次紧急",
    TicketKind.PHOTO: "随身拍",
    TicketKind.CITY_REVIEW: "市级复核",
}


class DeadlineName(StrEnum):
    """Every deadline a ticket can carry."""

    ACCEPT = "accept"  # 先行接单
    FIRST_CONTACT = "first_contact"  # 先行联系
    RETURN_WINDOW = "return_window"  # 退单期限 (a window, not an obligation)
    HANDLE = "handle"  # 首次处置 / 办结
    HANDLE_INTERNAL = "handle_internal"  # 特殊工单内部期限
    REHANDLE = "rehandle"  # 再次处置 (warning tickets)
    CONTACT_20M = "contact_20m"  # 三个二: 20 分钟联系
    ON_SITE_2H = "on_site_2h"  # 三个二: 2 小时到场
    SOLVE_24H = "solve_24h"  # 三个二: 24 小时基本解决
    OPINION_5D = "opinion_5d"  # 三个二: 疑难 5 日内答复处理意见
    RETURN_REVIEW = "return_review"  # 退单审核: the office's, while a return waits for its decision


DEADLINE_LABELS: dict[DeadlineName, str] = {
    DeadlineName.ACCEPT: "接单",
    DeadlineName.FIRST_CONTACT: "先行联系",
    DeadlineName.RETURN_WINDOW: "退单期限",
    DeadlineName.HANDLE: "办结",
    DeadlineName.HANDLE_INTERNAL: "内部办结",
    DeadlineName.REHANDLE: "再次处置",
    DeadlineName.CONTACT_20M: "20分钟联系",
    DeadlineName.ON_SITE_2H: "2小时到场",
    DeadlineName.SOLVE_24H: "24小时解决",
    DeadlineName.OPINION_5D: "5日答复意见",
    DeadlineName.RETURN_REVIEW: "退单审核",
}


class PushKind(StrEnum):
    """What a push rule is for (``pushes.rules``): a ticket kind, or a warning ticket (预警, after a dissatisfied
    return visit), which is not a kind but a state any kind can reach."""

    REGULAR = "regular"
    URGENT = "urgent"
    SEMI_URGENT = "semi_urgent"
    PHOTO = "photo"
    CITY_REVIEW = "city_review"
    WARNING = "warning"


class PushAudience(StrEnum):
    """Whom a push @-mentions in the group or reaches privately, by role in the ticket's unit."""

    TEAM = "team"  # the unit's handlers on duty: its emergency team (应急队伍), else all its members
    HANDLER = "handler"  # the ticket's own handler (承办人), when it has one
    HEAD = "head"  # the unit head (负责人)
    DEPUTIES = "deputies"  # the unit's deputy heads
    MEMBERS = "members"  # every member of the unit


class Role(StrEnum):
    HANDLER = "handler"  # 承办人
    UNIT_HEAD = "unit_head"  # 负责人
    DISPATCHER = "dispatcher"  # 热线办 / 城运中心
    CENTER_LEAD = "center_lead"  # 分管领导 / 中心领导
    DUTY = "duty"  # 值班
    ADMIN = "admin"


ROLE_LABELS: dict[Role, str] = {
    Role.HANDLER: "承办人",
    Role.UNIT_HEAD: "负责人",
    Role.DISPATCHER: "派单员",
    Role.CENTER_LEAD: "中心领导",
    Role.DUTY: "值班员",
    Role.ADMIN: "管理员",
}
