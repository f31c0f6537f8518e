"""The import run: rows read in a worker thread, mapped, validated and handed to ``TicketService.upsert`` in
batches; when a ticket number repeats, the last row wins."""

from __future__ import annotations

import asyncio
import sys
import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from bot.domain.ticket import TicketInput
from bot.hotline.importer.cells import Converter, RawCell, clean, converter, digits_of, row_message
from bot.hotline.importer.report import ImportFormatError, ImportReport, RowError
from bot.hotline.importer.sheet import REQUIRED_FIELDS, Table, open_table
from bot.hotline.schemas import TicketPayload
from bot.services.tickets import TicketService
from config.model import BotConfig
from config.vocabulary import TicketKind


@dataclass(slots=True)
class _Plan:
    """The mapped columns of one file, compiled once: (column index, field, converter)."""

    cells: list[tuple[int, str, Converter]]
    header_of: dict[str, str]  # field -> the header it came from (for messages)
    ticket_no_columns: list[int]

    @classmethod
    def build(cls, headers: Sequence[str], columns: Mapping[str, str]) -> _Plan:
        cells: list[tuple[int, str, Converter]] = []
        header_of: dict[str, str] = {}
        for index, header in enumerate(headers):
            name = columns.get(header) if header else None
            if name is None:
                continue
            cells.append((index, name, converter(name)))
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
                number = digits_of(row[index])
                if number:
                    return number
        return None


def _check_header(table: Table, columns: Mapping[str, str], path: Path) -> None:
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


def _last_rows(table: Table, plan: _Plan) -> tuple[dict[str, int], int]:
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
        table: Table,
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
                report.errors.append(_row_error(number, ticket_no, row_message(exc, plan.header_of)))
            except ValueError as exc:  # an unknown 紧急程度 label
                label = plan.header_of.get("urgency", "紧急程度")
                report.errors.append(_row_error(number, ticket_no, f"{label}: {exc}"))
            if len(batch) >= self.batch_size:
                break
        self.bar.update(seen)
        return batch


def _prepare(path: Path, sheet: str | None, config: BotConfig) -> tuple[Table, _Plan, dict[str, int], int]:
    columns = {clean(h): f for h, f in config.import_columns.items()}
    table = open_table(path, sheet, columns)
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
