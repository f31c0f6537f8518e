"""What an import reports: the columns it did not know, counts, the rows refused with why, or a file refused as a
whole. The command line prints :meth:`ImportReport.lines`; ``POST /api/imports`` answers :meth:`ImportReport.as_json`,
which carries the same lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    finished: int = 0  # of the rows created or updated, those imported finished (submitted, closed, cancelled)
    unrecognised: list[str] = field(default_factory=list)  # headers the mapping does not know: ignored
    dry_run: bool = False  # counts are what an import would do; nothing was written

    @property
    def ok(self) -> bool:
        return not self.errors

    def notice(self) -> str | None:
        """The line said once at the start: the columns ignored (None when every column is known)."""
        if not self.unrecognised:
            return None
        return f"未识别的列：{'、'.join(self.unrecognised)}，已忽略"

    def summary(self) -> str:
        finished = f"（其中已办结 {self.finished}）" if self.finished else ""
        if self.dry_run:
            return (
                f"校验完成（试运行，未写入）：共 {self.total} 行，将新增 {self.created}{finished}，"
                f"将更新 {self.updated}，未变 {self.unchanged}，错误 {len(self.errors)}"
            )
        return (
            f"导入完成：共 {self.total} 行，新增 {self.created}{finished}，更新 {self.updated}，"
            f"未变 {self.unchanged}，错误 {len(self.errors)}"
        )

    def lines(self, limit: int = 50) -> list[str]:
        """What the command line prints: the notice (first, when there is one), the summary, the row errors."""
        notice = self.notice()
        return [*([notice] if notice else []), self.summary(), *format_errors(self, limit)]

    def as_json(self, limit: int = 50) -> dict[str, Any]:
        """The report as ``POST /api/imports`` answers it: the counts, every row error, and the command line's lines
        (``lines``, the first ``limit`` errors)."""
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "total": self.total,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "finished": self.finished,
            "errors": [{"row": e.row, "ticket_no": e.ticket_no, "message": e.message} for e in self.errors],
            "unrecognised_columns": list(self.unrecognised),
            "summary": self.summary(),
            "lines": self.lines(limit),
            "seconds": round(self.seconds, 3),
        }


class ImportInterrupted(Exception):
    """The import stopped part-way (the database went away, say): ``report`` counts the rows of the batches committed
    before; the batch under way was rolled back. Importing the same file again carries on: the committed rows come
    back unchanged."""

    def __init__(self, report: ImportReport, cause: BaseException) -> None:
        super().__init__(f"import interrupted after {report.total} rows: {cause}")
        self.report = report
        self.cause = cause

    def message(self) -> str:
        done = self.report.created + self.report.updated + self.report.unchanged
        return (
            f"导入中断：已提交 {done} 行（新增 {self.report.created}，更新 {self.report.updated}），其余未导入；"
            "原因：数据库写入失败。再次导入同一文件即可继续（已导入的行不会重复）。"
        )


def format_errors(report: ImportReport, limit: int = 50) -> list[str]:
    """One line per row error, ``第 12 行 [2026112000001]: 联系电话: …``; at most ``limit`` lines and a tail."""
    lines = [e.format() for e in report.errors[:limit]]
    if len(report.errors) > limit:
        lines.append(f"……另有 {len(report.errors) - limit} 行错误未列出")
    return lines
