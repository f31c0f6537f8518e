"""What an import reports: counts, the rows refused with why, or a file refused as a whole."""

from __future__ import annotations

from dataclasses import dataclass


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
