"""Import tickets from the hotline platform's Excel / CSV exports.

Rows are read one at a time (python-calamine for Excel, which keeps the sheet itself in native memory,
about 1.5 MB per 1,000 rows; the csv module for CSV), mapped (export header -> ticket field, see
``BotConfig.import_columns``), validated with the same :class:`TicketPayload` as the HTTP API, and handed to
``TicketService.upsert`` in batches. Reading runs in a worker thread, so the event loop is never blocked.

A bad row becomes a :class:`RowError` and the rest goes on; a file whose header lacks a required column is
refused as a whole (:class:`ImportFormatError`) before anything is written.

Re-importing a file changes nothing (every row comes back ``unchanged``). When one ticket number appears on
several rows, the last of them wins: the earlier ones are skipped and counted as ``superseded``, so that a
re-import does not flip the ticket back and forth.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import re
import sys
import time as _time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from bot.domain.clock import TZ, local
from bot.domain.ticket import TicketInput
from bot.hotline.schemas import TicketPayload
from bot.services.tickets import TicketService
from config.model import BotConfig
from config.vocabulary import TicketKind

__all__ = [
    "EXCEL_SUFFIXES",
    "ImportFormatError",
    "CSV_SUFFIXES",
    "ImportReport",
    "InvalidCell",
    "RowError",
    "format_errors",
    "import_file",
    "map_row",
    "parse_datetime",
    "read_rows",
]

Cell = str | datetime | float | None
RawCell = Any  # what calamine / csv hand over, before normalisation

EXCEL_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xlsb", ".xls", ".ods"})
CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
REQUIRED_FIELDS = ("ticket_no", "content")
DATE_FIELDS = frozenset({"dispatched_at", "hotline_deadline"})
DIGIT_FIELDS = frozenset({"ticket_no", "citizen_phone"})  # numbers Excel may have stored as floats

# how many non-empty rows at the top may precede the header (a title row such as "12345工单导出")
_HEADER_SCAN = 20
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


class ImportFormatError(Exception):
    """The file as a whole cannot be imported (type, encoding, sheet, header); nothing was written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class RowError:
    row: int  # the spreadsheet's own row number (the header row of a plain export is row 1)
    ticket_no: str | None
    message: str

    def format(self) -> str:
        where = f"第 {self.row} 行"
        if self.ticket_no:
            where += f" [{self.ticket_no}]"
        return f"{where}: {self.message}"


@dataclass(kw_only=True)
class ImportReport:
    total: int  # non-empty data rows
    created: int
    updated: int
    unchanged: int
    errors: list[RowError]
    seconds: float
    superseded: int = 0  # rows skipped because a later row carries the same ticket number
    dry_run: bool = False  # counts are what an import would do; nothing was written

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if self.dry_run:
            text = (
                f"校验完成（试运行，未写入）：共 {self.total} 行，将新增 {self.created}，"
                f"将更新 {self.updated}，未变 {self.unchanged}，错误 {len(self.errors)}"
            )
        else:
            text = (
                f"导入完成：共 {self.total} 行，新增 {self.created}，更新 {self.updated}，"
                f"未变 {self.unchanged}，错误 {len(self.errors)}"
            )
        if self.superseded:
            text += f"，重复编号 {self.superseded}（以最后一行为准）"
        return text


def format_errors(report: ImportReport, limit: int = 50) -> list[str]:
    """One line per row error, ``第 12 行 [2026112000001]: 联系电话: …``; at most ``limit`` lines and a tail."""
    lines = [e.format() for e in report.errors[:limit]]
    if len(report.errors) > limit:
        lines.append(f"……另有 {len(report.errors) - limit} 行错误未列出")
    return lines


@dataclass(frozen=True, slots=True)
class InvalidCell:
    """A cell that cannot be what its column needs (e.g. a date); validation reports it with its text."""

    raw: str

    def __str__(self) -> str:
        return self.raw


# --------------------------------------------------------------------------------------------------
# Cell normalisation
# --------------------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    """Strips whitespace (full-width spaces included) and invisible marks at both ends."""
    return text.strip().strip(_INVISIBLE).strip()


def _excel_time(value: datetime) -> datetime:
    """Aware, in Beijing time; a float artefact within a millisecond of a whole second is rounded off."""
    micro = value.microsecond
    if micro and (micro < 1000 or micro > 999_000):
        value = value.replace(microsecond=0) + timedelta(seconds=1 if micro > 999_000 else 0)
    return local(value)


