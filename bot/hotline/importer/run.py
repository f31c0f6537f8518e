"""The import run: rows read in a worker thread, mapped, validated and handed to ``TicketService.upsert`` in
batches. A ticket number a row before already brought is an error of the later row."""

from __future__ import annotations

import asyncio
import sys
import time as _time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from bot.domain.lifecycle import TicketState
from bot.domain.ticket import TicketInput
from bot.hotline.importer.cells import Converter, RawCell, clean, converter, digits_of, row_message
from bot.hotline.importer.history import HistoryError, HistoryWords, history_of
from bot.hotline.importer.report import ImportFormatError, ImportInterrupted, ImportReport, RowError
from bot.hotline.importer.sheet import REQUIRED_FIELDS, Table, open_table
from bot.hotline.schemas import TicketPayload
from bot.services.tickets import TicketService
from config.model import BotConfig
from config.model.imports import HISTORY_FIELDS
from config.vocabulary import TicketKind

_MILESTONES = frozenset({"accepted_at", "contacted_at", "on_site_at", "finished_at", "visited_at"})
_FINISHED = frozenset({TicketState.SUBMITTED, TicketState.CLOSED, TicketState.CANCELLED})


@dataclass(slots=True)
class _Plan:
    """The mapped columns of one file, compiled once: (column index, field, converter)."""

    cells: list[tuple[int, str, Converter]]
    header_of: dict[str, str]  # field -> the header it came from (for messages)
    ticket_no_columns: list[int]
    history: frozenset[str]  # the history fields the file has a column for
    unrecognised: list[str]  # headers the mapping does not know

    @classmethod
    def build(cls, headers: Sequence[str], columns: Mapping[str, str]) -> _Plan:
        cells: list[tuple[int, str, Converter]] = []
        header_of: dict[str, str] = {}
        unrecognised: list[str] = []
        for index, header in enumerate(headers):
            name = columns.get(header) if header else None
            if name is None:
                if header:
                    unrecognised.append(header)
                continue
            cells.append((index, name, converter(name)))
            header_of.setdefault(name, header)
        history = frozenset(name for _, name, _ in cells if name in HISTORY_FIELDS)
        ticket_nos = [i for i, name, _ in cells if name == "ticket_no"]
        return cls(cells, header_of, ticket_nos, history, unrecognised)

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


def _count_rows(table: Table) -> int:
    return sum(1 for _ in table.rows())


class _Batches:
    """Reads, maps and validates rows into batches of TicketInputs, recording the rows that fail.

    Runs in a worker thread, one call at a time, so that the event loop is never blocked by the spreadsheet.
    """

    def __init__(
        self,
        table: Table,
        plan: _Plan,
        config: BotConfig,
        report: ImportReport,
        bar: Any,
        batch_size: int,
    ) -> None:
        self.rows = table.rows()
        self.plan = plan
        self.labels: dict[str, TicketKind] = config.kind_labels
        self.words = HistoryWords.of(config)
        self.milestones = plan.history & _MILESTONES
        self.report = report
        self.bar = bar
        self.batch_size = batch_size
        self.seen: dict[str, int] = {}  # ticket number -> the row that brought it

    def next(self) -> list[TicketInput]:
        """The next batch; an empty list once the rows are exhausted."""
        batch: list[TicketInput] = []
        report, plan, seen = self.report, self.plan, self.seen
        columns = plan.history
        seen_rows = 0
        for number, row in self.rows:
            report.total += 1
            seen_rows += 1
            mapped = plan.map(row)
            ticket_no = mapped.get("ticket_no")
            if isinstance(ticket_no, str) and ticket_no in seen:
                label = plan.header_of.get("ticket_no", "工单编号")
                message = f"{label}: {ticket_no} 与第 {seen[ticket_no]} 行重复，本行未导入"
                report.errors.append(_row_error(number, ticket_no, message))
                continue
            past = {name: mapped.pop(name) for name in columns if name in mapped} if columns else None
            try:
                payload = TicketPayload.model_validate(mapped)
                history = None if past is None else history_of(past, self.words, self.milestones)
                item = payload.to_input(self.labels, history)
            except ValidationError as exc:
                report.errors.append(_row_error(number, ticket_no, row_message(exc, plan.header_of)))
                continue
            except HistoryError as exc:
                label = plan.header_of.get(exc.field, exc.field)
                report.errors.append(_row_error(number, ticket_no, f"{label}: {exc.message}"))
                continue
            except ValueError as exc:  # an unknown 紧急程度 label
                label = plan.header_of.get("urgency", "紧急程度")
                report.errors.append(_row_error(number, ticket_no, f"{label}: {exc}"))
                continue
            seen[item.ticket_no] = number
            batch.append(item)
            if len(batch) >= self.batch_size:
                break
        self.bar.update(seen_rows)
        return batch


