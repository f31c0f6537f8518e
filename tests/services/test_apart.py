"""Work done in a process apart (bot.services.apart): its result or its exception comes back, what it prints does not
get in the way, the process is kept from one call to the next, and where it cannot do the work the work is done here
in a thread and the next call starts a new process."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import types

import pytest

from bot.services.apart import Apart


class Refused(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def where(greeting: str, *, suffix: str = "") -> tuple[int, str]:
    print("some library talking on standard output")  # noqa: T201 - what the answer must not be mixed with
    os.write(1, b"and one writing to the descriptor itself\n")
    return os.getpid(), greeting + suffix


def refuses(what: str) -> None:
    raise Refused(what)


def dies_apart(parent: int) -> str:
    if os.getpid() != parent:
        os._exit(3)
    return "done here"


def big(n: int) -> bytes:
    return bytes(range(256)) * n


def slow(seconds: float) -> int:
    import time

    time.sleep(seconds)  # the work: a call under way when its caller gives up
    return os.getpid()


async def test_the_work_runs_in_another_process_kept_for_the_next_call(apart: Apart) -> None:
    pid, said = await apart.run(where, "你好", suffix="！")
    assert pid != os.getpid()
    assert pid == apart.pid
    assert said == "你好！"
    assert await apart.run(where, "again") == (pid, "again")  # the same process
    assert await apart.run(big, 4096) == bytes(range(256)) * 4096  # an answer larger than a pipe holds


async def test_an_exception_raised_apart_is_raised_here_with_where_it_came_from(apart: Apart) -> None:
    with pytest.raises(Refused) as raised:
        await apart.run(refuses, "字体缺失")
    assert raised.value.what == "字体缺失"
    assert any("in the process apart" in note and "refuses" in note for note in raised.value.__notes__)
    assert (await apart.run(where, "still there"))[1] == "still there"


async def test_a_call_the_process_cannot_take_in_is_refused_there_and_the_process_goes_on(
    apart: Apart, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A function of a module only this process has (the other cannot import it to unpickle the call)."""
    first, _ = await apart.run(where, "before")
    module = types.ModuleType("made_here_only")
    exec("def hello():\n    return 'hello'\n", module.__dict__)  # noqa: S102 - a module that exists nowhere else
    monkeypatch.setitem(sys.modules, "made_here_only", module)
    with pytest.raises(ModuleNotFoundError) as raised:
        await apart.run(module.hello)
    assert any("in the process apart" in note for note in raised.value.__notes__)
    assert await apart.run(where, "after") == (first, "after")  # the same process


async def test_a_process_that_dies_leaves_the_work_to_a_thread_and_the_next_call_a_new_one(
    apart: Apart, caplog: pytest.LogCaptureFixture
) -> None:
    first, _ = await apart.run(where, "before")
    with caplog.at_level(logging.WARNING, logger="bot.services.apart"):
        assert await apart.run(dies_apart, os.getpid()) == "done here"
    assert "the process for dies_apart failed (it ended, exit 3)" in caplog.text
    assert apart.pid is None
    second, said = await apart.run(where, "after")
    assert said == "after"
    assert second not in (first, os.getpid())


async def test_a_call_given_up_ends_the_process_so_its_answer_is_not_the_next_ones(apart: Apart) -> None:
    first = await apart.run(slow, 0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(apart.run(slow, 30), 0.5)
    assert apart.pid is None
    second = await apart.run(slow, 0)
    assert second not in (first, os.getpid())


async def test_where_no_process_can_start_the_work_is_done_in_a_thread(
    apart: Apart, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    with caplog.at_level(logging.WARNING, logger="bot.services.apart"):
        pid, said = await apart.run(where, "hello")
    assert (pid, said) == (os.getpid(), "hello")
    assert "no process could be started for where" in caplog.text


async def test_closing_ends_the_process(apart: Apart) -> None:
    pid, _ = await apart.run(where, "hello")
    await apart.close()
    assert apart.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    await apart.close()  # twice is fine
