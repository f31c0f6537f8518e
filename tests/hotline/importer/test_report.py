"""bot/hotline/importer/report.py: what an import reports."""

from __future__ import annotations

from bot.hotline.importer import (
    ImportReport,
    RowError,
    format_errors,
)


def test_format_errors_limits() -> None:
    errors = [RowError(i, f"NO{i:04d}" if i % 2 else None, "诉求内容: 不能为空") for i in range(2, 60)]
    report = ImportReport(total=58, created=0, updated=0, unchanged=0, errors=errors, seconds=0.1)
    lines = format_errors(report, limit=3)
    assert lines == [
        "第 2 行: 诉求内容: 不能为空",
        "第 3 行 [NO0003]: 诉求内容: 不能为空",
        "第 4 行: 诉求内容: 不能为空",
        "……另有 55 行错误未列出",
    ]
