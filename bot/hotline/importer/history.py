"""A row's history columns (办理状态, 接单时间 … 满意度, 是否解决) → :class:`bot.domain.history.TicketHistory`: times
checked like the ticket's own, words read through the configured state, visit and solved words."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.domain.clock import TZ, local
from bot.domain.history import MILESTONES, Status, TicketHistory
from bot.domain.lifecycle import Solved, VisitResult
from bot.hotline.schemas import EARLIEST, LATEST
from config.model import BotConfig


class HistoryError(ValueError):
    """A history cell that is no word the configuration knows; ``field`` names its column's field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class HistoryPayload(BaseModel):
    """The history cells of one row, as the mapping gave them."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    state: str | None = Field(None, max_length=32)
    accepted_at: datetime | None = None
    contacted_at: datetime | None = None
    on_site_at: datetime | None = None
    finished_at: datetime | None = None
    visited_at: datetime | None = None
    visit_result: str | None = Field(None, max_length=2000)
    satisfaction: str | None = Field(None, max_length=32)
    solved: str | None = Field(None, max_length=32)
    visit_solved: str | None = Field(None, max_length=32)

    @field_validator(*MILESTONES)
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not TZ:  # (the importer's cells are Beijing time already)
            value = local(value)
        if not EARLIEST <= value <= LATEST:
            raise ValueError(f"日期 {value:%Y-%m-%d} 超出可处理的范围（{EARLIEST:%Y-%m-%d} 至 {LATEST:%Y-%m-%d}）")
        return value

    @field_validator("visit_result")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("文本中不能有 NUL 字符（\\u0000）")
        return value


@dataclass(frozen=True, slots=True)
class HistoryWords:
    """The configured words: state word -> status, visit word -> result, 是否解决 word -> solved."""

    states: Mapping[str, str]
    visits: Mapping[str, str]
    solved: Mapping[str, str]

    @classmethod
    def of(cls, config: BotConfig) -> HistoryWords:
        imports = config.imports
        return cls(imports.state_words(), imports.visit_words(), imports.solved_words())


def _known(field: str, word: str, table: Mapping[str, str], what: str) -> str:
    found = table.get(word)
    if found is None:
        shown = word if len(word) <= 20 else word[:20] + "…"
        choices = "、".join(list(table)[:12]) or "（无）"
        raise HistoryError(field, f"未知的{what}「{shown}」（可用：{choices}…；可在 import 配置中添加）")
    return found


def history_of(values: Mapping[str, Any], words: HistoryWords, columns: frozenset[str]) -> TicketHistory:
    """The row's history. Raises pydantic's ValidationError (a time, a length) or :class:`HistoryError` (a word)."""
    payload = HistoryPayload.model_validate(values)
    status = _known("state", payload.state, words.states, "办理状态") if payload.state else None
    satisfaction: VisitResult | None = None
    if payload.satisfaction:
        satisfaction = VisitResult(_known("satisfaction", payload.satisfaction, words.visits, "满意度"))
    note = payload.visit_result or None
    if note is not None and note in words.visits:  # a result that is a satisfaction word is one
        satisfaction = satisfaction or VisitResult(words.visits[note])
        note = None
    solved = Solved(_known("solved", payload.solved, words.solved, "解决情况")) if payload.solved else None
    visit_solved = None
    if payload.visit_solved:
        visit_solved = Solved(_known("visit_solved", payload.visit_solved, words.solved, "解决情况"))
    return TicketHistory(
        status=cast(Status, status) if status is not None else None,
        accepted_at=payload.accepted_at,
        contacted_at=payload.contacted_at,
        on_site_at=payload.on_site_at,
        finished_at=payload.finished_at,
        visited_at=payload.visited_at,
        satisfaction=satisfaction,
        visit_note=note,
        solved=solved,
        visit_solved=visit_solved,
        columns=columns,
    )
