"""The engines that write workbooks: the C library when the machine has it, XlsxWriter otherwise; the same cells from
both, and a clear error for what either cannot write."""

from __future__ import annotations

import io
from collections.abc import Iterator

import openpyxl
import pytest

from bot.messages import xlsx
from bot.messages.xlsx import MAX_STRING, XlsxError, engines, new_book


@pytest.fixture
def no_library(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A machine without the C library."""
    xlsx._library.cache_clear()
    monkeypatch.setattr("ctypes.util.find_library", lambda name: None)
    yield
    xlsx._library.cache_clear()


def cells(data: bytes) -> list[tuple[object, ...]]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    return [tuple(row) for row in book.active.iter_rows(values_only=True)]


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="no workbook engine 'excel'"):
        new_book("excel")


def test_the_c_library_is_used_when_the_machine_has_it(c_engine: str) -> None:
    assert engines() == ["libxlsxwriter", "xlsxwriter"]
    assert type(new_book()) is type(new_book(c_engine))
    assert type(new_book()) is not type(new_book("xlsxwriter"))


def test_without_the_library_xlsxwriter_writes_the_book(no_library: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="bot.messages.xlsx")
    assert engines() == ["xlsxwriter"]
    book = new_book()
    book.add_worksheet("汇总").write_string(0, 0, "合计")
    assert cells(book.close()) == [("合计",)]
    assert "libxlsxwriter not found" in caplog.text
    with pytest.raises(XlsxError, match="apt-get install libxlsxwriter4"):
        new_book("libxlsxwriter")


def test_text_longer_than_a_cell_holds_is_cut_to_excels_limit(engine: str) -> None:
    book = new_book(engine)
    sheet = book.add_worksheet("a")
    sheet.write_string(0, 0, "长" * (MAX_STRING + 10))
    sheet.write_number(0, 1, 1.5)
    ((text, number),) = cells(book.close())
    assert text == "长" * MAX_STRING
    assert number == 1.5


def test_a_cell_outside_the_sheet_is_an_error_not_a_silent_gap(c_engine: str) -> None:
    book = new_book(c_engine)
    sheet = book.add_worksheet("a")
    with pytest.raises(XlsxError, match=r"cell \(1048576, 0\)"):
        sheet.write_string(1_048_576, 0, "x")
    book.close()


def test_a_format_the_c_side_does_not_write_is_refused_not_dropped(c_engine: str) -> None:
    book = new_book(c_engine)
    with pytest.raises(ValueError, match="'italic'"):
        book.add_format({"italic": True})
    book.close()
