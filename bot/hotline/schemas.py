"""The JSON the hotline sends (``POST /api/tickets``, ``POST /api/tickets/{no}/events``), validated.

The same ``TicketPayload`` validates the rows of an Excel/CSV import, so both paths accept the same things. The
OpenAPI document (:mod:`bot.hotline.openapi`) is generated from these models, so what they refuse is what it says: a
``null`` only where a field is optional (``is_repeat``, ``is_media`` and ``extra`` take none), dates within
:data:`EARLIEST`..:data:`LATEST` (``formatMinimum``/``formatMaximum``), what each event type needs (``allOf`` of
``if``/``then``), and no U+0000 in any text (PostgreSQL stores none).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import JsonDict, JsonValue

from bot.domain.clock import TZ, local
from bot.domain.history import TicketHistory
from bot.domain.lifecycle import VisitResult
from bot.domain.ticket import TicketInput
from config.vocabulary import TicketKind

TICKET_NO = r"^[A-Za-z0-9][A-Za-z0-9_-]{3,63}$"
_PHONE = re.compile(r"^[0-9+\-() ]{3,32}$")
_TRUE = {"1", "true", "yes", "y", "是", "√", "t"}
_FALSE = {"0", "false", "no", "n", "否", "", "f"}
REQUEST_TYPES = {
    "咨询": "inquiry",
    "求助": "help",
    "投诉": "complaint",
    "建议": "suggestion",
    "inquiry": "inquiry",
    "help": "help",
    "complaint": "complaint",
    "suggestion": "suggestion",
}
VISIT_LABELS = {r.label: r for r in VisitResult} | {r.value: r for r in VisitResult}
# dates the working-day calendar can compute deadlines from (its data spans 2004..2099): 2004-01-01 to 2098-12-31,
# Beijing time, both days whole
EARLIEST = datetime(2004, 1, 1, tzinfo=TZ)
LATEST = datetime(2098, 12, 31, 23, 59, 59, 999999, tzinfo=TZ)
DATE_RANGE: dict[str, Any] = {"formatMinimum": EARLIEST.isoformat(), "formatMaximum": LATEST.isoformat()}
_IN_RANGE = "; from 2004-01-01 to 2098-12-31 (Beijing time)"
MAX_EXTRA_DEPTH = 5


def _in_range(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    value = local(value)
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"日期 {value:%Y-%m-%d} 超出可处理的范围（{EARLIEST:%Y-%m-%d} 至 {LATEST:%Y-%m-%d}）")
    return value


def _no_nul(value: Any) -> Any:
    """JSON can carry U+0000 (``"\\u0000"``) in a string; PostgreSQL stores none in text: refused wherever it is."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("文本中不能有 NUL 字符（\\u0000）")
    if isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            _no_nul(item)
    elif isinstance(value, list):
        for item in value:
            _no_nul(item)
    return value


def _depth(value: Any, limit: int) -> int:
    if limit < 0:
        return 1
    if isinstance(value, dict):
        return 1 + max((_depth(v, limit - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v, limit - 1) for v in value), default=0)
    return 0


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"「{value}」不是“是/否”")


