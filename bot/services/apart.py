"""Pure work run in a process of its own, beside the bot's: the 通报's chart, drawn while the bot writes its
workbook.

Drawing and writing are Python holding the interpreter's lock: in two threads they take turns, in two processes they
run side by side on two cores. The process is started for the work and ends with it, so that a bot that draws a
chart every two months keeps no process (and no plotting library's memory) in between; its start, some 0.5 s of
imports, is hidden behind the work beside it.

The new process is the same Python with the same module path as the bot's (a checkout or an installed package alike),
not started from the working directory (``-P``); the call goes in on its standard input and the result comes out on
its standard output, pickled. (``multiprocessing`` would run the bot's main script again in it.) Where no process can
be started (a locked-down host) or it fails, the work is done in a thread instead and a warning says so: the result
is the same, only later.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar, cast

log = logging.getLogger(__name__)

T = TypeVar("T")
_OK, _RAISED = "ok", "raised"
# the new process: the bot's module path first, then the call
_CHILD = (
    "import pickle, sys; sys.path[:] = pickle.load(sys.stdin.buffer); from bot.services.apart import _serve; _serve()"
)


async def run_apart(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` in a new process; its result here, or the exception it raised raised here.
    ``function`` is a module's own function, its arguments and its result picklable. In a thread if no process
    could do it."""
    name = getattr(function, "__qualname__", repr(function))
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",
            "-c",
            _CHILD,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as failed:
        log.warning("no process could be started for %s (%s): done in a thread", name, failed)
        return await asyncio.to_thread(function, *args, **kwargs)
    try:
        call = pickle.dumps(sys.path) + pickle.dumps((function, args, kwargs), pickle.HIGHEST_PROTOCOL)
        out, err = await child.communicate(call)
    except BaseException:
        if child.returncode is None:
            child.kill()
            await child.wait()
        raise
    try:
        status, value = pickle.loads(out) if child.returncode == 0 else (None, None)
    except Exception:  # noqa: BLE001 - what is not a pickled answer is a failed process
        status, value = None, None
    if status == _OK:
        return cast(T, value)
    if status == _RAISED and isinstance(value, BaseException):
        raise value
    said = err.decode(errors="replace").strip().splitlines()[-1:] or ["nothing on its standard error"]
    log.warning("the process for %s failed (exit %s: %s): done in a thread", name, child.returncode, said[0])
    return await asyncio.to_thread(function, *args, **kwargs)


def _serve() -> None:
    """In the new process: the call read from standard input, its result or exception written to standard output."""
    function, args, kwargs = pickle.load(sys.stdin.buffer)
    answers, sys.stdout = sys.stdout.buffer, sys.stderr  # whatever the work prints does not mix with the answer
    try:
        answer: tuple[str, Any] = (_OK, function(*args, **kwargs))
    except Exception as raised:  # noqa: BLE001 - handed back to the caller, who raises it
        raised.add_note(f"in the process apart:\n{traceback.format_exc()}")
        answer = (_RAISED, raised)
    try:
        data = pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - an exception that cannot be pickled is told by its text
        data = pickle.dumps((_RAISED, RuntimeError(repr(answer[1]))), pickle.HIGHEST_PROTOCOL)
    answers.write(data)
    answers.flush()
