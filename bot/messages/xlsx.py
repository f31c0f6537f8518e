"""Where a workbook's cells are written: libxlsxwriter, the C library of XlsxWriter's author (Debian's package
libxlsxwriter4, which ``make install`` installs), when it is on the machine; else XlsxWriter itself, in Python.

The two make the same workbook: the same sheets, cells, formats, merged ranges, widths, filters, frozen panes and page
set-up (tests/messages/test_workbook.py reads both back). The C library takes about half XlsxWriter's time: the
bimonthly 通报 of a large office has some 170,000 cells, 1.2-1.3 s in Python and 0.6-0.75 s through the library, most
of it the bot's own rows and ctypes' calls (docs/benchmarks.md).

It is called through ctypes: the few functions a workbook needs (:data:`_SIGNATURES`), checked against the library's
version at loading (1.x). A function's error (a cell outside the sheet, say) raises :class:`XlsxError`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import logging
import os
import tempfile
from collections.abc import Mapping
from functools import cache
from typing import Any, Protocol

import xlsxwriter

log = logging.getLogger(__name__)

ENGINES = ("libxlsxwriter", "xlsxwriter")
MAX_STRING = 32767  # characters in a cell, Excel's limit: longer text is cut, as XlsxWriter cuts it


class XlsxError(RuntimeError):
    """The C library refused a call."""


class Sheet(Protocol):
    """What the workbook's sheets are written with: XlsxWriter's names and arguments (row and column from 0)."""

    def write_string(self, row: int, col: int, string: str, cell_format: Any = None) -> Any: ...
    def write_number(self, row: int, col: int, number: float, cell_format: Any = None) -> Any: ...
    def write_blank(self, row: int, col: int, blank: Any, cell_format: Any = None) -> Any: ...
    def merge_range(self, first_row: int, first_col: int, last_row: int, last_col: int, data: str, cell_format: Any) -> Any: ...  # fmt: skip # noqa: E501
    def set_row(self, row: int, height: float) -> Any: ...
    def set_column(self, first_col: int, last_col: int, width: float) -> Any: ...
    def freeze_panes(self, row: int, col: int) -> Any: ...
    def repeat_rows(self, first_row: int, last_row: int) -> Any: ...
    def autofilter(self, first_row: int, first_col: int, last_row: int, last_col: int) -> Any: ...
    def set_landscape(self) -> Any: ...
    def fit_to_pages(self, width: int, height: int) -> Any: ...


class Book(Protocol):
    def add_format(self, properties: Mapping[str, Any]) -> Any: ...
    def add_worksheet(self, name: str) -> Sheet: ...
    def set_title(self, title: str) -> None: ...
    def close(self) -> bytes:
        """The .xlsx file's bytes."""
        ...


def new_book(engine: str | None = None) -> Book:
    """A workbook written by ``engine`` (one of :data:`ENGINES`; None: the C library when it loads)."""
    if engine not in (None, *ENGINES):
        raise ValueError(f"no workbook engine {engine!r}: one of {', '.join(ENGINES)}")
    if engine == "xlsxwriter" or (engine is None and _library() is None):
        return _PythonBook()
    lib = _library()
    if lib is None:
        raise XlsxError("libxlsxwriter is not installed (Debian: apt-get install libxlsxwriter4)")
    return _CBook(lib)


def engines() -> list[str]:
    """The engines this machine has."""
    return [e for e in ENGINES if e != "libxlsxwriter" or _library() is not None]


# --- XlsxWriter ------------------------------------------------------------------------------------------------------


class _PythonBook:
    def __init__(self) -> None:
        self._out = io.BytesIO()
        self._book = xlsxwriter.Workbook(self._out, {"in_memory": True})

    def add_format(self, properties: Mapping[str, Any]) -> Any:
        return self._book.add_format(dict(properties))

    def add_worksheet(self, name: str) -> Sheet:
        return self._book.add_worksheet(name)

    def set_title(self, title: str) -> None:
        self._book.set_properties({"title": title})

    def close(self) -> bytes:
        if not self._book.fileclosed:  # a second close (after an error) does nothing
            self._book.close()
        return self._out.getvalue()


# --- libxlsxwriter ---------------------------------------------------------------------------------------------------