class TicketPayload(BaseModel):
    """One ticket. ``kind`` may be given directly, or derived from the Chinese ``urgency``/``ticket_type``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    ticket_no: str = Field(pattern=TICKET_NO, description="工单编号, unique on the hotline platform")
    content: str = Field(min_length=1, max_length=20000, description="诉求内容")
    title: str | None = Field(None, max_length=200)
    address: str | None = Field(None, max_length=500, description="诉求地址")
    citizen_name: str | None = Field(None, max_length=64, description="联系人 (stored; masked in groups)")
    citizen_phone: str | None = Field(None, max_length=32, description="联系电话 (stored; masked in groups)")
    kind: TicketKind | None = Field(None, description="regular, urgent, semi_urgent, photo, city_review")
    urgency: str | None = Field(None, max_length=32, description="紧急程度 label: 常规, 紧急, 次紧急 …")
    ticket_type: str | None = Field(None, max_length=32, description="工单类型 label: 随身拍, 市级复核 …")
    request_type: str | None = Field(None, max_length=16, description="诉求类型: 咨询, 求助, 投诉, 建议")
    category: str | None = Field(None, max_length=64, description="诉求类别, e.g. 环卫")
    area: str | None = Field(None, max_length=64, description="所属街镇")
    unit: str | None = Field(None, max_length=64, description="承办单位 code or name, if the platform named one")
    dispatched_at: datetime | None = Field(
        None, description="派单时间, ISO 8601; without offset = Beijing time" + _IN_RANGE, json_schema_extra=DATE_RANGE
    )
    hotline_deadline: datetime | None = Field(
        None, description="the platform's own 办理时限" + _IN_RANGE, json_schema_extra=DATE_RANGE
    )
    is_repeat: bool = Field(False, description="重复工单")
    is_media: bool = Field(False, description="舆论监督 / media exposure")
    extra: dict[str, Any] = Field(default_factory=dict, description="anything else, kept as is")

    @field_validator("citizen_phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value and not _PHONE.match(value):
            raise ValueError("电话号码只能包含数字、空格和 + - ( )")
        return value or None

    @field_validator("request_type")
    @classmethod
    def _request_type(cls, value: str | None) -> str | None:
        if not value:
            return None
        if value not in REQUEST_TYPES:
            raise ValueError(f"未知的诉求类型「{value}」（咨询、求助、投诉或建议）")
        return REQUEST_TYPES[value]

    @field_validator("*", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return _no_nul(value)

    @field_validator("is_repeat", "is_media", mode="before")
    @classmethod
    def _flags(cls, value: Any) -> bool:
        if value is None:  # an import leaves an empty cell out; JSON null is no "是/否"
            raise ValueError("应为 true/false（是/否），不能为 null")
        return _flag(value)

    @field_validator("dispatched_at", "hotline_deadline")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _in_range(value)

    @field_validator("extra")
    @classmethod
    def _small_extra(cls, value: dict[str, Any]) -> dict[str, Any]:
        if _depth(value, MAX_EXTRA_DEPTH) > MAX_EXTRA_DEPTH:
            raise ValueError(f"extra 最多嵌套 {MAX_EXTRA_DEPTH} 层")
        if len(str(value)) > 8000:
            raise ValueError("extra 最多 8000 个字符")
        return value

    def resolve_kind(self, labels: dict[str, TicketKind]) -> TicketKind:
        """kind if given; else 工单类型 when it names a special kind; else 紧急程度; else regular."""
        if self.kind is not None:
            return self.kind
        if self.ticket_type and self.ticket_type in labels:
            return labels[self.ticket_type]
        if self.urgency:
            if self.urgency in labels:
                return labels[self.urgency]
            try:
                return TicketKind(self.urgency)
            except ValueError:
                known = "、".join(labels) or "常规、紧急"
                raise ValueError(f"未知的紧急程度「{self.urgency}」（可用：{known}）") from None
        return TicketKind.REGULAR

    def to_input(self, labels: dict[str, TicketKind], history: TicketHistory | None = None) -> TicketInput:
        """The hand-over; ``history``: what an export row says happened to it (an import's only)."""
        extra = dict(self.extra)
        if self.ticket_type and self.ticket_type not in labels:
            extra.setdefault("ticket_type", self.ticket_type)
        return TicketInput(
            ticket_no=self.ticket_no,
            content=self.content,
            kind=self.resolve_kind(labels),
            dispatched_at=self.dispatched_at,
            title=self.title,
            address=self.address,
            citizen_name=self.citizen_name,
            citizen_phone=self.citizen_phone,
            request_type=self.request_type,
            category=self.category,
            area=self.area,
            unit_label=self.unit,
            hotline_deadline=self.hotline_deadline,
            is_repeat=self.is_repeat,
            is_media=self.is_media,
            extra=extra,
            history=history,
        )


class TicketBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tickets: list[TicketPayload] = Field(min_length=1, max_length=500)


def _needs(event_type: str, *fields: str) -> dict[str, Any]:
    """JSON Schema: an event of ``event_type`` has each of ``fields``, not null and not blank."""
    text = {"type": "string", "minLength": 1, "pattern": r"\S"}
    not_null = {"not": {"type": "null"}}
    shapes = {"unit": text, "note": text, "days": {"type": "integer", "minimum": 1}, "result": not_null}
    return {
        "if": {"properties": {"type": {"const": event_type}}, "required": ["type"]},
        "then": {"required": list(fields), "properties": {f: shapes[f] for f in fields}},
    }


# what each event type needs, as the API enforces it (bot.hotline.api): in the OpenAPI document
EVENT_NEEDS: dict[str, tuple[str, ...]] = {
    "visit_result": ("result",),
    "redispatch": ("unit",),
    "request_extension": ("days", "note"),
    "reject_extension": ("note",),
    "reject_return": ("note",),
    "request_exclusion": ("note",),
}
DAYS_ONLY_WITH = ("request_extension", "approve_extension")
_EVENT_RULES: list[dict[str, Any]] = [_needs(t, *fields) for t, fields in EVENT_NEEDS.items()] + [
    {
        "if": {"properties": {"type": {"not": {"enum": list(DAYS_ONLY_WITH)}}}, "required": ["type"]},
        "then": {"properties": {"days": {"type": "null"}}},
    }
]


def _event_rules(schema: JsonDict) -> None:
    schema["allOf"] = cast(list[JsonValue], _EVENT_RULES)


class TicketEventPayload(BaseModel):
    """An update from the hotline about a ticket it sent before."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra=_event_rules)

    event_id: str = Field(min_length=1, max_length=100, description="unique per event: retries are ignored")
    type: Literal[
        "visit_result",
        "redispatch",
        "cancel",
        "reopen",
        "request_extension",
        "approve_extension",
        "reject_extension",
        "approve_return",
        "reject_return",
        "request_exclusion",
        "approve_exclusion",
        "reject_exclusion",
    ]
    at: datetime | None = Field(
        None, description="when it happened; default: when received" + _IN_RANGE, json_schema_extra=DATE_RANGE
    )
    result: VisitResult | None = Field(None, description="visit_result: satisfied, basically_satisfied, …")
    solved: Literal["solved", "partly", "unsolved"] | None = Field(
        None, description="visit_result: whether the citizen found the problem solved (已解决/部分解决/未解决)"
    )
    unit: str | None = Field(
        None,
        max_length=64,
        description="redispatch: the new unit (code or name); approve_return: the unit to re-dispatch to (optional)",
    )
    days: int | None = Field(
        None,
        ge=1,
        description=(
            "request_extension: working days asked for (1 to deadlines.extension.max_days); "
            "approve_extension: fewer days than asked, when the platform grants fewer (default: as asked)"
        ),
    )
    note: str | None = Field(
        None,
        max_length=2000,
        description=(
            "the reason: required with request_extension, reject_extension, reject_return and request_exclusion; "
            "visit_result: what the citizen said"
        ),
    )

    @field_validator("*", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return _no_nul(value)

    @field_validator("solved", mode="before")
    @classmethod
    def _solved(cls, value: Any) -> Any:
        labels = {"已解决": "solved", "部分解决": "partly", "未解决": "unsolved"}
        return labels.get(value.strip(), value) if isinstance(value, str) else value

    @field_validator("result", mode="before")
    @classmethod
    def _result(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() in VISIT_LABELS:
            return VISIT_LABELS[value.strip()]
        return value

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _in_range(value)
