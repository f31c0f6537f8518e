"""Import tickets from the hotline platform's Excel / CSV exports.

Rows are read one at a time (python-calamine for Excel, which keeps the sheet itself in native memory,
about 1.5 MB per 1,000 rows; the csv module for CSV), mapped (export header -> ticket field, see
``BotConfig.import_columns``), validated with the same :class:`TicketPayload` as the HTTP API, and handed to
``TicketService.upsert`` in batches. Reading runs in a worker thread, so the event loop is never blocked.

A bad row becomes a :class:`RowError` and the rest goes on; a file whose header lacks a required column is
refused as a whole (:class:`ImportFormatError`) before anything is written.

Re-importing a file changes nothing (every row comes back ``unchanged``). When one ticket number appears on
several rows, the first row carrying it is imported and each later one is an error (no silent overwrite). A column
the mapping does not know is reported once at the start ("未识别的列：…，已忽略").

A row's history (its state word and milestones: 办理状态, 接单时间 … 满意度, 是否解决) is imported with it
(:mod:`bot.domain.history`): a finished row is imported finished, with its times, and its deadlines met, missed or
cancelled as the row says; nothing due before the import is ever nagged.
"""

from bot.hotline.importer.cells import InvalidCell, map_row, parse_datetime
from bot.hotline.importer.report import ImportFormatError, ImportInterrupted, ImportReport, RowError, format_errors
from bot.hotline.importer.run import import_file
from bot.hotline.importer.sheet import CSV_SUFFIXES, EXCEL_SUFFIXES, read_rows

__all__ = [
    "EXCEL_SUFFIXES",
    "ImportFormatError",
    "ImportInterrupted",
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