def _prepare(path: Path, sheet: str | None, config: BotConfig) -> tuple[Table, _Plan, int]:
    columns = {clean(h): f for h, f in config.import_columns.items()}
    table = open_table(path, sheet, columns)
    _check_header(table, columns, path)
    plan = _Plan.build(table.headers, columns)
    return table, plan, _count_rows(table)


async def import_file(
    path: Path,
    service: TicketService,
    config: BotConfig,
    *,
    batch_size: int = 1000,
    dry_run: bool = False,
    progress: bool = True,
    sheet: str | None = None,
    announce: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int], Awaitable[None]] | None = None,
) -> ImportReport:
    """Imports every row of ``path`` (first sheet, or ``sheet``) through ``service.upsert``.

    Raises ImportFormatError, before writing anything, when the file cannot be read or its header lacks a
    required column. The columns the mapping does not know are said once, before any row is read, through
    ``announce`` (and kept in the report). Row problems are collected in the report. Batches are committed one by
    one (one transaction each), and only one is in memory at a time; should one fail (the database gone), the
    import stops with :class:`ImportInterrupted`, whose report counts what the batches before committed.
    ``dry_run`` validates and looks up which tickets exist, but writes nothing. ``on_progress(rows read, rows in
    all)`` is awaited after each batch is written (the board's progress bar).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = _time.perf_counter()
    path = Path(path)
    table, plan, total = await asyncio.to_thread(_prepare, path, sheet, config)

    report = ImportReport(
        total=0,
        created=0,
        updated=0,
        unchanged=0,
        errors=[],
        seconds=0.0,
        dry_run=dry_run,
        unrecognised=list(plan.unrecognised),
    )
    notice = report.notice()
    if notice is not None and announce is not None:
        announce(notice)
    counts = {"created": 0, "updated": 0, "unchanged": 0, "finished": 0}

    async def write(batch: list[TicketInput]) -> None:
        if dry_run:
            for status in await service.preview(batch):
                counts[status] += 1
            return
        for outcome in await service.upsert(batch, source="import"):
            counts[outcome.status] += 1
            if outcome.status != "unchanged" and outcome.state in _FINISHED:
                counts["finished"] += 1

    def tally() -> None:
        report.created, report.updated, report.unchanged = counts["created"], counts["updated"], counts["unchanged"]
        report.finished = counts["finished"]
        report.seconds = _time.perf_counter() - started

    bar = tqdm(
        total=total,
        unit="行",
        desc="校验" if dry_run else "导入",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    batches = _Batches(table, plan, config, report, bar, batch_size)
    with bar:
        # one batch at a time: overlapping reading with writing measured slower (both hold the GIL)
        while batch := await asyncio.to_thread(batches.next):
            try:
                await write(batch)
            except Exception as exc:
                tally()
                raise ImportInterrupted(report, exc) from exc
            if on_progress is not None:
                await on_progress(report.total, total)
    tally()
    return report


def _row_error(number: int, ticket_no: Any, message: str) -> RowError:
    return RowError(number, ticket_no if isinstance(ticket_no, str) else None, message)
