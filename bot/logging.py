"""Structured logs: one JSON object per line (or plain text for a terminal), masked at every level: no citizen's
name, phone, ID number or flat (:mod:`bot.domain.masking`), and no database driver's parameters or rows."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from bot.domain.masking import MaskingFilter, mask_text

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # the whole line, tracebacks included, passes the phone-number mask
        return mask_text(json.dumps(entry, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        """The machine's local time with its offset (2026-11-23T09:00:00.000+08:00): read beside the page, which
        shows Beijing time, the line says which time it gives."""
        return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
        return mask_text(base + ("  " + " ".join(f"{k}={v}" for k, v in extras.items()) if extras else ""))


def setup_logging(fmt: str = "json", level: str = "INFO", stream: IO[str] | None = None) -> None:
    """One handler on the root logger, to ``stream`` (stderr), with the masking filter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # APScheduler writes a line per scheduled job run ("Running job", "executed successfully"): shown at DEBUG only
    scheduler = logging.WARNING if root.level > logging.DEBUG else logging.NOTSET
    for name in ("apscheduler.executors", "apscheduler.scheduler"):
        logging.getLogger(name).setLevel(scheduler)