_P = ctypes.c_void_p
_S = ctypes.c_char_p
_ROW, _COL, _ERR = ctypes.c_uint32, ctypes.c_uint16, ctypes.c_int
_U8, _U16, _U32, _D = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_double
# name: (result, arguments), as libxlsxwriter's headers declare them (lxw_error is an enum: an int)
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "lxw_version": (_S, []),
    "lxw_strerror": (_S, [_ERR]),
    "workbook_new": (_P, [_S]),
    "workbook_add_worksheet": (_P, [_P, _S]),
    "workbook_add_format": (_P, [_P]),
    "workbook_set_properties": (_ERR, [_P, _P]),
    "workbook_close": (_ERR, [_P]),
    "format_set_bold": (None, [_P]),
    "format_set_text_wrap": (None, [_P]),
    "format_set_font_size": (None, [_P, _D]),
    "format_set_font_color": (None, [_P, _U32]),
    "format_set_bg_color": (None, [_P, _U32]),
    "format_set_border": (None, [_P, _U8]),
    "format_set_top": (None, [_P, _U8]),
    "format_set_align": (None, [_P, _U8]),
    "format_set_num_format": (None, [_P, _S]),
    "worksheet_write_string": (_ERR, [_P, _ROW, _COL, _S, _P]),
    "worksheet_write_number": (_ERR, [_P, _ROW, _COL, _D, _P]),
    "worksheet_write_blank": (_ERR, [_P, _ROW, _COL, _P]),
    "worksheet_merge_range": (_ERR, [_P, _ROW, _COL, _ROW, _COL, _S, _P]),
    "worksheet_set_row": (_ERR, [_P, _ROW, _D, _P]),
    "worksheet_set_column": (_ERR, [_P, _COL, _COL, _D, _P]),
    "worksheet_freeze_panes": (None, [_P, _ROW, _COL]),
    "worksheet_repeat_rows": (_ERR, [_P, _ROW, _ROW]),
    "worksheet_autofilter": (_ERR, [_P, _ROW, _COL, _ROW, _COL]),
    "worksheet_set_landscape": (None, [_P]),
    "worksheet_fit_to_pages": (None, [_P, _U16, _U16]),
}
_ALIGN = {"center": 2, "vcenter": 10}  # LXW_ALIGN_CENTER, LXW_ALIGN_VERTICAL_CENTER
_BLACK = 0x1000000  # LXW_COLOR_BLACK: 0 means "no colour" to the library


_PROPERTY_STRINGS = (
    "title",
    "subject",
    "author",
    "manager",
    "company",
    "category",
    "keywords",
    "comments",
    "status",
    "hyperlink_base",
)


class _Properties(ctypes.Structure):
    """lxw_doc_properties: ten strings and the creation time; room after them for fields a later version adds
    (read as zero: not set)."""

    _fields_ = [
        *((name, _S) for name in _PROPERTY_STRINGS),
        ("created", ctypes.c_int64),  # time_t
        ("_room", ctypes.c_char * 256),
    ]


@cache
def _library() -> Any | None:
    """The C library with its functions declared, or None when it is not installed or not a 1.x version."""
    name = ctypes.util.find_library("xlsxwriter")
    if name is None:
        log.info("reports: libxlsxwriter not found, workbooks are written by XlsxWriter in Python (slower)")
        return None
    try:
        lib = ctypes.CDLL(name)  # its calls let go of the interpreter's lock: closing a book runs beside the bot
        for function, (result, arguments) in _SIGNATURES.items():
            f = getattr(lib, function)
            f.restype, f.argtypes = result, arguments
        version = lib.lxw_version().decode()
    except (OSError, AttributeError):
        log.warning("reports: %s cannot be used, workbooks are written by XlsxWriter in Python", name, exc_info=True)
        return None
    if not version.startswith("1."):
        log.warning("reports: libxlsxwriter %s is not a 1.x version, workbooks are written by XlsxWriter", version)
        return None
    return lib


def _check(lib: Any, error: int, what: str) -> None:
    if error:
        raise XlsxError(f"libxlsxwriter: {what}: {lib.lxw_strerror(error).decode()}")


def _color(value: str) -> int:
    rgb = int(value.removeprefix("#"), 16)
    return rgb or _BLACK


