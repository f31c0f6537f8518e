"""Structured logs: one JSON object per line, phone numbers masked in every line."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from bot.domain.masking import MaskingFilter
from bot.logging import JsonFormatter, TextFormatter, setup_logging


@pytest.fixture
def capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("hotline-test")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_json_lines_with_extras_and_masking(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    logger.info(
        "ticket %s from %s", "2026112300001", "13812345678", extra={"citizen_phone": "13912345678", "unit": "HW"}
    )
    entry = json.loads(stream.getvalue())
    assert entry["msg"] == "ticket 2026112300001 from 138****5678"
    assert entry["citizen_phone"] == "139****5678"
    assert entry["unit"] == "HW"
    assert entry["logger"] == "hotline-test"
    assert entry["level"] == "info"


def test_exceptions_are_one_json_line(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    try:
        raise ValueError("电话 13812345678 无效")
    except ValueError:
        logger.exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    exc = json.loads(lines[0])["exc"]
    assert "ValueError" in exc
    assert "138****5678" in exc
    assert "13812345678" not in exc


def test_setup_logging_installs_the_filter() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("text", "debug")
        [handler] = root.handlers
        assert isinstance(handler.formatter, TextFormatter)
        assert any(isinstance(f, MaskingFilter) for f in handler.filters)
        assert root.level == logging.DEBUG
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_a_database_drivers_records_below_warning_show_no_arguments() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(MaskingFilter())
    row = ("2026112300301", "李建国", "上海市黄浦区幸福里小区3号1203室", "13812345678")
    for name, level, msg in [
        ("sqlalchemy.engine.Engine", logging.DEBUG, "Row %r"),
        ("aiosqlite", logging.DEBUG, "executing %s"),
        ("sqlalchemy.engine.Engine", logging.INFO, "[generated in %.5fs] %r"),
    ]:
        args = (row,) if "%.5f" not in msg else (0.001, row)
        handler.handle(logging.LogRecord(name, level, __file__, 1, msg, args, None))
    # a warning keeps its arguments, masked as any line
    handler.handle(
        logging.LogRecord("asyncpg", logging.WARNING, __file__, 1, "市民%s来电 %s", ("李建国", "13812345678"), None)
    )
    lines = [json.loads(line)["msg"] for line in stream.getvalue().splitlines()]
    assert lines == [
        "Row %r [arguments not shown]",
        "executing %s [arguments not shown]",
        "[generated in %.5fs] %r [arguments not shown]",
        "市民李某某来电 138****5678",
    ]


def test_a_line_is_masked_whole(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    logger.info("来电人王芳 身份证 31010119850315002X 住光明路88弄5号2702室 电话 139 0000 1111")
    assert json.loads(stream.getvalue())["msg"] == (
        "来电人王某某 身份证 **************002X 住光明路88弄5号***室 电话 139****1111"
    )


def test_a_text_line_gives_its_time_with_the_offset_and_the_scheduler_says_only_what_matters() -> None:
    """A person reads the log beside the page (Beijing time): each line's time carries its offset. APScheduler's
    line per job run is left out at INFO; its warnings are not."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        setup_logging("text", "info", stream=stream)
        logging.getLogger("apscheduler.executors.default").info('Running job "EngineJob.run"')
        logging.getLogger("apscheduler.scheduler").warning("Run time of job was missed by 0:00:02")
        logging.getLogger("hotline_bot").info("listening on http://127.0.0.1:8080")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "missed" in lines[0]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ", lines[1]), lines[1]


def test_a_generated_trace_id_stays_whole_and_any_other_is_masked(capture: tuple[logging.Logger, io.StringIO]) -> None:
    """nginx's $request_id is hex: one may hold eleven digits from 13 to 19 (…5a13794564528), which the mask would
    cut; such an id is kept whole, in JSON and in text. An id that is not a generated one is masked as any field."""
    logger, stream = capture
    hex_id = "da06e12fc0475a13794564528ab12cd3"
    dashed = "138-1234-5678-0000"  # hex characters and dashes, but no letter: a phone number, not a generated id
    logger.info("callback", extra={"request_id": hex_id, "event_id": dashed, "note": hex_id})
    entry = json.loads(stream.getvalue())
    assert entry["request_id"] == hex_id
    assert entry["event_id"] == "138****5678-0000"
    assert entry["note"] == "da06e12fc0475a137****4528ab12cd3"  # not a trace id: masked as any text
    record = logging.LogRecord("hotline-test", logging.INFO, "", 0, "callback", None, None)
    record.request_id = hex_id
    assert TextFormatter().format(record).endswith(f" request_id={hex_id}")
