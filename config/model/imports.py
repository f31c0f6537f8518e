"""The hotline platform: its export's columns and urgency labels (the import), and the sync-back endpoint."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from config.model.fields import HttpUrlText, Model, Text, blank_to_none
from config.vocabulary import TicketKind

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


class ImportSettings(Model):
    columns: dict[Text, ImportField | None] = {}  # header -> field; null removes a default header
    kind_labels: dict[Text, TicketKind | None] = {}  # label -> kind; null removes a default label