class _CBook:
    def __init__(self, lib: Any) -> None:
        self._lib = lib
        fd, self._path = tempfile.mkstemp(prefix="report-", suffix=".xlsx")  # the library writes a file
        os.close(fd)
        self._book = lib.workbook_new(os.fsencode(self._path))
        if not self._book:
            os.unlink(self._path)
            raise XlsxError("libxlsxwriter: no workbook")

    def add_format(self, properties: Mapping[str, Any]) -> Any:
        lib = self._lib
        f = lib.workbook_add_format(self._book)
        for key, value in properties.items():
            if key == "bold":
                if value:
                    lib.format_set_bold(f)
            elif key == "text_wrap":
                if value:
                    lib.format_set_text_wrap(f)
            elif key == "font_size":
                lib.format_set_font_size(f, value)
            elif key == "font_color":
                lib.format_set_font_color(f, _color(value))
            elif key == "bg_color":
                lib.format_set_bg_color(f, _color(value))
            elif key == "border":
                lib.format_set_border(f, value)
            elif key == "top":
                lib.format_set_top(f, value)
            elif key in ("align", "valign"):
                lib.format_set_align(f, _ALIGN[value])
            elif key == "num_format":
                lib.format_set_num_format(f, value.encode())
            else:  # a property the C side does not set would be silently lost
                raise ValueError(f"format property {key!r} is not written by the libxlsxwriter engine")
        return f

    def add_worksheet(self, name: str) -> Sheet:
        sheet = self._lib.workbook_add_worksheet(self._book, name.encode())
        if not sheet:
            raise XlsxError(f"libxlsxwriter: no sheet {name!r}")
        return _CSheet(self._lib, sheet)

    def set_title(self, title: str) -> None:
        properties = _Properties(title=title.encode())  # copied by the library
        _check(self._lib, self._lib.workbook_set_properties(self._book, ctypes.byref(properties)), "properties")

    def close(self) -> bytes:
        if self._book is None:  # closed already: the library has freed it
            raise XlsxError("libxlsxwriter: the workbook is closed")
        book, self._book = self._book, None
        try:
            _check(self._lib, self._lib.workbook_close(book), "close")
            with open(self._path, "rb") as f:
                return f.read()
        finally:
            os.unlink(self._path)


class _CSheet:
    __slots__ = ("_lib", "_ws", "_string", "_number")

    def __init__(self, lib: Any, ws: int) -> None:
        self._lib, self._ws = lib, ws
        self._string, self._number = lib.worksheet_write_string, lib.worksheet_write_number

    def write_string(self, row: int, col: int, string: str, cell_format: Any = None) -> None:
        if len(string) > MAX_STRING:
            string = string[:MAX_STRING]
        # a NUL ends a C string: text after one is not written (the platform sends none)
        if error := self._string(self._ws, row, col, string.encode(), cell_format):
            _check(self._lib, error, f"cell ({row}, {col})")

    def write_number(self, row: int, col: int, number: float, cell_format: Any = None) -> None:
        if error := self._number(self._ws, row, col, number, cell_format):
            _check(self._lib, error, f"cell ({row}, {col})")

    def write_blank(self, row: int, col: int, blank: Any, cell_format: Any = None) -> None:
        _check(self._lib, self._lib.worksheet_write_blank(self._ws, row, col, cell_format), f"cell ({row}, {col})")

    def merge_range(self, first_row: int, first_col: int, last_row: int, last_col: int, data: str, cell_format: Any) -> None:  # fmt: skip # noqa: E501
        error = self._lib.worksheet_merge_range(
            self._ws, first_row, first_col, last_row, last_col, data.encode(), cell_format
        )
        _check(self._lib, error, "merged range")

    def set_row(self, row: int, height: float) -> None:
        _check(self._lib, self._lib.worksheet_set_row(self._ws, row, height, None), "row height")

    def set_column(self, first_col: int, last_col: int, width: float) -> None:
        _check(self._lib, self._lib.worksheet_set_column(self._ws, first_col, last_col, width, None), "width")

    def freeze_panes(self, row: int, col: int) -> None:
        self._lib.worksheet_freeze_panes(self._ws, row, col)

    def repeat_rows(self, first_row: int, last_row: int) -> None:
        _check(self._lib, self._lib.worksheet_repeat_rows(self._ws, first_row, last_row), "repeated rows")

    def autofilter(self, first_row: int, first_col: int, last_row: int, last_col: int) -> None:
        error = self._lib.worksheet_autofilter(self._ws, first_row, first_col, last_row, last_col)
        _check(self._lib, error, "filter")

    def set_landscape(self) -> None:
        self._lib.worksheet_set_landscape(self._ws)

    def fit_to_pages(self, width: int, height: int) -> None:
        self._lib.worksheet_fit_to_pages(self._ws, width, height)
