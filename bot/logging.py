"""Structured logs: one JSON object per line (or plain text for a terminal), masked at every level: no citizen's
name, phone, ID number or flat (:mod:`bot.domain.masking`), and no database driver's parameters or rows.

A JSON line carries the host and the process id, and the ids of what is being done (:func:`bound`): the
``request_id`` of an HTTP request (its ``X-Request-Id``, nginx's ``$request_id``) and the ``event_id`` (the inbox row)
of a WeCom message from its callback through its handling, in whichever process handles it."""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from bot.domain.masking import MaskingFilter, mask_text

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}
# the ids that follow a request or an event through the log, kept whole where they are generated ones (nginx's
# $request_id, a uuid: 16 to 64 hex characters and dashes): the phone-number mask would cut one whose hex holds eleven
# digits from 13 to 19, and with it the trail
_TRACE_IDS = ("request_id", "event_id")
_GENERATED = re.compile(r"(?=.*[A-Fa-f])[0-9A-Fa-f-]{16,64}")  # a letter in it: a run of digits is no generated id


def _trace_ids(fields: dict[str, Any]) -> dict[str, str]:
    """The generated trace ids taken out of ``fields`` (to be added to the line after it is masked)."""
    return {
        key: fields.pop(key)
        for key in _TRACE_IDS
        if isinstance(fields.get(key), str) and _GENERATED.fullmatch(fields[key])
    }


_HOST = socket.gethostname()
_CONTEXT: ContextVar[Mapping[str, object] | None] = ContextVar("log_context", default=None)


@contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Every line logged inside (in this task, and in tasks it starts) carries ``fields``."""
    token = _CONTEXT.set({**context(), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def context() -> Mapping[str, object]:
    """The fields :func:`bound` gives the lines logged here."""
    return _CONTEXT.get() or {}


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in context().items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "host": _HOST,
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        ids = _trace_ids(entry)
        # the whole line, tracebacks included, passes the phone-number mask; the generated ids are added after
        line = mask_text(json.dumps(entry, ensure_ascii=False, default=str))
        return line[:-1] + "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in ids.items()) + "}"


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
        ids = _trace_ids(extras)
        line = mask_text(base + ("  " + " ".join(f"{k}={v}" for k, v in extras.items()) if extras else ""))
        return line + "".join(f" {k}={v}" for k, v in ids.items())


def setup_logging(fmt: str = "json", level: str = "INFO", stream: IO[str] | None = None) -> None:
    """One handler on the root logger, to ``stream`` (stderr), with the masking filter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # APScheduler writes a line per scheduled job run ("Running job", "executed successfully"): shown at DEBUG only
    scheduler = logging.WARNING if root.level > logging.DEBUG else logging.NOTSET
    for name in ("apscheduler.executors", "apscheduler.scheduler"):
        logging.getLogger(name).setLevel(scheduler)
