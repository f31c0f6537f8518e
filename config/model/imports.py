"""The hotline platform: its export's columns, urgency labels and state words (the import), and the sync-back
endpoint."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, PrivateAttr, model_validator

from config.model.fields import D, HttpUrlText, Model, NaturalDuration, Text, blank_to_none
from config.vocabulary import TicketKind

# Chinese export headers of the hotline platform -> ticket field, with the synonyms platforms use for them
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "ticket_no": ("工单编号", "工单号", "受理编号"),
    "content": ("诉求内容", "反映内容", "来电内容", "问题描述", "工单内容"),
    "address": ("诉求地址", "地址", "事发地址", "发生地址", "问题地址", "反映地址"),
    "citizen_name": ("联系人", "来电人", "反映人", "来电人姓名", "诉求人", "联系人姓名"),
    "citizen_phone": ("联系电话", "来电号码", "来电电话", "联系方式", "联系号码"),
    "urgency": ("紧急程度", "缓急程度"),
    "ticket_type": ("工单类型",),
    "category": ("诉求类别", "问题分类", "业务类别"),
    "request_type": ("诉求类型", "来电类别"),
    "area": ("所属街镇", "街镇", "所属街道"),
    "unit": ("承办单位", "主办单位", "承办部门", "处置单位"),
    "dispatched_at": ("派单时间", "派发时间", "交办时间"),
    "title": ("标题", "工单标题"),
    "hotline_deadline": ("办理时限", "办结时限", "处理时限"),
    "is_repeat": ("重复工单", "是否重复"),
    "is_media": ("舆论监督",),
    # what happened to the ticket on the platform: its state and milestones (history; an import's only)
    "state": ("办理状态", "工单状态", "处理状态", "状态"),
    "accepted_at": ("接单时间", "签收时间"),
    "contacted_at": ("首次联系时间", "先行联系时间", "联系时间"),
    "on_site_at": ("到场时间", "到达现场时间"),
    "finished_at": ("办结时间", "办理完成时间", "答复时间"),
    "visited_at": ("回访时间",),
    "visit_result": ("回访结果", "回访情况"),
    "satisfaction": ("满意度", "满意程度", "回访满意度"),
    "solved": ("是否解决", "解决情况"),
    "visit_solved": ("回访是否解决", "市民评价是否解决"),
}
DEFAULT_IMPORT_COLUMNS: dict[str, str] = {header: name for name, headers in _SYNONYMS.items() for header in headers}

# the history fields: what a row says happened on the platform (bot.domain.history), not the ticket as handed over
HISTORY_FIELDS: frozenset[str] = frozenset(
    {
        "state",
        "accepted_at",
        "contacted_at",
        "on_site_at",
        "finished_at",
        "visited_at",
        "visit_result",
        "satisfaction",
        "solved",
        "visit_solved",
    }
)

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

# what a state word of the export (办理状态 / 工单状态) says of the ticket:
#   dispatched, claimed, contacted, on_site   still with its unit, that far along (its milestones may say further)
#   finished   the unit finished it (已办结): awaiting the office's visit when recent, else closed
#   closed     visited, archived, closed: nothing more to do
#   cancelled  withdrawn or void
ImportedState = Literal["dispatched", "claimed", "contacted", "on_site", "finished", "closed", "cancelled"]
DEFAULT_STATE_WORDS: dict[str, ImportedState] = {
    **dict.fromkeys(("待接单", "待签收", "待处理", "待办理", "已派单", "已派发", "已受理", "未签收"), "dispatched"),
    **dict.fromkeys(("已签收", "已接单", "办理中", "处理中", "在办", "签收"), "claimed"),
    "已联系": "contacted",
    "已到场": "on_site",
    **dict.fromkeys(("已办结", "办结", "已办理", "已答复", "已反馈", "待回访", "已处理"), "finished"),
    **dict.fromkeys(("已回访", "已归档", "已关闭", "已结案", "已完结", "已评价", "已完成", "结案", "归档"), "closed"),
    **dict.fromkeys(("已撤销", "已作废", "已撤单", "作废", "撤销"), "cancelled"),
}

VisitLabel = Literal["satisfied", "basically_satisfied", "dissatisfied", "unreachable"]
DEFAULT_VISIT_LABELS: dict[str, VisitLabel] = {
    "满意": "satisfied",
    "非常满意": "satisfied",
    "很满意": "satisfied",
    "基本满意": "basically_satisfied",
    "比较满意": "basically_satisfied",
    "不满意": "dissatisfied",
    "非常不满意": "dissatisfied",
    "联系不上": "unreachable",
    "无法联系": "unreachable",
    "未接通": "unreachable",
}

SolvedLabel = Literal["solved", "partly", "unsolved"]
DEFAULT_SOLVED_LABELS: dict[str, SolvedLabel] = {
    "已解决": "solved",
    "解决": "solved",
    "是": "solved",
    "部分解决": "partly",
    "基本解决": "partly",
    "未解决": "unsolved",
    "否": "unsolved",
}


def _check_import_field(value: str) -> str:
    if value not in IMPORT_FIELDS:
        raise ValueError(f'unknown ticket field "{value}"; expected one of: {", ".join(sorted(IMPORT_FIELDS))}')
    return value


ImportField = Annotated[str, AfterValidator(_check_import_field)]


class HotlineSettings(Model):
    sync_url: Annotated[HttpUrlText | None, BeforeValidator(blank_to_none)] = None
    sync_timeout_seconds: float = Field(default=10, gt=0)
    ingest_window_seconds: int = Field(default=300, gt=0)
    max_body_bytes: int = Field(default=1_048_576, gt=0)


def _merged(defaults: dict[str, str], given: dict[str, str | None]) -> dict[str, str]:
    return {word: v for word, v in {**defaults, **given}.items() if v is not None}


class ImportSettings(Model):
    columns: dict[Text, ImportField | None] = {}  # header -> field; null removes a default header
    kind_labels: dict[Text, TicketKind | None] = {}  # label -> kind; null removes a default label
    states: dict[Text, ImportedState | None] = {}  # state word -> what it says; null removes a default word
    visit_labels: dict[Text, VisitLabel | None] = {}  # 满意度 / 回访结果 word -> visit result
    solved_labels: dict[Text, SolvedLabel | None] = {}  # 是否解决 word -> solved, partly, unsolved
    # a finished row (已办结) without a visit, finished within this before the import, awaits the office's visit
    # (submitted); an older one is imported closed
    awaiting_visit: NaturalDuration = D("7d")
    max_upload_bytes: int = Field(default=64 * 1024 * 1024, gt=0)  # POST /api/imports: the largest file taken

    _states: dict[str, str] = PrivateAttr(default_factory=dict)
    _visit_labels: dict[str, str] = PrivateAttr(default_factory=dict)
    _solved_labels: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _merge(self) -> Self:
        self._states = _merged(dict(DEFAULT_STATE_WORDS), dict(self.states))
        self._visit_labels = _merged(dict(DEFAULT_VISIT_LABELS), dict(self.visit_labels))
        self._solved_labels = _merged(dict(DEFAULT_SOLVED_LABELS), dict(self.solved_labels))
        return self

    def state_words(self) -> dict[str, str]:
        """State word -> dispatched, claimed, contacted, on_site, finished, closed or cancelled (defaults merged with
        ``states``)."""
        return dict(self._states)

    def visit_words(self) -> dict[str, str]:
        """Visit result word -> satisfied, basically_satisfied, dissatisfied, unreachable."""
        return dict(self._visit_labels)

    def solved_words(self) -> dict[str, str]:
        """是否解决 word -> solved, partly, unsolved."""
        return dict(self._solved_labels)
