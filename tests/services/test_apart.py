"""Work run in a process apart (bot.services.apart): its result or its exception comes back, what it prints does not
get in the way, and where the process cannot do it the work is done here in a thread."""

from __future__ import annotations

import logging
import os
import sys

import pytest

from bot.services.apart import run_apart


class Refused(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def where(greeting: str, *, suffix: str = "") -> tuple[int, str]:
    print("some library talking on standard output")  # noqa: T201 - what the answer must not be mixed with
    return os.getpid(), greeting + suffix


def refuses(what: str) -> None:
    raise Refused(what)


def dies_apart(parent: int) -> str:
    if os.getpid() != parent:
        os._exit(3)
    return "done here"


async def test_the_work_runs_in_another_process_and_its_result_comes_back() -> None:
    pid, said = await run_apart(where, "你好", suffix="！")
    assert pid != os.getpid()
    assert said == "你好！"


async def test_an_exception_raised_apart_is_raised_here_with_where_it_came_from() -> None:
    with pytest.raises(Refused) as raised:
        await run_apart(refuses, "字体缺失")
    assert raised.value.what == "字体缺失"
    assert any("in the process apart" in note and "refuses" in note for note in raised.value.__notes__)


async def test_a_process_that_dies_leaves_the_work_to_a_thread(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.services.apart"):
        assert await run_apart(dies_apart, os.getpid()) == "done here"
    assert "the process for dies_apart failed (exit 3" in caplog.text


async def test_where_no_process_can_start_the_work_is_done_in_a_thread(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    with caplog.at_level(logging.WARNING, logger="bot.services.apart"):
        pid, said = await run_apart(where, "hello")
    assert (pid, said) == (os.getpid(), "hello")
    assert "no process could be started for where" in caplog.text
