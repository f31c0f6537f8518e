"""One row of an export → ticket fields: cells normalised (text, digits, Excel dates), and a row's validation errors
said in Chinese."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from bot.domain.clock import TZ, local

Cell = str | datetime | float | None
RawCell = Any  # what calamine / csv hand over, before normalisation

DATE_FIELDS = frozenset(
    {"dispatched_at", "hotline_deadline", "accepted_at", "contacted_at", "on_site_at", "finished_at", "visited_at"}
)
DIGIT_FIELDS = frozenset({"ticket_no", "citizen_phone"})  # numbers Excel may have stored as floats

# Excel's day 0 (its serials count wall-clock days; the office's clock is Beijing time)
_EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=TZ)
# Excel serials accepted as dates: 1970-01-01 .. 2099-12-31 (anything else is not a plausible ticket date)
_SERIAL_MIN, _SERIAL_MAX = 25569, 73051
_DATETIME = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:\s*T?\s*(\d{1,2})\s*[:：时点]\s*(\d{1,2})\s*(?:[:：分]\s*(\d{1,2})(?:\.(\d{1,6}))?\s*秒?|分)?)?$"
)
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?$")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_INTEGRAL = re.compile(r"^(\d+)\.0+$")
_SCIENTIFIC = re.compile(r"^\d(?:\.\d+)?[eE]\+?\d+$")
_INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060"


@dataclass(frozen=True, slots=True)
class InvalidCell:
    """A cell that cannot be what its column needs (e.g. a date); validation reports it with its text."""

    raw: str

    def __str__(self) -> str:
        return self.raw


def clean(text: str) -> str:
    """Strips whitespace (full-width spaces included) and invisible marks at both ends."""
    return text.strip().strip(_INVISIBLE).strip()


def _excel_time(value: datetime) -> datetime:
    """Aware, in Beijing time; a float artefact within a millisecond of a whole second is rounded off."""
    micro = value.microsecond
    if micro and (micro < 1000 or micro > 999_000):
        value = value.replace(microsecond=0) + timedelta(seconds=1 if micro > 999_000 else 0)
    return local(value)


def cell_of(value: RawCell) -> Cell:
    """A raw cell as read_rows hands it out: text stripped, empty -> None, dates as datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        return clean(value) or None
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        return value
    if isinstance(value, datetime):
        return _excel_time(value)
    if isinstance(value, int):
        return float(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=TZ)
    return clean(str(value)) or None  # time, timedelta


def text_of(value: RawCell) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return clean(value) or None
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        midnight = (value.hour, value.minute, value.second) == (0, 0, 0)
        return value.strftime("%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M:%S")
    return clean(str(value)) or None


def digits_of(value: RawCell) -> str | None:
    """Ticket and phone numbers: 13800001234.0 (a float cell, or its text) -> "13800001234"."""
    text = text_of(value)
    if text is not None and "." in text:
        match = _INTEGRAL.match(text)
        if match:
            return match.group(1)
    return text


def _serial(days: float) -> datetime | None:
    if not _SERIAL_MIN <= days <= _SERIAL_MAX:
        return None
    return _EXCEL_EPOCH + timedelta(seconds=round(days * 86400))


def parse_datetime(text: str) -> datetime | None:
    """``2026-11-20 15:04:05``, ``2026/11/20 15:04``, ``2026年11月20日 15时04分``, ISO 8601, ``20261120``…"""
    match = _DATETIME.match(text)
    if match is None:
        match = _COMPACT.match(text)
    if match is not None:
        y, mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups()[:6])
        frac = match.groups()[6] if len(match.groups()) > 6 else None
        micro = int(frac.ljust(6, "0")) if frac else 0
        try:
            return datetime(y, mo, d, h, mi, s, micro, tzinfo=TZ)
        except ValueError:
            return None
    if _NUMBER.match(text):
        return _serial(float(text))
    try:
        return local(datetime.fromisoformat(text))
    except ValueError:
        return None


def _when(value: RawCell) -> datetime | InvalidCell | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return _excel_time(value)
    if isinstance(value, str):
        text = clean(value)
        if not text:
            return None
        parsed = parse_datetime(text)
        return parsed if parsed is not None else InvalidCell(text)
    if isinstance(value, bool):
        return InvalidCell(str(value))
    if isinstance(value, int | float):
        when = _serial(float(value))
        return when if when is not None else InvalidCell(text_of(value) or "")
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=TZ)
    return InvalidCell(str(value))


Converter = Callable[[RawCell], Any]


def converter(field_name: str) -> Converter:
    if field_name in DATE_FIELDS:
        return _when
    if field_name in DIGIT_FIELDS:
        return digits_of
    return text_of


def map_row(cells: Mapping[str, RawCell], columns: Mapping[str, str]) -> dict[str, Any]:
    """Header -> cell becomes field -> value, ready for ``TicketPayload.model_validate``.

    Headers not in ``columns`` are ignored; empty cells are left out (the schema's defaults apply).
    Date columns become datetimes (or an :class:`InvalidCell` the validation reports); ticket and phone
    numbers stored as floats become digit strings. When two headers name the same field, the first
    non-empty one wins.
    """
    mapped: dict[str, Any] = {}
    for header, raw in cells.items():
        name = columns.get(header)
        if name is None or name in mapped:
            continue
        value = converter(name)(raw)
        if value is not None:
            mapped[name] = value
    return mapped


_TICKET_NO_HINT = "应为 4–64 位字母、数字、_ 或 -"
_SCIENTIFIC_HINT = "（看起来被 Excel 转成了科学计数法：请把该列设为文本后重新导出）"


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _describe(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    loc = error.get("loc") or ()
    name = loc[0] if loc else None
    if kind == "missing" or (kind == "string_too_short" and not str(value or "").strip()):
        return "不能为空"
    if kind == "string_too_long":
        return f"太长（最多 {ctx.get('max_length')} 个字符）"
    if kind == "string_pattern_mismatch":
        hint = _TICKET_NO_HINT if name == "ticket_no" else "格式不对"
        message = f"「{_shown(value)}」{hint}"
    elif isinstance(value, InvalidCell) or kind.startswith(("datetime_", "date_")):
        return f"无法识别的日期时间「{_shown(value)}」（可写作 2026-11-20 15:04）"
    elif kind == "value_error":
        message = str(ctx.get("error", error.get("msg", "")))
    elif kind == "bool_parsing":
        message = f"「{_shown(value)}」应为 是 或 否"
    else:
        message = str(error.get("msg", kind))
    if isinstance(value, str) and _SCIENTIFIC.match(value):
        message += _SCIENTIFIC_HINT
    return message


def row_message(exc: ValidationError, header_of: Mapping[str, str]) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        loc = error.get("loc") or ()
        label = header_of.get(str(loc[0]), str(loc[0])) if loc else ""
        text = _describe(error)
        parts.append(f"{label}: {text}" if label else text)
    return "；".join(parts)
