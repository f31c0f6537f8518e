"""Reading an export: Excel (python-calamine) or CSV, its header found below any title rows, one row at a time."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.hotline.importer.cells import Cell, RawCell, cell_of, clean, text_of
from bot.hotline.importer.report import ImportFormatError

EXCEL_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xlsb", ".xls", ".ods"})
CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
REQUIRED_FIELDS = ("ticket_no", "content")

# how many non-empty rows at the top may precede the header (a title row such as "12345工单导出")
HEADER_SCAN = 20


def blank_row(row: Sequence[RawCell]) -> bool:
    for value in row:
        if value is None:
            continue
        if isinstance(value, str):
            if value and clean(value):
                return False
            continue
        return False
    return True


@dataclass
class Table:
    """An opened sheet: its header, and a way to walk its data rows (more than once)."""

    headers: list[str]  # per column; "" for a column without a header
    header_row: int
    _rows: Callable[[], Iterator[tuple[int, Sequence[RawCell]]]]

    def rows(self) -> Iterator[tuple[int, Sequence[RawCell]]]:
        """(row number, raw cells) of every non-blank row below the header."""
        for number, row in self._rows():
            if number > self.header_row and not blank_row(row):
                yield number, row


def _unique_headers(row: Sequence[RawCell]) -> list[str]:
    headers: list[str] = []
    seen: dict[str, int] = {}
    for value in row:
        name = text_of(value) or ""
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
        if blank_row(row):
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
        if scanned >= HEADER_SCAN:
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
    offset = start[0] if start and start[0] > 0 and not blank_row(first) else 0
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


def open_table(path: Path, sheet: str | None, columns: Mapping[str, str] | None) -> Table:
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
    return Table(headers, header_row, rows)


def read_rows(path: Path, *, sheet: str | None = None) -> Iterator[tuple[int, dict[str, Cell]]]:
    """(row number, header -> cell) for every non-empty row below the header (the first non-empty row).

    Row numbers are the spreadsheet's own (the CSV's record numbers). Headers are stripped; cells are
    stripped text, floats or datetimes; empty cells are None. Raises ImportFormatError for a file it
    cannot read.
    """
    table = open_table(path, sheet, None)
    named = [(i, h) for i, h in enumerate(table.headers) if h]
    for number, row in table.rows():
        width = len(row)
        yield number, {h: cell_of(row[i]) if i < width else None for i, h in named}