def _cell(value: RawCell) -> Cell:
    """A raw cell as read_rows hands it out: text stripped, empty -> None, dates as datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        return _clean(value) or None
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
    return _clean(str(value)) or None  # time, timedelta


def _text(value: RawCell) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _clean(value) or None
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        midnight = (value.hour, value.minute, value.second) == (0, 0, 0)
        return value.strftime("%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M:%S")
    return _clean(str(value)) or None


def _digits(value: RawCell) -> str | None:
    """Ticket and phone numbers: 13800001234.0 (a float cell, or its text) -> "13800001234"."""
    text = _text(value)
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
        text = _clean(value)
        if not text:
            return None
        parsed = parse_datetime(text)
        return parsed if parsed is not None else InvalidCell(text)
    if isinstance(value, bool):
        return InvalidCell(str(value))
    if isinstance(value, int | float):
        when = _serial(float(value))
        return when if when is not None else InvalidCell(_text(value) or "")
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=TZ)
    return InvalidCell(str(value))


_Converter = Callable[[RawCell], Any]


def _converter(field_name: str) -> _Converter:
    if field_name in DATE_FIELDS:
        return _when
    if field_name in DIGIT_FIELDS:
        return _digits
    return _text


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
        value = _converter(name)(raw)
        if value is not None:
            mapped[name] = value
    return mapped


# --------------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------------


def _blank(row: Sequence[RawCell]) -> bool:
    for value in row:
        if value is None:
            continue
        if isinstance(value, str):
            if value and _clean(value):
                return False
            continue
        return False
    return True


@dataclass
class _Table:
    """An opened sheet: its header, and a way to walk its data rows (more than once)."""

    headers: list[str]  # per column; "" for a column without a header
    header_row: int
    _rows: Callable[[], Iterator[tuple[int, Sequence[RawCell]]]]

    def rows(self) -> Iterator[tuple[int, Sequence[RawCell]]]:
        """(row number, raw cells) of every non-blank row below the header."""
        for number, row in self._rows():
            if number > self.header_row and not _blank(row):
                yield number, row


def _unique_headers(row: Sequence[RawCell]) -> list[str]:
    headers: list[str] = []
    seen: dict[str, int] = {}
    for value in row:
        name = _text(value) or ""
        if name:
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name} ({seen[name]})"  # a repeated header never maps: the first one counts
        headers.append(name)
    return headers


def _find_header(
    rows: Iterator[tuple[int, Sequence[RawCell]]], known: Collection[str], required: Collection[Collection[str]]
) -> tuple[int, list[str]]:
    """The header row: the first non-empty row having every required column, else the first non-empty row.

    Only the first few non-empty rows are looked at (a title row may precede the header).
    """
    first: tuple[int, list[str]] | None = None
    best: tuple[int, int, list[str]] | None = None  # (known headers, row, headers)
    scanned = 0
    for number, row in rows:
        if _blank(row):
            continue
        headers = _unique_headers(row)
        if first is None:
            first = (number, headers)
        if not required:
            return number, headers
        present = set(headers)
        if all(present & set(alternatives) for alternatives in required):
            return number, headers
        hits = len(present & set(known))
        if best is None or hits > best[0]:
            best = (hits, number, headers)
        scanned += 1
        if scanned >= _HEADER_SCAN:
            break
    if first is None:
        raise ImportFormatError("文件是空的：没有找到表头行。")
    if best is not None and best[0] > 0:
        return best[1], best[2]
    return first


def _excel_rows(sheet: Any) -> Iterator[tuple[int, Sequence[RawCell]]]:
    rows = iter(sheet.iter_rows())
    first = next(rows, None)
    if first is None:
        return
    # python-calamine pads the rows above the data with empty rows, so numbering starts at 1; should a
    # version start at the data instead, its first row is not blank and numbering starts there
    start = sheet.start
    offset = start[0] if start and start[0] > 0 and not _blank(first) else 0
    yield offset + 1, first
    yield from enumerate(rows, start=offset + 2)


def _open_excel(path: Path, sheet_name: str | None) -> Callable[[], Iterator[tuple[int, Sequence[Any]]]]:
    try:
        from python_calamine import CalamineWorkbook
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportFormatError("读取 Excel 需要 python-calamine（pip install python-calamine）。") from exc
    try:
        book = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types (zip, xml, password, …)
        raise ImportFormatError(f"无法读取 Excel 文件 {path.name}：{exc}") from None
    try:
        if sheet_name is None:
            if not book.sheet_names:
                raise ImportFormatError(f"{path.name} 中没有工作表。")
            sheet = book.get_sheet_by_index(0)
        elif sheet_name in book.sheet_names:
            sheet = book.get_sheet_by_name(sheet_name)
        else:
            names = "、".join(book.sheet_names)
            raise ImportFormatError(f"{path.name} 中没有名为「{sheet_name}」的工作表；现有：{names}")
    except ImportFormatError:
        raise
    except Exception as exc:
        raise ImportFormatError(f"无法读取 Excel 文件 {path.name}：{exc}") from None
    return lambda: _excel_rows(sheet)


def _detect_encoding(path: Path) -> str:
    """utf-8 (with or without BOM), UTF-16 with BOM (Excel's "Unicode text"), else GB18030 (Chinese Excel)."""
    with path.open("rb") as f:
        head = f.read(4)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        f.seek(0)
        for encoding in ("utf-8-sig", "gb18030"):
            decoder = codecs.getincrementaldecoder(encoding)()
            try:
                while chunk := f.read(1 << 20):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                f.seek(0)
                continue
            return encoding
    raise ImportFormatError(f"无法识别 {path.name} 的文字编码：请另存为 UTF-8 或 GBK 编码的 CSV。")


def _open_csv(path: Path) -> Callable[[], Iterator[tuple[int, Sequence[Any]]]]:
    encoding = _detect_encoding(path)
    with path.open(encoding=encoding, newline="") as f:
        sample = next((line for line in f if line.strip()), "")
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","

    def rows() -> Iterator[tuple[int, Sequence[Any]]]:
        with path.open(encoding=encoding, newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            try:
                yield from enumerate(reader, start=1)
            except csv.Error as exc:  # a field beyond the csv module's size limit, …
                raise ImportFormatError(f"{path.name} 第 {reader.line_num} 行无法解析：{exc}") from None

    return rows


def _open(path: Path, sheet: str | None, columns: Mapping[str, str] | None) -> _Table:
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(f"找不到文件 {path}")
    suffix = path.suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        rows = _open_excel(path, sheet)
    elif suffix in CSV_SUFFIXES:
        rows = _open_csv(path)
    else:
        kinds = "、".join(sorted(EXCEL_SUFFIXES | CSV_SUFFIXES))
        raise ImportFormatError(f"不支持的文件类型「{path.suffix or path.name}」：请使用 {kinds}")
    known: Collection[str] = ()
    required: list[list[str]] = []
    if columns is not None:
        known = set(columns)
        required = [[h for h, f in columns.items() if f == name] for name in REQUIRED_FIELDS]
    header_row, headers = _find_header(rows(), known, required)
    return _Table(headers, header_row, rows)


def read_rows(path: Path, *, sheet: str | None = None) -> Iterator[tuple[int, dict[str, Cell]]]:
    """(row number, header -> cell) for every non-empty row below the header (the first non-empty row).

    Row numbers are the spreadsheet's own (the CSV's record numbers). Headers are stripped; cells are
    stripped text, floats or datetimes; empty cells are None. Raises ImportFormatError for a file it
    cannot read.
    """
    table = _open(path, sheet, None)
    named = [(i, h) for i, h in enumerate(table.headers) if h]
    for number, row in table.rows():
        width = len(row)
        yield number, {h: _cell(row[i]) if i < width else None for i, h in named}


# --------------------------------------------------------------------------------------------------
# Validation messages
# --------------------------------------------------------------------------------------------------

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


def _row_message(exc: ValidationError, header_of: Mapping[str, str]) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        loc = error.get("loc") or ()
        label = header_of.get(str(loc[0]), str(loc[0])) if loc else ""
        text = _describe(error)
        parts.append(f"{label}: {text}" if label else text)
    return "；".join(parts)


# --------------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    """The mapped columns of one file, compiled once: (column index, field, converter)."""

    cells: list[tuple[int, str, _Converter]]
    header_of: dict[str, str]  # field -> the header it came from (for messages)
    ticket_no_columns: list[int]

    @classmethod
    def build(cls, headers: Sequence[str], columns: Mapping[str, str]) -> _Plan:
        cells: list[tuple[int, str, _Converter]] = []
        header_of: dict[str, str] = {}
        for index, header in enumerate(headers):
            name = columns.get(header) if header else None
            if name is None:
                continue
            cells.append((index, name, _converter(name)))
            header_of.setdefault(name, header)
        return cls(cells, header_of, [i for i, name, _ in cells if name == "ticket_no"])

    def map(self, row: Sequence[RawCell]) -> dict[str, Any]:
        mapped: dict[str, Any] = {}
        width = len(row)
        for index, name, convert in self.cells:
            if index >= width or name in mapped:
                continue
            value = convert(row[index])
            if value is not None:
                mapped[name] = value
        return mapped

    def ticket_no(self, row: Sequence[RawCell]) -> str | None:
        width = len(row)
        for index in self.ticket_no_columns:
            if index < width:
                number = _digits(row[index])
                if number:
                    return number
        return None


def _check_header(table: _Table, columns: Mapping[str, str], path: Path) -> None:
    present = set(table.headers)
    missing = []
    for name in REQUIRED_FIELDS:
        options = [h for h, f in columns.items() if f == name]
        if not present & set(options):
            missing.append("/".join(options) or name)
    if missing:
        found = "、".join(h for h in table.headers if h) or "（无）"
        raise ImportFormatError(
            f"{path.name} 缺少必需的列：{'、'.join(missing)}（第 {table.header_row} 行为表头，"
            f"其中的列：{found}）。未导入任何工单。"
        )


def _last_rows(table: _Table, plan: _Plan) -> tuple[dict[str, int], int]:
    """Ticket number -> the last row carrying it; and the number of non-blank data rows."""
    last: dict[str, int] = {}
    count = 0
    for number, row in table.rows():
        count += 1
        ticket_no = plan.ticket_no(row)
        if ticket_no is not None:
            last[ticket_no] = number
    return last, count


class _Batches:
    """Reads, maps and validates rows into batches of TicketInputs, recording the rows that fail.

    Runs in a worker thread, one call at a time, so that the event loop is never blocked by the spreadsheet.
    """

    def __init__(
        self,
        table: _Table,
        plan: _Plan,
        labels: dict[str, TicketKind],
        last: dict[str, int],
        report: ImportReport,
        bar: Any,
        batch_size: int,
    ) -> None:
        self.rows = table.rows()
        self.plan = plan
        self.labels = labels
        self.last = last
        self.report = report
        self.bar = bar
        self.batch_size = batch_size

    def next(self) -> list[TicketInput]:
        """The next batch; an empty list once the rows are exhausted."""
        batch: list[TicketInput] = []
        report, plan, last, labels = self.report, self.plan, self.last, self.labels
        seen = 0
        for number, row in self.rows:
            report.total += 1
            seen += 1
            mapped = plan.map(row)
            ticket_no = mapped.get("ticket_no")
            if isinstance(ticket_no, str) and last.get(ticket_no, number) > number:
                report.superseded += 1
                continue
            try:
                batch.append(TicketPayload.model_validate(mapped).to_input(labels))
            except ValidationError as exc:
                report.errors.append(_row_error(number, ticket_no, _row_message(exc, plan.header_of)))
            except ValueError as exc:  # an unknown 紧急程度 label
                label = plan.header_of.get("urgency", "紧急程度")
                report.errors.append(_row_error(number, ticket_no, f"{label}: {exc}"))
            if len(batch) >= self.batch_size:
                break
        self.bar.update(seen)
        return batch


def _prepare(path: Path, sheet: str | None, config: BotConfig) -> tuple[_Table, _Plan, dict[str, int], int]:
    columns = {_clean(h): f for h, f in config.import_columns.items()}
    table = _open(path, sheet, columns)
    _check_header(table, columns, path)
    plan = _Plan.build(table.headers, columns)
    last, total = _last_rows(table, plan)
    return table, plan, last, total


async def import_file(
    path: Path,
    service: TicketService,
    config: BotConfig,
    *,
    batch_size: int = 1000,
    dry_run: bool = False,
    progress: bool = True,
    sheet: str | None = None,
) -> ImportReport:
    """Imports every row of ``path`` (first sheet, or ``sheet``) through ``service.upsert``.

    Raises ImportFormatError, before writing anything, when the file cannot be read or its header lacks a
    required column. Row problems are collected in the report. Batches are committed one by one (one
    transaction each), and only one is in memory at a time. ``dry_run`` validates and looks up which
    tickets exist, but writes nothing.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = _time.perf_counter()
    path = Path(path)
    table, plan, last, total = await asyncio.to_thread(_prepare, path, sheet, config)

    report = ImportReport(total=0, created=0, updated=0, unchanged=0, errors=[], seconds=0.0, dry_run=dry_run)
    counts = {"created": 0, "updated": 0, "unchanged": 0}

    async def write(batch: list[TicketInput]) -> Sequence[str]:
        if dry_run:
            return await service.preview(batch)
        return [o.status for o in await service.upsert(batch, source="import")]

    bar = tqdm(
        total=total,
        unit="行",
        desc="校验" if dry_run else "导入",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    batches = _Batches(table, plan, config.kind_labels, last, report, bar, batch_size)
    with bar:
        # one batch at a time: overlapping reading with writing measured slower (both hold the GIL)
        while batch := await asyncio.to_thread(batches.next):
            for status in await write(batch):
                counts[status] += 1

    report.created, report.updated, report.unchanged = counts["created"], counts["updated"], counts["unchanged"]
    report.seconds = _time.perf_counter() - started
    return report


def _row_error(number: int, ticket_no: Any, message: str) -> RowError:
    return RowError(number, ticket_no if isinstance(ticket_no, str) else None, message)
