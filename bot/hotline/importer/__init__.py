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

from bot.hotline.importer.cells import InvalidCell, map_row, parse_datetime
from bot.hotline.importer.report import ImportFormatError, ImportReport, RowError, format_errors
from bot.hotline.importer.run import import_file
from bot.hotline.importer.sheet import CSV_SUFFIXES, EXCEL_SUFFIXES, read_rows

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
